"""What a report shows, gathered from a workspace (through the results store) and its git
history. Plain records: the templates only lay them out."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import git

from harness.agent.chatlog import CHAT_LOG, read_chat_log, tokens_of
from harness.execution.slots import HOLDS_LOG, read_holds
from harness.records.batch import BatchRecord
from harness.records.files import read_json
from harness.results.leaderboard import gain
from harness.results.metrics import ResultsError, fmt_short, read_results
from harness.results.noise import Noise, read_noise
from harness.results.store import IdeaRow, MetricDef, RunRow, Store
from harness.template import TemplateSpec, load_template

MAX_DIFF_LINES = 400
RUN_FILES = ("evaluation.json", "final_info.json", "meta.json", "stdout.log", "stderr.log", "evaluation.log")
WORKSPACE_LINKS = (("paper", "paper.pdf"), ("claims check", "claims.json"), ("review", "review.json"), ("harness log", "harness.log"),
                   ("model calls", "chat.jsonl"), ("notes", "notes.txt"), ("idea", "idea.json"))


@dataclass
class Cell:
    text: str
    css: str
    """better | worse | same | noise (a difference inside the seed-noise band) | base | missing"""


@dataclass
class RunLine:
    folder: str
    run: int
    status: str
    cells: list[Cell]
    duration_s: float
    tokens: int
    cost_usd: float
    device: str
    flags: list[str]
    error: str
    links: list[tuple[str, str]]
    mismatch: list[str] = field(default_factory=list)
    """Where the run's own files disagree with the harness's evaluation."""
    self_reported: bool = False
    """Its numbers are experiment.py's own (the template has no evaluation step)."""


@dataclass
class CommitView:
    short: str
    when: str
    subject: str
    kind: str
    """agent | harness"""
    stat: list[str]
    diff: list[tuple[str, str]]
    """(css class, line) of the patch; empty for harness commits (results, logs)"""
    truncated: int = 0


@dataclass
class StageCost:
    stage: str
    calls: int
    tokens: int
    cost_usd: float


@dataclass
class Claims:
    present: bool
    total: int = 0
    unmatched: list[dict] = field(default_factory=list)


@dataclass
class ReviewView:
    present: bool
    reviewers: list[dict] = field(default_factory=list)
    """Each: reviewer, status (ok | dropped), reason, and the form's fields when there is one."""
    meta: dict | None = None
    meta_note: str = ""
    findings: list[dict] = field(default_factory=list)
    revision: dict | None = None


@dataclass
class IdeaReport:
    idea: IdeaRow
    metrics: list[MetricDef]
    runs: list[RunLine]
    figures: list[str]
    commits: list[CommitView]
    costs: list[StageCost]
    claims: Claims
    links: list[tuple[str, str]]
    review: ReviewView = field(default_factory=lambda: ReviewView(False))


_fmt = fmt_short


def versus_baseline(m: MetricDef, v: float | None, base: float | None, is_base: bool, noise: Noise | None = None,
          run: int | None = None) -> Cell:
    """A run's value against the baseline; with the baseline's seed spread, against its mean,
    coloured only when the difference leaves the noise band (grey 'noise' otherwise). A run with
    several seeds (the confirmed one) is its mean over them, as in the paper's table and the
    confirmation's verdict: its seed 0 alone could be the lucky draw the seeds are there to catch."""
    seeded = noise.runs.get(0) if noise else None
    spread = seeded.metrics.get(m.name) if seeded else None
    if is_base:
        return Cell(spread.text(_fmt) if spread and spread.std is not None else _fmt(v), "base")
    if spread is not None and spread.band is not None:
        base = spread.mean
    own = noise.seeded(run, m.name) if noise and run else None
    shown = _fmt(v)
    if own is not None:
        v, shown = own.mean, own.text(_fmt)
    g = gain(m, v, base)
    if g is None:
        return Cell(shown, "missing")
    pct = f" ({g * 100:+.1f}%)" if base not in (None, 0) else ""
    if g != 0 and noise is not None and noise.within(m.name, v, base):
        return Cell(shown + pct + " within noise", "noise")
    return Cell(shown + pct, "better" if g > 0 else "worse" if g < 0 else "same")


