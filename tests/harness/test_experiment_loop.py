"""End to end through real aider, litellm, git and subprocesses; only the model is scripted."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from conftest import edit, l1_edit


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


def test_search_block_that_never_matches_is_reported_and_nothing_runs(harness):
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


def test_search_block_fixed_after_aider_reflection(harness):
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


def test_crashing_run_is_kept_and_fed_back_then_fixed(harness):
    crash = edit("experiment.py", "    cfg = Config()", "    cfg = Config()\n    undefined_helper(cfg)")
    fix = edit("experiment.py", "    cfg = Config()\n    undefined_helper(cfg)", "    cfg = Config()")
    harness.serve([
        crash,
        {"expect": "NameError", "reply": fix + "\n" + l1_edit("0.02", "0.05")},
        {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"},
    ])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    ws = r.workspace
    failed = ws / "run_1_failed_1"
    assert {"stdout.log", "stderr.log", "meta.json"} <= _run_files(ws, "run_1_failed_1")
    assert "NameError" in (failed / "stderr.log").read_text()
    meta = json.loads((failed / "meta.json").read_text())
    assert meta["exit_code"] == 1 and meta["status"] == "failed"
    prompt = r.chat()[1]["prompt"]
    assert "attempt 1 of 4" in prompt and "undefined_helper" in prompt and len(prompt) < 2500
    assert (ws / "run_1" / "final_info.json").exists()
    assert "run_1_failed_1/stderr.log" in r.repo().git.ls_files().split()
    assert any("run_1 failed (attempt 1)" in s for s in r.log())


def test_run_hanging_past_timeout_is_killed_with_its_children(harness):
    # the forked child keeps stamping a file; once killed, the stamp stops changing
    hang_code = """\
    cfg = Config()
    if os.fork() == 0:
        while True:
            open("child_alive", "w").write(repr(time.time()))
            time.sleep(0.1)
    time.sleep(300)"""
    hang = edit("experiment.py", "    cfg = Config()", hang_code)
    unhang = edit("experiment.py", hang_code, "    cfg = Config()")
    harness.serve([hang, {"expect": "timeout", "reply": unhang + l1_edit("0.02", "0.05")},
                   {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    t0 = time.monotonic()
    r = harness.run("--idea", str(harness.idea_path), "--run-timeout", "3")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 90
    meta = json.loads((r.workspace / "run_1_failed_1" / "meta.json").read_text())
    assert meta["timed_out"] is True and meta["exit_code"] is None and meta["duration_s"] < 15
    assert "timeout" in (r.workspace / "run_1_failed_1" / "stderr.log").read_text()
    stamp = r.workspace / "child_alive"
    first = stamp.read_text()
    time.sleep(1.0)
    assert stamp.read_text() == first, "the forked child outlived the timeout"


def _wait_for(cond, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def test_sigkill_during_a_run_then_resume(harness):
    slow = edit("experiment.py", "    cfg = Config()", "    cfg = Config()\n    time.sleep(6)")
    llm = harness.serve([
        l1_edit("0.02", "0.05"),
        {"expect": "Run 1 finished", "reply": slow},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    proc = harness.start("--idea", str(harness.idea_path))
    assert _wait_for(lambda: harness.workspace() and (harness.workspace() / "run_2").exists())
    ws = harness.workspace()
    assert _wait_for(lambda: json.loads((ws / "state.json").read_text())["experiments"]["pending_pgid"])
    run1_meta = (ws / "run_1" / "meta.json").read_text()
    run1_tag = harness_tag(ws, "run_1")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0 and len([q for q in llm.requests if q["kind"] == "script"]) == 3
    assert (ws / "run_1" / "meta.json").read_text() == run1_meta        # not redone
    assert harness_tag(ws, "run_1") == run1_tag
    assert (ws / "run_2_interrupted_1").is_dir()
    assert (ws / "run_2" / "final_info.json").exists()
    assert sum("run_1 results" in s for s in r.log()) == 1
    assert sorted(t.name for t in r.repo().tags) == ["run_0", "run_1", "run_2"]
    assert not r.repo().is_dirty(untracked_files=True)


def test_sigkill_while_waiting_for_the_model_then_resume(harness):
    llm = harness.serve([
        l1_edit("0.02", "0.05"),
        {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.1"), "delay": 4},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    proc = harness.start("--idea", str(harness.idea_path))
    assert _wait_for(lambda: llm.position >= 2)   # the second question is being answered
    ws = harness.workspace()
    time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert json.loads((ws / "state.json").read_text())["experiments"]["turn_in_flight"] is True
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    # the re-sent question was identical, so the model gave the same answer again
    assert [q["kind"] for q in llm.requests if q["kind"] != "summary"].count("repeat") == 1
    assert sorted(t.name for t in r.repo().tags) == ["run_0", "run_1", "run_2"]
    assert "l1_coeff: float = 0.1" in (ws / "experiment.py").read_text()


def harness_tag(ws: Path, name: str) -> str:
    import git
    return git.Repo(ws).tags[name].commit.hexsha


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


def test_edit_to_a_protected_file_is_undone_and_reported(harness):
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


def test_experiment_sees_no_api_key(harness):
    spy = edit("experiment.py", "    cfg = Config()",
               "    cfg = Config()\n    print('KEYS', sorted(k for k in os.environ if 'KEY' in k or 'OPENAI' in k))")
    harness.serve([spy, {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    out = (r.workspace / "run_1" / "stdout.log").read_text()
    # the harness process itself had OPENAI_API_KEY set (see Harness.env)
    assert "KEYS []" in out and "sk-test-secret" not in out


def test_api_errors_are_retried_with_backoff_and_recorded(harness):
    llm = harness.serve([
        {"status": 500, "reply": "overloaded"},
        {"status": 429, "reply": "slow down"},
        l1_edit("0.02", "0.05"),
        {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"},
    ])
    cfg = harness.write_config({"api_retry_wait": 0.1})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0
    chat = r.chat()
    assert [(c["turn"], c["attempt"], c["ok"]) for c in chat] == [(1, 1, False), (1, 2, False), (1, 3, True), (2, 1, True)]
    assert "500" in chat[0]["error"] or "InternalServer" in chat[0]["error"]
    assert (r.workspace / "run_1" / "final_info.json").exists()


def test_persistent_api_failure_stops_the_idea_resumably(harness):
    harness.serve([{"status": 503, "reply": "down"}] * 3)
    cfg = harness.write_config({"api_retry_wait": 0.05, "api_attempts": 3})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 1
    state = r.state()
    assert state["status"] == "stopped" and "failed 3 times" in state["error"]
    assert state["stages"]["baseline"] == "done" and r.repo().tags["run_0"]
    harness.serve([l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    r2 = harness.run("--resume", str(r.workspace), "--api-base", harness.llm.url)
    assert r2.returncode == 0, r2.stderr
    assert r2.state()["status"] == "done"


def test_dollar_budget_uses_the_model_prices(harness):
    harness.serve([l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.1")}])
    cfg = harness.write_config({"model_metadata": {"input_cost_per_token": 1e-6, "output_cost_per_token": 2e-6},
                                "budget_usd": 0.002})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 1
    chat = r.chat()
    assert chat[0]["cost_usd"] > 0.001
    assert "budget spent: $" in r.state()["error"]
