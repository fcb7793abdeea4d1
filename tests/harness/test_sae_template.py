"""The SAE template end to end through the harness: real SmolLM2 activations, a real SAE, the
scripted model editing experiment.py, metrics fed back against the baseline.

A tiny setting (template_settings in the harness config) keeps it to a minute or two; the
default setting is measured by bench/template_run.py instead.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from conftest import edit

TINY = {
    "train_tokens": 20000,
    "core": {"batch_size_prompts": 2, "n_eval_reconstruction_batches": 2, "n_eval_sparsity_variance_batches": 4},
    "sparse_probing": {"train_per_class": 20, "test_per_class": 10, "max_tokens": 16, "k_values": [1, 5]},
    "absorption": {"vocab_size": 300, "min_probe_f1": 0.0, "k_sparse_probe_num_epochs": 5},
}


def _share_model_cache(home: Path) -> None:
    """The dequantised SmolLM2 weights do not depend on any setting: reuse the machine's copy
    when there is one (saves ~25 s); the sandbox reads it through the symlink."""
    real = Path(os.environ.get("SAE_HARNESS_CACHE") or "~/.cache/sae_harness/activations").expanduser() / "models"
    if real.is_dir() and any(real.glob("*/key.json")):
        target = home / ".cache" / "sae_harness" / "activations"
        target.mkdir(parents=True)
        (target / "models").symlink_to(real)


def test_sae_template_through_the_harness(harness):
    _share_model_cache(harness.home)
    topk = edit("experiment.py", "    k: int = 32  # topk: active latents per token",
                "    k: int = 16  # topk: active latents per token")
    harness.serve([{"expect": "explained_variance", "reply": topk},
                   {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"template_settings": TINY, "run_timeout": 900})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), template="sae_variants", timeout=1200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]

    infos = [json.loads((r.workspace / f"run_{i}" / "final_info.json").read_text()) for i in (0, 1)]
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


def test_a_setting_the_template_lacks_is_a_one_line_error(harness):
    cfg = harness.write_config({"template_settings": {"core": {"n_batches": 3}}})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), "--model", "openai/x",
                    "--api-base", "http://127.0.0.1:9/v1", template="sae_variants")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "'core.n_batches' is not a setting" in r.stderr and "experiment_config.yaml" in r.stderr
    assert r.workspace is None
