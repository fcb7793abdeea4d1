"""Core metrics against values computed by hand, on a tiny real transformer and hand-built SAEs.

The core eval is sae_bench's run_evals fed by saekit's cache (CachedModel); these tests also
check that the cache answers exactly what a live model would.
"""

import math

import pytest
import torch

from saekit.activations import CoreEvalData, core_eval_tensors
from saekit.config import CoreEvalConfig, ExperimentConfig
from saekit.evals.core import run_core_eval
from saekit.metrics import VarianceAccumulator, explained_variance, frac_dead

ROWS, CTX, D = 4, 6, 8


# --- saekit's own metrics ------------------------------------------------------------------
def test_explained_variance_by_hand():
    x = torch.tensor([[1.0, 10.0], [3.0, 10.0], [2.0, 13.0], [2.0, 7.0]])
    # per-dim variance about the mean: dim0 mean 2 -> (1+1+0+0)/4 = 0.5; dim1 mean 10 -> (0+0+9+9)/4 = 4.5
    x_hat = x.clone()
    x_hat[:, 1] = 10.0  # dim 1 predicted by its mean: residual^2 mean 4.5
    assert explained_variance(x, x) == pytest.approx(1.0)
    assert explained_variance(x, x_hat) == pytest.approx(1 - 4.5 / 5.0)
    assert explained_variance(x, x_hat, exclude=[1]) == pytest.approx(1.0)
    # predicting the mean everywhere explains nothing, whatever the mean's size
    assert explained_variance(x, x.mean(0).expand_as(x)) == pytest.approx(0.0, abs=1e-12)


def test_variance_accumulator_streams_and_finds_dominant_dim():
    torch.manual_seed(0)
    x = torch.randn(100, 3) * torch.tensor([1.0, 5.0, 0.5]) + 40.0
    x_hat = x + 0.1 * torch.randn(100, 3)
    acc = VarianceAccumulator(3)
    for chunk, chunk_hat in zip(x.split(30), x_hat.split(30)):
        acc.add(chunk, chunk_hat)
    var = x.double().var(0, unbiased=False)
    resid = (x - x_hat).double().pow(2).mean(0)
    assert acc.dominant_dim() == 1
    assert acc.explained_variance() == pytest.approx(float(1 - resid.sum() / var.sum()), rel=1e-9)
    assert acc.explained_variance([1]) == pytest.approx(float(1 - resid[[0, 2]].sum() / var[[0, 2]].sum()), rel=1e-9)


def test_frac_dead():
    assert frac_dead([0.0, 0.5, 0.0, 0.01]) == 0.5


# --- sae_bench core through the cache ------------------------------------------------------
@pytest.fixture
def core_setup(tiny_lm):
    torch.manual_seed(1)
    tokens = torch.randint(1, 11, (ROWS, CTX))
    tokens[:, 0] = 0  # BOS
    data = CoreEvalData(**core_eval_tensors(tiny_lm, tokens, n_reconstruction_rows=ROWS))
    cfg = ExperimentConfig(
        hook_layer=0,
        context_length=CTX,
        core=CoreEvalConfig(batch_size_prompts=2, n_eval_reconstruction_batches=2, n_eval_sparsity_variance_batches=2),
    )
    return tiny_lm, tokens, data, cfg


def _metrics(result):
    return result["eval_result_metrics"]


def _masked_acts(data):
    return data.acts[:, 1:].reshape(-1, D)  # everything but BOS


