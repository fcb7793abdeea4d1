"""A run folder's meta.json: how the run's process went and what the harness did around it.

Written by one function (write_meta, right after the process ends) and read by one
(read_meta), for the experiments stage, the baseline cache, the store, the history and
the claims check. A run's own files are never trusted to be well formed: a missing or
unreadable meta.json reads as None, and keys of other versions are kept in `extra`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from harness.records.files import read_json, write_atomic

META_FILE = "meta.json"


@dataclass
class RunMeta:
    command: list[str] = field(default_factory=list)
    exit_code: int | None = None
    duration_s: float = 0.0
    timed_out: bool = False
    started_at: str = ""
    pgid: int = 0
    device: str = ""
    """The batch slot the process ran in ('' outside a batch)."""
    slot_wait_s: float = 0.0
    """Seconds spent waiting for that slot (not part of duration_s)."""
    run: int | None = None
    seed: int = 0
    """The seed the run was started with (0: the script's default, no seed option given)."""
    commit: str = ""
    """The commit whose code ran."""
    status: Literal["ok", "failed", ""] = ""
    error: str = ""
    command_line: str = ""
    isolation: str = ""
    """What the sandbox did (and did not) isolate, as sandbox.describe() says it."""
    removed: list[str] = field(default_factory=list)
    """Links and other special files the run left, removed before anything read them."""
    python: str = ""
    cached_from: str = ""
    """Set on a baseline copied from the baseline cache: the cache entry it came from."""
    evaluation_s: float = 0.0
    """Seconds the harness's evaluation step took (0: the template has none)."""
    mismatch: list[str] = field(default_factory=list)
    """Where the run's own final_info.json disagreed with the harness's evaluation."""
    self_reported: bool = False
    """The numbers are the run's own (its template has no evaluation step)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Keys this version does not know (written by another version, or by hand)."""

    @property
    def process_failed(self) -> bool:
        """The process timed out or exited non-zero (a run may also fail on its results)."""
        return self.timed_out or (self.exit_code is not None and self.exit_code != 0)


_KNOWN = {f.name for f in fields(RunMeta)} - {"extra"}


def write_meta(run_dir: Path, meta: RunMeta) -> None:
    optional = ("cached_from", "evaluation_s", "mismatch", "self_reported")  # old meta.json stays byte-equal
    data = {k: v for k, v in asdict(meta).items() if k != "extra" and (k not in optional or v)}
    data.update(meta.extra)
    write_atomic(run_dir / META_FILE, json.dumps(data, indent=2) + "\n")


def read_meta(run_dir: Path) -> RunMeta | None:
    data = read_json(run_dir / META_FILE)
    if not isinstance(data, dict):
        return None
    known = {k: v for k, v in data.items() if k in _KNOWN}
    try:
        return RunMeta(**known, extra={k: v for k, v in data.items() if k not in _KNOWN})
    except TypeError:
        return None
