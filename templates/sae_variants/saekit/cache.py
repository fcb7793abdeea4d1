"""On-disk cache for everything that does not depend on the SAE.

Each artefact is a directory named by a hash of the key that decides its content (model, hook,
corpus fingerprint, sizes, dtypes, ...); the key is also written inside as key.json so that a
person can tell what a directory holds. A directory is built under a temporary name and renamed
into place when complete, so a run that is killed half-way leaves nothing that a later run
would mistake for a finished artefact. A lock file per artefact lets one process build it while
others needing it wait, then read the one complete copy.

The cache is shared by every idea's runs, so one run must not be able to change what another
reads. Under the harness's namespace sandbox the shared folder is read-only to experiment and
plot runs (only run_0, the unmodified template, builds it). Everywhere, each artefact carries a
manifest (size and SHA-256 of every file, written when it is built) and is checked against it
whenever it is used: a changed, missing or extra file, or no manifest at all, fails the check.
A failed artefact is rebuilt in place when this process may write the shared folder, otherwise
in the run's own scratch cache ($HARNESS_SCRATCH_CACHE); either way one line on stderr names it.
An artefact missing from a read-only shared cache is likewise built in the scratch cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import sys
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from .config import cache_root

KEY_FILE = "key.json"
MANIFEST = "manifest.json"
SCRATCH_ENV = "HARNESS_SCRATCH_CACHE"
STRICT_ENV = "SAEKIT_STRICT_CACHE"
"""Set (to 1) by the harness's evaluation step: an entry that is missing or fails its check is
refused, never rebuilt, since a score must come from the data every other run was scored on."""
SAY_BUILD_S = 5.0  # builds shorter than this go unmentioned


def key_hash(key: dict) -> str:
    blob = json.dumps(key, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def artefact_dir(kind: str, key: dict, root: Path | None = None) -> Path:
    return (root or cache_root()) / kind / key_hash(key)


def writable(folder: Path) -> bool:
    """May this process create files here? (False on the sandbox's read-only mount.)"""
    probe = folder
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return os.access(probe, os.W_OK)


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _files(entry: Path) -> list[str]:
    """Files an artefact consists of: all but the manifest and dot-files (in-progress writes)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(entry):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            rel = str((Path(dirpath) / name).relative_to(entry))
            if rel != MANIFEST and not name.startswith("."):
                out.append(rel)
    return sorted(out)


def write_manifest(entry: Path) -> None:
    manifest = {rel: {"size": (entry / rel).stat().st_size, "sha256": _sha256(entry / rel)}
                for rel in _files(entry)}
    tmp = entry / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(entry / MANIFEST)


def record_file(entry: Path, rel: str) -> None:
    """Add or update one file in an artefact's manifest (a file an artefact gains after it was
    built, e.g. absorption's memo of prompt activations). Only for a writable artefact."""
    path = entry / MANIFEST
    manifest = json.loads(path.read_text()) if path.exists() else {}
    manifest[rel] = {"size": (entry / rel).stat().st_size, "sha256": _sha256(entry / rel)}
    tmp = entry / f".{MANIFEST}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(manifest, indent=1, sort_keys=True))
    tmp.replace(path)


def check(entry: Path, key: dict | None = None) -> str | None:
    """Why the artefact does not match what was built (None: it does). Costs one read of
    every file (SHA-256, about 1 s per GB on one core)."""
    try:
        manifest = json.loads((entry / MANIFEST).read_text())
    except FileNotFoundError:
        return "it has no manifest"
    except (OSError, ValueError):
        return "its manifest is unreadable"
    if key is not None:
        try:
            if json.loads((entry / KEY_FILE).read_text()) != json.loads(json.dumps(key, default=str)):
                return f"{KEY_FILE} holds another key"
        except (OSError, ValueError):
            return f"{KEY_FILE} is unreadable"
    present = _files(entry)
    extra = sorted(set(present) - set(manifest))
    if extra:
        return f"{extra[0]} was added after it was built"
    for rel, want in sorted(manifest.items()):
        path = entry / rel
        if not path.is_file():
            return f"{rel} is missing"
        if path.stat().st_size != want.get("size") or _sha256(path) != want.get("sha256"):
            return f"{rel} changed after it was built"
    return None


def _say(text: str) -> None:
    print(f"saekit: {text}", file=sys.stderr, flush=True)


def _scratch_root() -> Path | None:
    value = os.environ.get(SCRATCH_ENV)
    return Path(value) / "saekit" if value else None


@contextmanager
def _build_lock(final: Path):
    """One builder per artefact: a batch's ideas (or a bench beside a run) that need the same
    missing artefact would otherwise each spend the minutes building it; the others wait and
    then read the finished copy. flock is released by the kernel if the builder dies."""
    final.parent.mkdir(parents=True, exist_ok=True)
    with open(final.parent / f".lock-{final.name}", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(final: Path, key: dict, build: Callable[[Path], None]) -> Path:
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / f".tmp-{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    start = time.perf_counter()
    try:
        build(tmp)
        (tmp / KEY_FILE).write_text(json.dumps(key, indent=1, sort_keys=True, default=str))
        # the manifest last: with key.json, its presence is what marks the artefact complete
        write_manifest(tmp)
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / KEY_FILE).exists():  # not a lost race: a real failure
                raise
        seconds = time.perf_counter() - start
        if seconds >= SAY_BUILD_S:  # a machine's first run spends minutes here: say where they went
            _say(f"built {final.parent.name}/{final.name} in {seconds:.0f} s")
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return final


def is_built(kind: str, key: dict) -> bool:
    """Is there a finished entry for (kind, key), in the shared cache or this run's scratch cache?
    Only looks for the manifest; `cached_dir` checks the content when the entry is read."""
    roots = [cache_root(), _scratch_root()]
    return any(root is not None and (artefact_dir(kind, key, root) / MANIFEST).is_file() for root in roots)


def cached_dir(kind: str, key: dict, build: Callable[[Path], None], root: Path | None = None) -> Path:
    """Return the directory for (kind, key), calling build(tmp_dir) first if it is missing or
    fails its check against the manifest."""
    root = root or cache_root()
    final = artefact_dir(kind, key, root)
    rel = f"{kind}/{final.name}"
    problem = None
    if (final / KEY_FILE).exists() or (final / MANIFEST).exists():
        problem = check(final, key)
        if problem is None:
            return final
    if os.environ.get(STRICT_ENV) == "1":
        detail = f"failed its check ({problem})" if problem else "is missing"
        sys.exit(f"saekit: evaluation refused: cache entry {rel} {detail}; delete {final} and rerun "
                 f"the baseline (run_0) to rebuild it")
    if writable(final.parent):
        with _build_lock(final):
            if (final / KEY_FILE).exists() or (final / MANIFEST).exists():
                problem = check(final, key)  # again: another process may have built it meanwhile
                if problem is None:
                    return final
            if problem:
                _say(f"cache entry {final} failed its check ({problem}): rebuilding it")
                aside = final.parent / f".rejected-{final.name}-{uuid.uuid4().hex[:8]}"
                try:
                    os.rename(final, aside)
                    shutil.rmtree(aside, ignore_errors=True)
                except OSError:
                    pass  # another run moved it first
            return _build(final, key, build)
    scratch = _scratch_root()
    if scratch is None or scratch == root or not writable(scratch):
        detail = f"failed its check ({problem})" if problem else "is missing"
        sys.exit(f"saekit: cache entry {final} {detail} and this run may not write the shared "
                 f"cache; delete {final} and rerun the baseline (run_0) to rebuild it")
    if problem:
        _say(f"cache entry {final} failed its check ({problem}); the shared cache is read-only "
             f"here, so a clean copy is built in this run's scratch cache (delete {final} and the "
             f"next baseline rebuilds it)")
    elif not (artefact_dir(kind, key, scratch) / KEY_FILE).exists():
        _say(f"cache entry {rel} is not in the shared cache (read-only to this run): building it "
             f"in the run's scratch cache")
    return cached_dir(kind, key, build, scratch)


def file_fingerprint(paths: list[Path], base: Path) -> str:
    """Cheap identity of a set of source files: relative names and sizes (not contents)."""
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(f"{p.relative_to(base)}:{p.stat().st_size}\n".encode())
    return h.hexdigest()[:16]
