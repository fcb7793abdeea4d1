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

A second table comes from the isolation probe (tests/faults/test_isolation_probe.py): per
target (a home dot-file, another workspace, the project's .git, /etc/shadow, /root, the
shared cache, the network, a setsid child, a paper's \\input of an outside file, an SAE export
archive carrying a pickle payload or a torch.os call for the evaluation) and per
sandbox level, how many probes tried it, how many were blocked and how many leaked.
"""

from __future__ import annotations

import json
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
        self.isolation: dict[str, dict] = {}

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
        for k, v in report.user_properties:
            if k == "isolation":
                self.isolation[report.nodeid] = json.loads(v)

    def isolation_rows(self) -> dict[str, dict[str, list[int]]]:
        """target -> level -> [tried, blocked, leaked]"""
        out: dict[str, dict[str, list[int]]] = {}
        for probe in self.isolation.values():
            for target, verdict in probe["rows"].items():
                cell = out.setdefault(target, {}).setdefault(probe["level"], [0, 0, 0])
                cell[0] += 1
                cell[1 if verdict == "blocked" else 2] += 1
        return out

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


def print_isolation(rows: dict[str, dict[str, list[int]]]) -> None:
    if not rows:
        return
    levels = ("namespace", "process")
    width = max(len(k) for k in [*rows, "isolation probe"])
    print(f"\n{'':<{width}} | {'namespace level':^25} | {'process level':^25}")
    print(f"{'isolation probe':<{width}} | " + " | ".join(f"{'tried':>7} {'blocked':>8} {'leaked':>8}" for _ in levels))
    print(f"{'-' * width}-|-" + "-|-".join("-" * 25 for _ in levels))
    for target, by_level in rows.items():
        cells = []
        for lvl in levels:
            t, b, lk = by_level.get(lvl, [0, 0, 0])
            cells.append(f"{t:>7} {b:>8} {lk:>8}" if t else f"{'not tried':>25}")
        print(f"{target:<{width}} | " + " | ".join(cells))
    leaked = sum(c[2] for r in rows.values() for lvl, c in r.items() if lvl == "namespace")
    cannot = [t for t, r in rows.items() if r.get("process", [0, 0, 0])[2]]
    print(f"\nnamespace level: {leaked} leaked. The process level cannot stop: {', '.join(cannot) or 'nothing tried'}")


def main(argv: list[str]) -> int:
    os.chdir(ROOT)
    tally = Tally()
    t0 = time.monotonic()
    code = pytest.main(["tests/faults", "-q", "-p", "no:cacheprovider", *argv], plugins=[tally])
    print_table(tally.rows(), time.monotonic() - t0)
    print_isolation(tally.isolation_rows())
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
