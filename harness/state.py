"""state.json: what an idea's workspace has done so far, the basis of --resume.

Written atomically (temp file, fsync, rename) after every step that matters, so a
SIGKILL at any moment leaves either the old or the new state, never half of one. The
record is deliberately redundant with git (tags, commits): on resume git is checked too.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import UserError

STATE_FILE = "state.json"
BACKUP_FILE = "state.json.bak"
STAGES = ("baseline", "experiments", "plots", "writeup")


@dataclass
class RunRecord:
    index: int
    status: str
    """done | failed"""
    folder: str
    commit: str = ""
    exit_code: int | None = None
    duration_s: float = 0.0
    degenerate: list[str] = field(default_factory=list)


@dataclass
class ExperimentsProgress:
    turn: int = 0
    """Agent turns completed in this stage."""
    next_run: int = 1
    fix_attempts: int = 0
    """Failed attempts at next_run so far."""
    idle_turns: int = 0
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
class State:
    idea: str
    template: str
    created: str
    config: dict[str, Any] = field(default_factory=dict)
    stages: dict[str, str] = field(default_factory=dict)
    """stage -> pending | running | done | failed | skipped"""
    runs: dict[str, RunRecord] = field(default_factory=dict)
    experiments: ExperimentsProgress = field(default_factory=ExperimentsProgress)
    notes: dict[str, str] = field(default_factory=dict)
    """stage -> what a later stage (or a reader) should know, e.g. why plots failed"""
    undone: list[dict[str, str]] = field(default_factory=list)
    """What the harness undid: edits to files a stage did not hand the agent, links and
    other special files runs left. Each: stage, when (turn or run), path, action, detail."""
    child_pgid: int | None = None
    """Process group of the run or plot.py in progress, so a resumed harness can kill it."""
    status: str = "running"
    """running | done | stopped | failed"""
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
    except (TypeError, AttributeError) as exc:
        raise _Corrupt(f"not the shape this harness writes: {exc}") from None
    if not isinstance(state.stages, dict) or not isinstance(state.notes, dict):
        raise _Corrupt("not the shape this harness writes: stages and notes must be mappings")
    return state


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


def _write_atomic(path: Path, data: bytes) -> None:
    """Temp file, fsync, rename: a kill or a full disk leaves the old file or the new one."""
    fd, tmp = tempfile.mkstemp(prefix=".state.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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
        _write_atomic(workspace / BACKUP_FILE, previous)
    _write_atomic(path, text)
