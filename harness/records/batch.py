"""batch.json: the ideas of a batch, where each one stands, and the settings they share.

Only the scheduler writes it (atomically, like state.json), so it needs no lock; a worker
tells the scheduler where its workspace is through a small file of its own
(workers/<idea>.json). Each idea's own progress stays in its workspace's state.json.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from pathlib import Path
from typing import Any

from harness.errors import UserError
from harness.records.files import write_json

BATCH_FILE = "batch.json"
STATUSES = ("queued", "running", "done", "failed", "interrupted")


@dataclass
class IdeaEntry:
    name: str
    title: str
    source: str
    """The idea file the batch was started with (a copy is in ideas/<name>.json)."""
    status: str = "queued"
    """queued | running | done | failed | interrupted"""
    workspace: str = ""
    reason: str = ""
    """Why the idea failed or stopped, in one line."""
    exit_code: int | None = None
    attempts: int = 0
    started: float | None = None
    finished: float | None = None
    node: str = ""
    """Where the worker ran (Ray node or this host)."""


@dataclass
class BatchRecord:
    id: str
    created: str
    config: dict[str, Any]
    devices: list[str]
    """Device of each slot, fixed when the batch starts (resume may change it)."""
    ideas: dict[str, IdeaEntry] = field(default_factory=dict)
    status: str = "running"
    """running | done | interrupted"""

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in STATUSES}
        for e in self.ideas.values():
            out[e.status] += 1
        return out


def new_batch_dir(root: Path, now: datetime | None = None) -> Path:
    now = now or datetime.now()
    base = root / "batches" / f"{now:%Y%m%d_%H%M%S}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}_{n}")
    path.mkdir(parents=True)
    return path


def is_batch_dir(path: Path) -> bool:
    return (path / BATCH_FILE).is_file()


def load_batch(folder: Path) -> BatchRecord:
    path = folder / BATCH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{folder} is not a batch folder (no {BATCH_FILE}); pass a folder under "
                        f"<workspace root>/batches/") from None
    except json.JSONDecodeError:
        raise UserError(f"{path} is corrupt (not JSON); start the batch afresh") from None
    names = {f.name for f in fields(IdeaEntry)}
    try:
        ideas = {k: IdeaEntry(**{a: b for a, b in v.items() if a in names}) for k, v in data["ideas"].items()}
        return BatchRecord(id=data["id"], created=data["created"], config=data["config"],
                           devices=list(data["devices"]), ideas=ideas, status=data.get("status", "running"))
    except (KeyError, TypeError) as exc:
        raise UserError(f"{path} does not match this harness version ({exc}); start the batch afresh") from None


def save_batch(folder: Path, record: BatchRecord) -> None:
    write_json(folder / BATCH_FILE, asdict(record), indent=2)


def worker_note_path(folder: Path, name: str) -> Path:
    return folder / "workers" / f"{name}.json"


def write_worker_note(folder: Path, name: str, workspace: Path) -> None:
    """Written by the worker as soon as the idea's workspace exists."""
    path = worker_note_path(folder, name)
    path.parent.mkdir(exist_ok=True)
    write_json(path, {"workspace": str(workspace), "pid": os.getpid()}, indent=None)


def read_worker_note(folder: Path, name: str) -> dict[str, Any]:
    try:
        return json.loads(worker_note_path(folder, name).read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return {}
