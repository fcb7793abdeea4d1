"""sae_bench's own end-to-end evals, for machines with a GPU and hub access.

Turned on by `saebench_full.enabled` in experiment_config.yaml (with model pythia-70m-deduped or
gemma-2-2b). sae_bench then loads its model and datasets from the hub and writes its JSON results
under eval_results/<type>/ in the run directory; each file is folded into final_info.json as
"<type> evaluation results", replacing the offline section of the same name.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

from ..config import ExperimentConfig

SECTION = {
    "core": "core evaluation results",
    "sparse_probing": "sparse probing evaluation results",
    "absorption": "absorption evaluation results",
    "scr": "scr evaluation results",
    "tpp": "tpp evaluation results",
    "unlearning": "unlearning evaluation results",
    "autointerp": "autointerp evaluation results",
    "ravel": "ravel evaluation results",
}


def collect_results(results_dir: Path) -> dict[str, dict]:
    """Fold sae_bench's eval_results/<type>/*.json files into final_info sections."""
    sections = {}
    for type_dir in sorted(p for p in results_dir.iterdir() if p.is_dir()):
        files = sorted(type_dir.glob("*.json"))
        if files:
            name = SECTION.get(type_dir.name, f"{type_dir.name} evaluation results")
            sections[name] = json.loads(files[-1].read_text())
    return sections


def run_full_saebench(sae, cfg: ExperimentConfig, out_dir: Path) -> dict[str, dict]:
    unknown = set(cfg.saebench_full.eval_types) - set(SECTION)
    if unknown:
        raise ValueError(f"saebench_full.eval_types: unknown {sorted(unknown)}")
    from sae_bench.custom_saes import run_all_evals_custom_saes as run_all
    # sae_bench writes eval_results/ and artifacts/ relative to the working directory
    with contextlib.chdir(out_dir):
        run_all.run_evals(
            cfg.model,
            [(f"{cfg.model}_{cfg.hook_name}_custom_sae", sae)],
            llm_batch_size=cfg.saebench_full.llm_batch_size,
            llm_dtype=cfg.llm_dtype,
            device=cfg.device,
            eval_types=cfg.saebench_full.eval_types,
            api_key=os.environ.get("OPENAI_API_KEY"),
            force_rerun=True,
        )
    return collect_results(out_dir / "eval_results")
