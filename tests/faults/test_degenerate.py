"""Runs whose numbers break the template's rules: flagged to the agent, in state, never 'best'."""

from __future__ import annotations

import pytest

from tests.support import edit

pytestmark = pytest.mark.fault("NaN or rule-breaking metrics")

WRITE = '''    with open(os.path.join(out_dir, "final_info.json"), "w") as fh:
        json.dump(results, fh, indent=2)'''


def test_nan_metric_is_flagged_degenerate_to_the_agent_and_in_state(harness, intact):
    nan = edit("experiment.py", WRITE,
               '    results["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"]'
               '["explained_variance"] = float("nan")\n' + WRITE)
    harness.serve([nan, {"expect": "looks broken", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    prompt = r.chat()[1]["prompt"]
    assert "explained_variance is nan" in prompt and "Do not report it as an improvement" in prompt
    assert r.state()["runs"]["1"]["degenerate"]
    intact(r.workspace)


def test_negative_explained_variance_breaks_the_template_rule(harness, intact):
    bad = edit("experiment.py", "    results = evaluate(sae, data[16_000:], true_feats)",
               "    sae.W_dec = -sae.W_dec * 5\n    results = evaluate(sae, data[16_000:], true_feats)")
    harness.serve([bad, {"expect": "reconstruction worse than the mean", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    assert any("explained_variance <" in f for f in r.state()["runs"]["1"]["degenerate"])
    intact(r.workspace)
