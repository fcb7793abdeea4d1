"""The SAE template end to end through the harness: real SmolLM2 activations, a real SAE, the
scripted model editing experiment.py, metrics fed back against the baseline.

A tiny setting (template_settings in the harness config) keeps it to a minute or two; the
default setting is measured by bench/template_run.py instead.
"""

from __future__ import annotations

import json
import sys

import pytest
import yaml
from conftest import REPO, edit

sys.path.insert(0, str(REPO / "tests"))
from sae_cache import keep_built, link_shared  # noqa: E402

TINY = yaml.safe_load((REPO / "tests" / "sae_template" / "tiny_config.yaml").read_text())
# The absorption artefact may gain prompt activations during a run: linked, that write would go
# outside the sandbox's writable ~/.cache, so it is always built in this test's own cache.
READ_ONLY_KINDS = ("models", "sparse_probing")


@pytest.mark.timeout(3600)  # four runs (two seeds of run_0 and of run_1), each scored by the evaluation step
def test_sae_template_through_the_harness(harness):
    cache = harness.home / ".cache" / "sae_harness" / "activations"  # the sandbox's writable cache
    link_shared(cache, READ_ONLY_KINDS)
    topk = edit("experiment.py", "    k: int = 32  # topk: active latents per token",
                "    k: int = 16  # topk: active latents per token")
    harness.serve([{"expect": "explained variance", "reply": topk},
                   {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"template_settings": TINY, "run_timeout": 900})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), template="sae_variants", timeout=3000)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    keep_built(cache)

    infos = [json.loads((r.workspace / f"run_{i}" / "evaluation.json").read_text()) for i in (0, 1)]
    for info in infos:
        assert {"core evaluation results", "sparse probing evaluation results",
                "absorption evaluation results"} <= set(info)
    l0 = [i["core evaluation results"]["eval_result_metrics"]["sparsity"]["l0"] for i in infos]
    assert l0 == [32.0, 16.0]  # TopK pins L0 at k: the agent's edit is what ran

    # the workspace ran with the tiny setting, committed with the template
    assert "train_tokens: 20000" in (r.workspace / "experiment_config.yaml").read_text()
    # the agent saw run_1 against the baseline, with the template's headline metrics
    feedback = r.chat()[1]["prompt"]
    for name in ("explained variance", "CE loss score", "L0", "sparse probing top-1", "mean absorption fraction"):
        assert name in feedback, name
    assert "Run 1 finished" in feedback
    assert r.state()["runs"]["1"]["status"] == "done" and not r.state()["runs"]["1"]["degenerate"]
    # the template's default of 2 seeds: the baseline's seed 1 and the confirmation of run_1 ran
    # with --seed=1, which reached TrainConfig.seed, and the agent saw the baseline's spread
    for folder, l0_expected in (("run_0_seed1", 32.0), ("run_1_seed1", 16.0)):
        info = json.loads((r.workspace / folder / "final_info.json").read_text())
        assert info["training results"]["config"]["seed"] == 1
        scored = json.loads((r.workspace / ".harness" / "evaluations" / f"{folder}.json").read_text())
        assert scored["core evaluation results"]["eval_result_metrics"]["sparsity"]["l0"] == l0_expected
        assert json.loads((r.workspace / folder / "meta.json").read_text())["seed"] == 1
    assert "run_0 (2 seeds)" in feedback


def test_a_setting_the_template_lacks_is_a_one_line_error(harness):
    cfg = harness.write_config({"template_settings": {"core": {"n_batches": 3}}})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), "--model", "openai/x",
                    "--api-base", "http://127.0.0.1:9/v1", template="sae_variants")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "'core.n_batches' is not a setting" in r.stderr and "experiment_config.yaml" in r.stderr
    assert r.workspace is None
