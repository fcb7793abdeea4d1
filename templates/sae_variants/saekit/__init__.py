"""saekit: the fixed machinery behind experiment.py (read it, do not edit it: it is protected).

    bench = saekit.prepare()                      # cached activations, LM and eval data (read when used)
    batches = saekit.ActivationBatches(bench.train_acts, batch_size, seed)
    saekit.save_saelens(sae, out_dir / "sae", bench)   # cfg.json + safetensors, as sae_lens loads
    saekit.save_for_evaluation(sae, out_dir / "sae", bench)  # encode/decode for the harness's evaluation
    sections, seconds = saekit.evaluate(sae, bench, out_dir)  # what the harness runs on the export

Under the harness a run does not evaluate itself: it exports its SAE's encode and decode with
torch.export, and the harness scores that export in its own process (saekit.evaluate_run), with
protected code only. The scores in evaluation.json are the harness's; whatever final_info.json says
about the same metrics is shown beside them as self-reported, and a difference is flagged.

`prepare` returns a Bench whose pieces (language model, training activations, eval data) are read
from the cache under $SAE_HARNESS_CACHE (default ~/.cache/sae_harness/activations) when first used;
the first run on a machine builds every missing entry first (a few minutes). The SAE handed to `evaluate`
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

from functools import cached_property  # noqa: E402
from pathlib import Path  # noqa: E402

import torch  # noqa: E402

from . import cache, topk_sparse  # noqa: E402  (topk_sparse: experiment.py's TopK fast path)
from .activations import (  # noqa: E402
    ActivationBatches,
    CoreEvalData,
    core_eval_data,
    core_eval_key,
    train_activations,
    train_key,
)
from .config import EMBEDDED_MODEL, ExperimentConfig, cache_root, load_config  # noqa: E402
from .evals import evaluate, prepare_absorption, prepare_sparse_probing  # noqa: E402
from .evals.absorption import absorption_key  # noqa: E402
from .evals.sparse_probing import dataset_key  # noqa: E402
from .export import SaeLensExport, save_saelens  # noqa: E402
from .exported import ExportError, export_or_exit, save_for_evaluation  # noqa: E402
from .lm import LanguageModel, embedded_special_ids, load_language_model  # noqa: E402
from .sae_base import BaseSAE  # noqa: E402
from .timing import LM_FORWARD  # noqa: E402


def __getattr__(name: str):
    # sae_bench's BaseSAE, under the evaluation's SAE class, imports transformer_lens: 7 s that a
    # training run, which reads only the cached activations, would spend for nothing
    if name == "ExportedSAE":
        from .exported_sae import ExportedSAE

        return ExportedSAE
    raise AttributeError(f"module 'saekit' has no attribute {name!r}")

__all__ = [
    "ActivationBatches",
    "BaseSAE",
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


class Bench:
    """Everything a run needs besides its SAE, each piece read from the cache when first used.

    Training reads only `train_acts`: a warm experiment.py then neither loads the language model
    (about 4 s) nor checks the eval artefacts' hashes (about 4 s); the harness's evaluation step
    reads those, strictly. Pieces given to the constructor are used as they are (tests, benches).
    """

    PIECES = ("lm", "train_acts", "core_data", "probing_dirs", "absorption_dir")

    def __init__(self, cfg: ExperimentConfig, **given) -> None:
        unknown = set(given) - set(self.PIECES)
        if unknown:
            raise TypeError(f"Bench has no piece {sorted(unknown)[0]!r}")
        self.cfg = cfg
        self.__dict__.update(given)  # what cached_property would have stored

    @cached_property
    def lm(self) -> LanguageModel:
        return load_language_model(self.cfg)

    @cached_property
    def train_acts(self) -> torch.Tensor:  # [train_tokens, d_model], activation_dtype, memory-mapped
        return train_activations(self.cfg, lambda: self.lm)

    @cached_property
    def core_data(self) -> CoreEvalData:
        return core_eval_data(self.cfg, self.lm)

    @cached_property
    def probing_dirs(self) -> dict[str, Path]:
        return prepare_sparse_probing(self.cfg, self.lm) if self.cfg.sparse_probing.enabled else {}

    @cached_property
    def absorption_dir(self) -> Path | None:
        return prepare_absorption(self.cfg, self.lm) if self.cfg.absorption.enabled else None

    @cached_property
    def special_ids(self) -> frozenset[int]:
        """BOS / EOS / PAD ids, from the tokenizer's files alone when the model is not loaded yet."""
        if "lm" in self.__dict__:
            return self.lm.special_ids
        return embedded_special_ids() if self.cfg.model == EMBEDDED_MODEL else self.lm.special_ids

    @property
    def d_model(self) -> int:
        return self.lm.d_model if "lm" in self.__dict__ else int(self.train_acts.shape[-1])

    def build_missing(self) -> None:
        """Build every cache entry the evaluation will read that is not there yet (a machine's
        first run; under the harness the baseline's run_0, the one run that may write the cache)."""
        keys = [("activations", train_key(self.cfg)), ("core_eval", core_eval_key(self.cfg))]
        if self.cfg.sparse_probing.enabled:
            keys += [("sparse_probing", dataset_key(self.cfg, n)) for n in self.cfg.sparse_probing.datasets]
        if self.cfg.absorption.enabled:
            keys.append(("absorption", absorption_key(self.cfg)))
        if all(cache.is_built(kind, key) for kind, key in keys):
            return
        for piece in self.PIECES[1:]:  # the same order as the cold run always built them
            getattr(self, piece)


def prepare(cfg: ExperimentConfig | None = None) -> Bench:
    """The run's Bench; on a machine's first run this builds the whole cache (a few minutes)."""
    cfg = cfg or load_config()
    torch.manual_seed(cfg.seed)
    bench = Bench(cfg)
    bench.build_missing()
    return bench
