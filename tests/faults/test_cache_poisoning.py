"""A run that poisons the SAE template's shared activation cache must not change another
idea's results.

Two ideas one after the other, sharing the cache (~/.cache/sae_harness of the test's HOME)
and the baseline cache. The first idea's run 1 ends by rewriting the cached training
activations (a valid file, halved values: a silent poison, not a crash). At the process level
the write succeeds; the second idea's run 1 must notice (the artefact no longer matches its
manifest), say so in one line, rebuild it, and get exactly the baseline's numbers, since it runs
the unmodified SAE. Under the namespace level the write itself fails (isolation probe).

The tiny setting (tests/sae_template/tiny_config.yaml) keeps this to a few minutes on 2 cores;
the cache starts as a copy of the one the SAE tests share (tests/sae_cache.py), so the first
idea's runs are warm.
"""

from __future__ import annotations

import json
import sys

import pytest
import yaml

from tests.support import IDEA, REPO, edit

sys.path.insert(0, str(REPO / "tests"))
from sae_cache import build_tiny_once, copy_shared, link_shared  # noqa: E402

TINY = yaml.safe_load((REPO / "tests" / "sae_template" / "tiny_config.yaml").read_text())
ANCHOR = "    (out / \"final_info.json\").write_text(json.dumps(final_info, indent=2, default=str))"
POISON = ANCHOR + """
    import glob, os, sys
    import numpy as np
    for p in glob.glob(os.path.join(os.environ["SAE_HARNESS_CACHE"], "activations", "*", "acts.npy")):
        np.save(p, np.load(p) * 0.5)
        print("poisoned", p, file=sys.stderr)"""
COMMENT = ("    k: int = 32  # topk: active latents per token",
           "    k: int = 32  # topk: active latents per token (as the baseline)")


def _metrics(ws, run: str) -> dict:
    info = json.loads((ws / ".harness" / "evaluations" / f"{run}.json").read_text())  # the harness's numbers
    core = info["core evaluation results"]["eval_result_metrics"]
    return {"ev": core["reconstruction_quality"]["explained_variance"], "l0": core["sparsity"]["l0"],
            "ce": core["model_performance_preservation"]["ce_loss_score"]}


@pytest.mark.timeout(2700)  # two cold SAE ideas on a shared 2-core machine
@pytest.mark.fault("run poisons the shared cache another idea reads")
def test_a_poisoned_cache_entry_is_rebuilt_and_does_not_change_another_ideas_results(harness, intact):
    cache = harness.home / ".cache" / "sae_harness" / "activations"
    build_tiny_once()
    link_shared(cache, ("models",))
    # copied, not linked: under the process level the poison would reach the shared copy
    copy_shared(cache, ("activations", "core_eval", "sparse_probing", "absorption"))
    # one seed: seeds are test_harness_evaluation's subject; here they would only add three runs
    cfg = harness.write_config({"template_settings": TINY, "run_timeout": 900, "sandbox": "process", "seeds": 1})

    harness.serve([edit("experiment.py", ANCHOR, POISON), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    first = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), template="sae_variants", timeout=1500)
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    assert "poisoned" in (first.workspace / "run_1" / "stderr.log").read_text()

    second_idea = harness.tmp / "idea2.json"
    second_idea.write_text(json.dumps({**IDEA, "Name": "toy_l1_again"}))
    harness.serve([edit("experiment.py", *COMMENT), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    second = harness.run("--idea", str(second_idea), "--config", str(cfg), template="sae_variants", timeout=1500)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert second.workspace != first.workspace

    # reported: one line naming the artefact and what changed
    err = (second.workspace / "run_1" / "stderr.log").read_text()
    named = [ln for ln in err.splitlines() if "failed its check" in ln]
    assert len(named) == 1 and "activations" in named[0] and "acts.npy changed" in named[0], err[-2000:]
    # not changed: the unmodified SAE gets the baseline's numbers, as if nothing had happened
    assert _metrics(second.workspace, "run_1") == pytest.approx(_metrics(first.workspace, "run_0"), abs=1e-6)
    assert _metrics(second.workspace, "run_0") == _metrics(first.workspace, "run_0")
    intact(first.workspace)
    intact(second.workspace)