def test_perfect_sae_scores_by_hand(core_setup, linear_sae, tmp_path):
    lm, tokens, data, cfg = core_setup
    eye = torch.eye(D)
    # latents relu(x) and relu(-x): an exact reconstruction with 2 * D latents
    sae = linear_sae(torch.cat([eye, -eye], 1), torch.cat([eye, -eye], 0))
    m = _metrics(run_core_eval(sae, lm, data, cfg, tmp_path))
    x = _masked_acts(data)
    rq, sp = m["reconstruction_quality"], m["sparsity"]
    assert rq["explained_variance"] == pytest.approx(1.0, abs=1e-6)
    assert rq["explained_variance_excl_dominant_dim"] == pytest.approx(1.0, abs=1e-6)
    assert rq["mse"] == pytest.approx(0.0, abs=1e-9)
    assert rq["cossim"] == pytest.approx(1.0, abs=1e-5)
    assert sp["l0"] == pytest.approx(float((x != 0).sum(-1).float().mean()))  # = D: no exact zeros
    assert sp["l0"] == D
    assert sp["l1"] == pytest.approx(float(x.abs().sum(-1).mean()), rel=1e-5)
    assert m["shrinkage"]["l2_ratio"] == pytest.approx(1.0, abs=1e-5)
    perf, beh = m["model_performance_preservation"], m["model_behavior_preservation"]
    assert perf["ce_loss_score"] == pytest.approx(1.0, abs=1e-5)
    assert perf["ce_loss_with_sae"] == pytest.approx(perf["ce_loss_without_sae"], abs=1e-5)
    # clean logits are cached as float16: the KL of an exact reconstruction is rounding only
    assert beh["kl_div_with_sae"] == pytest.approx(0.0, abs=1e-4)
    assert beh["kl_div_score"] == pytest.approx(1.0, abs=1e-4)
    assert m["token_stats"]["total_tokens_eval_reconstruction"] == 2 * 2 * CTX


def test_lossy_sae_matches_live_model(core_setup, linear_sae, tmp_path):
    """SAE keeping only positive parts, plus two latents that never fire: every figure is
    recomputed here from the live model and the definitions."""
    lm, tokens, data, cfg = core_setup
    model = lm.model
    eye = torch.eye(D)
    W_enc = torch.cat([eye, torch.zeros(D, 2)], 1)
    W_dec = torch.cat([eye, torch.zeros(2, D)], 0)
    b_enc = torch.cat([torch.zeros(D), -torch.ones(2)])  # latents D, D+1: dead
    sae = linear_sae(W_enc, W_dec, b_enc=b_enc)
    m = _metrics(run_core_eval(sae, lm, data, cfg, tmp_path))

    x = _masked_acts(data)
    x_hat = torch.relu(x)
    var = x.double().var(0, unbiased=False)
    resid = (x - x_hat).double().pow(2).mean(0)
    assert m["reconstruction_quality"]["explained_variance"] == pytest.approx(float(1 - resid.sum() / var.sum()), rel=1e-6)
    # sae_bench's mse: per-token residual sum of squares divided by the tokens in its batch
    per_batch_tokens = 2 * (CTX - 1)
    assert m["reconstruction_quality"]["mse"] == pytest.approx(float((x - x_hat).pow(2).sum(-1).mean()) / per_batch_tokens, rel=1e-5)
    cos = torch.nn.functional.cosine_similarity(x, x_hat, dim=-1)
    assert m["reconstruction_quality"]["cossim"] == pytest.approx(float(cos.mean()), rel=1e-5)
    assert m["sparsity"]["l0"] == pytest.approx(float((x > 0).sum(-1).float().mean()), rel=1e-6)

    # CE and KL, from the live model with hooks; BOS positions excluded as sae_bench does
    def splice(fn):
        def hook(acts, hook):
            out = fn(acts)
            out[:, 0] = acts[:, 0]  # exclude_special_tokens_from_reconstruction
            return out
        return hook

    with torch.no_grad():
        clean_logits, clean = model(tokens, return_type="both", loss_per_token=True)
        sae_logits, with_sae = model.run_with_hooks(tokens, return_type="both", loss_per_token=True,
                                                    fwd_hooks=[(lm.hook_name, splice(torch.relu))])
        abl_logits, abl = model.run_with_hooks(tokens, return_type="both", loss_per_token=True,
                                               fwd_hooks=[(lm.hook_name, lambda a, hook: torch.zeros_like(a))])
    ce = {name: float(t[:, 1:].mean()) for name, t in [("clean", clean), ("sae", with_sae), ("abl", abl)]}

    def kl(new):
        p = torch.log_softmax(clean_logits, -1)
        q = torch.log_softmax(new, -1)
        return float((p.exp() * (p - q)).sum(-1)[:, 1:].mean())

    perf = m["model_performance_preservation"]
    assert perf["ce_loss_without_sae"] == pytest.approx(ce["clean"], rel=1e-5)
    assert perf["ce_loss_with_sae"] == pytest.approx(ce["sae"], rel=1e-5)
    assert perf["ce_loss_with_ablation"] == pytest.approx(ce["abl"], rel=1e-5)
    assert perf["ce_loss_score"] == pytest.approx((ce["abl"] - ce["sae"]) / (ce["abl"] - ce["clean"]), rel=1e-4)
    beh = m["model_behavior_preservation"]
    kl_sae, kl_abl = kl(sae_logits), kl(abl_logits)
    assert beh["kl_div_with_sae"] == pytest.approx(kl_sae, rel=1e-2, abs=1e-4)  # float16 clean logits
    assert beh["kl_div_with_ablation"] == pytest.approx(kl_abl, rel=1e-2)
    assert beh["kl_div_score"] == pytest.approx((kl_abl - kl_sae) / kl_abl, rel=1e-2)

    # dead and dense latents: D + 2 latents, 2 never fire; latent i fires where x_i > 0
    misc = m["misc_metrics"]
    density = torch.cat([(x > 0).float().mean(0), torch.zeros(2)])
    assert misc["frac_dead"] == pytest.approx(2 / (D + 2))
    assert misc["frac_alive"] == pytest.approx(D / (D + 2))
    assert misc["freq_over_10_percent"] == pytest.approx(float((density > 0.1).float().mean()))
    assert misc["freq_over_1_percent"] == pytest.approx(float((density > 0.01).float().mean()))


