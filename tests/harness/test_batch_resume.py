"""Ctrl-C stops a batch cleanly (no experiment left running, every idea recorded as
interrupted) and `--resume BATCH` finishes it. One scripted server serves both ideas here:
its replies fit either idea, so the order in which the ideas ask does not matter."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import git
from conftest import IDEA, edit

SLOW = edit("experiment.py", "    cfg = Config()", "    cfg = Config()\n    time.sleep(1)")


def _wait_for(cond, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.1)
    return False


def _run_in_flight(root: Path) -> bool:
    """Some idea's run_1 has started (its logs exist) and not finished (no meta.json yet)."""
    return any((w / "run_1" / "stdout.log").exists() and not (w / "run_1" / "meta.json").exists()
               for w in root.glob("*_slow_*"))


def _processes_under(root: Path) -> list[str]:
    out = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            cwd = os.readlink(proc / "cwd")
        except OSError:
            continue
        if cwd.startswith(str(root)):
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:120]
            out.append(f"{proc.name}: {cmd!r}")
    return out


def _start_and_stop(harness, *extra: str) -> tuple[Path, dict]:
    """Two slow ideas on one slot; Ctrl-C once a run is in flight. Returns the batch folder
    and its record after the checks every executor must pass."""
    ideas = harness.tmp / "ideas"
    ideas.mkdir()
    for name in ("slow_a", "slow_b"):
        (ideas / f"{name}.json").write_text(json.dumps(dict(IDEA, Name=name, Title=f"Idea {name}")))
    harness.serve([SLOW] * 4)
    proc = harness.start("batch", str(ideas), "--agents", "2", "--slots", "1", "--max-runs", "2", *extra)
    # Both workers must have made their workspaces: on a loaded machine a Ray worker can take
    # longer to start than the other idea takes to reach run_1, and a stop before an idea
    # has a workspace leaves nothing of it to check here.
    started = lambda: len([w for w in harness.root.glob("*_slow_*") if (w / "state.json").is_file()]) == 2  # noqa: E731
    assert _wait_for(lambda: _run_in_flight(harness.root) and started()), proc.communicate(timeout=5)
    batch = next((harness.root / "batches").iterdir())
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "Traceback" not in out + err
    record = json.loads((batch / "batch.json").read_text())
    assert record["status"] == "interrupted"
    assert {e["status"] for e in record["ideas"].values()} == {"interrupted"}, record
    assert f"resume: python run_harness.py --resume {batch}" in out
    assert _wait_for(lambda: not _processes_under(harness.root), 10), _processes_under(harness.root)
    stopped = [n for n in record["ideas"] if "stopped by signal" in (batch / "logs" / f"{n}.log").read_text()]
    assert stopped == ["slow_a", "slow_b"]  # each worker stopped itself, none was killed outright
    for e in record["ideas"].values():
        ws = Path(e["workspace"])
        assert not list(ws.glob("run_*_failed_*")), "a run killed by the stop was counted as a failure"
        assert json.loads((ws / "state.json").read_text())["status"] == "running"  # resumable as it stands
    return batch, record


def test_ctrl_c_under_ray_stops_every_worker(harness):
    _start_and_stop(harness, "--executor", "ray")


def test_ctrl_c_stops_the_batch_and_resume_finishes_it(harness):
    batch, record = _start_and_stop(harness)
    llm = harness.llm

    r = harness.run("--resume", str(batch))
    assert r.returncode == 0, r.stdout + r.stderr
    record = json.loads((batch / "batch.json").read_text())
    assert {e["status"] for e in record["ideas"].values()} == {"done"}
    assert all(e["attempts"] == 2 for e in record["ideas"].values())
    interrupted_runs = []
    for e in record["ideas"].values():
        ws = Path(e["workspace"])
        assert json.loads((ws / "state.json").read_text())["status"] == "done"
        assert sorted(t.name for t in git.Repo(ws).tags) == ["run_0", "run_1", "run_2"]
        interrupted_runs += [p.name for p in ws.glob("run_*_interrupted_*")]
    assert interrupted_runs == ["run_1_interrupted_1"]  # the run that was in flight, kept for review
    assert llm.remaining == 0


def test_a_stop_right_after_a_model_reply_waits_until_the_reply_is_recorded(harness):
    ideas = harness.tmp / "ideas"
    ideas.mkdir()
    (ideas / "one.json").write_text(json.dumps(dict(IDEA, Name="one")))
    llm = harness.serve([SLOW, {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    proc = harness.start("batch", str(ideas), "--slots", "1")
    batch = None

    def in_window() -> bool:
        # the reply is in the conversation file, state.json does not record the turn yet
        nonlocal batch
        if batch is None:
            found = list((harness.root / "batches").glob("*/workers/one.json")) if harness.root.exists() else []
            if not found:
                return False
            batch = found[0].parent.parent
        ws = Path(json.loads((batch / "workers" / "one.json").read_text())["workspace"])
        chat = ws / ".harness" / "chat_experiments.json"
        return chat.exists() and chat.stat().st_mtime_ns > (ws / "state.json").stat().st_mtime_ns

    deadline = time.monotonic() + 120
    while not in_window():
        assert time.monotonic() < deadline and proc.poll() is None, proc.communicate(timeout=5)
        time.sleep(0.001)
    note = json.loads((batch / "workers" / "one.json").read_text())
    os.kill(note["pid"], signal.SIGTERM)  # the worker alone, as a node's shutdown would
    out, err = proc.communicate(timeout=60)
    ws = Path(note["workspace"])
    state = json.loads((ws / "state.json").read_text())
    assert state["experiments"]["turn"] == 1 and not state["experiments"]["turn_in_flight"], state["experiments"]
    assert "stopped by signal 15" in (batch / "logs" / "one.log").read_text()
    assert json.loads((batch / "batch.json").read_text())["ideas"]["one"]["status"] == "interrupted", out

    r = harness.run("--resume", str(batch))
    assert r.returncode == 0, r.stdout + r.stderr
    subjects = [c.summary for c in git.Repo(ws).iter_commits()]
    assert sum("turn 1 for run_1" in s for s in subjects) == 1, subjects  # the turn was not asked twice
    assert llm.remaining == 0 and not [q for q in llm.requests if q["kind"] == "repeat"]
