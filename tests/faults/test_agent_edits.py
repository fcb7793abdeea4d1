"""Faults in the agent's replies: edits that do not apply, edits to files it may not touch."""

from __future__ import annotations

import pytest

from tests.support import edit, l1_edit


@pytest.mark.fault("SEARCH block never matches")
def test_search_block_that_never_matches_is_reported_and_nothing_runs(harness, intact):
    bad = edit("experiment.py", "    l1_coeff: float = 9.99", "    l1_coeff: float = 0.1")
    llm = harness.serve([
        "Trying an edit.\n\n" + bad,
        {"expect": "failed to match", "reply": bad},   # aider sends the mismatch back itself
        {"expect": "failed to match", "reply": bad},
        {"expect": "failed to match", "reply": bad},
        {"expect": "could not be applied", "reply": "ALL_COMPLETED"},
    ])
    cfg = harness.write_config({"stream": False})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0
    assert not (r.workspace / "run_1").exists()
    assert not any("turn 1 for run_1: agent edit" in s for s in r.log())
    assert "l1_coeff: float = 0.02" in (r.workspace / "experiment.py").read_text()
    assert "ALL_COMPLETED after 0 runs" in r.state()["experiments"]["stop_reason"]
    intact(r.workspace)


@pytest.mark.fault("SEARCH block never matches")
def test_search_block_fixed_after_aider_reflection(harness, intact):
    bad = edit("experiment.py", "    l1_coeff: float = 9.99", "    l1_coeff: float = 0.1")
    harness.serve([
        bad,
        {"expect": "failed to match", "reply": l1_edit("0.02", "0.1")},
        {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"},
    ])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    assert r.repo().tags["run_1"] is not None
    assert [c["turn"] for c in r.chat()] == [1, 1, 2]  # two model calls inside turn 1
    intact(r.workspace)


@pytest.mark.fault("reply edits a protected file")
def test_edit_to_a_protected_file_is_undone_and_reported(harness, intact):
    sneaky = edit("template.yaml", "run_timeout: 120", "run_timeout: 99999")
    harness.serve([
        l1_edit("0.02", "0.05") + "\n" + sneaky,
        {"expect": "were undone", "reply": "ALL_COMPLETED"},
    ])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    assert "run_timeout: 120" in (r.workspace / "template.yaml").read_text()
    assert "99999" not in r.repo().git.show("HEAD:template.yaml")
    assert "l1_coeff: float = 0.05" in r.repo().git.show("run_1:experiment.py")
    intact(r.workspace)
