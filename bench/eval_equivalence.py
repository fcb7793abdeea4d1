"""Same SAE, two versions of saekit's evaluation: every metric must agree to 1e-3 (run with the
experiment interpreter):

    .venvs/sae/bin/python bench/eval_equivalence.py [--config PATH] [--old REV] [--profile DIR]

Trains the template's baseline once (experiment.py's TrainConfig and train loop, on the cached
activations of the chosen config; default: the template's default config), saves its state_dict,
then evaluates it in two fresh processes: once with saekit as committed at REV (default: main) and
once with this checkout's saekit. Each side is timed per eval (core, sparse probing, absorption).
Prints every metric that differs by more than the tolerance and exits 1 if any does.
The old side runs first, so a prompt memo it fills is warm for the new side as well; run the bench
twice for timings where both sides find a warm cache.

--profile DIR writes a cProfile file per eval and side (DIR/{old,new}_{eval}.prof; read them with
`python -m pstats`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from io import BytesIO
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"
TOLERANCE = 1e-3
SECTIONS = ("core evaluation results", "sparse probing evaluation results", "absorption evaluation results")
# fields that name a run rather than measure the SAE
SKIP = {"eval_id", "datetime_epoch_millis", "eval_config", "sae_cfg_dict", "sae_bench_commit_hash",
        "sae_lens_version", "sae_lens_id", "sae_lens_release_id", "eval_type_id", "note"}


def _import_template(saekit_root: Path):
    """saekit from saekit_root, experiment.py (the SAE class and trainer) from this checkout."""
    import importlib.util

    sys.path.insert(0, str(saekit_root))
    import saekit  # noqa: F401

    spec = importlib.util.spec_from_file_location("experiment", TEMPLATE / "experiment.py")
    experiment = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(experiment)
    return sys.modules["saekit"], experiment


def _new_sae(experiment, bench):
    tc = experiment.TrainConfig()
    import torch

    torch.manual_seed(tc.seed)
    sae = experiment.SAE(bench.d_model, tc.expansion * bench.d_model, tc, experiment.input_scale(bench.train_acts), bench)
    with torch.no_grad():
        sae.b_dec.data = bench.train_acts[:50_000].float().mean(0) / sae.input_scale
    return sae, tc


def train_worker(config: Path, state: Path, steps: int | None) -> None:
    import torch

    saekit, experiment = _import_template(TEMPLATE)
    bench = saekit.prepare(saekit.load_config(config))
    sae, tc = _new_sae(experiment, bench)
    batches = saekit.ActivationBatches(bench.train_acts, tc.batch_size, tc.seed)
    start = time.perf_counter()
    experiment.train(sae, batches, tc, steps or max(1, int(tc.epochs * len(batches) / tc.batch_size)))
    print(f"trained in {time.perf_counter() - start:.1f} s", flush=True)
    torch.save(sae.state_dict(), state)


def eval_worker(saekit_root: Path, config: Path, state: Path, out: Path, profile: Path | None) -> None:
    """One side: evaluate the saved SAE with the saekit found at saekit_root."""
    import cProfile

    import torch

    saekit, experiment = _import_template(saekit_root)
    bench = saekit.prepare(saekit.load_config(config))
    sae, _ = _new_sae(experiment, bench)
    sae.load_state_dict(torch.load(state))
    sae.eval()
    out.mkdir(parents=True, exist_ok=True)
    # wrap the three entry points that saekit.evaluate calls: process CPU seconds per eval (less
    # distorted than wall time on a shared machine) and, if asked, one cProfile file per eval
    evals_pkg = sys.modules["saekit.evals"]
    cpu: dict[str, float] = {}
    for name in ("run_core_eval", "run_sparse_probing_eval", "run_absorption_eval"):
        original = getattr(evals_pkg, name)

        def wrapped(*args, _f=original, _n=name, **kwargs):
            prof = cProfile.Profile() if profile is not None else None
            start = time.process_time()
            try:
                return prof.runcall(_f, *args, **kwargs) if prof else _f(*args, **kwargs)
            finally:
                cpu[_n] = time.process_time() - start
                if prof:
                    prof.dump_stats(profile / f"{out.name}_{_n}.prof")

        setattr(evals_pkg, name, wrapped)
    sections, seconds = saekit.evaluate(sae, bench, out)
    (out / "sections.json").write_text(json.dumps({"sections": sections, "seconds": seconds, "cpu": cpu}, default=str))


def leaves(obj, prefix=""):
    """(path, number) for every numeric leaf, skipping fields that name the run."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k not in SKIP:
                yield from leaves(v, f"{prefix}/{k}")
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from leaves(v, f"{prefix}[{i}]")
    elif isinstance(obj, bool):
        yield prefix, float(obj)
    elif isinstance(obj, (int, float)):
        yield prefix, float(obj)
    elif isinstance(obj, str):
        yield prefix, obj


