"""Faults of the model API: rate limits, server errors, timeouts, an endpoint that stays down."""

from __future__ import annotations

import pytest

from tests.faults.integrity import snapshot
from tests.support import l1_edit


@pytest.mark.fault("model API 429 / 500 / timeout")
def test_api_errors_are_retried_with_backoff_and_recorded(harness, intact):
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
    assert "429" in chat[1]["error"] or "RateLimit" in chat[1]["error"]
    assert (r.workspace / "run_1" / "final_info.json").exists()
    intact(r.workspace)


@pytest.mark.fault("model API 429 / 500 / timeout")
def test_model_timeout_is_retried(harness, intact):
    llm = harness.serve([{"reply": l1_edit("0.02", "0.05"), "delay": 4},
                         {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"request_timeout": 1, "api_retry_wait": 0.1})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    chat = r.chat()
    assert not chat[0]["ok"] and "Timeout" in chat[0]["error"]
    assert chat[1]["ok"] and chat[1]["attempt"] == 2
    assert llm.remaining == 0
    intact(r.workspace)


@pytest.mark.fault("model API down for good")
def test_persistent_api_failure_stops_the_idea_resumably(harness, intact):
    harness.serve([{"status": 503, "reply": "down"}] * 3)
    cfg = harness.write_config({"api_retry_wait": 0.05, "api_attempts": 3})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 1
    state = r.state()
    assert state["status"] == "stopped" and "failed 3 times" in state["error"]
    assert "ServiceUnavailable" in state["error"]  # the cause, as the API named it
    assert state["stages"]["baseline"] == "done" and r.repo().tags["run_0"]
    intact(r.workspace)
    before = snapshot(r.workspace)
    harness.serve([l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    r2 = harness.run("--resume", str(r.workspace), "--api-base", harness.llm.url)
    assert r2.returncode == 0, r2.stderr
    assert r2.state()["status"] == "done"
    intact(r.workspace, before)
