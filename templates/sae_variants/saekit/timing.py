"""Stopwatches, so that a run can report where its time went (the LM-forward share in particular)."""

from __future__ import annotations

import time
from contextlib import contextmanager


class Stopwatch:
    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0

    @contextmanager
    def timing(self):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


# Every pass through the language model's blocks, whoever makes it, is timed on this one, so the
# figure covers activation collection, the SAE-spliced passes and any cache misses alike.
LM_FORWARD = Stopwatch()
