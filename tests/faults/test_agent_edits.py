"""Faults in the agent's replies: edits that do not apply, edits to files it may not touch."""

from __future__ import annotations

import json
import os

import git
import pytest

from harness.execution.links import find_special
from harness.workspace import Workspace
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
    # the cause, as aider reported it, is in the committed log; every retry is in chat.jsonl
    assert "SEARCH block failed to exactly match lines in experiment.py" in (r.workspace / "harness.log").read_text()
    assert [c["turn"] for c in r.chat()] == [1, 1, 1, 1, 2]
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
    assert r.state()["undone"] == [{"stage": "experiments", "when": "turn 1", "path": "template.yaml",
                                    "action": "restored", "detail": ""}]
    intact(r.workspace)


def _commits_hold_no_link(repo) -> bool:
    """No commit, run commits included, records a symbolic link (git mode 120000)."""
    return all("120000 " not in repo.git.ls_tree("-r", sha)
               for sha in repo.git.rev_list("--all").split())


@pytest.mark.fault("link out of the workspace")
def test_links_a_run_plants_are_removed_before_the_harness_or_aider_follow_them(harness, intact):
    outside = harness.tmp / "outside"
    outside.mkdir()
    for name in ("meta_target", "notes_target"):
        (outside / name).write_text("precious\n")
    plant = f"""\
    print(json.dumps(results["core evaluation results"]["eval_result_metrics"]))
    out = {str(outside)!r}
    os.symlink(out + "/meta_target", os.path.join(out_dir, "meta.json"))  # the harness writes meta.json next
    os.remove("notes.txt"); os.symlink(out + "/notes_target", "notes.txt")  # aider edits notes.txt next
    os.remove("experiment.py"); os.symlink("/etc/passwd", "experiment.py")  # aider would send it to the model
    os.symlink(out, "escape")
    os.mkfifo(os.path.join(out_dir, "pipe"))"""
    write_notes = edit("notes.txt", "# Notes on the experiments (filled in by the agent, read by the writeup)",
                       "# Notes on the experiments (filled in by the agent, read by the writeup)\n\nRun 1: links.")
    llm = harness.serve([
        edit("experiment.py", '    print(json.dumps(results["core evaluation results"]["eval_result_metrics"]))',
             plant),
        {"expect": "link to /etc/passwd", "reply": write_notes + l1_edit("0.02", "0.05")},
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0
    ws = r.workspace
    assert [(outside / n).read_text() for n in ("meta_target", "notes_target")] == ["precious\n"] * 2
    removed = {e["path"]: e for e in r.state()["undone"] if e["when"] == "run_1"}
    assert set(removed) == {"run_1/meta.json", "run_1/pipe", "notes.txt", "experiment.py", "escape"}
    assert removed["experiment.py"]["detail"] == "link to /etc/passwd"
    assert "restored from git" in removed["notes.txt"]["action"] and removed["run_1/pipe"]["detail"] == "a FIFO"
    meta = json.loads((ws / "run_1" / "meta.json").read_text())  # written as a file of its own
    assert meta["status"] == "ok" and "experiment.py (link to /etc/passwd): removed, restored from git" in meta["removed"]
    for rel in ("experiment.py", "notes.txt", "run_1/meta.json"):
        assert not (ws / rel).is_symlink()
    assert "Run 1: links." in (ws / "notes.txt").read_text()
    assert "root:x:0:0" not in json.dumps(llm.requests)  # /etc/passwd never reached the model
    assert _commits_hold_no_link(r.repo())
    intact(ws)


@pytest.mark.fault("link out of the workspace")
def test_edits_outside_the_workspace_in_git_or_ignored_are_refused(harness, intact):
    outside = harness.tmp / "outside.txt"
    outside.write_text("precious\n")
    reply = (edit(str(outside), "precious", "overwritten by the agent")
             + edit("../escaped_new.py", "", "print('escaped')")
             + edit(".git/hooks/post-commit", "", "#!/bin/sh\ntouch /tmp/hooked")
             + edit(".harness/planted.txt", "", "hidden from review")
             + l1_edit("0.02", "0.05"))
    harness.serve([reply, {"expect": "were refused", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    ws = r.workspace
    assert outside.read_text() == "precious\n"
    assert not (ws.parent / "escaped_new.py").exists() and not (ws / ".git/hooks/post-commit").exists()
    assert not (ws / ".harness/planted.txt").exists()
    refused = {e["path"]: e["detail"] for e in r.state()["undone"] if e["action"] == "refused"}
    assert refused == {str(outside): "outside the workspace", "../escaped_new.py": "outside the workspace",
                       ".git/hooks/post-commit": "inside .git", ".harness/planted.txt": "ignored by git"}
    assert "l1_coeff: float = 0.05" in r.repo().git.show("run_1:experiment.py")  # the allowed edit went through
    intact(ws)


@pytest.mark.fault("link out of the workspace")
def test_every_kind_of_special_file_is_removed_and_tracked_files_restored(tmp_path):
    """The sweep itself, on a real git workspace: what a plot.py run or a killed run leaves."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "experiment.py").write_text("print('the code that ran')\n")
    repo = git.Repo.init(ws)
    with repo.config_writer() as cw:  # no global git identity needed
        cw.set_value("user", "name", "t")
        cw.set_value("user", "email", "t@localhost")
    repo.git.add("--all")
    repo.git.commit("-m", "setup")
    (ws / "experiment.py").unlink()
    (ws / "experiment.py").symlink_to("/etc/passwd")
    (ws / "run_1").mkdir()
    (ws / "run_1" / "meta.json").symlink_to(outside)
    os.link(outside, ws / "run_1" / "hard.txt")
    os.mkfifo(ws / "run_1" / "pipe")
    (ws / "escape").symlink_to(tmp_path)
    (ws / "run_1" / "final_info.json").write_text("{}")
    removed = {e.path: e for e in Workspace(ws).remove_special_files()}
    assert set(removed) == {"experiment.py", "run_1/meta.json", "run_1/hard.txt", "run_1/pipe", "escape"}
    assert removed["run_1/hard.txt"].detail == "a hard link (2 names)"
    assert removed["experiment.py"].action == "removed, restored from git"
    assert (ws / "experiment.py").read_text() == "print('the code that ran')\n"
    assert outside.read_text() == "precious\n" and os.stat(outside).st_nlink == 1
    assert (ws / "run_1" / "final_info.json").is_file() and find_special(ws) == []


@pytest.mark.fault("no run succeeded")
def test_an_idea_without_a_successful_run_writes_no_paper_unless_asked(harness, intact):
    # replies that never fit the template (every SEARCH block misses), as a model that
    # ignores the file's contents writes them: nothing runs, so nothing is written up
    bad = edit("experiment.py", "    l1_coeff: float = 9.99", "    l1_coeff: float = 0.1")
    miss = [{"expect": "failed to match", "reply": bad}] * 3
    llm = harness.serve(["Trying an edit.\n\n" + bad, *miss, {"expect": "could not be applied", "reply": bad}, *miss,
                         {"expect": "could not be applied", "reply": bad}, *miss,
                         # what the plots stage would get, only when the user asks for it
                         {"expect": "Edit `plot.py`", "reply": "plot.py already shows every run; no change."},
                         {"expect": "metrics_by_run.png", "reply": "The figure shows the baseline only."}])
    cfg = harness.write_config({"stream": False})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), "--stop-after", "writeup")
    assert r.returncode == 1, r.stderr
    state = r.state()
    assert state["status"] == "failed"
    assert state["error"] == "no run succeeded: the agent's edits never applied (3 replies changed nothing)"
    assert state["stages"]["plots"] == "pending" and state["stages"]["writeup"] == "pending"
    assert llm.remaining == 2 and not (r.workspace / "paper.pdf").exists()  # no model call after the experiments
    assert "no run succeeded" in r.stdout and "--writeup-without-results" in r.stdout
    intact(r.workspace)

    again = harness.run("--resume", str(r.workspace), "--writeup-without-results", "--stop-after", "plots")
    assert again.returncode == 0, again.stderr
    assert harness.state()["stages"]["plots"] == "done" and llm.remaining == 0
