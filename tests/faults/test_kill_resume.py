"""SIGKILL of the harness in every stage, then --resume: nothing done is redone or lost."""

from __future__ import annotations

import json
import signal
import time

import pytest

from tests.faults.integrity import snapshot
from tests.support import edit, l1_edit, wait_for


def _kill(proc) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.fault("SIGKILL in experiments, then --resume")
def test_sigkill_during_a_run_then_resume(harness, intact):
    slow = edit("experiment.py", "    cfg = Config()", "    cfg = Config()\n    time.sleep(6)")
    llm = harness.serve([
        l1_edit("0.02", "0.05"),
        {"expect": "Run 1 finished", "reply": slow},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    proc = harness.start("--idea", str(harness.idea_path))
    assert wait_for(lambda: harness.workspace() and (harness.workspace() / "run_2").exists())
    ws = harness.workspace()
    assert wait_for(lambda: harness.state()["experiments"]["pending_pgid"])
    before = snapshot(ws)
    _kill(proc)
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0 and len([q for q in llm.requests if q["kind"] == "script"]) == 3
    assert (ws / "run_2_interrupted_1").is_dir()
    assert (ws / "run_2" / "final_info.json").exists()
    assert sum("run_1 results" in s for s in r.log()) == 1
    assert sorted(t.name for t in r.repo().tags) == ["run_0", "run_1", "run_2"]
    intact(ws, before)


@pytest.mark.fault("SIGKILL in experiments, then --resume")
def test_sigkill_while_waiting_for_the_model_then_resume(harness, intact):
    llm = harness.serve([
        l1_edit("0.02", "0.05"),
        {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.1"), "delay": 4},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    proc = harness.start("--idea", str(harness.idea_path))
    assert wait_for(lambda: llm.position >= 2)   # the second question is being answered
    ws = harness.workspace()
    time.sleep(0.5)
    before = snapshot(ws)
    _kill(proc)
    assert json.loads((ws / "state.json").read_text())["experiments"]["turn_in_flight"] is True
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    # the re-sent question was identical, so the model gave the same answer again
    assert [q["kind"] for q in llm.requests if q["kind"] != "summary"].count("repeat") == 1
    assert sorted(t.name for t in r.repo().tags) == ["run_0", "run_1", "run_2"]
    assert "l1_coeff: float = 0.1" in (ws / "experiment.py").read_text()
    intact(ws, before)
