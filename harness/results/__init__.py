"""What runs produced: a run's metrics against the baseline (metrics.py), the SQLite index of
every run (store.py) and the ranking of ideas built on it (leaderboard.py)."""
