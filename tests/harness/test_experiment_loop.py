"""End to end through real aider, litellm, git and subprocesses; only the model is scripted.

Faults (crashes, hangs, kills, API errors, forbidden edits) are tested in tests/faults.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import l1_edit


def _run_files(ws: Path, folder: str) -> set[str]:
    return {p.name for p in (ws / folder).iterdir()}


def test_happy_path_to_all_completed(harness):
    llm = harness.serve([
        {"expect": "A Stronger L1 Penalty", "reply": "Plan: run_1 l1=0.05, run_2 l1=0.1.\n\n" + l1_edit("0.02", "0.05")},
        {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.1")},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0
    ws = r.workspace
    log = [line.split(" (")[0].split(" after ")[0] for line in r.log()]
    assert log == [
        "[setup] template toy + idea toy_l1",
        "[baseline] run_0: the unmodified template",
        "[experiments] turn 1 for run_1: agent edit of experiment.py",
        "[experiments] run_1 results",
        "[experiments] turn 2 for run_2: agent edit of experiment.py",
        "[experiments] run_2 results",
        "[harness] done",
    ]
    repo = r.repo()
    assert sorted(t.name for t in repo.tags) == ["run_0", "run_1", "run_2"]
    for i in range(3):
        assert {"final_info.json", "stdout.log", "stderr.log", "meta.json"} <= _run_files(ws, f"run_{i}")
        meta = json.loads((ws / f"run_{i}" / "meta.json").read_text())
        assert meta["exit_code"] == 0 and meta["status"] == "ok" and meta["duration_s"] > 0
        assert meta["command_line"] == f"python experiment.py --out_dir=run_{i}"
        # the run ran the code of the commit it names, and its results are in the tagged commit
        ran = repo.commit(meta["commit"])
        expected = {0: "0.02", 1: "0.05", 2: "0.1"}[i]
        assert f"l1_coeff: float = {expected}" in ran.tree["experiment.py"].data_stream.read().decode()
        assert f"run_{i}/final_info.json" in [b.path for b in repo.tags[f"run_{i}"].commit.tree.traverse()]
    # sparser runs: the real experiment responded to the real edit
    l0 = [json.loads((ws / f"run_{i}/final_info.json").read_text())
          ["core evaluation results"]["eval_result_metrics"]["sparsity"]["l0"] for i in range(3)]
    assert l0[0] > l0[1] > l0[2]

    chat = r.chat()
    assert [c["turn"] for c in chat] == [1, 2, 3]
    assert all(c["ok"] and c["prompt_tokens"] > 500 and c["completion_tokens"] > 0 for c in chat)
    assert all(c["latency_s"] >= 0 and "cost_usd" in c for c in chat)
    # results go back as a compact table, not the raw nested dict
    second = chat[1]["prompt"]
    assert "explained variance" in second and "run_0" in second and "core evaluation results" not in second
    assert len(second) < 2000
    state = r.state()
    assert state["status"] == "done" and state["stages"]["experiments"] == "done"
    assert sorted(state["runs"]) == ["0", "1", "2"]


def test_each_turn_after_a_run_starts_fresh_so_prompts_stay_flat(harness):
    """The run table and notes.txt carry what earlier turns said; resending every old reply
    grew the README job's prompts by ~0.6k tokens a turn."""
    plan = "Plan: sweep l1 upwards, one setting per run. " + "Reasoning about sparsity. " * 80
    values = ["0.02", "0.03", "0.05", "0.08", "0.1"]
    llm = harness.serve([{"reply": plan + "\n\n" + l1_edit(values[0], values[1])}]
                        + [{"expect": f"Run {i} finished", "reply": f"Run {i + 1} next.\n\n" + l1_edit(values[i], values[i + 1])}
                           for i in range(1, 4)]
                        + [{"expect": "Run 4 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path), "--max-runs", "5")
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0
    tokens = [c["prompt_tokens"] for c in r.chat()]
    print("prompt tokens per experiments turn:", tokens)
    assert len(tokens) == 5
    # turn 2 no longer carries turn 1's long plan, and later turns do not grow
    assert tokens[1] < tokens[0]
    assert max(tokens[1:]) - min(tokens[1:]) < 60, tokens
    reminder = r.chat()[2]["prompt"]
    assert "A Stronger L1 Penalty" in reminder and "notes.txt" in reminder and "Runs left after this result: 3 of 5" in reminder


def test_budget_stops_the_idea_cleanly_and_resume_goes_on(harness):
    llm = harness.serve([
        l1_edit("0.02", "0.05"),
        {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.1")},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    r = harness.run("--idea", str(harness.idea_path), "--budget-tokens", "3000")
    assert r.returncode == 1
    state = r.state()
    assert state["status"] == "stopped" and "budget spent" in state["error"]
    assert "budget spent" in r.stdout
    assert (r.workspace / "run_1" / "final_info.json").exists() and llm.position == 1
    assert not r.repo().is_dirty(untracked_files=True)
    r2 = harness.run("--resume", str(r.workspace), "--budget-tokens", "100000")
    assert r2.returncode == 0, r2.stderr
    assert r2.state()["status"] == "done" and llm.remaining == 0


def test_dollar_budget_uses_the_model_prices(harness):
    harness.serve([l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.1")}])
    cfg = harness.write_config({"model_metadata": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
                                "budget_usd": 0.002})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 1
    chat = r.chat()
    assert chat[0]["cost_usd"] > 0.001
    assert "budget spent: $" in r.state()["error"]
