"""Sharing the SAE template's cache artefacts between test runs and suites.

A cold SAE run converts SmolLM2 and builds the probing and absorption data (a minute or
more on 2 cores). None of it depends on the SAE, so tests link what an earlier test left in
SHARED (a folder under .test-results/, kept between local runs, empty on a clean CI clone)
and hand back what they built. Artefacts are linked one by one, complete ones only, so a
test never writes through a link into another test's copy. Links are hard links (a copy
where the file systems differ): a symbolic link would point outside the cache folder, which
is all the harness's namespace sandbox shows a run. Only artefacts with a manifest are shared:
saekit rebuilds any other (see saekit/cache.py).
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO / ".test-results" / "sae-cache"
SAE_INDEPENDENT = ("models", "sparse_probing", "absorption")
TINY = REPO / "tests" / "sae_template" / "tiny_config.yaml"


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_shared(cache_root: Path, kinds=SAE_INDEPENDENT, copy_function=_link_or_copy) -> None:
    for kind in kinds:
        for artefact in sorted((SHARED / kind).glob("[!.]*/manifest.json")):  # not a copy in progress
            dest = cache_root / kind / artefact.parent.name
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(artefact.parent, dest, copy_function=copy_function)


def keep_built(cache_root: Path, kinds=SAE_INDEPENDENT) -> None:
    for kind in kinds:
        for artefact in sorted((cache_root / kind).glob("[!.]*/manifest.json")):
            src, dest = artefact.parent, SHARED / kind / artefact.parent.name
            if src.is_symlink() or (dest / "manifest.json").exists():
                continue
            if dest.exists():
                shutil.rmtree(dest)  # from before manifests: saekit would rebuild it every time
            dest.parent.mkdir(parents=True, exist_ok=True)
            # copied beside, then renamed: the SAE and harness suites run at once, and link_shared
            # must never see a manifest whose files are still being copied
            tmp = dest.parent / f".{dest.name}.{os.getpid()}"
            shutil.copytree(src, tmp)
            try:
                tmp.rename(dest)
            except OSError:  # another process published the same artefact first
                shutil.rmtree(tmp)


def build_tiny_once(timeout: float = 1800) -> None:
    """Every artefact of the tiny setting in SHARED, built by one process while any other waits:
    on a clean clone the SAE tests would otherwise each build the same cold cache, at the same
    time, on the same two cores (saekit skips what is already there, so this is cheap when warm)."""
    SHARED.mkdir(parents=True, exist_ok=True)
    with open(SHARED / ".prebuild.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        code = ("from saekit import prepare; from saekit.config import load_config; "
                f"prepare(load_config({str(TINY)!r}))")
        env = dict(os.environ, SAE_HARNESS_CACHE=str(SHARED))
        r = subprocess.run([str(REPO / ".venvs" / "sae" / "bin" / "python"), "-c", code], cwd=REPO / "templates" / "sae_variants",
                           env=env, capture_output=True, text=True, timeout=timeout)
        assert r.returncode == 0, r.stderr[-3000:]


def copy_shared(cache_root: Path, kinds) -> None:
    """Private copies of the shared artefacts a test may write to (the absorption prompt memo grows
    during a run; the poisoning test rewrites the training activations)."""
    link_shared(cache_root, kinds, copy_function=shutil.copy2)
