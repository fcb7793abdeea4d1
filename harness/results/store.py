"""The results store: one SQLite row per run of every idea under a workspace root.

The workspaces stay the record; the store is an index over them, so it can always be
rebuilt from them (`leaderboard --rebuild`). It is kept current in two ways: a batch's
scheduler syncs an idea whenever its state.json changes (so rows appear as runs finish),
and every reader (leaderboard, report) syncs the workspaces that changed since it last
looked. Only those processes write it, never the workers, so a Ray cluster's workers need
no access to it.
"""

from __future__ import annotations

import json
import math
import re
import sqlite3
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from pathlib import Path
from typing import Iterator

from harness.agent.chatlog import CHAT_LOG, read_chat_log, tokens_of
from harness.errors import UserError
from harness.records.files import read_json
from harness.records.run_meta import RunMeta, read_meta
from harness.records.state import STAGES, State, load_state
from harness.results.metrics import ResultsError, read_results, summarise
from harness.template import TemplateSpec, is_better, load_template

STORE_FILE = "results.sqlite"
RUN_DIR = re.compile(r"^run_(\d+)(?:_(failed|interrupted)_(\d+))?$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS ideas (
  workspace TEXT PRIMARY KEY, idea TEXT NOT NULL, title TEXT, template TEXT, model TEXT,
  batch TEXT, status TEXT, error TEXT, stage TEXT, stages TEXT, next_run INTEGER, max_runs INTEGER,
  tokens INTEGER, cost_usd REAL, paper TEXT, created TEXT, sync_key TEXT);
CREATE TABLE IF NOT EXISTS runs (
  workspace TEXT NOT NULL, folder TEXT NOT NULL, idea TEXT NOT NULL, run INTEGER NOT NULL,
  template TEXT, model TEXT, commit_sha TEXT, status TEXT, metrics TEXT, degenerate TEXT,
  duration_s REAL, tokens INTEGER, cost_usd REAL, error TEXT, started_at TEXT, device TEXT,
  batch TEXT, PRIMARY KEY (workspace, folder));
CREATE TABLE IF NOT EXISTS metrics (
  template TEXT NOT NULL, name TEXT NOT NULL, label TEXT, better TEXT, position INTEGER,
  PRIMARY KEY (template, name));
