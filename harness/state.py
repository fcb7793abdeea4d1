"""state.json: what an idea's workspace has done so far, the basis of --resume.

Written atomically (temp file, fsync, rename) after every step that matters, so a
SIGKILL at any moment leaves either the old or the new state, never half of one. The
record is deliberately redundant with git (tags, commits): on resume git is checked too.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from harness.errors import UserError

STATE_FILE = "state.json"
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


def load_state(workspace: Path) -> State:
    path = workspace / STATE_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{workspace} is not a harness workspace (no {STATE_FILE}); --resume takes a folder the harness created") from None
    except json.JSONDecodeError:
        raise UserError(f"{path} is corrupt (not JSON); restore it from {path}.bak or start the idea afresh") from None
    try:
        state = _from_dict(State, data)
        state.runs = {k: _from_dict(RunRecord, v) for k, v in data.get("runs", {}).items()}
        state.experiments = _from_dict(ExperimentsProgress, data.get("experiments", {}))
    except TypeError as exc:
        raise UserError(f"{path} does not match this harness version ({exc}); start the idea afresh") from None
    return state


def save_state(workspace: Path, state: State) -> None:
    path = workspace / STATE_FILE
    text = json.dumps(asdict(state), indent=2, sort_keys=False)
    fd, tmp = tempfile.mkstemp(prefix=".state.", dir=workspace)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        if path.exists():
            # the previous good state, for a human to fall back on
            shutil.copyfile(path, path.with_name(STATE_FILE + ".bak"))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
