"""Time and score the SAE template as the harness runs it (run with the experiment interpreter):

    .venvs/sae/bin/python bench/template_run.py

Three runs of `python experiment.py --out_dir=...` in a fresh workspace copy of
templates/sae_variants with its default configuration, one after the other:
  1. cold: an empty activation cache (a temporary SAE_HARNESS_CACHE): model conversion,
     activation collection and every SAE-independent eval artefact are built;
  2. warm: the same cache, as every later run and idea sees it;
  3. broken: the warm setting with the trained decoder replaced by random unit rows, which the
     template's degenerate rules must flag.
Each run is followed by the evaluation step the harness runs after it (template.yaml's
`evaluation`: `python -m saekit.evaluate_run` on the run's exported SAE), timed on its own.
Prints wall times (experiment.py, evaluation step, and the two together: what a warm run costs
the harness), the share spent in LM forward passes, SAE training throughput and the headline
metrics (the evaluation's).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

import machine  # bench/machine.py: this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "templates" / "sae_variants"
BREAK_AFTER = "    training = train(sae, batches, tc, n_steps)\n"
BREAK_WITH = BREAK_AFTER + "    sae.W_dec.data = F.normalize(torch.randn_like(sae.W_dec), dim=-1)  # bench: broken SAE\n"


def make_workspace(root: Path, ref: str | None = None) -> Path:
    """A workspace copy of the template as it is now, or as git commit `ref` had it."""
    ws = root / ("workspace" if ref is None else f"workspace-{ref}")
    if ref is None:
        shutil.copytree(TEMPLATE, ws, ignore=shutil.ignore_patterns("__pycache__", "run_*"))
        return ws
    ws.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", ref, "templates/sae_variants"],
                             capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "--strip-components=2", "-C", str(ws)], input=archive, check=True)
    return ws


def run(ws: Path, cache: Path, out: str) -> tuple[tuple[float, float], dict]:
    """experiment.py, then the evaluation step; ((run wall, evaluation wall), merged results)."""
    env = {**os.environ, "SAE_HARNESS_CACHE": str(cache)}
    walls = [0.0, 0.0]
    steps = [("run", ["experiment.py", f"--out_dir={out}"])]
    if (ws / "saekit" / "evaluate_run.py").is_file():  # a template from before the step evaluates in the run
        steps.append(("evaluation", ["-m", "saekit.evaluate_run", "--run_dir", out, "--out", f"{out}/evaluation.json"]))
    for i, (name, argv) in enumerate(steps):
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, *argv], cwd=ws, env=env, capture_output=True, text=True)
        walls[i] = time.perf_counter() - start
        (ws / out).mkdir(exist_ok=True)
        (ws / out / f"{name}.stdout.log").write_text(proc.stdout)
        (ws / out / f"{name}.stderr.log").write_text(proc.stderr)
        if proc.returncode != 0:
            sys.exit(f"{out} {name} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    info = json.loads((ws / out / "final_info.json").read_text())
    evaluation = ws / out / "evaluation.json"
    return (walls[0], walls[1]), info | (json.loads(evaluation.read_text()) if evaluation.is_file() else {})


def lookup(info: dict, path: str):
    for key in path.split("/"):
        info = info[key]
    return info


def degenerate_flags(info: dict) -> list[str]:
    """template.yaml's degenerate rules, applied as the harness applies them."""
    spec = yaml.safe_load((TEMPLATE / "template.yaml").read_text())
    paths = {m["name"]: m["path"] for m in spec["metrics"]}
    ops = {"<": float.__lt__, "<=": float.__le__, ">": float.__gt__, ">=": float.__ge__}
    flags = []
    for rule in spec["degenerate"]:
        value = float(lookup(info, paths[rule["metric"]]))
        if math.isnan(value) or ops[rule["op"]](value, float(rule["value"])):
            flags.append(f"{rule['metric']} {rule['op']} {rule['value']} ({rule['reason']})")
    return flags


