"""Bad input gets one line naming the problem and the fix, exit status 2, no traceback."""

from __future__ import annotations

import hashlib
import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.faults.integrity import snapshot
from tests.support import IDEA, l1_edit
from tests.support import one_line_error as _one_line_error


@pytest.mark.fault("bad idea file")
@pytest.mark.parametrize("change, words", [
    (lambda d: d.pop("Title"), ["'Title'", "missing"]),
    (lambda d: d.update(Experiment=""), ["'Experiment'", "non-empty"]),
    (lambda d: d.update(Name="../../etc"), ["'Name'", "slug"]),
    (lambda d: d.update(Feasibility="high"), ["'Feasibility'", "number"]),
    (lambda d: d.update(novel="yes"), ["'novel'", "true or false"]),
    (lambda d: d.update(Primary_Metric="l0", Expected_Direction="up"), ["'Expected_Direction'", "higher or lower"]),
    (lambda d: d.update(Expected_Direction="lower"), ["'Expected_Direction'", "'Primary_Metric'"]),
    (lambda d: d.update(Primary_Metric="accuracy"), ["'Primary_Metric'", "explained_variance, l0"]),
])
def test_bad_idea_fields(harness, change, words):
    data = dict(IDEA)
    change(data)
    bad = harness.tmp / "bad.json"
    bad.write_text(json.dumps(data))
    harness.serve([])
    line = _one_line_error(harness.run("--idea", str(bad)), str(bad), *words)
    assert not harness.root.exists() or not any(harness.root.iterdir()), line  # nothing was started


@pytest.mark.fault("bad idea file")
def test_idea_that_is_not_json(harness):
    bad = harness.tmp / "bad.json"
    bad.write_text('{"Name": "x",\n  "Title": }')
    harness.serve([])
    _one_line_error(harness.run("--idea", str(bad)), "not valid JSON", "line 2")


@pytest.mark.fault("bad idea file")
def test_missing_idea_file(harness):
    harness.serve([])
    _one_line_error(harness.run("--idea", str(harness.tmp / "nope.json")), "does not exist")


@pytest.mark.fault("bad idea file")
def test_second_bad_idea_stops_before_the_first_starts(harness):
    bad = harness.tmp / "bad.json"
    bad.write_text(json.dumps({k: v for k, v in IDEA.items() if k != "Title"}))
    harness.serve([])
    _one_line_error(harness.run("--idea", str(harness.idea_path), "--idea", str(bad)), "'Title'")
    assert harness.workspace() is None


@pytest.mark.fault("bad config")
@pytest.mark.parametrize("config, words", [
    ({"max_run": 3}, ["unknown key 'max_run'", "max_runs"]),
    ({"max_runs": "many"}, ["'max_runs'", "whole number"]),
    ({"max_runs": 0}, ["'max_runs'", "greater than 0"]),
    ({"budget_usd": -1}, ["'budget_usd'", "0 or more"]),
    ({"stream": "sometimes"}, ["'stream'", "true or false"]),
    ({"edit_format": "poetry"}, ["'edit_format'", "diff"]),
])
def test_bad_config_file_values(harness, config, words):
    harness.serve([])
    cfg = harness.write_config(config)
    _one_line_error(harness.run("--idea", str(harness.idea_path), "--config", str(cfg)), *words)


@pytest.mark.fault("bad config")
def test_config_file_that_is_not_yaml(harness):
    harness.serve([])
    cfg = harness.tmp / "harness.yaml"
    cfg.write_text("max_runs: [3\n")
    _one_line_error(harness.run("--idea", str(harness.idea_path), "--config", str(cfg)), "not valid YAML")


@pytest.mark.fault("bad config")
@pytest.mark.parametrize("args, words", [
    (["--max-runs", "x"], ["'max_runs'"]),
    (["--run-timeout", "-5"], ["'run_timeout'"]),
    (["--template", "nonexistent"], ["template 'nonexistent' not found", "toy"]),
    (["--frobnicate"], ["unrecognized arguments", "--frobnicate"]),
])
def test_bad_command_line_values(harness, args, words):
    harness.serve([])
    r = harness.run("--idea", str(harness.idea_path), *args)
    _one_line_error(r, *words)


@pytest.mark.fault("bad config")
def test_missing_api_key_is_caught_before_anything_starts(harness):
    env_model = ["--model", "anthropic/claude-sonnet-4-5"]
    r = harness.run("--idea", str(harness.idea_path), *env_model)
    _one_line_error(r, "ANTHROPIC_API_KEY")
    assert harness.workspace() is None


@pytest.mark.fault("corrupt state.json")
def test_resume_of_a_folder_that_is_no_workspace(harness):
    harness.serve([])
    _one_line_error(harness.run("--resume", str(harness.tmp)), "not a harness workspace")


def _stopped_after_run_1(harness):
    """A workspace with run_1 done whose idea stopped (the model refused the next request)."""
    harness.serve([l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "status": 400, "reply": "refused"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 1 and r.state()["status"] == "stopped", r.stderr
    return r.workspace


def _every_byte(ws: Path) -> dict[str, str]:
    """All files of the workspace, .git included: a user error must not change any of them."""
    return {str(p.relative_to(ws)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(ws.rglob("*")) if p.is_file()}


@pytest.mark.fault("bad config")
def test_bad_config_on_resume_changes_nothing(harness, intact):
    ws = _stopped_after_run_1(harness)
    files = _every_byte(ws)
    cfg = harness.write_config({"max_runs": "plenty"})
    _one_line_error(harness.run("--resume", str(ws), "--config", str(cfg)), "'max_runs'", "whole number")
    assert _every_byte(ws) == files
    intact(ws)


@pytest.mark.fault("corrupt state.json")
@pytest.mark.parametrize("garbage", ["{not json", "[]", '{"idea": "toy_l1", "runs": [1, 2]}'])
def test_corrupt_state_json_names_the_backup_and_the_backup_resumes(harness, intact, garbage):
    ws = _stopped_after_run_1(harness)
    before = snapshot(ws)
    (ws / "state.json").write_text(garbage)
    files = _every_byte(ws)
    line = _one_line_error(harness.run("--resume", str(ws)), f"{ws / 'state.json'} is corrupt", "state.json.bak")
    assert _every_byte(ws) == files
    # the fix, exactly as the message words it
    command = re.search(r"`(cp [^`]+)`", line).group(1)
    subprocess.run(shlex.split(command), check=True)
    llm = harness.serve(["ALL_COMPLETED"])
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    assert r.state()["status"] == "done" and llm.remaining == 0
    intact(ws, before)


@pytest.mark.fault("corrupt state.json")
def test_corrupt_state_json_without_a_backup_says_start_afresh(harness, intact):
    ws = _stopped_after_run_1(harness)
    (ws / "state.json").write_text("{not json")
    (ws / "state.json.bak").write_text("{not json either")
    files = _every_byte(ws)
    _one_line_error(harness.run("--resume", str(ws)), "state.json is corrupt", "no usable state.json.bak",
                    "start it afresh")
    assert _every_byte(ws) == files
