"""Ideas and runs ranked by one metric against each idea's own baseline run_0.

Ranking by the change against run_0, not by the raw value, keeps ideas comparable even
when their baselines differ (another template version, another seed). The change is
signed so that positive always means better, whichever direction the metric prefers.
Degenerate runs (NaN, rule-breaking values) never count as an idea's best.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.errors import UserError
from harness.results.metrics import fmt_short
from harness.results.store import IdeaRow, MetricDef, RunRow, Store


@dataclass
class RunStanding:
    idea: str
    run: int
    value: float | None
    baseline: float | None
    gain: float | None
    """Improvement over run_0, relative where run_0 is not 0; positive is better."""
    degenerate: bool


@dataclass
class IdeaStanding:
    row: IdeaRow
    best: RunStanding | None
    baseline: float | None
    runs_done: int
    runs_failed: int


@dataclass
class Leaderboard:
    metric: MetricDef
    ideas: list[IdeaStanding]
    runs: list[RunStanding]


def gain(metric: MetricDef, value: float | None, base: float | None) -> float | None:
    if value is None or base is None or math.isnan(value) or math.isnan(base):
        return None
    diff = value - base if metric.better == "higher" else base - value
    return diff / abs(base) if base != 0 else diff


def choose_metric(store: Store, ideas: list[IdeaRow], name: str | None) -> MetricDef:
    defs: dict[str, MetricDef] = {}
    for template in dict.fromkeys(i.template for i in ideas):
        for m in store.metrics(template):
            defs.setdefault(m.name, m)
    if not defs:
        raise UserError("no runs with metrics in the results store yet; run an idea first "
                        "(or pass --workspace-root where the workspaces are)")
    if name is None:
        return min(defs.values(), key=lambda m: m.position)
    for m in defs.values():
        if name in (m.name, m.label):
            return m
    raise UserError(f"unknown metric '{name}'; pass --metric with one of: {', '.join(sorted(defs))}")


def build(store: Store, metric_name: str | None = None, batch: str | None = None) -> Leaderboard:
    ideas = store.ideas(batch)
    metric = choose_metric(store, ideas, metric_name)
    standings, all_runs = [], []
    for idea in ideas:
        if metric.name not in {m.name for m in store.metrics(idea.template)}:
            continue
        runs = store.runs(idea.workspace)
        base_row = next((r for r in runs if r.run == 0 and r.status == "done"), None)
        base = base_row.metrics.get(metric.name) if base_row else None
        mine = [_standing(metric, idea, r, base) for r in runs if r.run > 0 and r.status == "done"]
        all_runs += mine
        ok = [s for s in mine if not s.degenerate and s.value is not None and not math.isnan(s.value)]
        best = None
        for s in ok:
            if best is None or metric.is_better(s.value, best.value):
                best = s
        standings.append(IdeaStanding(idea, best, base, len(mine), sum(r.status == "failed" for r in runs)))
    standings.sort(key=_idea_key)
    all_runs.sort(key=lambda s: (s.degenerate, s.gain is None, -(s.gain or 0.0), s.idea, s.run))
    return Leaderboard(metric, standings, all_runs)


def _standing(metric: MetricDef, idea: IdeaRow, r: RunRow, base: float | None) -> RunStanding:
    v = r.metrics.get(metric.name)
    return RunStanding(idea.idea, r.run, v, base, gain(metric, v, base), bool(r.degenerate))


def _idea_key(s: IdeaStanding):
    # finished ideas with a measured gain first, best gain first; then ideas without runs; failed last
    failed = s.row.status in ("stopped", "failed")
    g = s.best.gain if s.best else None
    return (failed, g is None, -(g or 0.0), s.row.idea)


_fmt = fmt_short


def _pct(g: float | None) -> str:
    return "-" if g is None else f"{g * 100:+.1f}%"


def render(board: Leaderboard, console: Console, top_runs: int = 20) -> None:
    m = board.metric
    arrow = "higher" if m.better == "higher" else "lower"
    ideas = Table(title=f"Ideas ranked by {m.label} ({arrow} is better), best run against the idea's run_0")
    for col in ("#", "idea", "status", "best run", m.name, "run_0", "vs run_0", "runs ok/failed", "tokens",
                "cost $", "note"):
        ideas.add_column(col, overflow="fold")
    for rank, s in enumerate(board.ideas, 1):
        failed = s.row.status in ("stopped", "failed")
        note = s.row.error if failed else (f"paper: {s.row.paper}" if s.row.paper else s.row.stage)
        ideas.add_row(str(rank), s.row.idea, "failed" if failed else s.row.status,
                      f"run_{s.best.run}" if s.best else "-", _fmt(s.best.value if s.best else None),
                      _fmt(s.baseline), _pct(s.best.gain if s.best else None), f"{s.runs_done}/{s.runs_failed}",
                      str(s.row.tokens), f"{s.row.cost_usd:.4f}", note[:160])
    console.print(ideas)
    runs = Table(title=f"Runs ranked by {m.label} against their idea's run_0")
    for col in ("#", "idea", "run", m.name, "run_0", "vs run_0", "flag"):
        runs.add_column(col)
    for rank, r in enumerate(board.runs[:top_runs], 1):
        runs.add_row(str(rank), r.idea, f"run_{r.run}", _fmt(r.value), _fmt(r.baseline), _pct(r.gain),
                     "degenerate" if r.degenerate else "")
    console.print(runs)


REVIEW = "review"
"""`--metric review`: rank ideas by their meta-review's overall score (review.json), not by a run metric."""


