"""TopK training steps per second: experiment.py at a git revision (A) against the working tree
(B), interleaved in one process so both see the same machine load (run with the experiment
interpreter):

    .venvs/sae/bin/python bench/trainer_step.py [--base HEAD~1] [--threads 1] [--rounds 4] [--profile]

Each round times 5 default-size steps (batch 2048, d_in 576, d_sae 2304, k 32; AuxK on with
--dead N dead latents) of A, then of B, on the template's cached activations when they exist
(random ones otherwise). Prints wall-clock and CPU-time tokens/s for each round and the medians.
On a shared 2-core machine wall time mostly measures the other processes: with --threads 1 the
CPU time per step is the steadier measure of the work a step does. --profile adds
torch.profiler's table of B's operators.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"
REL = "templates/sae_variants/experiment.py"
D_IN, EXPANSION, BATCH, STEPS = 576, 4, 2048, 5


def load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stepper(E, acts, n_dead: int):
    import torch

    torch.manual_seed(0)
    tc = E.TrainConfig()
    bench = SimpleNamespace(cfg=SimpleNamespace(model="smollm2-135m", hook_layer=3, device="cpu", context_length=128))
    sae = E.SAE(D_IN, EXPANSION * D_IN, tc, E.input_scale(acts), bench)
    batches = E.saekit.ActivationBatches(acts, tc.batch_size, tc.seed)
    dead = torch.zeros(sae.cfg.d_sae, dtype=torch.bool)
    dead[:n_dead] = True
    opt = torch.optim.Adam(sae.parameters(), lr=tc.lr)  # the same optimiser for A and B: train() is not timed

    def step():
        loss, fired, parts = E.sae_loss(sae, batches.next(), tc, 0.0, dead)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        E.project_out_parallel_grad(sae)
        opt.step()
        E.normalise_decoder(sae)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base", default="HEAD~1", help="git revision whose experiment.py is A")
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--dead", type=int, default=0, help="latents marked dead (AuxK on when > 0)")
    ap.add_argument("--profile", action="store_true")
    args = ap.parse_args()
    proc = subprocess.run(["git", "show", f"{args.base}:{REL}"], cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"trainer_step: no {REL} at revision {args.base!r}; pass --base with a commit that has it")
    sys.path.insert(0, str(TEMPLATE))
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "experiment_base.py").write_text(proc.stdout)
        A = load_module(Path(tmp) / "experiment_base.py", "experiment_base")
    B = load_module(TEMPLATE / "experiment.py", "experiment_tree")

    from saekit import cache
    from saekit.activations import TRAIN_FILE, mapped_rows, train_key
    from saekit.config import load_config
    from saekit.lm import DTYPES

    cfg = load_config(TEMPLATE / "experiment_config.yaml")
    path = cache.artefact_dir("activations", train_key(cfg)) / TRAIN_FILE
    if path.exists():
        acts = mapped_rows(path, DTYPES[cfg.activation_dtype])[:200_000]
        source = f"cached activations ({path.parent.name})"
    else:
        acts, source = torch.randn(200_000, D_IN).half(), "random activations (no cache built yet)"
    steps = {f"A {args.base}": stepper(A, acts, args.dead), "B working tree": stepper(B, acts, args.dead)}
    for s in steps.values():
        s()
        s()
    wall = {k: [] for k in steps}
    cpu = {k: [] for k in steps}
    for _ in range(args.rounds):
        for name, s in steps.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(STEPS):
                s()
            wall[name].append(BATCH * STEPS / (time.perf_counter() - t0))
            cpu[name].append(BATCH * STEPS / (time.process_time() - c0))
    load = os.getloadavg()
    print(f"{source}; {torch.get_num_threads()} threads; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    for name in steps:
        print(f"{name:20s} wall tokens/s {[round(v) for v in wall[name]]} median {statistics.median(wall[name]):,.0f}"
              f" | per CPU-second {[round(v) for v in cpu[name]]} median {statistics.median(cpu[name]):,.0f}")
    a, b = steps
    print(f"B / A: wall {statistics.median(wall[b]) / statistics.median(wall[a]):.2f}x, "
          f"CPU time {statistics.median(cpu[b]) / statistics.median(cpu[a]):.2f}x")
    if args.profile:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            for _ in range(STEPS):
                steps[b]()
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))
        print(prof.key_averages(group_by_input_shape=True).table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
