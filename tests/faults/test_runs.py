"""Faults in the runs the agent's code makes: crashes, hangs, memory, missing results."""

from __future__ import annotations

import json
import sys
import time

import pytest

from harness.execution.process import run_process
from tests.support import edit, l1_edit

WRITE = '''    with open(os.path.join(out_dir, "final_info.json"), "w") as fh:
        json.dump(results, fh, indent=2)'''


@pytest.mark.fault("crashing run")
def test_crashing_run_is_kept_and_fed_back_then_fixed(harness, intact):
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
    assert {"stdout.log", "stderr.log", "meta.json"} <= {p.name for p in failed.iterdir()}
    assert "NameError" in (failed / "stderr.log").read_text()
    meta = json.loads((failed / "meta.json").read_text())
    assert meta["exit_code"] == 1 and meta["status"] == "failed" and meta["error"] == "it exited with status 1"
    prompt = r.chat()[1]["prompt"]
    assert "attempt 1 of 4" in prompt and "undefined_helper" in prompt and len(prompt) < 2500
    assert "run_1_failed_1/stderr.log" in r.repo().git.ls_files().split()
    assert any("run_1 failed (attempt 1): it exited with status 1" in s for s in r.log())
    assert sorted(r.state()["runs"]) == ["0", "1"]
    intact(ws)


@pytest.mark.fault("run hangs past the timeout")
def test_run_hanging_past_timeout_is_killed_with_its_children(harness, intact):
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
    assert "killed after the 3 s timeout" in meta["error"]
    assert "timeout" in (r.workspace / "run_1_failed_1" / "stderr.log").read_text()
    stamp = r.workspace / "child_alive"
    first = stamp.read_text()
    time.sleep(1.0)
    assert stamp.read_text() == first, "the forked child outlived the timeout"
    intact(r.workspace)


@pytest.mark.fault("run hangs past the timeout")
def test_timeout_kills_the_whole_process_group(tmp_path):
    code = ("import os, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n    time.sleep(120); os._exit(0)\n"
            "open('child', 'w').write(str(pid)); time.sleep(120)\n")
    t0 = time.monotonic()
    res = run_process([sys.executable, "-c", code], tmp_path, tmp_path / "o", tmp_path / "e", timeout_s=1.5)
    assert res.timed_out and res.exit_code is None and time.monotonic() - t0 < 10
    child = int((tmp_path / "child").read_text())
    time.sleep(0.2)
    try:
        stat = open(f"/proc/{child}/stat").read()
        assert stat.rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        pass
    assert "timeout" in (tmp_path / "e").read_text()


@pytest.mark.fault("run exceeds the memory limit")
def test_memory_limit_stops_a_run_and_the_error_goes_back(harness, intact):
    hog = edit("experiment.py", "    cfg = Config()", "    cfg = Config()\n    hog = np.ones(400_000_000)")
    unhog = edit("experiment.py", "    cfg = Config()\n    hog = np.ones(400_000_000)", "    cfg = Config()")
    harness.serve([hog, {"expect": "MemoryError", "reply": unhog + "\nA smaller footprint now."}, "ALL_COMPLETED"])
    cfg = harness.write_config({"run_memory_gb": 2, "sandbox": "process"})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "MemoryError" in (r.workspace / "run_1_failed_1" / "stderr.log").read_text()
    assert json.loads((r.workspace / "run_1_failed_1" / "meta.json").read_text())["status"] == "failed"
    assert (r.workspace / "run_1" / "final_info.json").exists()
    intact(r.workspace)


@pytest.mark.fault("missing or malformed final_info.json")
def test_missing_and_malformed_final_info_count_as_failed_runs(harness, intact):
    missing = edit("experiment.py", WRITE, "    pass  # results not written")
    malformed = edit("experiment.py", "    pass  # results not written",
                     '    open(os.path.join(out_dir, "final_info.json"), "w").write("{not json")')
    fixed = edit("experiment.py", '    open(os.path.join(out_dir, "final_info.json"), "w").write("{not json")', WRITE)
    harness.serve([missing, {"expect": "without writing run_1/final_info.json", "reply": malformed},
                   {"expect": "not valid JSON", "reply": fixed + l1_edit("0.02", "0.05")},
                   {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    errors = []
    for n in (1, 2):
        meta = json.loads((r.workspace / f"run_1_failed_{n}" / "meta.json").read_text())
        assert meta["exit_code"] == 0 and meta["status"] == "failed"
        errors.append(meta["error"])
    assert "without writing run_1/final_info.json" in errors[0] and "not valid JSON" in errors[1]
    assert (r.workspace / "run_1" / "final_info.json").exists()
    intact(r.workspace)
