"""Check that every headline metric of the SAE template orders hand-built reference SAEs as
expected, by more than the metric's own noise (run with the experiment interpreter):

    .venvs/sae/bin/python bench/metric_validation.py [--config PATH] [--probe-seeds 3] [--train-seeds 2]

The references come from saekit/references.py; the trained baseline is the template's own
experiment.py (its default TrainConfig), trained here on the cached activations. Noise per metric:
the spread (sample std) of the trained baseline over training seeds (core metrics) or over probe
seeds (sparse probing, absorption), whichever is larger. Prints the table metric x reference, every
expected order with its margin and noise, the absorption figures, and how long each eval took
(with the load average, since the machine is shared). Exits 1 if any check fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"
sys.path.insert(0, str(TEMPLATE))

import saekit  # noqa: E402  (sets up the environment sae_bench needs)
import torch  # noqa: E402
from saekit import references  # noqa: E402
from saekit.config import load_config  # noqa: E402
from saekit.evals.absorption import run_absorption_eval  # noqa: E402
from saekit.evals.sparse_probing import run_sparse_probing_eval  # noqa: E402
from saekit.logs import into_log  # noqa: E402

CORE = ["explained_variance", "explained_variance_excl_dominant_dim", "l0", "ce_loss_score", "kl_div_score", "frac_dead"]


def load() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip().split("load average:")[-1].strip()


def train_baseline(bench, seed: int):
    """The template's baseline SAE, built and trained exactly as experiment.main does."""
    import experiment

    tc = experiment.TrainConfig(seed=seed)
    torch.manual_seed(tc.seed)
    d_in = bench.d_model
    sae = experiment.SAE(d_in, tc.expansion * d_in, tc, experiment.input_scale(bench.train_acts), bench)
    with torch.no_grad():
        sae.b_dec.data = bench.train_acts[:50_000].float().mean(0) / sae.input_scale
    batches = saekit.ActivationBatches(bench.train_acts, tc.batch_size, tc.seed, device=bench.cfg.device)
    n_steps = max(1, int(tc.epochs * len(batches) / tc.batch_size))
    with open(os.devnull, "w") as quiet:
        stdout, sys.stdout = sys.stdout, quiet
        try:
            experiment.train(sae, batches, tc, n_steps)
        finally:
            sys.stdout = stdout
    return sae.eval()


def sd(xs: list[float]) -> float:
    return statistics.stdev(xs) if len(xs) > 1 else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", type=Path, default=TEMPLATE / "experiment_config.yaml")
    parser.add_argument("--probe-seeds", type=int, default=3, help="seeds of the probes (sparse probing, absorption) on the baseline")
    parser.add_argument("--train-seeds", type=int, default=2, help="training seeds of the baseline (noise of the core metrics)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    if not args.config.exists():
        sys.exit(f"metric_validation: no config at {args.config}; pass --config PATH")
    if args.probe_seeds < 1 or args.train_seeds < 1:
        sys.exit("metric_validation: --probe-seeds and --train-seeds must be >= 1")

    cfg = load_config(args.config)
    start = time.perf_counter()
    bench = saekit.prepare(cfg)
    print(f"prepare: {time.perf_counter() - start:.0f} s (load {load()})", flush=True)
    out = Path(tempfile.mkdtemp(prefix="metric-validation-"))
    metrics = list(references.headline_paths())

    trained = []
    for seed in range(args.train_seeds):
        t = time.perf_counter()
        trained.append(train_baseline(bench, seed))
        print(f"baseline seed {seed}: trained in {time.perf_counter() - t:.0f} s (load {load()})", flush=True)
    refs = references.build(bench, trained[0])
    roles = references.needed(metrics)

    values: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    for name, sae in refs.items():
        t = time.perf_counter()
        values[name] = references.score(sae, bench, roles.get(name, set()) | ({*metrics} if name == "trained" else set()), out / name)
        seconds[name] = time.perf_counter() - t
        print(f"{name}: scored in {seconds[name]:.0f} s (load {load()})", flush=True)

    # noise: the baseline over training seeds (core) and probe seeds (sparse probing, absorption)
    by_train_seed = [values["trained"]] + [
        references.score(sae, bench, set(CORE), out / f"trained_seed{i + 1}") for i, sae in enumerate(trained[1:])
    ]
    probing, absorption, absorption_seconds = [], [], []
    base = trained[0]
    for seed in range(args.probe_seeds):
        probe_cfg = dataclasses.replace(cfg, seed=cfg.seed + seed)
        with into_log(out / "noise.log"):
            sp = run_sparse_probing_eval(base, probe_cfg, bench.probing_dirs)
            t = time.perf_counter()
            ab = run_absorption_eval(base, bench.lm, cfg, bench.absorption_dir, probe_seed=cfg.seed + seed)
            absorption_seconds.append(time.perf_counter() - t)
        probing.append(sp["eval_result_metrics"]["sae"]["sae_top_1_test_accuracy"])
        absorption.append(ab["eval_result_metrics"]["mean"]["mean_absorption_fraction_score"])
    noise = {m: sd([v[m] for v in by_train_seed]) for m in CORE}
    noise["sparse_probing_top1"] = sd(probing)
    noise["absorption"] = sd(absorption)

    names = list(refs)
    width = max(len(m) for m in metrics)
    print("\n" + " " * width + "".join(f"{n:>15s}" for n in names) + f"{'noise':>10s}")
    for m in metrics:
        cells = "".join(f"{values[n][m]:15.4f}" if m in values[n] else f"{'-':>15s}" for n in names)
        print(f"{m:{width}s}{cells}{noise.get(m, 0.0):10.4f}")
    print()
    verdicts = references.check(values, noise)
    for v in verdicts:
        print(f"{'ok  ' if v.ok else 'FAIL'} {v.metric:{width}s} {v.claim:32s} margin {v.margin:+.4f}  noise {v.noise:.4f}")
    ab = [a for a in absorption if math.isfinite(a)]
    print(
        f"\nabsorption of the baseline over {args.probe_seeds} probe seeds: "
        + ", ".join(f"{a:.3f}" for a in absorption)
        + (f"  mean {statistics.mean(ab):.3f} ± {sd(ab):.3f}" if ab else "")
    )
    print(f"sparse probing top-1 of the baseline over {args.probe_seeds} probe seeds: " + ", ".join(f"{p:.3f}" for p in probing))
    print(f"absorption eval, warm: {', '.join(f'{s:.0f}' for s in absorption_seconds)} s per run (load {load()})")
    if args.json:
        args.json.write_text(json.dumps({
            "values": values, "noise": noise, "absorption_by_probe_seed": absorption,
            "sparse_probing_by_probe_seed": probing, "seconds_per_reference": seconds,
            "absorption_seconds": absorption_seconds, "verdicts": [dataclasses.asdict(v) for v in verdicts],
        }, indent=1))
    failed = [v for v in verdicts if not v.ok]
    if failed:
        sys.exit(f"{len(failed)} of {len(verdicts)} checks failed")
    print(f"all {len(verdicts)} checks hold")


if __name__ == "__main__":
    main()
