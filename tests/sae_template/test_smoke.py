"""The whole template, as the harness runs it: `python experiment.py --out_dir=run_i` in a
workspace copy, on a tiny configuration, once cold (empty activation cache) and once warm."""

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import EVALUATION_STACK

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from sae_cache import keep_built, link_shared  # noqa: E402

TINY_CONFIG = (Path(__file__).parent / "tiny_config.yaml").read_text()

SECTIONS = [
    "training results",
    "core evaluation results",
    "sparse probing evaluation results",
    "absorption evaluation results",
    "run info",
]
MERGED = [SECTIONS[0], SECTIONS[4], *SECTIONS[1:4], "evaluation info"]


def _finite_numbers(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _finite_numbers(v, f"{path}/{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _finite_numbers(v, f"{path}[{i}]")
    elif isinstance(node, float):
        yield path, node


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, template_dir):
    ws = tmp_path_factory.mktemp("workspace")
    for name in ("experiment.py", "plot.py", "notes.txt", "template.yaml", "saekit"):
        src = template_dir / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, ws / name)
    (ws / "experiment_config.yaml").write_text(TINY_CONFIG)
    cache = tmp_path_factory.mktemp("cache")
    # what does not depend on the SAE (converted model, probing sets, absorption probe) may come
    # from an earlier test; the training activations and core-eval data are always built here,
    # so the first run is cold where it matters for the assertions below
    link_shared(cache)
    return ws, cache


