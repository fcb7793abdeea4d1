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

import os
import shutil
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1] / ".test-results" / "sae-cache"
SAE_INDEPENDENT = ("models", "sparse_probing", "absorption")


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def link_shared(cache_root: Path, kinds=SAE_INDEPENDENT) -> None:
    for kind in kinds:
        for artefact in sorted((SHARED / kind).glob("*/manifest.json")):
            dest = cache_root / kind / artefact.parent.name
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copytree(artefact.parent, dest, copy_function=_link_or_copy)


def keep_built(cache_root: Path, kinds=SAE_INDEPENDENT) -> None:
    for kind in kinds:
        for artefact in sorted((cache_root / kind).glob("*/manifest.json")):
            src, dest = artefact.parent, SHARED / kind / artefact.parent.name
            if src.is_symlink() or (dest / "manifest.json").exists():
                continue
            if dest.exists():
                shutil.rmtree(dest)  # from before manifests: saekit would rebuild it every time
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(src, dest)