def test_random_decoder_scores_negative_explained_variance(core_setup, linear_sae, tmp_path):
    lm, tokens, data, cfg = core_setup
    torch.manual_seed(3)
    eye = torch.eye(D)
    W_dec = torch.nn.functional.normalize(torch.randn(2 * D, D), dim=-1)
    sae = linear_sae(torch.cat([eye, -eye], 1), W_dec)
    ev = _metrics(run_core_eval(sae, lm, data, cfg, tmp_path))["reconstruction_quality"]["explained_variance"]
    assert ev < 0


def test_zero_ablation_cache_is_row_independent(core_setup):
    lm, tokens, data, _ = core_setup
    with torch.no_grad():
        live = lm.model.run_with_hooks(tokens, return_type="logits",
                                       fwd_hooks=[(lm.hook_name, lambda a, hook: torch.zeros_like(a))])
    for row in live:
        assert torch.allclose(row, data.zero_abl_logits, atol=1e-5)


def test_cached_model_rejects_unknown_rows(core_setup):
    from saekit.evals.core import CachedModel

    lm, tokens, data, _ = core_setup
    other = tokens.clone()
    other[0, 1] = (other[0, 1] % 10) + 1
    with pytest.raises(RuntimeError, match="not in the core-eval cache"):
        CachedModel(lm, data).run_with_cache(other, stop_at_layer=1)


def test_sae_bench_explained_variance_is_about_zero_not_the_mean(core_setup, linear_sae, tmp_path):
    """Documents why saekit reports its own explained_variance (see saekit/metrics.py)."""
    lm, tokens, data, cfg = core_setup
    x = _masked_acts(data)
    mean = x.mean(0)
    # an SAE that outputs the data mean whatever the input: explains no variance
    sae = linear_sae(torch.zeros(D, 1), torch.zeros(1, D), b_dec=mean)
    rq = _metrics(run_core_eval(sae, lm, data, cfg, tmp_path))["reconstruction_quality"]
    assert rq["explained_variance"] == pytest.approx(0.0, abs=1e-5)
    total_sq = x.pow(2).sum(-1).mean()
    expected_legacy_formula = 1 - float((x - mean).pow(2).sum(-1).mean() / (total_sq - (total_sq / D) ** 2))
    assert rq["explained_variance_saebench_0_6_0"] == pytest.approx(expected_legacy_formula, rel=1e-4)
    assert not math.isclose(rq["explained_variance_saebench_0_6_0"], 0.0, abs_tol=1e-3)