@dataclass
class ReviewStanding:
    row: IdeaRow
    overall: float | None
    decision: str
    kept: str
    """Reviews kept of reviewers asked, e.g. 3/3."""


def build_by_review(store: Store, batch: str | None = None) -> list[ReviewStanding]:
    from harness.records.files import read_json

    out = []
    for idea in store.ideas(batch):
        data = read_json(Path(idea.workspace) / "review.json")
        data = data if isinstance(data, dict) else {}
        meta = data.get("meta_review") if isinstance(data.get("meta_review"), dict) else {}
        reviewers = [o for o in data.get("reviewers") or [] if isinstance(o, dict)]
        score = meta.get("overall")
        out.append(ReviewStanding(idea, float(score) if isinstance(score, (int, float)) else None,
                                  str(meta.get("decision", "")),
                                  f"{sum(o.get('status') == 'ok' for o in reviewers)}/{len(reviewers)}" if data else "-"))
    out.sort(key=lambda s: (s.overall is None, -(s.overall or 0.0), s.row.idea))
    return out


def render_reviews(board: list[ReviewStanding], console: Console) -> None:
    table = Table(title="Ideas ranked by the meta-review's overall score (1-10, higher is better)")
    for col in ("#", "idea", "status", "overall", "decision", "reviews kept", "note"):
        table.add_column(col, overflow="fold")
    for rank, s in enumerate(board, 1):
        note = s.row.error or (f"paper: {s.row.paper}" if s.row.paper else s.row.stage)
        table.add_row(str(rank), s.row.idea, s.row.status, "-" if s.overall is None else f"{s.overall:g}",
                      s.decision or "-", s.kept, note[:160] if s.overall is not None else "no review.json yet")
    console.print(table)


def main(argv: list[str]) -> int:
    """`run_harness.py leaderboard [--metric M] [--batch DIR] [--workspace-root DIR] [--rebuild]`"""
    from harness.arguments import subparser

    p = subparser("leaderboard", "Rank ideas and their runs against their baselines, from the results store.")
    p.add_argument("--metric", help="metric name or label to rank by (default: the template's first metric); "
                                    "`review`: the meta-review's overall score")
    p.add_argument("--batch", type=Path, metavar="DIR", help="only the ideas of this batch folder")
    p.add_argument("--workspace-root", dest="workspace_root", type=Path, default=Path("workspaces"), metavar="DIR",
                   help="where the workspaces and results.sqlite are (default: workspaces)")
    p.add_argument("--rebuild", action="store_true", help="rebuild the store from the workspaces first")
    p.add_argument("--runs", type=int, default=20, metavar="N", help="how many runs to list (default: 20)")
    args = p.parse_args(argv)
    if not args.workspace_root.is_dir():
        raise UserError(f"{args.workspace_root} does not exist; pass --workspace-root with the folder of your workspaces")
    batch = None
    if args.batch is not None:
        from harness.records.batch import load_batch

        batch = load_batch(args.batch).id
    store = Store.for_root(args.workspace_root)
    try:
        if args.rebuild:
            store.rebuild(args.workspace_root)
        else:
            store.sync_root(args.workspace_root)
        console = Console(highlight=False, width=200)
        if args.metric == REVIEW:
            render_reviews(build_by_review(store, batch), console)
        else:
            render(build(store, args.metric, batch), console, args.runs)
    finally:
        store.close()
    return 0
