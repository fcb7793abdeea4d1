"""The files stages and processes hand each other, as typed records: state.json (state.py),
a run's meta.json (run_meta.py), a batch's batch.json (batch.py), and the one way they are
written (files.py: atomically) and read leniently."""