def _checked(ws: Path, folder: str, spec: TemplateSpec | None) -> tuple[list[str], bool]:
    """(mismatches, self-reported) of a run, read now: a run folder changed since is caught."""
    if spec is None:
        return [], False
    try:
        results = read_results(spec, ws / folder)
    except ResultsError:
        return [], spec.evaluation is None
    return results.mismatch, results.self_reported


def run_lines(ws: Path, runs: list[RunRow], metrics: list[MetricDef],
              spec: TemplateSpec | None = None) -> list[RunLine]:
    base_row = next((r for r in runs if r.run == 0 and r.status == "done"), None)
    noise = read_noise(ws)
    out = []
    for r in runs:
        if r.status == "done":
            cells = [versus_baseline(m, r.metrics.get(m.name), base_row.metrics.get(m.name) if base_row else None, r.run == 0,
                           noise, r.run) for m in metrics]
        else:
            cells = [Cell("-", "missing") for _ in metrics]
        links = [(name.split(".")[0], f"{r.folder}/{name}") for name in RUN_FILES if (ws / r.folder / name).is_file()]
        mismatch, self_reported = _checked(ws, r.folder, spec) if r.status == "done" else ([], False)
        out.append(RunLine(r.folder, r.run, r.status, cells, r.duration_s, r.tokens, r.cost_usd, r.device,
                           r.degenerate if r.status == "done" else [], r.error, links, mismatch, self_reported))
    return out


def commits(ws: Path) -> list[CommitView]:
    repo = git.Repo(ws)
    out = []
    for c in reversed(list(repo.iter_commits())):
        agent = "agent edit" in c.summary
        stat = [f"{path}: +{s['insertions']} -{s['deletions']}" for path, s in sorted(c.stats.files.items())]
        diff: list[tuple[str, str]] = []
        truncated = 0
        if agent:
            # the agent's own change; chat.jsonl rides along in the same commit but is no diff to read
            text = repo.git.show(c.hexsha, "--format=", "--patch", "--no-color", "--", ".", ":(exclude)chat.jsonl")
            lines = text.splitlines()
            truncated = max(0, len(lines) - MAX_DIFF_LINES)
            for ln in lines[:MAX_DIFF_LINES]:
                css = ("meta" if ln.startswith(("diff ", "index ", "+++", "---")) else "hunk" if ln.startswith("@@")
                       else "add" if ln.startswith("+") else "del" if ln.startswith("-") else "ctx")
                diff.append((css, ln))
        out.append(CommitView(c.hexsha[:8], c.committed_datetime.strftime("%Y-%m-%d %H:%M:%S"), c.summary,
                              "agent" if agent else "harness", stat, diff, truncated))
    return out


def stage_costs(ws: Path) -> list[StageCost]:
    by: dict[str, StageCost] = {}
    for rec in read_chat_log(ws / CHAT_LOG):
        s = by.setdefault(rec.get("stage", "?"), StageCost(rec.get("stage", "?"), 0, 0, 0.0))
        s.calls += 1
        s.tokens += tokens_of(rec)
        s.cost_usd += float(rec.get("cost_usd", 0.0))
    return list(by.values())


def claims(ws: Path) -> Claims:
    data = read_json(ws / "claims.json")
    if not isinstance(data, dict):
        return Claims(False)
    results = data.get("results", [])
    return Claims(True, int(data.get("claims", len(results))), [r for r in results if r.get("status") != "ok"])


def review(ws: Path) -> ReviewView:
    """review.json as written by the review stage; read leniently (a report never fails on it)."""
    data = read_json(ws / "review.json")
    if not isinstance(data, dict):
        return ReviewView(False)
    reviewers = []
    for o in data.get("reviewers") or []:
        if isinstance(o, dict):
            form = o.get("review") if isinstance(o.get("review"), dict) else {}
            reviewers.append({**form, "reviewer": o.get("reviewer"), "status": o.get("status", "?"),
                              "reason": o.get("reason", "")})
    evidence = data.get("evidence") if isinstance(data.get("evidence"), dict) else {}
    meta = data.get("meta_review") if isinstance(data.get("meta_review"), dict) else None
    return ReviewView(True, reviewers, meta, str(data.get("meta_note") or ""),
                      [f for f in evidence.get("findings", []) if isinstance(f, dict)],
                      data.get("revision") if isinstance(data.get("revision"), dict) else None)


