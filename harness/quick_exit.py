"""Ending a harness process without the interpreter's teardown.

Importing litellm and aider builds a few hundred thousand objects (1,357 pydantic model classes
alone). Freeing them module by module when the interpreter shuts down took 1.2-1.6 s at the end of
every run_harness.py command that reached a model, on a 2-core machine, after its last line was
printed and its last atexit handler had run. Nothing the harness writes waits for that teardown:
its files are written and closed by then (agent sessions and stores close in `finally` blocks).
So a command that returns normally does what the interpreter does at exit up to the teardown, then
ends with os._exit. (saekit.evaluate_run does the same; the template cannot import the harness.)
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
from typing import NoReturn


def exit_without_teardown(status: int | None) -> NoReturn:
    """sys.exit(status) as the interpreter would run it, minus freeing every module."""
    threading._shutdown()  # tells executors' idle workers to stop, then joins non-daemon threads
    atexit._run_exitfuncs()  # logging, temporary folders, file locks, Ray, ...
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
            pass
    os._exit(status or 0)  # main() returning None means success, as with sys.exit(None)
