"""saekit: the fixed machinery behind experiment.py (read it, do not edit it: it is protected).

    bench = saekit.prepare()                      # LM, cached activations, eval data
    batches = saekit.ActivationBatches(bench.train_acts, batch_size, seed)
    saekit.save_saelens(sae, out_dir / "sae", bench)   # cfg.json + safetensors, as sae_lens loads
    saekit.save_for_evaluation(sae, out_dir / "sae", bench)  # encode/decode for the harness's evaluation
    sections, seconds = saekit.evaluate(sae, bench, out_dir)  # what the harness runs on the export

Under the harness a run does not evaluate itself: it exports its SAE's encode and decode with
torch.export, and the harness scores that export in its own process (saekit.evaluate_run), with
protected code only. The scores in evaluation.json are the harness's; whatever final_info.json says
about the same metrics is shown beside them as self-reported, and a difference is flagged.

`prepare` loads the configured language model and reads everything that does not depend on the
SAE from the cache under $SAE_HARNESS_CACHE (default ~/.cache/sae_harness/activations), building
what is missing first (the first run on a machine: a few minutes). The SAE handed to `evaluate`
must follow sae_bench's BaseSAE interface: W_enc [d_in, d_sae], W_dec [d_sae, d_in], b_enc, b_dec,
encode / decode / forward, .device, .dtype and a .cfg (sae_bench's CustomSAEConfig).
"""

from __future__ import annotations

import os

# jaxtyping 0.3.11's runtime shape checks reject sae_bench's own probe calls (a dimension name
# reused with two sizes). The environment variable covers a later import; the config call covers
# jaxtyping already imported (its pytest plugin imports it first).
os.environ["JAXTYPING_DISABLE"] = "1"
import jaxtyping  # noqa: E402

jaxtyping.config.update("jaxtyping_disable", True)
# sae_bench's probes draw a progress bar per epoch: thousands of lines in a run's log
os.environ.setdefault("TQDM_DISABLE", "1")

from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from . import topk_sparse  # noqa: E402  (experiment.py's TopK fast path)
from .activations import ActivationBatches, CoreEvalData, core_eval_data, train_activations  # noqa: E402
from .config import ExperimentConfig, cache_root, load_config  # noqa: E402
from .evals import evaluate, prepare_absorption, prepare_sparse_probing  # noqa: E402
from .export import SaeLensExport, save_saelens  # noqa: E402
from .exported import ExportedSAE, ExportError, export_or_exit, save_for_evaluation  # noqa: E402
from .lm import LanguageModel, load_language_model  # noqa: E402
from .timing import LM_FORWARD  # noqa: E402

__all__ = [
    "ActivationBatches",
    "Bench",
    "ExperimentConfig",
    "ExportedSAE",
    "ExportError",
    "export_or_exit",
    "LM_FORWARD",
    "cache_root",
    "evaluate",
    "load_config",
    "prepare",
    "SaeLensExport",
    "save_for_evaluation",
    "save_saelens",
    "topk_sparse",
]


@dataclass
class Bench:
    """Everything a run needs besides its SAE."""

    cfg: ExperimentConfig
    lm: LanguageModel
    train_acts: torch.Tensor  # [train_tokens, d_model], activation_dtype
    core_data: CoreEvalData
    probing_dirs: dict[str, Path]
    absorption_dir: Path | None

    @property
    def d_model(self) -> int:
        return self.lm.d_model


def prepare(cfg: ExperimentConfig | None = None) -> Bench:
    cfg = cfg or load_config()
    torch.manual_seed(cfg.seed)
    lm = load_language_model(cfg)
    return Bench(
        cfg=cfg,
        lm=lm,
        train_acts=train_activations(cfg, lm),
        core_data=core_eval_data(cfg, lm),
        probing_dirs=prepare_sparse_probing(cfg, lm) if cfg.sparse_probing.enabled else {},
        absorption_dir=prepare_absorption(cfg, lm) if cfg.absorption.enabled else None,
    )