def idea_report(ws: Path, store: Store) -> IdeaReport:
    store.sync_workspace(ws)
    idea = store.idea_by_path(ws)
    if idea is None:
        from harness.errors import UserError

        raise UserError(f"{ws} could not be read as a workspace; check its state.json")
    metrics = store.metrics(idea.template)
    runs = store.runs(idea.workspace)
    figures = sorted(p.name for p in ws.glob("*.png") if p.is_file())
    links = [(label, rel) for label, rel in WORKSPACE_LINKS if (ws / rel).is_file()]
    try:
        spec: TemplateSpec | None = load_template(idea.template)
    except Exception:  # noqa: BLE001 - a moved template only loses the mismatch check
        spec = None
    return IdeaReport(idea, metrics, run_lines(ws, runs, metrics, spec), figures, commits(ws), stage_costs(ws),
                      claims(ws), links, review(ws))


@dataclass
class BatchLine:
    name: str
    title: str
    status: str
    reason: str
    report: str
    """Link to the idea's report.html, relative to the batch folder ('' without a workspace)."""
    paper: str
    stage: str
    runs_done: int
    runs_failed: int
    metric: str
    best: str
    change: str
    change_css: str
    tokens: int
    cost_usd: float
    log: str
    """The worker's log, relative to the batch folder."""


@dataclass
class BatchReport:
    record: BatchRecord
    metric: str
    """Label of the metric the 'best' column shows (the first idea's template's first metric)."""
    lines: list[BatchLine]
    tokens: int
    cost_usd: float
    utilisation: float | None
    """Busy slot-seconds over slots x the batch's span (None before any hold)."""
    holds: int


def utilisation(batch_dir: Path, slots: int) -> tuple[float | None, int]:
    holds = read_holds(batch_dir / HOLDS_LOG)
    if not holds or slots <= 0:
        return None, len(holds)
    span = max(h.released for h in holds) - min(h.requested for h in holds)
    busy = sum(h.released - h.acquired for h in holds)
    return (busy / (slots * span) if span > 0 else None), len(holds)


def batch_report(batch_dir: Path, record: BatchRecord, store: Store) -> BatchReport:
    lines, tokens, cost = [], 0, 0.0
    for name, e in record.ideas.items():
        idea = store.idea_by_path(e.workspace) if e.workspace else None
        runs = store.runs(idea.workspace) if idea else []
        metric, best, change, css = "", "-", "-", "missing"
        defs = store.metrics(idea.template) if idea else []
        if defs:
            m = defs[0]
            base = next((r.metrics.get(m.name) for r in runs if r.run == 0 and r.status == "done"), None)
            vals = [r.metrics.get(m.name) for r in runs if r.run > 0 and r.status == "done" and not r.degenerate]
            vals = [v for v in vals if v is not None and not math.isnan(v)]
            top = None
            for v in vals:
                if top is None or m.is_better(v, top):
                    top = v
            g = gain(m, top, base)
            metric, best = m.label, _fmt(top)
            if g is not None:
                change, css = f"{g * 100:+.1f}%", "better" if g > 0 else "worse" if g < 0 else "same"
                if g != 0 and idea and read_noise(Path(idea.workspace)).within(m.name, top, base):
                    change, css = change + " within noise", "noise"  # the idea's best is no finding
        report = os.path.relpath(Path(e.workspace) / "report.html", batch_dir) if e.workspace else ""
        paper = os.path.relpath(Path(e.workspace) / idea.paper, batch_dir) if idea and idea.paper else ""
        lines.append(BatchLine(name, e.title, e.status, e.reason, report, paper, idea.stage if idea else "-",
                               sum(r.run > 0 and r.status == "done" for r in runs),
                               sum(r.status == "failed" for r in runs), metric, best, change, css,
                               idea.tokens if idea else 0, idea.cost_usd if idea else 0.0, f"logs/{name}.log"))
        tokens += idea.tokens if idea else 0
        cost += idea.cost_usd if idea else 0.0
    util, holds = utilisation(batch_dir, len(record.devices))
    metric = next((line.metric for line in lines if line.metric), "")
    return BatchReport(record, metric, lines, tokens, cost, util, holds)
