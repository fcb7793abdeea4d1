"""Sub-commands of run_harness.py beside running ideas: batch, leaderboard, report.

Each lives in its own module and is imported only when asked for, so that
`run_harness.py leaderboard` does not pay for loading aider.
"""

from __future__ import annotations

import argparse
import importlib

from harness.errors import UserError

SUBCOMMANDS = {
    "batch": ("harness.batch.cli", "batch_command"),
    "leaderboard": ("harness.leaderboard", "main"),
    "report": ("harness.report", "main"),
}


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 2, like every other user error
        raise UserError(f"{message} (see {self.prog} --help)")


def subparser(name: str, description: str) -> argparse.ArgumentParser:
    return _Parser(prog=f"run_harness.py {name}", description=description)


def dispatch(argv: list[str]) -> int | None:
    """Run the sub-command named by argv[0]; None if argv names none."""
    if not argv or argv[0] not in SUBCOMMANDS:
        return None
    module, func = SUBCOMMANDS[argv[0]]
    return getattr(importlib.import_module(module), func)(argv[1:])
