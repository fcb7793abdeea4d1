"""Core eval: sae_bench's own `run_evals`, fed from the cache.

`run_evals` asks a model for four things: clean logits and loss (`model(tokens)`), logits with a
hook spliced in (`run_with_hooks`, once with the SAE and once zero-ablating), and the hook's
activations (`run_with_cache`). Only the SAE-spliced pass depends on the SAE, so `CachedModel`
answers the other three from the cache built once per configuration, and runs the SAE-spliced pass
from the cached hook activations through the remaining blocks only. Every metric is then computed
by sae_bench's code, exactly as it would be with a live model.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict
from pathlib import Path

import torch

from ..activations import CoreEvalData, special_mask
from ..config import ExperimentConfig
from ..lm import LanguageModel
from ..metrics import VarianceAccumulator, frac_dead
from ..timing import LM_FORWARD


class EvalRows:
    """What run_evals uses of sae_lens's ActivationsStore: the same fixed eval rows, in order.

    The real store re-packs text into rows and streams from the hub; the rows here must be exactly
    the cached ones so that CachedModel can find their activations.
    """

    def __init__(self, tokens: torch.Tensor, batch_size_prompts: int, device: str = "cpu"):
        self.tokens = tokens
        self.context_size = tokens.shape[1]
        self.store_batch_size_prompts = batch_size_prompts
        self.device = device
        self._pos = 0

    def get_batch_tokens(self, batch_size: int | None = None, **_) -> torch.Tensor:
        n = batch_size or self.store_batch_size_prompts
        if self._pos + n > len(self.tokens):
            raise RuntimeError(f"eval rows exhausted: asked for {self._pos + n}, cached {len(self.tokens)}")
        batch = self.tokens[self._pos : self._pos + n]
        self._pos += n
        return batch.to(self.device)

    def reset_input_dataset(self) -> None:
        self._pos = 0


class CachedModel:
    """The part of a HookedTransformer that sae_bench's core eval calls, served from the cache."""

    def __init__(self, lm: LanguageModel, data: CoreEvalData):
        self.lm = lm
        self.data = data
        self.device = lm.model.cfg.device
        self._row = {bytes(row.numpy().astype("int64").tobytes()): i for i, row in enumerate(data.tokens)}

    def _rows(self, tokens: torch.Tensor) -> torch.Tensor:
        try:
            return torch.tensor([self._row[row.cpu().numpy().astype("int64").tobytes()] for row in tokens])
        except KeyError:
            raise RuntimeError("a row that is not in the core-eval cache was asked for") from None

    def __call__(self, tokens: torch.Tensor, return_type: str = "both", loss_per_token: bool = True, **_):
        idx = self._rows(tokens)
        if int(idx.max()) >= self.data.clean_logits.shape[0]:
            raise RuntimeError("clean logits are cached for the reconstruction rows only")
        assert return_type == "both" and loss_per_token
        return self.data.clean_logits[idx].float().to(self.device), self.data.clean_loss[idx].to(self.device)

    def run_with_cache(self, tokens: torch.Tensor, names_filter=None, stop_at_layer=None, **_):
        assert stop_at_layer == self.lm.hook_layer + 1, "only activations at the hook are cached"
        return None, {self.lm.hook_name: self.data.acts[self._rows(tokens)].to(self.device)}

    @torch.no_grad()
    def run_with_hooks(self, tokens: torch.Tensor, fwd_hooks, return_type: str = "both", loss_per_token: bool = True, **_):
        ((name, hook_fn),) = fwd_hooks
        assert name == self.lm.hook_name and return_type == "both" and loss_per_token
        acts = self.data.acts[self._rows(tokens)].to(self.device)
        new = hook_fn(acts.clone(), hook=None)
        if not new.any():
            # zero ablation: the cached answer is exact (the output depends on the input alone)
            logits = self.data.zero_abl_logits.to(self.device).expand(tokens.shape[0], -1, -1)
            logp = torch.log_softmax(self.data.zero_abl_logits.float(), dim=-1).to(self.device)
            targets = tokens[:, 1:].to(self.device)
            loss = -logp[torch.arange(targets.shape[1], device=self.device), targets]
            return logits, loss
        model = self.lm.model
        with LM_FORWARD.timing():
            logits, loss = model(
                new.to(next(model.parameters()).dtype),
                start_at_layer=self.lm.hook_layer + 1,
                tokens=tokens.to(self.device),
                return_type="both",
                loss_per_token=True,
            )
        return logits.float(), loss.float()


def _extra_reconstruction_metrics(sae, lm: LanguageModel, data: CoreEvalData, n_rows: int) -> dict:
    """Explained variance about the mean, with and without the dominant dimension (see metrics.py),
    over the same tokens that sae_bench's sparsity/variance pass used."""
    acc = VarianceAccumulator(data.acts.shape[-1])
    with torch.no_grad():
        for start in range(0, n_rows, 16):
            tokens = data.tokens[start : min(start + 16, n_rows)]
            x = data.acts[start : start + len(tokens)]
            keep = ~special_mask(tokens, lm)
            x = x[keep]
            x_hat = sae.decode(sae.encode(x.to(sae.device, sae.dtype))).float().cpu()
            acc.add(x, x_hat)
    dominant = acc.dominant_dim()
    var = acc.variance_per_dim()
    return {
        "explained_variance": acc.explained_variance(),
        "explained_variance_excl_dominant_dim": acc.explained_variance(exclude=[dominant]),
        "dominant_dim": dominant,
        "dominant_dim_variance_share": float(var[dominant] / var.sum()),
    }


