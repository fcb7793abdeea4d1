"""What the terminal shows while an idea runs, and the table it ends with.

A status line at the bottom (stage, run i/N, elapsed, tokens and cost so far) redraws itself
while the stage messages scroll above it. On a terminal only: piped output and CI logs get
the stage messages alone, so they stay readable as plain text.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich.console import Console
from rich.status import Status
from rich.table import Table
from rich.text import Text

from harness.records.state import State
from harness.report.data import versus_baseline
from harness.results.metrics import read_results, summarise
from harness.results.noise import read_noise
from harness.template import TemplateSpec


class StatusLine:
    """Rendered afresh on every refresh, so the clock moves while a run or a model call waits."""

    def __init__(self, idea: str, max_runs: int, totals):
        self.idea, self.max_runs, self.totals = idea, max_runs, totals
        self.stage, self.run = "setup", 0
        self.started = time.monotonic()

    def __rich__(self) -> Text:
        elapsed = int(time.monotonic() - self.started)
        tokens, cost = self.totals()
        run = f" · run {self.run}/{self.max_runs}" if self.stage == "experiments" and self.run else ""
        return Text(f"{self.idea} · {self.stage}{run} · {elapsed // 60}:{elapsed % 60:02d} elapsed · "
                    f"{tokens:,} tokens · ${cost:.2f}", style="bold")


class Progress:
    def __init__(self, console: Console, idea: str, max_runs: int, totals):
        self.line = StatusLine(idea, max_runs, totals)
        self._status = Status(self.line, console=console) if console.is_terminal else None

    def __enter__(self) -> "Progress":
        if self._status:
            self._status.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._status:
            self._status.stop()

    def update(self, stage: str, run: int | None = None) -> None:
        self.line.stage = stage
        if run is not None:
            self.line.run = run


STYLES = {"better": "green", "worse": "red", "noise": "dim", "base": "bold"}


def run_table(spec: TemplateSpec, workspace: Path, state: State) -> Table:
    """Every completed run's headline metrics next to the baseline's, with the direction of better.
    Cells read as in the report: a run with seeds shows its mean ± std, and a difference is
    coloured only when it leaves the baseline's noise band."""
    runs = state.done_runs()
    summaries = {}
    for r in runs:
        try:
            summaries[r.index] = summarise(spec, r.index, read_results(spec, workspace / r.folder).info)
        except Exception:  # noqa: BLE001 - a run folder edited by hand must not hide the rest
            continue
    base = summaries.get(0)
    noise = read_noise(workspace)
    table = Table(title=f"{state.idea}: runs vs baseline (run_0)")
    table.add_column("metric")
    table.add_column("better", justify="center")
    for i in summaries:
        table.add_column(f"run_{i}", justify="right")
    for m in spec.metrics or ():
        cells = []
        for i, s in summaries.items():
            cell = versus_baseline(m, s.values.get(m.name), base.values.get(m.name) if base else None, i == 0,
                                   noise, i)
            cells.append(Text(cell.text, style=STYLES.get(cell.css, "")))
        table.add_row(m.label, "↑" if m.better == "higher" else "↓", *cells)
    notes = []
    if noise.baseline:
        notes.append(f"noise: {noise.rule}")
    flagged = [f"run_{i}" for i, s in summaries.items() if s.degenerate]
    if flagged:
        notes.append(f"degenerate (rules of {spec.name}): {', '.join(flagged)}")
    table.caption = "\n".join(notes) or None
    return table