def compare(old: dict, new: dict) -> tuple[int, list[str]]:
    problems, n = [], 0
    for section in SECTIONS:
        if section not in old and section not in new:
            continue
        a, b = dict(leaves(old.get(section, {}))), dict(leaves(new.get(section, {})))
        for path in sorted(set(a) | set(b)):
            n += 1
            if path not in a or path not in b:
                problems.append(f"{section}{path}: only in {'old' if path in a else 'new'}")
                continue
            x, y = a[path], b[path]
            if isinstance(x, str) or isinstance(y, str):
                if x != y:
                    problems.append(f"{section}{path}: {x!r} != {y!r}")
            elif not (math.isnan(x) and math.isnan(y)) and not abs(x - y) <= TOLERANCE:
                problems.append(f"{section}{path}: old {x:.6g} new {y:.6g} (diff {abs(x - y):.2g})")
    return n, problems


def export_saekit(rev: str, dest: Path) -> Path:
    """saekit as committed at rev, unpacked under dest (git archive: no checkout is touched)."""
    data = subprocess.run(["git", "archive", rev, "templates/sae_variants/saekit"], cwd=REPO,
                          capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(data)) as tar:
        tar.extractall(dest, filter="data")
    return dest / "templates" / "sae_variants"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=TEMPLATE / "experiment_config.yaml")
    parser.add_argument("--old", default="main", help="git revision whose saekit is the reference")
    parser.add_argument("--profile", type=Path, help="write cProfile files per eval and side here")
    parser.add_argument("--state", type=Path, help="evaluate this saved state_dict instead of training")
    parser.add_argument("--train-steps", type=int, help="train this many steps (default: experiment.py's one epoch)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--worker", choices=["train", "eval"], help=argparse.SUPPRESS)
    parser.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    config = args.config.resolve()
    if not config.exists():
        sys.exit(f"--config {config} does not exist; give a template config YAML")
    if args.worker == "train":
        return train_worker(config, args.state, args.train_steps)
    if args.worker == "eval":
        return eval_worker(args.root, config, args.state, args.out, args.profile)

    tmp = Path(tempfile.mkdtemp(prefix="eval-equivalence-"))
    print(f"config {config}; reference saekit at {args.old}; work dir {tmp}; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    try:
        old_root = export_saekit(args.old, tmp / "old")
    except subprocess.CalledProcessError as e:
        sys.exit(f"cannot export saekit at {args.old!r}: {e.stderr.decode().strip()}; give --old a revision that exists")
    me = [sys.executable, str(Path(__file__).resolve())]
    state = args.state or tmp / "sae_state.pt"
    if args.state is None:
        cmd = [*me, "--worker", "train", "--config", str(config), "--state", str(state)]
        subprocess.run(cmd + (["--train-steps", str(args.train_steps)] if args.train_steps else []), check=True)
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    results = {}
    for side, root in (("old", old_root), ("new", TEMPLATE)):
        cmd = [*me, "--worker", "eval", "--config", str(config), "--state", str(state),
               "--root", str(root), "--out", str(tmp / side)]
        if args.profile:
            cmd += ["--profile", str(args.profile.resolve())]
        start = time.perf_counter()
        subprocess.run(cmd, check=True)
        wall = time.perf_counter() - start
        results[side] = json.loads((tmp / side / "sections.json").read_text())
        secs = results[side]["seconds"]
        cpu = results[side]["cpu"]
        print(f"{side}: process {wall:6.1f} s; eval wall " + ", ".join(f"{k} {v:.1f} s" for k, v in secs.items())
              + f" = {sum(secs.values()):.1f} s; CPU " + ", ".join(f"{k.split('_', 1)[1]} {v:.1f} s" for k, v in cpu.items())
              + f" (load average {os.getloadavg()[0]:.2f})", flush=True)
    n, problems = compare(results["old"]["sections"], results["new"]["sections"])
    for p in problems:
        print("DIFFERS", p)
    def ratio(key):
        return sum(results["old"][key].values()) / max(1e-9, sum(results["new"][key].values()))

    print(f"{n} values compared, {len(problems)} differ by more than {TOLERANCE}; "
          f"eval time old/new: wall {ratio('seconds'):.2f}x, CPU {ratio('cpu'):.2f}x")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    else:
        print(f"kept {tmp}")
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
