"""On-disk cache for everything that does not depend on the SAE.

Each artefact is a directory named by a hash of the key that decides its content (model, hook,
corpus fingerprint, sizes, dtypes, ...); the key is also written inside as key.json so that a
person can tell what a directory holds. A directory is built under a temporary name and renamed
into place when complete, so a run that is killed half-way leaves nothing that a later run
would mistake for a finished artefact, and two runs building the same artefact at once both
end up reading one complete copy.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Callable

from .config import cache_root

KEY_FILE = "key.json"


def key_hash(key: dict) -> str:
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def artefact_dir(kind: str, key: dict, root: Path | None = None) -> Path:
    return (root or cache_root()) / kind / key_hash(key)


def cached_dir(kind: str, key: dict, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """Return the directory for (kind, key), calling build(tmp_dir) first if it is missing."""
    final = artefact_dir(kind, key, root)
    if (final / KEY_FILE).exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        build(tmp)
        # key.json last: its presence is what marks the artefact complete
        (tmp / KEY_FILE).write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / KEY_FILE).exists():  # not a lost race: a real failure
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def file_fingerprint(paths: list[Path], base: Path) -> str:
    """Cheap identity of a set of source files: relative names and sizes (not contents)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(f"{p.relative_to(base)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]
