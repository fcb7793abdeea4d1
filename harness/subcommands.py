"""The argument parser of a sub-command (batch, leaderboard, report): a bad argument is a
one-line UserError, exit status 2, like every other user error."""

from __future__ import annotations

import argparse

from harness.errors import UserError


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def subparser(name: str, description: str) -> argparse.ArgumentParser:
    return _Parser(prog=f"run_harness.py {name}", description=description)