def run_core_eval(sae, lm: LanguageModel, data: CoreEvalData, cfg: ExperimentConfig, out_dir: Path) -> dict:
    from sae_bench.evals.core import main as core
    from sae_bench.evals.core.eval_config import CoreEvalConfig
    from sae_bench.evals.core.eval_output import (
        CoreEvalOutput,
        CoreMetricCategories,
        MiscMetrics,
        ModelBehaviorPreservationMetrics,
        ModelPerformancePreservationMetrics,
        ReconstructionQualityMetrics,
        ShrinkageMetrics,
        SparsityMetrics,
        TokenStatsMetrics,
    )
    from sae_bench.sae_bench_utils import get_sae_bench_version, get_sae_lens_version

    c = cfg.core
    eval_cfg = CoreEvalConfig(
        model_name=cfg.model,
        llm_dtype=cfg.llm_dtype,
        batch_size_prompts=c.batch_size_prompts,
        n_eval_reconstruction_batches=c.n_eval_reconstruction_batches,
        n_eval_sparsity_variance_batches=c.n_eval_sparsity_variance_batches,
        dataset="python-stdlib (offline, eval split)",
        context_size=cfg.context_length,
        compute_kl=True,
        compute_ce_loss=True,
        compute_l2_norms=True,
        compute_sparsity_metrics=True,
        compute_variance_metrics=True,
        compute_featurewise_density_statistics=True,
        compute_featurewise_weight_based_metrics=True,
        exclude_special_tokens_from_reconstruction=True,
    )
    model = CachedModel(lm, data)
    store = EvalRows(data.tokens, c.batch_size_prompts, device=model.device)
    metrics, feature_metrics = core.run_evals(
        sae, store, model, eval_cfg, ignore_tokens=set(lm.special_ids), verbose=False
    )
    metrics["misc_metrics"] = core.calculate_misc_metrics(feature_metrics)
    categories = CoreMetricCategories(
        model_behavior_preservation=ModelBehaviorPreservationMetrics(**metrics["model_behavior_preservation"]),
        model_performance_preservation=ModelPerformancePreservationMetrics(**metrics["model_performance_preservation"]),
        reconstruction_quality=ReconstructionQualityMetrics(**metrics["reconstruction_quality"]),
        shrinkage=ShrinkageMetrics(**metrics["shrinkage"]),
        sparsity=SparsityMetrics(**metrics["sparsity"]),
        token_stats=TokenStatsMetrics(**metrics["token_stats"]),
        misc_metrics=MiscMetrics(**metrics["misc_metrics"]),
    )
    output = CoreEvalOutput(
        eval_config=eval_cfg,
        eval_id=str(uuid.uuid4()),
        datetime_epoch_millis=int(time.time() * 1000),
        eval_result_metrics=categories,
        eval_result_details=[],  # per-latent details go to a side file: 2k+ entries
        sae_bench_commit_hash=get_sae_bench_version(),
        sae_lens_id="custom_sae",
        sae_lens_release_id=f"{cfg.model}_{cfg.hook_name}",
        sae_lens_version=get_sae_lens_version(),
        sae_cfg_dict=sae.cfg.to_dict(),
        eval_result_unstructured={},
    )
    result = json.loads(json.dumps(asdict(output), default=str))

    rq = result["eval_result_metrics"]["reconstruction_quality"]
    n_rows = c.batch_size_prompts * c.n_eval_sparsity_variance_batches
    extra = _extra_reconstruction_metrics(sae, lm, data, n_rows)
    rq["explained_variance_saebench_0_6_0"] = rq["explained_variance"]
    rq["explained_variance"] = extra["explained_variance"]
    rq["explained_variance_excl_dominant_dim"] = extra["explained_variance_excl_dominant_dim"]
    misc = result["eval_result_metrics"]["misc_metrics"]
    misc["frac_dead"] = frac_dead(feature_metrics["feature_density"])
    result["eval_result_unstructured"] = {
        "dominant_dim": extra["dominant_dim"],
        "dominant_dim_variance_share": extra["dominant_dim_variance_share"],
        "note": (
            "explained_variance is 1 - E|x - x_hat|^2 / sum_d Var(x_d); sae_bench 0.6.0 divides by "
            "variance about zero instead (explained_variance_saebench_0_6_0). frac_dead: latents "
            "with zero density on the sparsity/variance tokens. Per-latent details: core_feature_metrics.json."
        ),
    }
    details = [asdict(f) for f in core.convert_feature_metrics(feature_metrics)]
    (out_dir / "core_feature_metrics.json").write_text(json.dumps(details))
    return result
