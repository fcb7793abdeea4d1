"""The live view of a batch: one line per idea (status, stage, run, best metric, cost, slot).

On a terminal it redraws in place (rich Live); elsewhere (a log file, CI, a test) it
prints one line per event and the same table once at the end. Everything it shows comes
from batch.json, the results store and the slot pool, never from the workers directly.
"""

from __future__ import annotations

import math
from contextlib import AbstractContextManager

from rich.console import Console
from rich.live import Live
from rich.table import Table

from harness.records.batch import BatchRecord
from harness.results.leaderboard import gain
from harness.results.store import RunRow, Store

_STYLE = {"done": "green", "failed": "red", "interrupted": "yellow", "running": "cyan", "queued": "dim"}


def _best(store: Store, template: str, runs: list[RunRow]) -> tuple[str, str, str]:
    """(metric name, best value, change vs run_0) for the template's first metric."""
    defs = store.metrics(template)
    if not defs:
        return "", "-", "-"
    m = defs[0]
    base = next((r.metrics.get(m.name) for r in runs if r.run == 0 and r.status == "done"), None)
    best = None
    for r in runs:
        v = r.metrics.get(m.name)
        if r.run > 0 and r.status == "done" and not r.degenerate and v is not None and not math.isnan(v):
            if best is None or m.is_better(v, best):
                best = v
    g = gain(m, best, base)
    return m.name, "-" if best is None else f"{best:.4g}", "-" if g is None else f"{g * 100:+.1f}%"


def batch_table(record: BatchRecord, store: Store | None, busy: list[dict], title: str = "") -> Table:
    devices = len(record.devices)
    in_use = len(busy)
    table = Table(title=title or f"batch {record.id}: slots in use {in_use}/{devices}", title_justify="left")
    holding = {b.get("holder"): b for b in busy}
    rows, metrics = [], []
    for name, e in record.ideas.items():
        stage, runs_txt, best, change, cost, metric = "-", "-", "-", "-", "-", ""
        idea = store.idea_by_path(e.workspace) if store and e.workspace else None
        if idea is not None:
            runs = store.runs(idea.workspace)
            done = sum(1 for r in runs if r.run > 0 and r.status == "done")
            failed = sum(1 for r in runs if r.status == "failed")
            stage = idea.stage
            runs_txt = f"{done}/{idea.max_runs}" + (f" ({failed} failed)" if failed else "")
            metric, best, change = _best(store, idea.template, runs)
            cost = f"{idea.cost_usd:.4f}"
        if e.status in ("failed", "interrupted"):
            now = e.reason
        elif name in holding:
            b = holding[name]
            now = f"{b.get('label', '')} on {b.get('device', '')}"
        else:
            now = ""
        style = _STYLE.get(e.status, "")
        metrics.append(metric)
        rows.append([name, f"[{style}]{e.status}[/]" if style else e.status, stage, runs_txt, metric, best, change,
                     cost, now[:200]])
    shown = next((m for m in metrics if m), "")
    for col in ("idea", "status", "stage", "runs", f"best {shown}".strip(), "vs run_0", "cost $", "now / why"):
        table.add_column(col, overflow="fold")
    for row in rows:
        # an idea on another template shows which metric its 'best' is
        row[5] = row[5] if row[4] in ("", shown) else f"{row[4]} {row[5]}"
        table.add_row(*row[:4], *row[5:])
    return table


class BatchView(AbstractContextManager):
    def __init__(self, console: Console, record: BatchRecord, store: Store | None):
        self.console, self.record, self.store = console, record, store
        self.live = Live(console=console, refresh_per_second=2, transient=True) if console.is_terminal else None

    def __enter__(self):
        if self.live:
            self.live.__enter__()
        return self

    def __exit__(self, *exc):
        if self.live:
            self.live.__exit__(*exc)
        return False

    def event(self, text: str) -> None:
        # with Live running, console.print goes above the table
        self.console.print(text, highlight=False, markup=False, soft_wrap=True)

    def update(self, busy: list[dict]) -> None:
        if self.live:
            self.live.update(batch_table(self.record, self.store, busy))

    def final(self) -> None:
        self.console.print(batch_table(self.record, self.store, [], title=f"batch {self.record.id}"))
