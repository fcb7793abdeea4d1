"""Peak resident memory of collecting and of training on the activation cache, at two sizes of
train_tokens (run with the experiment interpreter):

    .venvs/sae/bin/python bench/activation_memory.py [--sizes 500000,2500000] [--steps 300]

For each size, two fresh processes, each reporting its own peak RSS (ru_maxrss):
  collect  builds the training activations of the default config with that train_tokens, in a
           temporary cache that borrows the converted model (deleted afterwards);
  train    experiment.py's TopK SAE trained for --steps batches of 2048 rows read from that
           entry through saekit.ActivationBatches (rows spread over the whole file). Its tokens/s
           compare sizes, not runs: the SAE starts with b_dec at zero, unlike experiment.py's,
           so more latents die and AuxK slows the steps after the first 200k tokens.
The training set stays on disk, memory-mapped, so neither figure should grow with train_tokens:
prints each size's figures and the ratio of the largest size to the smallest. The embedded
corpus (the Python standard library's sources) holds about 2.9M training tokens at 128 per row,
so the default compares 500k with 2.5M (a 5x step; 10 minutes of collection on an idle 2-core
CPU, 2.9 GB of disk at 576 float16 values per token); a larger corpus takes --sizes up to its size.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"

CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, {template!r})
os.chdir({template!r})
import dataclasses, torch
from saekit import cache
from saekit.activations import train_activations
from saekit.config import load_config
from saekit.lm import load_language_model

cfg = dataclasses.replace(load_config("experiment_config.yaml"), train_tokens={tokens})
start = time.perf_counter()
if {phase!r} == "collect":
    acts = train_activations(cfg, lambda: load_language_model(cfg))
    out = {{"rows": len(acts)}}
else:
    import experiment as E
    from types import SimpleNamespace
    import saekit
    acts = train_activations(cfg, lambda: sys.exit("no cached activations"))
    torch.manual_seed(0)
    tc = E.TrainConfig()
    bench = SimpleNamespace(cfg=SimpleNamespace(model=cfg.model, hook_layer=cfg.hook_layer, device="cpu",
                                                context_length=cfg.context_length), device="cpu")
    sae = E.SAE(acts.shape[1], tc.expansion * acts.shape[1], tc, E.input_scale(acts), bench)
    batches = saekit.ActivationBatches(acts, tc.batch_size, tc.seed)
    stats = E.train(sae, batches, tc, {steps})
    out = {{"rows": len(acts), "tokens_per_second": stats["tokens_per_second"]}}
out.update(seconds=time.perf_counter() - start, peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print("RESULT " + json.dumps(out))
"""


def child(phase: str, tokens: int, steps: int, cache_root: Path) -> dict:
    code = CHILD.format(template=str(TEMPLATE), tokens=tokens, phase=phase, steps=steps)
    env = dict(os.environ, SAE_HARNESS_CACHE=str(cache_root))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    lines = [line for line in r.stdout.splitlines() if line.startswith("RESULT ")]
    if r.returncode or not lines:
        sys.exit(f"{phase} at {tokens:,} tokens failed:\n{r.stderr[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="500000,2500000")
    parser.add_argument("--steps", type=int, default=300)
    args = parser.parse_args()
    sys.path.insert(0, str(TEMPLATE))
    from saekit import cache

    sizes = [int(s) for s in args.sizes.split(",")]
    print(f"load average at start: {os.getloadavg()[0]:.2f}", flush=True)
    rows = []
    with tempfile.TemporaryDirectory(prefix="actmem-", dir=Path(cache.cache_root()).parent) as tmp:
        scratch = Path(tmp)
        (scratch / "models").symlink_to(cache.cache_root() / "models")  # the converted model, read only
        for tokens in sizes:
            collect = child("collect", tokens, args.steps, scratch)
            train = child("train", tokens, args.steps, scratch)
            rows.append((tokens, collect, train))
            print(f"{tokens:>10,} tokens  collect {collect['seconds']:7.1f} s  peak RSS {collect['peak_rss_mb']:7.0f} MB"
                  f"   train {args.steps} steps {train['seconds']:6.1f} s ({train['tokens_per_second']:,.0f} tokens/s)"
                  f"  peak RSS {train['peak_rss_mb']:7.0f} MB", flush=True)
            for entry in (scratch / "activations").glob("*"):
                subprocess.run(["rm", "-rf", str(entry)], check=False)
    (small, c0, t0), (big, c1, t1) = rows[0], rows[-1]
    print(f"peak RSS at {big:,} tokens / at {small:,}: collect {c1['peak_rss_mb'] / c0['peak_rss_mb']:.3f}, "
          f"train {t1['peak_rss_mb'] / t0['peak_rss_mb']:.3f} (target: within 10 %)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}  ({time.strftime('%H:%M:%S')})")


if __name__ == "__main__":
    main()
