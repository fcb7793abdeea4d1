"""Where sae_bench's chatter goes: it prints a line per probe and draws a progress bar per epoch
(explicitly enabled, so TQDM_DISABLE cannot silence it), thousands of lines per run."""

from __future__ import annotations

import contextlib
from pathlib import Path


@contextlib.contextmanager
def into_log(path: Path):
    """Send stdout and stderr to `path` meanwhile; an exception still reaches the caller."""
    with open(path, "a") as f, contextlib.redirect_stdout(f), contextlib.redirect_stderr(f):
        yield
