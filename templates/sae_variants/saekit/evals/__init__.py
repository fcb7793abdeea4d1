"""The evaluation suite: SAEBench-shaped sections for final_info.json.

Sections (key names and nesting as in sae_bench's JSON output):
  "core evaluation results"            sae_bench core: reconstruction, sparsity, CE / KL with the SAE spliced in
  "sparse probing evaluation results"  sae_bench probes on offline labelled text
  "absorption evaluation results"      sae_bench first-letter absorption
With `saebench_full.enabled`, sae_bench's own hub-based evals replace them (GPU machines).
"""

from __future__ import annotations

import time
from pathlib import Path

from ..logs import into_log
from .absorption import prepare_absorption, run_absorption_eval
from .core import run_core_eval
from .saebench_full import run_full_saebench
from .sparse_probing import prepare_sparse_probing, run_sparse_probing_eval

__all__ = ["evaluate", "prepare_absorption", "prepare_sparse_probing"]


def evaluate(sae, bench, out_dir: str | Path) -> tuple[dict, dict[str, float]]:
    """Run every enabled eval on `sae`; returns (sections, seconds per eval).

    sae_bench's progress output goes to out_dir/saebench.log, not to the run's stdout / stderr.
    """
    out_dir = Path(out_dir)
    cfg = bench.cfg
    sae.eval()
    sections: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    with into_log(out_dir / "saebench.log"):
        start = time.perf_counter()
        sections["core evaluation results"] = run_core_eval(sae, bench.lm, bench.core_data, cfg, out_dir)
        seconds["core"] = time.perf_counter() - start
        if bench.probing_dirs:
            start = time.perf_counter()
            sections["sparse probing evaluation results"] = run_sparse_probing_eval(sae, cfg, bench.probing_dirs)
            seconds["sparse_probing"] = time.perf_counter() - start
        if bench.absorption_dir is not None:
            start = time.perf_counter()
            sections["absorption evaluation results"] = run_absorption_eval(sae, bench.lm, cfg, bench.absorption_dir)
            seconds["absorption"] = time.perf_counter() - start
        if cfg.saebench_full.enabled:
            start = time.perf_counter()
            sections.update(run_full_saebench(sae, cfg, out_dir))
            seconds["saebench_full"] = time.perf_counter() - start
    return sections, seconds
