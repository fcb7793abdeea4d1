"""Faults in what the agent writes or what the model does; each recorded, nothing lost."""

from __future__ import annotations

import json

from conftest import edit, l1_edit

WRITE = '''    with open(os.path.join(out_dir, "final_info.json"), "w") as fh:
        json.dump(results, fh, indent=2)'''


def test_nan_metric_is_flagged_degenerate_to_the_agent_and_in_state(harness):
    nan = edit("experiment.py", WRITE,
               '    results["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"]'
               '["explained_variance"] = float("nan")\n' + WRITE)
    harness.serve([nan, {"expect": "looks broken", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    prompt = r.chat()[1]["prompt"]
    assert "explained_variance is nan" in prompt and "Do not report it as an improvement" in prompt
    assert r.state()["runs"]["1"]["degenerate"]


def test_negative_explained_variance_breaks_the_template_rule(harness):
    bad = edit("experiment.py", "    results = evaluate(sae, data[16_000:], true_feats)",
               "    sae.W_dec = -sae.W_dec * 5\n    results = evaluate(sae, data[16_000:], true_feats)")
    harness.serve([bad, {"expect": "reconstruction worse than the mean", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    assert any("explained_variance <" in f for f in r.state()["runs"]["1"]["degenerate"])


def test_missing_and_malformed_final_info_count_as_failed_runs(harness):
    missing = edit("experiment.py", WRITE, "    pass  # results not written")
    malformed = edit("experiment.py", "    pass  # results not written",
                     '    open(os.path.join(out_dir, "final_info.json"), "w").write("{not json")')
    fixed = edit("experiment.py", '    open(os.path.join(out_dir, "final_info.json"), "w").write("{not json")', WRITE)
    harness.serve([missing, {"expect": "without writing run_1/final_info.json", "reply": malformed},
                   {"expect": "not valid JSON", "reply": fixed + l1_edit("0.02", "0.05")},
                   {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    for n in (1, 2):
        meta = json.loads((r.workspace / f"run_1_failed_{n}" / "meta.json").read_text())
        assert meta["exit_code"] == 0 and meta["status"] == "failed" and meta["error"]
    assert (r.workspace / "run_1" / "final_info.json").exists()


def test_model_timeout_is_retried(harness):
    llm = harness.serve([{"reply": l1_edit("0.02", "0.05"), "delay": 4},
                         {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"request_timeout": 1, "api_retry_wait": 0.1})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    chat = r.chat()
    assert not chat[0]["ok"] and "Timeout" in chat[0]["error"]
    assert chat[1]["ok"] and chat[1]["attempt"] == 2
    assert llm.remaining == 0
