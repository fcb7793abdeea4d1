"""state.json: what an idea's workspace has done so far, the basis of --resume.

Written atomically (temp file, fsync, rename) after every step that matters, so a
SIGKILL at any moment leaves either the old or the new state, never half of one. The
record is deliberately redundant with git (tags, commits): on resume git is checked too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, get_args

from harness.errors import UserError
from harness.records.files import write_atomic

STATE_FILE = "state.json"
BACKUP_FILE = "state.json.bak"
Stage = Literal["baseline", "experiments", "plots", "writeup", "review"]
STAGES: tuple[Stage, ...] = get_args(Stage)
"""The stages of an idea, in order: the one place their names are spelled."""
StageStatus = Literal["pending", "running", "done", "failed", "skipped", "stopped"]
IdeaStatus = Literal["running", "done", "stopped", "failed"]


@dataclass
class RunRecord:
    index: int
    status: Literal["done", "failed"]
    folder: str
    commit: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    degenerate: list[str] = field(default_factory=list)
    mismatch: list[str] = field(default_factory=list)
    """Where the run's own files disagree with the harness's evaluation (results.metrics)."""


@dataclass
class ExperimentsProgress:
    turn: int = 0
    """Agent turns completed in this stage."""
    next_run: int = 1
    fix_attempts: int = 0
    """Failed attempts at next_run so far."""
    idle_turns: int = 0
    failed_edit_replies: int = 0
    """Replies whose edits aider could not apply (a SEARCH block that matched nothing)."""
    next_message: str = ""
    """The exact prompt the next turn sends; kept here so a resumed turn asks the same."""
    turn_in_flight: bool = False
    pending_run: int | None = None
    """Set while `python experiment.py --out_dir=run_<i>` runs."""
    pending_pgid: int | None = None
    last_run_hash: str = ""
    """sha256 of experiment.py at the last run, to spot replies that change nothing."""
    done: bool = False
    stop_reason: str = ""


@dataclass
class ConfirmProgress:
    """The confirmation step at the end of the experiments stage: the best run again with
    the baseline's other seeds, each into run_<i>_seed<s>/ from run_<i>'s own commit."""
    run: int | None = None
    """The run being confirmed, chosen once (a resume keeps it even if the ranking changed)."""
    metric: str = ""
    """The metric it was chosen by."""
    seeds_done: list[int] = field(default_factory=list)
    pending_seed: int | None = None
    """Set while that seed runs; a resume finds experiment.py swapped and the folder half-made."""
    done: bool = False
    outcome: str = ""


@dataclass
class PlotsProgress:
    step: Literal["", "edit", "run", "describe", "done"] = ""
    """The next step ('' before the stage starts)."""
    attempt: int = 0
    """Which attempt at plot.py the edit or run step belongs to."""
    next_message: str = ""
    """The exact prompt the next agent turn sends."""
    turn: int = 0
    """Agent turns completed in this stage."""
    outcome: str = ""
    """What the writeup should know about the figures (why there are none)."""


@dataclass
class WriteupProgress:
    steps_done: int = 0
    """Section turns committed (write and refine per section, then sketch and cite)."""
    outcome: str = ""
    """One line on the PDF, the compile and the claims check, once the stage ends."""


@dataclass
class ReviewProgress:
    reviewers: list[dict[str, Any]] = field(default_factory=list)
    """One record per reviewer asked so far (its form, or why it was dropped), in order; a
    resumed stage asks only the reviewers after these."""
    meta: dict[str, Any] | None = None
    """The meta-review once written."""
    revised: bool = False
    """--improve: the paper has been revised from the meta-review."""
    revision: dict[str, Any] | None = None
    """What the revision changed (claims-check findings before and after, compile)."""
    outcome: str = ""


@dataclass
class State:
    idea: str
    template: str
    created: str
    config: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, StageStatus] = field(default_factory=dict)
    runs: dict[str, RunRecord] = field(default_factory=dict)
    experiments: ExperimentsProgress = field(default_factory=ExperimentsProgress)
    confirm: ConfirmProgress = field(default_factory=ConfirmProgress)
    plots: PlotsProgress = field(default_factory=PlotsProgress)
    writeup: WriteupProgress = field(default_factory=WriteupProgress)
    review: ReviewProgress = field(default_factory=ReviewProgress)
    undone: list[dict[str, str]] = field(default_factory=list)
    """What the harness undid: edits to files a stage did not hand the agent, links and
    other special files runs left. Each: stage, when (turn or run), path, action, detail."""
    child_pgid: int | None = None
    """Process group of the run or plot.py in progress, so a resumed harness can kill it."""
    status: IdeaStatus = "running"
    error: str = ""

    def stage_done(self, stage: str) -> bool:
        # 'failed' is final for a stage the idea can do without (plots); 'stopped' is not
        return self.stages.get(stage) in ("done", "skipped", "failed")

    def done_runs(self) -> list[RunRecord]:
        return sorted((r for r in self.runs.values() if r.status == "done"), key=lambda r: r.index)


def _from_dict(cls, data: dict[str, Any]):
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


class _Corrupt(Exception):
    pass


def _parse(path: Path) -> State:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise _Corrupt("not JSON") from None
    try:
        state = _from_dict(State, data)
        state.runs = {k: _from_dict(RunRecord, v) for k, v in data.get("runs", {}).items()}
        state.experiments = _from_dict(ExperimentsProgress, data.get("experiments", {}))
        state.confirm = _from_dict(ConfirmProgress, data.get("confirm", {}))
        state.plots = _from_dict(PlotsProgress, data.get("plots", {}))
        state.writeup = _from_dict(WriteupProgress, data.get("writeup", {}))
        state.review = _from_dict(ReviewProgress, data.get("review", {}))
        _upgrade_notes(state, data.get("notes"))
    except (TypeError, AttributeError) as exc:
        raise _Corrupt(f"not the shape this harness writes: {exc}") from None
    if not isinstance(state.stages, dict):
        raise _Corrupt("not the shape this harness writes: stages must be a mapping")
    return state


def _upgrade_notes(state: State, notes: Any) -> None:
    """Workspaces written before plots and writeup had typed progress kept it as strings in
    a `notes` mapping; read them so such a workspace still resumes where it stopped."""
    if not isinstance(notes, dict) or not notes:
        return
    kind, _, n = str(notes.get("plots_step", "")).partition(" ")
    if kind in ("edit", "run", "describe", "done"):
        state.plots = PlotsProgress(step=kind, attempt=int(n or 0), next_message=str(notes.get("plots_message", "")),
                                    turn=int(notes.get("plots_turn", 0) or 0), outcome=str(notes.get("plots", "")))
    state.writeup = WriteupProgress(steps_done=int(notes.get("writeup_step", 0) or 0),
                                    outcome=str(notes.get("writeup", "")))


def load_state(workspace: Path) -> State:
    """The state of a workspace; a corrupt one is a UserError naming the way out."""
    path, bak = workspace / STATE_FILE, workspace / BACKUP_FILE
    if not path.exists():
        raise UserError(f"{workspace} is not a harness workspace (no {STATE_FILE}); "
                        "--resume takes a folder the harness created")
    try:
        return _parse(path)
    except _Corrupt as exc:
        why = str(exc)
    # Never resumed from silently: the backup is one save behind, which resumes safely
    # (it is what a kill just before the last save would have left) but is the user's call.
    try:
        _parse(bak)
    except (_Corrupt, OSError):
        raise UserError(f"{path} is corrupt ({why}) and there is no usable {BACKUP_FILE} beside it; "
                        f"the runs and commits in {workspace} stay as they are, but this idea cannot "
                        "resume: start it afresh with --idea") from None
    raise UserError(f"{path} is corrupt ({why}); restore the previous save with "
                    f"`cp {bak} {path}` and run --resume again") from None


def save_state(workspace: Path, state: State) -> None:
    path = workspace / STATE_FILE
    text = json.dumps(asdict(state), indent=2, sort_keys=False).encode("utf-8")
    try:
        previous = path.read_bytes()
    except FileNotFoundError:
        previous = None
    if previous is not None:
        # the previous good state, for a human to fall back on; written as carefully as
        # state.json, since it is the fallback exactly when something went wrong
        write_atomic(workspace / BACKUP_FILE, previous)
    write_atomic(path, text)