def summary(name: str, walls: tuple[float, float], info: dict) -> None:
    core = info["core evaluation results"]["eval_result_metrics"]
    run_info = info["run info"]
    # before the evaluation step existed the run evaluated itself and timed it in "run info"
    ev_info = info.get("evaluation info") or {"seconds_total": 0.0, "seconds_prepare": 0.0, "seconds_lm_forward": 0.0,
                                              "lm_forward_calls": 0, "seconds_eval": run_info.get("seconds_eval", {})}
    training = info["training results"]["final_info"]
    rq = core["reconstruction_quality"]
    wall = sum(walls)
    print(f"\n== {name} run ==")
    print(f"total (run + evaluation step)      {wall:7.1f} s")
    print(f"experiment.py wall time            {walls[0]:7.1f} s   (inside the run: {run_info['seconds_total']:.1f} s)")
    print(f"  prepare (model, caches)          {run_info['seconds_prepare']:7.1f} s")
    print(f"  SAE training                     {run_info['seconds_training']:7.1f} s   "
          f"{training['tokens_per_second']:,.0f} tokens/s, {training['training_tokens']:,} tokens")
    print(f"evaluation step wall time          {walls[1]:7.1f} s   (inside it: {ev_info['seconds_total']:.1f} s)")
    print(f"  prepare (model, caches checked)  {ev_info['seconds_prepare']:7.1f} s")
    for k, v in ev_info["seconds_eval"].items():
        print(f"  eval {k:28s}{v:7.1f} s")
    lm_s = run_info["seconds_lm_forward"] + ev_info["seconds_lm_forward"]
    print(f"  LM forward passes                {lm_s:7.1f} s   "
          f"({run_info['lm_forward_calls'] + ev_info['lm_forward_calls']} calls) = {100 * lm_s / wall:.1f} % of wall time")
    print(f"explained variance                 {rq['explained_variance']:.4f}")
    print(f"  without dominant dimension       {rq['explained_variance_excl_dominant_dim']:.4f}")
    print(f"  sae_bench 0.6.0 formula          {rq['explained_variance_saebench_0_6_0']:.4f}")
    print(f"ce_loss_score                      {core['model_performance_preservation']['ce_loss_score']:.4f}")
    print(f"kl_div_score                       {core['model_behavior_preservation']['kl_div_score']:.4f}")
    print(f"L0                                 {core['sparsity']['l0']:.1f}")
    print(f"dead latents (fraction)            {core['misc_metrics']['frac_dead']:.4f}")
    sp = info["sparse probing evaluation results"]["eval_result_metrics"]
    print(f"sparse probing top-1 / top-5 / all  SAE {sp['sae']['sae_top_1_test_accuracy']:.3f} / "
          f"{sp['sae']['sae_top_5_test_accuracy']:.3f} / {sp['sae']['sae_test_accuracy']:.3f}   "
          f"LM {sp['llm']['llm_top_1_test_accuracy']:.3f} / {sp['llm']['llm_top_5_test_accuracy']:.3f} / "
          f"{sp['llm']['llm_test_accuracy']:.3f}")
    ab = info["absorption evaluation results"]
    print(f"mean absorption fraction           {ab['eval_result_metrics']['mean']['mean_absorption_fraction_score']:.4f}   "
          f"(full absorption {ab['eval_result_metrics']['mean']['mean_full_absorption_score']:.4f}, "
          f"{ab['eval_result_unstructured']['num_letters_scored']} letters scored)")
    flags = degenerate_flags(info)
    print(f"degenerate                         {'; '.join(flags) if flags else 'no'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace and cache")
    parser.add_argument("--warm-only", action="store_true",
                        help="skip the cold run: use the machine's cache ($SAE_HARNESS_CACHE or "
                             "~/.cache/sae_harness/activations), built by an earlier run")
    parser.add_argument("--before", metavar="REF",
                        help="also time a warm run of the template as git commit REF had it (e.g. one from "
                             "before the harness's evaluation step), for a before/after comparison")
    parser.add_argument("--no-broken", action="store_true", help="skip the broken-SAE run")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="sae-template-bench-"))
    cache = root / "cache"
    if args.warm_only:
        cache = Path(os.environ.get("SAE_HARNESS_CACHE") or "~/.cache/sae_harness/activations").expanduser()
    print(f"workspace and cache under {root}; machine before: {machine.describe()}")
    try:
        ws = make_workspace(root)
        if not args.warm_only:
            cold_wall, cold = run(ws, cache, "run_cold")
            summary("cold (empty cache)", cold_wall, cold)
        if args.before:
            old_wall, old = run(make_workspace(root, args.before), cache, "run_warm")
            summary(f"warm, template as of {args.before} (before)", old_wall, old)
        warm_wall, warm = run(ws, cache, "run_warm")
        summary("warm (cache present)", warm_wall, warm)
        if args.before:
            print(f"\nwarm run total, before ({args.before}) -> now: {sum(old_wall):.1f} s -> {sum(warm_wall):.1f} s "
                  f"(now: run {warm_wall[0]:.1f} s + evaluation step {warm_wall[1]:.1f} s)")
        if args.no_broken:
            print(f"\nmachine after: {machine.describe()}")
            return

        source = (ws / "experiment.py").read_text()
        if BREAK_AFTER not in source:
            sys.exit("experiment.py no longer has the line the broken-SAE run patches")
        (ws / "experiment.py").write_text(source.replace(BREAK_AFTER, BREAK_WITH))
        broken_wall, broken = run(ws, cache, "run_broken")
        summary("broken (random decoder)", broken_wall, broken)
        print(f"\nmachine after: {machine.describe()}")
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