def _run(ws: Path, cache: Path, out: str, *extra: str, lean: bool = False) -> dict:
    """experiment.py, then the evaluation step the harness runs after it (template.yaml), here
    in the workspace itself; the result is what the harness reads: both files merged. `lean`:
    also check that the training process never imported the language-model stack."""
    env = {**os.environ, "SAE_HARNESS_CACHE": str(cache)}
    train_env = {**env, "PYTHONPROFILEIMPORTTIME": "1"} if lean else env
    proc = subprocess.run([sys.executable, "experiment.py", f"--out_dir={out}", *extra], cwd=ws, env=train_env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    if lean:  # a warm run reads cached activations and exports its SAE: 4-6 s a run when the export built the tokenizer
        imported = {line.rsplit("|", 1)[-1].strip()
                    for line in proc.stderr.splitlines() if line.startswith("import time:")}
        assert "torch" in imported and not imported & set(EVALUATION_STACK)
    proc = subprocess.run([sys.executable, "-m", "saekit.evaluate_run", "--run_dir", out, "--out",
                           f"{out}/evaluation.json"], cwd=ws, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    info = json.loads((ws / out / "final_info.json").read_text())
    assert not set(info) & set(SECTIONS[1:4])  # the run itself evaluates nothing
    return info | json.loads((ws / out / "evaluation.json").read_text())


@pytest.fixture(scope="module")
def runs(workspace):
    ws, cache = workspace
    result = _run(ws, cache, "run_0"), _run(ws, cache, "run_1", lean=True)
    keep_built(cache)
    return result


def test_final_info_has_saebench_sections_and_finite_values(runs):
    cold, warm = runs
    for info in runs:
        assert list(info) == MERGED
        core = info["core evaluation results"]
        assert core["eval_type_id"] == "core"
        for category in ("model_behavior_preservation", "model_performance_preservation",
                         "reconstruction_quality", "shrinkage", "sparsity", "misc_metrics"):
            assert category in core["eval_result_metrics"]
        assert info["sparse probing evaluation results"]["eval_type_id"] == "sparse_probing"
        assert len(info["sparse probing evaluation results"]["eval_result_details"]) == 3
        assert info["absorption evaluation results"]["eval_type_id"] == "absorption_first_letter"
        headline = [
            core["eval_result_metrics"]["reconstruction_quality"]["explained_variance"],
            core["eval_result_metrics"]["model_performance_preservation"]["ce_loss_score"],
            core["eval_result_metrics"]["sparsity"]["l0"],
            info["sparse probing evaluation results"]["eval_result_metrics"]["sae"]["sae_top_1_test_accuracy"],
            info["absorption evaluation results"]["eval_result_metrics"]["mean"]["mean_absorption_fraction_score"],
        ]
        assert all(math.isfinite(v) for v in headline), headline
        bad = [p for p, v in _finite_numbers(core["eval_result_metrics"]) if not math.isfinite(v)]
        assert not bad, bad
        assert info["training results"]["final_info"]["training_tokens"] > 0


def test_warm_run_reads_everything_from_the_cache(runs):
    cold, warm = runs
    # warm: training runs no LM pass; the evaluation's only ones are SAE-spliced (one per
    # reconstruction batch)
    assert warm["run info"]["lm_forward_calls"] == 0
    assert cold["run info"]["lm_forward_calls"] > 2
    assert warm["evaluation info"]["lm_forward_calls"] == 2
    # same data, same seed: the same SAE and the same scores
    for key in ("explained_variance", "mse"):
        assert warm["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"][key] == pytest.approx(
            cold["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"][key], rel=1e-5)


def test_the_seed_option_reaches_training_and_changes_the_sae(workspace, runs):
    """--seed=S is how the harness runs the baseline and the best run again (issue 16)."""
    ws, cache = workspace
    seeded = _run(ws, cache, "run_0_seed1", "--seed=1")
    assert seeded["training results"]["config"]["seed"] == 1
    assert runs[0]["training results"]["config"]["seed"] == 0
    ev = [r["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"]["explained_variance"]
          for r in (runs[0], seeded)]
    # the same seed repeats its scores (test_warm_run_reads_everything_from_the_cache); another does not
    assert ev[1] != pytest.approx(ev[0], rel=1e-5)


def test_each_run_saves_its_sae_for_sae_lens_and_it_scores_what_the_run_reported(workspace, runs, monkeypatch):
    """run_i/sae/, as the run wrote it, loaded by sae_lens itself: the same explained variance on
    the same eval tokens as the run's own core eval."""
    from sae_lens import SAE, TopKSAE

    from saekit.activations import core_eval_data
    from saekit.config import load_config
    from saekit.evals.core import _extra_reconstruction_metrics

    ws, cache = workspace
    monkeypatch.setenv("SAE_HARNESS_CACHE", str(cache))
    cfg = load_config(ws / "experiment_config.yaml")
    data = core_eval_data(cfg, lm=None)  # cached by the runs: no model needed
    n_rows = cfg.core.batch_size_prompts * cfg.core.n_eval_sparsity_variance_batches
    for name, info in zip(("run_0", "run_1"), runs):
        folder = ws / name / "sae"
        assert sorted(p.name for p in folder.iterdir()) == ["cfg.json", "decode.pt2", "encode.pt2", "exported.json",
                                                             "sae_weights.safetensors"]
        sae = SAE.load_from_disk(folder)
        assert isinstance(sae, TopKSAE) and sae.cfg.k == 32 and sae.cfg.d_sae == 4 * 576
        meta = sae.cfg.metadata
        assert meta.export_check["matches"] and meta.hook_name == "blocks.3.hook_resid_post"
        lm = SimpleNamespace(special_ids=frozenset(meta.exclude_special_tokens))
        ev = _extra_reconstruction_metrics(sae, lm, data, n_rows)["explained_variance"]
        reported = info["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"]["explained_variance"]
        assert ev == pytest.approx(reported, abs=1e-5)


def test_random_decoder_on_real_activations_is_worse_than_the_mean(workspace, runs, monkeypatch):
    """The degenerate rule's premise, on SmolLM2's own activations: a random decoder gives EV < 0."""
    ws, cache = workspace
    monkeypatch.setenv("SAE_HARNESS_CACHE", str(cache))
    monkeypatch.chdir(ws)
    sys.path.insert(0, str(ws))
    try:
        import experiment
        import saekit
        from saekit.activations import special_mask
        from saekit.metrics import explained_variance

        calls_before = saekit.LM_FORWARD.calls
        bench = saekit.prepare()
        tc = experiment.TrainConfig()
        sae = experiment.SAE(bench.d_model, tc.expansion * bench.d_model, tc, experiment.input_scale(bench.train_acts), bench)
        torch.manual_seed(0)
        sae.W_dec.data = torch.nn.functional.normalize(torch.randn_like(sae.W_dec), dim=-1)
        data = bench.core_data
        x = data.acts[~special_mask(data.tokens, bench.lm)]
        with torch.no_grad():
            assert explained_variance(x, sae(x)) < 0
        assert saekit.LM_FORWARD.calls == calls_before  # prepare() on a warm cache runs no LM pass
    finally:
        sys.path.remove(str(ws))
        for mod in [m for m in sys.modules if m == "experiment"]:
            del sys.modules[mod]


def test_plot_script_writes_figures(workspace, runs):
    ws, _ = workspace
    subprocess.run([sys.executable, "plot.py"], cwd=ws, check=True, capture_output=True, timeout=120)
    for name in ("headline_metrics", "sparse_probing", "training_curves"):
        assert (ws / f"{name}.png").stat().st_size > 0
        assert (ws / f"{name}.pdf").stat().st_size > 0
