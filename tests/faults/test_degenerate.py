"""Runs whose numbers break the template's rules: flagged to the agent, in state, never 'best'."""

from __future__ import annotations

import json

import pytest

from tests.support import copy_template, edit, l1_edit

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


def test_a_degenerate_run_is_never_the_best_run_the_paper_builds_on(harness, intact, tmp_path):
    # L1 = 5 kills 94% of the latents: the lowest L0 of all runs, and a broken SAE
    no_plots = copy_template(tmp_path / "no_plots", drop=("plot.py",))
    llm = harness.serve([
        l1_edit("0.02", "5.0"),
        {"expect": "more than 90% of latents dead", "reply": l1_edit("5.0", "0.05")},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
        {"expect": "Now: the title and abstract", "status": 400, "reply": "the test ends the idea here"},
    ])
    r = harness.run("--idea", str(harness.idea_path), "--stop-after", "writeup", template=str(no_plots))
    assert r.returncode == 1 and llm.remaining == 0, r.stdout
    runs = r.state()["runs"]
    assert any("frac_dead > 0.9" in f for f in runs["1"]["degenerate"]) and runs["2"]["degenerate"] == []
    # the agent's table after run 2: best L0 so far is run_2's, not the dead run_1's
    after_run_2 = next(c["prompt"] for c in r.chat() if "Run 2 finished" in c["prompt"])
    l0_row = next(ln for ln in after_run_2.splitlines() if ln.startswith("L0 (active latents)"))
    assert l0_row.rstrip().endswith("(run_2)"), l0_row
    # the first writeup prompt: run_1 carries its flag, is named broken, and is nobody's best
    writeup = next(q for q in llm.requests if "Now: the title and abstract" in json.dumps(q["messages"]))
    prompt = writeup["messages"][-1]["content"]
    row_1 = next(ln for ln in prompt.splitlines() if ln.startswith("run_1 |"))
    assert "(degenerate: " in row_1 and "frac_dead > 0.9" in row_1
    best = next(ln for ln in prompt.splitlines() if ln.startswith("Best run per metric"))
    assert "L0 (active latents): run_2 (10.2)" in best and "run_1" not in best
    assert "Degenerate (broken) runs: run_1." in prompt
    intact(r.workspace)