"""


@dataclass
class IdeaRow:
    workspace: str
    idea: str
    title: str
    template: str
    model: str
    batch: str
    status: str
    """running | done | stopped | failed (from state.json)"""
    error: str
    stage: str
    """The stage in progress, or where the idea stopped ('done' when finished)."""
    stages: dict[str, str]
    next_run: int
    max_runs: int
    tokens: int
    cost_usd: float
    paper: str
    """Path of paper.pdf relative to the workspace, '' if there is none."""
    created: str
    sync_key: str = ""


@dataclass
class RunRow:
    workspace: str
    folder: str
    idea: str
    run: int
    template: str
    model: str
    commit_sha: str
    status: str
    """done | failed | interrupted"""
    metrics: dict[str, float | None]
    degenerate: list[str]
    duration_s: float
    tokens: int
    """Tokens the agent spent on the turns that led to this run (since the previous run started)."""
    cost_usd: float
    error: str
    started_at: str
    device: str
    batch: str


@dataclass(frozen=True)
class MetricDef:
    template: str
    name: str
    label: str
    better: str
    position: int

    def is_better(self, a: float, b: float) -> bool:
        return is_better(self.better, a, b)


@dataclass
class _Call:
    ts: datetime
    stage: str
    tokens: int
    cost: float


def _when(text: str) -> datetime | None:
    try:
        return datetime.fromisoformat(text)
    except (TypeError, ValueError):
        return None


def _calls(ws: Path) -> list[_Call]:
    out = []
    for rec in read_chat_log(ws / CHAT_LOG):
        ts = _when(rec.get("ts", ""))
        if ts is not None:
            out.append(_Call(ts, rec.get("stage", ""), tokens_of(rec), float(rec.get("cost_usd", 0.0))))
    return out


def sync_key(ws: Path) -> str:
    """Changes whenever anything the store reads from the workspace changes."""
    parts = []
    for name in ("state.json", "chat.jsonl", "paper.pdf"):
        try:
            st = (ws / name).stat()
            parts.append(f"{st.st_mtime_ns}:{st.st_size}")
        except FileNotFoundError:
            parts.append("-")
    parts.append(str(sum(1 for p in ws.glob("run_*") if p.is_dir())))
    return "/".join(parts)


def _stage(state: State) -> str:
    if state.status == "done":
        return "done"
    for name in STAGES:
        if state.stages.get(name) in ("running", "stopped", "pending"):
            return name
    return state.status


def read_workspace(ws: Path, batch: str = "") -> tuple[IdeaRow, list[RunRow], list[MetricDef]]:
    """Everything the store keeps about one workspace, read from its files."""
    # the key of the files as they are before reading them: a state.json replaced while they are
    # read then changes the key, and the next sync reads again (a key taken after the read would
    # pair the new key with the old content and leave the idea "running" in the store for good)
    key = sync_key(ws)
    state = load_state(ws)
    idea = read_json(ws / "idea.json") or {}
    spec: TemplateSpec | None
    try:
        spec = load_template(state.template)
    except UserError:
        spec = None  # the template moved: runs are listed without metrics
    template = spec.name if spec else Path(state.template).name
    model = str(state.config.get("model", ""))
    calls = _calls(ws)
    runs = _runs(ws, state, spec, template, model, batch, calls)
    row = IdeaRow(
        workspace=str(ws), idea=state.idea, title=str(idea.get("Title", "")), template=template, model=model,
        batch=batch, status=state.status, error=state.error, stage=_stage(state), stages=dict(state.stages),
        next_run=state.experiments.next_run, max_runs=int(state.config.get("max_runs", 0) or 0),
        tokens=sum(c.tokens for c in calls), cost_usd=round(sum(c.cost for c in calls), 6),
        paper="paper.pdf" if (ws / "paper.pdf").is_file() else "", created=state.created, sync_key=key)
    metrics = [MetricDef(template, m.name, m.label, m.better, i) for i, m in enumerate(spec.metrics)] if spec else []
    return row, runs, metrics


def _runs(ws: Path, state: State, spec: TemplateSpec | None, template: str, model: str, batch: str,
          calls: list[_Call]) -> list[RunRow]:
    rows = []
    for folder in ws.iterdir():
        m = RUN_DIR.match(folder.name)
        if not m or not folder.is_dir():
            continue
        index, kind = int(m.group(1)), m.group(2)
        if kind is None:
            rec = state.runs.get(str(index))
            if rec is None or rec.status != "done":
                continue  # still running: it gets its row when it is recorded
            status = "done"
        else:
            status = kind
        meta = read_meta(folder) or RunMeta()
        values: dict[str, float | None] = {}
        flags: list[str] = []
        if status == "done" and spec is not None:
            try:
                s = summarise(spec, index, read_results(spec, folder).info)
                values, flags = s.values, s.degenerate
            except ResultsError as exc:
                flags = [str(exc)]
        rows.append(RunRow(
            workspace=str(ws), folder=folder.name, idea=state.idea, run=index, template=template, model=model,
            commit_sha=str(meta.commit), status=status, metrics=values, degenerate=flags,
            duration_s=float(meta.duration_s or 0.0), tokens=0, cost_usd=0.0,
            error=str(meta.error or ("interrupted by a harness restart" if status == "interrupted" else "")),
            started_at=str(meta.started_at), device=str(meta.device), batch=batch))
    _attribute(rows, calls)
    return sorted(rows, key=lambda r: (r.run, r.folder != f"run_{r.run}", r.folder))


def _attribute(rows: list[RunRow], calls: list[_Call]) -> None:
    """Give each run the model calls of the experiments stage made since the previous run started."""
    timed = sorted((t, r) for r in rows if r.run > 0 and (t := _when(r.started_at)) is not None)
    calls = [c for c in calls if c.stage == "experiments"]
    prev = None
    for start, row in timed:
        mine = [c for c in calls if (prev is None or c.ts > prev) and c.ts <= start]
        row.tokens = sum(c.tokens for c in mine)
        row.cost_usd = round(sum(c.cost for c in mine), 6)
        prev = start


def _nan_safe(values: dict[str, float | None]) -> str:
    return json.dumps({k: (None if v is None or math.isnan(v) or math.isinf(v) else v) for k, v in values.items()})


class Store:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(path, timeout=30, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise UserError(f"{path} is not a usable results store ({exc}); delete it and run "
                            f"`leaderboard --rebuild` to rebuild it from the workspaces") from None
        self.db.row_factory = sqlite3.Row

    @classmethod
    def for_root(cls, root: Path) -> Store:
        return cls(root / STORE_FILE)

    def close(self) -> None:
        self.db.close()

    # --- writing -------------------------------------------------------------------
    def put(self, idea: IdeaRow, runs: list[RunRow], metrics: list[MetricDef]) -> None:
        """Replace everything stored about one workspace, in one transaction."""
        cols = [f.name for f in fields(IdeaRow)]
        rcols = [f.name for f in fields(RunRow)]
        with self._tx():
            self.db.execute("DELETE FROM runs WHERE workspace = ?", (idea.workspace,))
            self.db.execute(f"INSERT OR REPLACE INTO ideas ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                            [json.dumps(v) if isinstance(v, dict) else v for v in asdict(idea).values()])
            for r in runs:
                values = asdict(r)
                values["metrics"] = _nan_safe(r.metrics)
                values["degenerate"] = json.dumps(r.degenerate)
                self.db.execute(f"INSERT INTO runs ({', '.join(rcols)}) VALUES ({', '.join('?' * len(rcols))})",
                                list(values.values()))
            for m in metrics:
                self.db.execute("INSERT OR REPLACE INTO metrics VALUES (?, ?, ?, ?, ?)",
                                (m.template, m.name, m.label, m.better, m.position))

    def sync_workspace(self, ws: Path, batch: str | None = None, force: bool = False) -> bool:
        """Re-read a workspace if it changed since it was stored. True if it was re-read."""
        ws = ws.resolve()
        row = self.db.execute("SELECT sync_key, batch FROM ideas WHERE workspace = ?", (str(ws),)).fetchone()
        if not force and row is not None and row["sync_key"] == sync_key(ws) and (batch is None or row["batch"] == batch):
            return False
        try:
            self.put(*read_workspace(ws, batch if batch is not None else (row["batch"] if row else "")))
        except UserError:
            return False  # not (or no longer) a readable workspace; leave what was stored
        return True

    def sync_root(self, root: Path, force: bool = False) -> int:
        """Bring the store up to date with every workspace under root; returns how many changed."""
        batches = batch_membership(root)
        changed = 0
        for ws in workspaces(root):
            changed += self.sync_workspace(ws, batches.get(str(ws.resolve()), ""), force=force)
        return changed

    def rebuild(self, root: Path) -> int:
        with self._tx():
            for table in ("ideas", "runs", "metrics"):
                self.db.execute(f"DELETE FROM {table}")
        return self.sync_root(root, force=True)

    def _tx(self):
        store = self

        class _Tx:
            def __enter__(self):
                store.db.execute("BEGIN IMMEDIATE")

            def __exit__(self, exc_type, exc, tb):
                store.db.execute("COMMIT" if exc_type is None else "ROLLBACK")

        return _Tx()

    # --- reading -------------------------------------------------------------------
    def ideas(self, batch: str | None = None) -> list[IdeaRow]:
        q, args = "SELECT * FROM ideas", ()
        if batch is not None:
            q, args = q + " WHERE batch = ?", (batch,)
        return [_idea_row(r) for r in self.db.execute(q + " ORDER BY created, idea", args)]

    def idea_by_path(self, workspace: str | Path) -> IdeaRow | None:
        r = self.db.execute("SELECT * FROM ideas WHERE workspace = ?", (str(Path(workspace).resolve()),)).fetchone()
        return None if r is None else _idea_row(r)

    def runs(self, workspace: str | None = None) -> list[RunRow]:
        q, args = "SELECT * FROM runs", ()
        if workspace is not None:
            q, args = q + " WHERE workspace = ?", (workspace,)
        out = []
        for r in self.db.execute(q + " ORDER BY workspace, run, folder", args):
            d = dict(r)
            d["metrics"] = json.loads(d["metrics"] or "{}")
            d["degenerate"] = json.loads(d["degenerate"] or "[]")
            out.append(RunRow(**d))
        return out

    def metrics(self, template: str) -> list[MetricDef]:
        return [MetricDef(**dict(r)) for r in
                self.db.execute("SELECT * FROM metrics WHERE template = ? ORDER BY position", (template,))]


def workspaces(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for p in sorted(root.iterdir()):
        if p.is_dir() and (p / "state.json").is_file() and (p / ".git").exists():
            yield p


def batch_membership(root: Path) -> dict[str, str]:
    """workspace path -> id of the batch it belongs to, from every batch.json under root."""
    out: dict[str, str] = {}
    for path in sorted((root / "batches").glob("*/batch.json")) if (root / "batches").is_dir() else []:
        data = read_json(path) or {}
        for entry in (data.get("ideas") or {}).values():
            if isinstance(entry, dict) and entry.get("workspace"):
                out[str(Path(entry["workspace"]).resolve())] = str(data.get("id", path.parent.name))
    return out


def _idea_row(r: sqlite3.Row) -> IdeaRow:
    """An ideas-table row back into its record (stages are stored as JSON text)."""
    d = dict(r)
    d["stages"] = json.loads(d["stages"] or "{}")
    return IdeaRow(**d)
