"""How every record file is written and read leniently.

A record is always replaced whole: temp file in the same folder, fsync, rename. A kill or
a full disk at any instant leaves the old file or the new one, never half of one; the
harness's resume logic relies on that for every file it writes.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: bytes | str) -> None:
    if isinstance(data, str):
        data = data.encode("utf-8")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, data: Any, indent: int | None = 2) -> None:
    write_atomic(path, json.dumps(data, indent=indent) + ("\n" if indent else ""))


def read_json(path: Path) -> Any:
    """A JSON file's contents, or None when it is missing, unreadable or not JSON: for callers
    that treat a broken file as an absent one (rebuilding the store, checking claims)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # ValueError: bad JSON or bytes that are not UTF-8
        return None
