"""The template's SAEs written in SAELens's layout and loaded back with sae_lens itself.

A small TopK and a small ReLU SAE are trained by experiment.py's own trainer on SmolLM2's real
activations of the tiny setting, exported with saekit.save_saelens, loaded with
sae_lens.SAE.load_from_disk, and held against our SAE on real activations: same latents, same
reconstruction. The template's input scale (about 4 at this layer) and its nonzero biases make a
wrong fold of the scale visible by orders of magnitude.
"""

import json
import os
import sys
from pathlib import Path

import pytest
import torch

import saekit
from saekit.activations import train_activations
from saekit.config import load_config
from saekit.lm import embedded_special_ids, load_language_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sae_cache import keep_built, link_shared  # noqa: E402

TINY_CONFIG = Path(__file__).parent / "tiny_config.yaml"
HELD_OUT = 2048  # the last tokens of the cache; the SAE trains on the others
SAELENS_CLASS = {"topk": "TopKSAE", "relu": "StandardSAE"}


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """The tiny setting's real training activations, built in a private cache (the converted
    model may come from an earlier test)."""
    cache = tmp_path_factory.mktemp("cache")
    link_shared(cache, ("models",))
    before = os.environ.get("SAE_HARNESS_CACHE")
    os.environ["SAE_HARNESS_CACHE"] = str(cache)
    try:
        cfg = load_config(TINY_CONFIG)
        lm = load_language_model(cfg)
        acts = train_activations(cfg, lm)
    finally:
        if before is None:
            del os.environ["SAE_HARNESS_CACHE"]
        else:
            os.environ["SAE_HARNESS_CACHE"] = before
    keep_built(cache, ("models",))
    return saekit.Bench(cfg=cfg, lm=lm, train_acts=acts, core_data=None, probing_dirs={}, absorption_dir=None)


@pytest.fixture(scope="module", params=["topk", "relu"])
def trained(request, bench):
    import experiment

    acts = bench.train_acts[:-HELD_OUT]
    tc = experiment.TrainConfig(architecture=request.param, expansion=2, k=16, batch_size=512)
    torch.manual_seed(tc.seed)
    sae = experiment.SAE(bench.d_model, tc.expansion * bench.d_model, tc, experiment.input_scale(acts), bench)
    with torch.no_grad():  # as main() starts it: b_dec at the data mean, in scaled units
        sae.b_dec.data = acts.float().mean(0) / sae.input_scale
    batches = saekit.ActivationBatches(acts, tc.batch_size, tc.seed)
    experiment.train(sae, batches, tc, n_steps=len(acts) // tc.batch_size)
    sae.eval()
    return sae


@pytest.fixture
def held_out(bench):
    return bench.train_acts[-HELD_OUT:].float()


def _explained_variance(x, x_hat):
    return 1 - (x - x_hat).pow(2).sum() / (x - x.mean(0)).pow(2).sum()


def test_sae_lens_loads_the_export_and_reconstructs_like_ours(trained, bench, held_out, tmp_path):
    from sae_lens import SAE

    export = saekit.save_saelens(trained, tmp_path / "sae", bench)
    assert sorted(p.name for p in (tmp_path / "sae").iterdir()) == ["cfg.json", "sae_weights.safetensors"]

    loaded = SAE.load_from_disk(tmp_path / "sae")
    assert type(loaded).__name__ == SAELENS_CLASS[trained.architecture]
    assert (loaded.cfg.d_in, loaded.cfg.d_sae) == (576, 1152)
    assert loaded.cfg.normalize_activations == "none" and loaded.cfg.apply_b_dec_to_input
    if trained.architecture == "topk":
        assert loaded.cfg.k == 16
    meta = loaded.cfg.metadata
    assert meta.hook_name == "blocks.3.hook_resid_post" and meta.hook_head_index is None
    assert meta.model_name == "HuggingFaceTB/SmolLM2-135M-Instruct" and meta.context_size == 128
    assert meta.prepend_bos and meta.exclude_special_tokens == sorted(bench.lm.special_ids)
    # a run that only trains reads them from the tokenizer's files, without building the tokenizer
    assert embedded_special_ids() == bench.lm.special_ids == frozenset({1, 2})
    assert meta.input_scale_folded == pytest.approx(trained.input_scale.item()) and meta.input_scale_folded > 2

    with torch.no_grad():
        ours_f, theirs_f = trained.encode(held_out), loaded.encode(held_out)
        ours, theirs = trained(held_out), loaded(held_out)
    # a real SAE, not a degenerate one that any export would reproduce
    assert _explained_variance(held_out, ours) > 0.6
    l0 = (ours_f > 0).sum(-1).float().mean()
    assert 3 < l0 <= 16 if trained.architecture == "topk" else 3 < l0 < 576
    # the same latents with the same values, the same reconstruction: on every token but a rare
    # one where rounding tips a latent at the firing threshold (a near-tie for TopK's k-th place);
    # a wrong export disagrees on nearly all of them
    scale = held_out.abs().max()
    close = dict(rtol=1e-5, atol=1e-5 * scale)
    agree = (torch.isclose(theirs_f, ours_f, **close).all(-1) & torch.isclose(theirs, ours, **close).all(-1)
             & torch.isclose(loaded.decode(ours_f), ours, **close).all(-1))
    assert (~agree).sum() <= 2, f"{(~agree).sum()} of {len(agree)} tokens differ between sae_lens and ours"
    assert export.check.matches, export.check  # the run's own check agrees


def test_an_sae_the_layout_cannot_express_is_flagged_in_cfg_json(trained, bench, tmp_path, monkeypatch, capsys):
    """An agent's edit to the activation (here a fixed threshold) is caught by the export's own check."""
    plain = trained.activate
    monkeypatch.setattr(trained, "activate", lambda pre: plain(pre - 0.5))
    export = saekit.save_saelens(trained, tmp_path / "sae", bench)
    assert not export.check.matches
    cfg = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    assert cfg["metadata"]["export_check"]["matches"] is False
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not reproduce this SAE" in err


def test_an_architecture_without_a_saelens_counterpart_is_not_written(trained, bench, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(trained, "architecture", "gated")
    assert saekit.save_saelens(trained, tmp_path / "sae", bench) is None
    assert not (tmp_path / "sae").exists()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'gated'" in err
