"""The harness's evaluation step: score one run's exported SAE with saekit's evals.

    python -m saekit.evaluate_run --run_dir /path/to/run_3 --out evaluation.json

The harness starts this in a folder of its own holding only protected files (saekit/ and the
settings file, copied from the template source, not from the workspace), with the run folder
read-only: no Python file the agent wrote can be imported here, and the SAE arrives as
torch.export graphs (see exported.py). Every cache entry read is checked against its manifest
and refused, not rebuilt, when it does not match (SAEKIT_STRICT_CACHE).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import sys
import threading
import time
from pathlib import Path
from typing import NoReturn

os.environ["SAEKIT_STRICT_CACHE"] = "1"  # before saekit builds or reads anything

import torch  # noqa: E402

from . import Bench, evaluate, load_config  # noqa: E402
from .activations import core_eval_data  # noqa: E402
from .evals import prepare_absorption, prepare_sparse_probing  # noqa: E402
from .exported import ExportError  # noqa: E402
from .exported_sae import ExportedSAE  # noqa: E402
from .lm import load_language_model  # noqa: E402
from .timing import LM_FORWARD  # noqa: E402


def prepare_evaluation() -> Bench:
    """prepare() without the training activations, which no eval reads."""
    cfg = load_config()
    torch.manual_seed(cfg.seed)
    lm = load_language_model(cfg)
    return Bench(
        cfg=cfg,
        lm=lm,
        train_acts=torch.empty(0, lm.d_model),
        core_data=core_eval_data(cfg, lm),
        probing_dirs=prepare_sparse_probing(cfg, lm) if cfg.sparse_probing.enabled else {},
        absorption_dir=prepare_absorption(cfg, lm) if cfg.absorption.enabled else None,
    )


def main(run_dir: Path, out: Path) -> None:
    start = time.perf_counter()
    bench = prepare_evaluation()
    seconds_prepare = time.perf_counter() - start
    try:
        sae = ExportedSAE.load(run_dir / "sae", bench)
    except ExportError as exc:
        sys.exit(f"saekit: evaluation refused: {exc}")
    out.parent.mkdir(parents=True, exist_ok=True)
    sections, seconds = evaluate(sae, bench, out.parent)
    sections["evaluation info"] = {
        "evaluated_by": "harness (saekit.evaluate_run on the exported encode/decode)",
        "seconds_total": time.perf_counter() - start,
        "seconds_prepare": seconds_prepare,
        "seconds_eval": seconds,
        "seconds_lm_forward": LM_FORWARD.seconds,
        "lm_forward_calls": LM_FORWARD.calls,
        "torch_threads": torch.get_num_threads(),
    }
    out.write_text(json.dumps(sections, indent=2, default=str))
    core = sections["core evaluation results"]["eval_result_metrics"]
    print(f"evaluation: explained variance {core['reconstruction_quality']['explained_variance']:.3f}  "
          f"L0 {core['sparsity']['l0']:.1f}  ({sections['evaluation info']['seconds_total']:.0f} s)")


def exit_without_teardown() -> NoReturn:
    """Exit 0 as the interpreter would, minus freeing every module one by one: after the scores
    were written, tearing down torch, transformer_lens, transformers and sae_bench took 3.1-3.3 s of
    every evaluation on 2 cores. Threads are joined and atexit handlers run (temporary folders, file
    locks), as in a normal exit. (The harness's run_harness.py ends the same way.)"""
    threading._shutdown()  # tells executors' idle workers to stop, then joins non-daemon threads
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--run_dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    main(args.run_dir, args.out)
    exit_without_teardown()
