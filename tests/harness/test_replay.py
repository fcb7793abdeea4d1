"""Recordings: a session's chat.jsonl replayed through the real aider path, and the history view."""

from __future__ import annotations

import json
import shutil
import subprocess

from conftest import REPO, edit, l1_edit


def _record(harness):
    """A two-run session with the scripted model: the recording the tests replay."""
    notes = edit("notes.txt", "# Notes on the experiments (filled in by the agent, read by the writeup)",
                 "# Notes on the experiments (filled in by the agent, read by the writeup)\n\nRaise l1_coeff.")
    summary = edit("notes.txt", "Raise l1_coeff.", "Raise l1_coeff.\nBoth runs are sparser than the baseline.")
    harness.serve([l1_edit("0.02", "0.05") + notes, {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.1")},
                   {"expect": "Run 2 finished", "reply": "ALL_COMPLETED\n\n" + summary}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    harness.llm.stop()
    harness.llm = None
    return r


def _subjects(run) -> list[str]:
    return [s for s in run.log()]


def test_replay_reproduces_the_edits_and_the_commit_sequence(harness):
    original = _record(harness)
    replayed = harness.run("--idea", str(harness.idea_path), "--model", f"replay:{original.workspace / 'chat.jsonl'}")
    assert replayed.returncode == 0, replayed.stderr
    assert replayed.workspace != original.workspace
    assert "replaying" in replayed.stdout and "no language model involved" in replayed.stdout
    assert (replayed.workspace / "experiment.py").read_text() == (original.workspace / "experiment.py").read_text()
    assert "l1_coeff: float = 0.1 " in (replayed.workspace / "experiment.py").read_text()
    assert _subjects(replayed) == _subjects(original)
    for n in (1, 2):  # the runs were made again, in this session
        meta = json.loads((replayed.workspace / f"run_{n}" / "meta.json").read_text())
        assert meta["status"] == "ok" and meta["started_at"] != json.loads(
            (original.workspace / f"run_{n}" / "meta.json").read_text())["started_at"]


def test_a_recording_whose_edit_no_longer_applies_stops_with_a_clear_message(harness):
    original = _record(harness)
    recording = harness.tmp / "recording.jsonl"
    lines = [json.loads(x) for x in (original.workspace / "chat.jsonl").read_text().splitlines()]
    # as if the template had changed since the recording: the second edit's SEARCH text is gone
    lines[1]["reply"] = lines[1]["reply"].replace("l1_coeff: float = 0.05", "l1_coefficient: float = 0.05")
    recording.write_text("".join(json.dumps(x) + "\n" for x in lines))
    r = harness.run("--idea", str(harness.idea_path), "--model", f"replay:{recording}")
    assert r.returncode == 1
    error = r.state()["error"]
    assert "replay diverged from the recording" in error and "edit recorded at recording.jsonl line 2 (experiments turn 2)" in error
    assert "no longer applies" in error and "Traceback" not in r.stderr
    assert r.state()["runs"]["1"]["status"] == "done"  # what ran before the divergence is kept


def test_without_model_or_key_the_ideas_recording_is_replayed_and_said(harness):
    original = _record(harness)
    recordings = harness.tmp / "recordings"
    recordings.mkdir()
    shutil.copy(original.workspace / "chat.jsonl", recordings / "toy_l1.jsonl")
    cfg = harness.write_config({"recordings": str(recordings)})
    args = [a for a in harness.args("--idea", str(harness.idea_path), "--config", str(cfg))]
    env = {k: v for k, v in harness.env().items() if not k.endswith("_API_KEY")}
    proc = subprocess.run(args, cwd=harness.tmp, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert "recordings/toy_l1.jsonl" in proc.stdout and "no --model given and no API key set" in proc.stdout
    ws = harness.workspace()
    assert (ws / "experiment.py").read_text() == (original.workspace / "experiment.py").read_text()


def test_without_model_key_or_recording_is_a_one_line_error(harness):
    cfg = harness.write_config({"recordings": str(harness.tmp / "none")})
    env = {k: v for k, v in harness.env().items() if not k.endswith("_API_KEY")}
    proc = subprocess.run(harness.args("--idea", str(harness.idea_path), "--config", str(cfg)), cwd=harness.tmp,
                          env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "no --model given" in proc.stderr and "ANTHROPIC_API_KEY" in proc.stderr
    assert not harness.root.exists() or not any(harness.root.iterdir())


def test_history_lists_every_agent_edit_and_shows_a_diff(harness):
    r = _record(harness)
    python, script = str(REPO / ".venvs" / "harness" / "bin" / "python"), str(REPO / "run_harness.py")
    out = subprocess.run([python, script, "history", str(r.workspace)], capture_output=True, text=True, check=True).stdout
    assert "Agent edits" in out and "(3)" in out
    assert "experiments" in out and "run_1" in out and "run_2" in out and "+3 -1" in out and "+1 -1" in out
    # the closing turn planned no run, so no run_3 is named for it
    assert "run_3" not in out and "[experiments] turn 3, ALL_COMPLETED: agent edit of notes.txt" in r.log()
    diff = subprocess.run([python, script, "history", str(r.workspace), "--show", "2"],
                          capture_output=True, text=True, check=True).stdout
    assert "-    l1_coeff: float = 0.05" in diff and "+    l1_coeff: float = 0.1 " in diff
    runs = subprocess.run([python, script, "history", str(r.workspace), "--runs"],
                          capture_output=True, text=True, check=True).stdout
    head = {line.split("│")[1].strip(): line for line in runs.splitlines() if "│ run_" in line}
    assert set(head) == {"run_0", "run_1", "run_2"}
    tagged = r.repo().tags["run_2"].commit.parents[0].hexsha[:10]
    assert tagged in head["run_2"] or r.repo().tags["run_2"].commit.hexsha[:10] in head["run_2"]
    bad = subprocess.run([python, script, "history", str(r.workspace), "--show", "9"], capture_output=True, text=True)
    assert bad.returncode == 2 and "there are 3 edits" in bad.stderr and "Traceback" not in bad.stderr
