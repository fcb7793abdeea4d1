"""Running agent-written code: one bounded process (process.py) in a sandbox (sandbox.py),
one experiment run and the folder it leaves (runs.py), what runs may leave behind in a
workspace (links.py), and the device slots a process holds while it runs (slots.py)."""
