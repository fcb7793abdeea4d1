"""Runs the fault suite and prints, per fault, what was tried, what survived and what was lost.

    .venvs/harness/bin/python bench/fault_table.py [pytest args, e.g. -k kill]

Each test in tests/faults injects one fault for real (a crashing or hanging run, a full
disk, a SIGKILL of the harness, a corrupt state.json, ...) and names it with
@pytest.mark.fault. Here pytest runs them in-process with a small plugin that reads,
for every test, its fault, its outcome and the problems the integrity check found
(tests/faults/integrity.py: completed runs, commits, tags or state.json missing or
changed afterwards). Columns:

    tried      tests of that fault that ran (skipped ones are listed below the table)
    survived   of those, tests that passed: the harness did what it must
    data lost  problems the integrity check counted; '-' where the fault is caught
               before any workspace exists (bad idea or config), so nothing could be lost
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    tried: int = 0
    survived: int = 0
    lost: int | None = None
    skipped: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Tally:
    """pytest plugin: one Row per fault name, filled from the test reports."""

    def __init__(self):
        self.fault_of: dict[str, str] = {}
        self.outcome: dict[str, str] = {}
        self.lost: dict[str, int] = {}
        self.reason: dict[str, str] = {}

    def pytest_collection_modifyitems(self, items):
        for item in items:
            mark = item.get_closest_marker("fault")
            self.fault_of[item.nodeid] = mark.args[0] if mark else f"(unnamed) {item.name}"

    def pytest_runtest_logreport(self, report):
        before = self.outcome.get(report.nodeid, "passed")
        if report.skipped:
            self.outcome[report.nodeid] = "skipped"
            self.reason[report.nodeid] = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
        elif report.failed:
            self.outcome[report.nodeid] = "failed"
        else:
            self.outcome[report.nodeid] = before
        # the same list on every phase's report: assign, never add up
        values = [v for k, v in report.user_properties if k == "data_lost"]
        if values:
            self.lost[report.nodeid] = sum(values)

    def rows(self) -> dict[str, Row]:
        out: dict[str, Row] = {}
        for nodeid, fault in self.fault_of.items():
            row = out.setdefault(fault, Row())
            outcome = self.outcome.get(nodeid)
            if outcome is None:
                continue  # deselected
            if outcome == "skipped":
                row.skipped.append(f"{nodeid}: {self.reason.get(nodeid, '')}")
                continue
            row.tried += 1
            row.survived += outcome == "passed"
            if outcome == "failed":
                row.failed.append(nodeid)
            if nodeid in self.lost:
                row.lost = (row.lost or 0) + self.lost[nodeid]
        return {k: v for k, v in out.items() if v.tried or v.skipped}


def print_table(rows: dict[str, Row], seconds: float) -> None:
    width = max([len(k) for k in rows] + [5])
    print(f"\n{'fault':<{width}} | tried | survived | data lost")
    print(f"{'-' * width}-|-------|----------|----------")
    for fault, r in rows.items():
        lost = "-" if r.lost is None else str(r.lost)
        print(f"{fault:<{width}} | {r.tried:>5} | {r.survived:>8} | {lost:>9}")
    tried = sum(r.tried for r in rows.values())
    survived = sum(r.survived for r in rows.values())
    lost = sum(r.lost or 0 for r in rows.values())
    print(f"{'-' * width}-|-------|----------|----------")
    print(f"{'all ' + str(len(rows)) + ' faults':<{width}} | {tried:>5} | {survived:>8} | {lost:>9}")
    print(f"\n{tried} scenarios in {seconds:.0f} s; {survived} survived, {lost} integrity problems found")
    for fault, r in rows.items():
        for nodeid in r.failed:
            print(f"NOT SURVIVED  {fault}: {nodeid}")
        for line in r.skipped:
            print(f"skipped       {fault}: {line}")


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    tally = Tally()
    t0 = time.monotonic()
    code = pytest.main(["tests/faults", "-q", "-p", "no:cacheprovider", *argv], plugins=[tally])
    print_table(tally.rows(), time.monotonic() - t0)
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
