"""Two SAE trainers at once on this machine, with all cores each and with the cores shared out
(what a batch's CPU slots and the test suite's workers do; run with the experiment interpreter):

    .venvs/sae/bin/python bench/slot_threads.py [--procs 2] [--steps 60]

Each trainer is experiment.py's TopK SAE at the default size, trained for --steps batches of the
template's cached activations (random ones when none are cached), in its own process. Prints
tokens/s per process and in total, first with OMP_NUM_THREADS unset (torch uses every core in
every process), then with OMP_NUM_THREADS = cores / procs, as harness/execution/slots.py sets it
for each CPU slot.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"

TRAINER = r"""
import glob, os, sys, torch
sys.path.insert(0, {template!r})
from types import SimpleNamespace
import experiment as E, saekit
from saekit.activations import mapped_rows
found = glob.glob(os.path.expanduser("~/.cache/sae_harness/activations/activations/*/acts.npy"))
acts = mapped_rows(found[0], torch.float16) if found else torch.randn(200_000, 576).half()
bench = SimpleNamespace(cfg=SimpleNamespace(model="smollm2-135m", hook_layer=3, device="cpu", context_length=128))
tc = E.TrainConfig()
torch.manual_seed(0)
sae = E.SAE(acts.shape[1], tc.expansion * acts.shape[1], tc, E.input_scale(acts), bench)
stats = E.train(sae, saekit.ActivationBatches(acts, tc.batch_size, tc.seed), tc, {steps})
print("RESULT", torch.get_num_threads(), stats["tokens_per_second"])
"""


def round_of(procs: int, steps: int, threads: int | None) -> list[tuple[int, float]]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads:
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(threads)
    code = TRAINER.format(template=str(TEMPLATE), steps=steps)
    running = [subprocess.Popen([sys.executable, "-c", code], cwd=TEMPLATE, env=env, stdout=subprocess.PIPE,
                                text=True) for _ in range(procs)]
    out = []
    for p in running:
        line = [ln for ln in p.communicate()[0].splitlines() if ln.startswith("RESULT")][-1].split()
        out.append((int(line[1]), float(line[2])))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--procs", type=int, default=2)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    print(f"{cores} cores, load average {os.getloadavg()[0]:.2f}")
    for label, threads in (("every core each", None), ("cores shared out", max(1, cores // args.procs))):
        res = round_of(args.procs, args.steps, threads)
        each = "  ".join(f"{t} thread(s): {tps:,.0f}" for t, tps in res)
        print(f"{args.procs} trainers, {label:17s} tokens/s  {each}   total {sum(t for _, t in res):,.0f}")
    print(f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
