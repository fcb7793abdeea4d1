"""The evaluation suite: SAEBench-shaped sections for final_info.json.

Sections (key names and nesting as in sae_bench's JSON output):
  "core evaluation results"            sae_bench core: reconstruction, sparsity, CE / KL with the SAE spliced in
  "sparse probing evaluation results"  sae_bench probes on offline labelled text
  "absorption evaluation results"      sae_bench first-letter absorption
With `saebench_full.enabled`, sae_bench's own hub-based evals replace them (GPU machines).
"""

from __future__ import annotations

import importlib
import sys
import time
import types
from pathlib import Path


def _defer_sae_directory() -> None:
    """sae_bench's eval modules import sae_selection_utils, which parses sae_lens's directory of
    pretrained SAEs (a large YAML: about 1.5 s of CPU in every run) as it is imported; only
    sae_bench's hub-based entry points read it. A stand-in module imports the real one on first
    use. (importlib's LazyLoader does not help on Python 3.11: the next import statement naming
    the module reads its __spec__, which loads it.)"""
    name = "sae_bench.sae_bench_utils.sae_selection_utils"
    if name in sys.modules:
        return
    import sae_bench.sae_bench_utils as parent

    stand_in = types.ModuleType(name, "stands in for sae_selection_utils until first use")

    def real_attribute(attr: str):
        if attr.startswith("__"):  # inspect.getmodule asks every module for __file__
            raise AttributeError(attr)
        if sys.modules.get(name) is stand_in:
            del sys.modules[name]
        real = importlib.import_module(name)
        parent.sae_selection_utils = real
        return getattr(real, attr)

    stand_in.__getattr__ = real_attribute
    sys.modules[name] = stand_in
    parent.sae_selection_utils = stand_in


_defer_sae_directory()

from ..logs import into_log  # noqa: E402
from .absorption import prepare_absorption, run_absorption_eval  # noqa: E402
from .core import run_core_eval  # noqa: E402
from .saebench_full import run_full_saebench  # noqa: E402
from .sparse_probing import prepare_sparse_probing, run_sparse_probing_eval  # noqa: E402

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
