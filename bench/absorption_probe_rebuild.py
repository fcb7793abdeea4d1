"""Rebuild the absorption cache's LM probe with this checkout's saekit and compare it with the
machine's existing entry of the same key (run with the experiment interpreter):

    .venvs/sae/bin/python bench/absorption_probe_rebuild.py [--config PATH]

The existing entry (under $SAE_HARNESS_CACHE or ~/.cache/sae_harness/activations) was built by
whichever saekit ran first; the rebuild goes to a temporary cache that borrows only the converted
model. A build that keeps the cache key must give the same files: prints the build's wall and CPU
seconds (with the load average) and, per file, whether it is identical. Exits 1 if one is not.
The default 4,000-word sample takes 2-3 minutes on an idle 2-core machine, the whole vocabulary
(vocab_size 0) 10-17.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"
sys.path.insert(0, str(TEMPLATE))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=TEMPLATE / "experiment_config.yaml")
    args = parser.parse_args()
    if not args.config.exists():
        sys.exit(f"--config {args.config} does not exist; give a template config YAML")

    import numpy as np
    import saekit  # noqa: F401  (sets up the environment sae_bench needs)
    import torch
    from saekit import cache
    from saekit.config import CACHE_ENV, cache_root, load_config
    from saekit.evals.absorption import absorption_key, prepare_absorption
    from saekit.lm import load_language_model

    cfg = load_config(args.config)
    old = cache.artefact_dir("absorption", absorption_key(cfg), cache_root())
    if not old.exists():
        sys.exit(f"no cached absorption probe for this config at {old}; run the template once first")
    with tempfile.TemporaryDirectory(prefix="absorption-rebuild-") as tmp:
        (Path(tmp) / "models").symlink_to(cache_root() / "models")
        lm = load_language_model(cfg)
        os.environ[CACHE_ENV] = tmp
        start, cpu = time.perf_counter(), time.process_time()
        new = prepare_absorption(cfg, lm)
        print(f"rebuilt in {time.perf_counter() - start:.1f} s wall, {time.process_time() - cpu:.1f} s CPU "
              f"(load average {os.getloadavg()[0]:.2f})")
        differ = []
        layer = new / lm.model.cfg.model_name / f"layer_{cfg.hook_layer}"
        for path in sorted(layer.iterdir()):
            ref = old / path.relative_to(new)
            if path.suffix == ".pth":
                a, b = torch.load(path, weights_only=False), torch.load(ref, weights_only=False)
                same = torch.equal(a.weights, b.weights) and torch.equal(a.biases, b.biases)
            elif path.suffix == ".npz":
                a, b = np.load(path), np.load(ref)
                same = a.files == b.files and all(np.array_equal(a[k], b[k]) for k in a.files)
            else:
                same = path.read_bytes() == ref.read_bytes()
            print(f"{path.relative_to(new)}: {'identical' if same else 'DIFFERS'}")
            if not same:
                differ.append(path.name)
    sys.exit(1 if differ else 0)


if __name__ == "__main__":
    main()
