"""Reading a run's final_info.json and summarising it for the agent.

The reference sessions pasted whole nested result dicts (10k+ tokens a turn). The agent
gets a compact table instead: one line per headline metric, this run vs baseline vs
best so far, the direction of better, and degenerate-value flags. Full results stay on
disk for the agent to open if it asks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.template import Metric, TemplateSpec

FINAL_INFO = "final_info.json"
MAX_FALLBACK_METRICS = 20
EVALUATIONS = Path(".harness") / "evaluations"
"""Where the harness keeps its own copy of each run's evaluation (runs cannot write .harness/)."""
# a self-reported value further than this from the harness's is a mismatch: float32 evals of
# the same SAE agree far more closely, a made-up number rarely does
MISMATCH_RTOL = 1e-3
MISMATCH_ATOL = 1e-6
SELF_REPORTED = "self-reported by experiment.py (this template has no harness evaluation)"


class ResultsError(Exception):
    """final_info.json missing or unreadable: the run counts as failed."""


def read_final_info(run_dir: Path) -> dict[str, Any]:
    path = run_dir / FINAL_INFO
    if not path.is_file():
        raise ResultsError(f"the run exited without writing {run_dir.name}/{FINAL_INFO}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ResultsError(f"{run_dir.name}/{FINAL_INFO} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ResultsError(f"{run_dir.name}/{FINAL_INFO} must hold a JSON object")
    return data


def evaluation_path(run_dir: Path) -> Path:
    """The harness's copy of a run's evaluation: the only one any reader trusts."""
    return run_dir.parent / EVALUATIONS / f"{run_dir.name}.json"


@dataclass
class RunResults:
    info: dict[str, Any]
    """What every reader takes numbers from: the run's final_info.json with the sections the
    template's metrics live in replaced by the harness's evaluation (when the template has one)."""
    self_reported: bool
    """True when the numbers are the run's own (a template without an evaluation step)."""
    mismatch: list[str] = field(default_factory=list)
    """Where the run's own files disagree with the harness's evaluation, one sentence each."""


def read_results(spec: TemplateSpec, run_dir: Path) -> RunResults:
    """The one way to read a run's numbers (feedback, state, store, report, paper checks)."""
    own = read_final_info(run_dir)
    if spec.evaluation is None:
        return RunResults(info=own, self_reported=True)
    path = evaluation_path(run_dir)
    try:
        harness = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ResultsError(f"{run_dir.name} has no evaluation by the harness ({path} is missing or "
                           f"unreadable); the run counts as failed") from None
    owned = {m.path[0] for m in spec.metrics if m.path} | set(harness)
    info = {k: v for k, v in own.items() if k not in owned} | harness
    return RunResults(info=info, self_reported=False, mismatch=mismatches(spec, run_dir, own, harness))


def mismatches(spec: TemplateSpec, run_dir: Path, own: dict[str, Any], harness: dict[str, Any]) -> list[str]:
    out = []
    for m in spec.metrics:
        said, measured = m.lookup(own), m.lookup(harness)
        if said is None or measured is None or _close(said, measured):
            continue
        out.append(f"{run_dir.name}/{FINAL_INFO} says {m.label} {_fmt(said)}; "
                   f"the harness's evaluation measured {_fmt(measured)}")
    if spec.evaluation is not None:
        copy = run_dir / spec.evaluation.output
        try:
            same = json.loads(copy.read_text(encoding="utf-8")) == harness
        except (OSError, ValueError):
            same = False
        if not same:
            out.append(f"{run_dir.name}/{spec.evaluation.output} was changed or removed after the harness "
                       f"wrote it (tampered); the harness's own copy is used")
    return out


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return abs(a - b) <= MISMATCH_ATOL + MISMATCH_RTOL * abs(b)


def _numeric_leaves(node: Any, prefix: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], float]]:
    if isinstance(node, dict):
        out = []
        for k, v in node.items():
            out += _numeric_leaves(v, prefix + (str(k),))
        return out
    if isinstance(node, (int, float)) and not isinstance(node, bool):
        return [(prefix, float(node))]
    return []


def headline_metrics(spec: TemplateSpec, info: dict[str, Any]) -> tuple[Metric, ...]:
    """The template's metrics; for a template that names none, the first numeric leaves."""
    if spec.metrics:
        return spec.metrics
    leaves = _numeric_leaves(info)[:MAX_FALLBACK_METRICS]
    return tuple(Metric("/".join(p), p, "higher", "/".join(p)) for p, _ in leaves)


@dataclass
class RunSummary:
    run: int
    values: dict[str, float | None]
    degenerate: list[str] = field(default_factory=list)


def summarise(spec: TemplateSpec, run: int, info: dict[str, Any]) -> RunSummary:
    metrics = headline_metrics(spec, info)
    values = {m.name: m.lookup(info) for m in metrics}
    flags = []
    for m in metrics:
        v = values[m.name]
        if v is not None and (math.isnan(v) or math.isinf(v)):
            flags.append(f"{m.name} is {v} (not a finite number)")
    for rule in spec.degenerate:
        v = values.get(rule.metric)
        if v is not None and not math.isnan(v) and rule.broken_by(v):
            flags.append(f"{rule.describe()}: got {v:.4g}")
    return RunSummary(run=run, values=values, degenerate=flags)


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if math.isnan(v) or math.isinf(v):
        return str(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.3e}"
    return f"{v:.4f}".rstrip("0").rstrip(".") if abs(v) < 1000 else f"{v:.1f}"


def fmt_short(v: float | None) -> str:
    """Four significant digits, for tables people scan (leaderboard, HTML report)."""
    if v is None:
        return "-"
    if math.isnan(v) or math.isinf(v):
        return str(v)
    return f"{v:.4g}"


def best_so_far(spec: TemplateSpec, summaries: list[RunSummary], metric: Metric) -> tuple[float, int] | None:
    """Best non-degenerate value of a metric over runs >= 1."""
    best: tuple[float, int] | None = None
    for s in summaries:
        v = s.values.get(metric.name)
        if s.run == 0 or v is None or s.degenerate:
            continue
        if best is None or metric.is_better(v, best[0]):
            best = (v, s.run)
    return best


def compact_table(spec: TemplateSpec, current: RunSummary, baseline: RunSummary | None,
                  history: list[RunSummary], info: dict[str, Any]) -> str:
    """The few lines the agent sees after a run."""
    metrics = headline_metrics(spec, info)
    width = max([len(m.label) for m in metrics] + [6])
    rows = [f"{'metric':<{width}}  better  run_{current.run:<6} run_0     best (run)"]
    for m in metrics:
        arrow = "↑" if m.better == "higher" else "↓"
        v = current.values.get(m.name)
        b = baseline.values.get(m.name) if baseline else None
        best = best_so_far(spec, history, m)
        best_txt = f"{_fmt(best[0])} (run_{best[1]})" if best else "-"
        rows.append(f"{m.label:<{width}}  {arrow:^6}  {_fmt(v):<10} {_fmt(b):<9} {best_txt}")
    return "\n".join(rows)
