"""Ending a harness command without the interpreter's teardown.

Importing litellm and aider builds a few hundred thousand objects (1,357 pydantic model classes
alone). Freeing them module by module when the interpreter shuts down took 1.2-1.6 s at the end of
every run_harness.py command that reached a model, on a 2-core machine, after its last line was
printed and its last atexit handler had run. Nothing the harness writes waits for that teardown:
its files are written and closed by then (agent sessions and stores close in `finally` blocks),
and logging and the other libraries flush in their own atexit handlers. So the command ends with
os._exit once every one of those handlers has run.
"""

from __future__ import annotations

import atexit
import os
import sys
from typing import Callable, NoReturn


def exit_status(code: object) -> int:
    """The status Python itself would exit with for sys.exit(code)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    return 1  # a message: Python prints it to stderr and exits 1


def run_then_exit(main: Callable[[], int | None]) -> NoReturn:
    """sys.exit(main()), without the teardown.

    main() must do its own imports: atexit handlers run last-registered first, so this one runs
    after all others only if it is registered before anything else is imported. If some handler
    is registered already (it would be skipped), the process ends the usual way.
    """
    if atexit._ncallbacks():  # no public API for this; it exists in CPython 3.7+
        sys.exit(main())
    status = [1]  # an exception escaping main(): Python prints its traceback and exits 1

    def leave() -> None:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError):  # a closed pipe or stream: nothing more can be said
                pass
        os._exit(status[0])

    atexit.register(leave)
    try:
        status[0] = exit_status(main())
    except SystemExit as exc:
        status[0] = exit_status(exc.code)
        raise
    except KeyboardInterrupt:
        status[0] = 130
        raise
    sys.exit(status[0])
