"""SIGKILL of the harness in every stage, then --resume: nothing done is redone or lost."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest

from harness.execution.process import group_alive
from tests.faults.integrity import snapshot
from tests.support import copy_template, edit, l1_edit, wait_for


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


# hangs the first time only (so it is still running when the harness is killed, however
# loaded the machine), then the resumed harness's run goes through
SLOW_ONCE = """\
    if not os.path.exists("hung_once"):
        open("hung_once", "w").close()
        time.sleep(120)
"""


def _dead(pgid: int) -> bool:
    return not group_alive(pgid)


@pytest.mark.fault("SIGKILL in baseline, then --resume")
def test_sigkill_while_the_baseline_runs_then_resume(harness, intact, tmp_path):
    # the first run_0 hangs; process level, so it outlives the killed harness until resume kills it
    slow = copy_template(tmp_path / "slow_baseline", patch={"experiment.py": (
        "    cfg = Config()\n", "    cfg = Config()\n" + SLOW_ONCE)})
    llm = harness.serve([l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"sandbox": "process"})
    proc = harness.start("--idea", str(harness.idea_path), "--config", str(cfg), template=str(slow))
    assert wait_for(lambda: harness.state()["child_pgid"])
    ws, pgid = harness.workspace(), harness.state()["child_pgid"]
    before = snapshot(ws)
    _kill(proc)
    assert group_alive(pgid)
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    assert f"[resume] killed process group {pgid}" in (ws / "harness.log").read_text() and _dead(pgid)
    assert (ws / "run_0_interrupted_1").is_dir() and "run_0_interrupted_1/stdout.log" in r.repo().git.ls_files()
    assert sorted(t.name for t in r.repo().tags) == ["run_0", "run_1"] and llm.remaining == 0
    intact(ws, before)


@pytest.mark.fault("SIGKILL in plots, then --resume")
def test_sigkill_while_plot_py_runs_then_resume(harness, intact):
    labels = 'labels = {\n    "run_0": "baseline",\n}'
    slow_plot = edit("plot.py", labels, labels[:-1] + '    "run_1": "L1 = 0.05",\n}\n\nimport os, time\n\n\ndef main_once():\n'
                     + SLOW_ONCE + '\n\nmain_once()')
    notes = edit("notes.txt", "# Notes on the experiments (filled in by the agent, read by the writeup)",
                 "# Notes on the experiments (filled in by the agent, read by the writeup)\n\n"
                 "metrics_by_run.png: explained variance, L0 and MMCS per run.")
    llm = harness.serve([l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"},
                         {"expect": "Edit `plot.py`", "reply": slow_plot},
                         {"expect": "metrics_by_run.png", "reply": notes}])
    cfg = harness.write_config({"sandbox": "process"})
    proc = harness.start("--idea", str(harness.idea_path), "--stop-after", "plots", "--config", str(cfg))
    assert wait_for(lambda: harness.state()["plots"]["step"] == "run" and harness.state()["plots"]["attempt"] == 1 and harness.state()["child_pgid"])
    ws, pgid = harness.workspace(), harness.state()["child_pgid"]
    before = snapshot(ws)
    _kill(proc)
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    assert f"[resume] killed process group {pgid}" in (ws / "harness.log").read_text() and _dead(pgid)
    # the edit turn was not asked again: plot.py was run again, then the figures described
    assert llm.remaining == 0 and [q["kind"] for q in llm.requests].count("repeat") == 0
    log = r.log()
    assert sum(s.startswith("[plots] turn 1: agent edit of plot.py") for s in log) == 1
    assert sum(s.startswith("[plots] figures from plot.py: metrics_by_run.pdf, metrics_by_run.png") for s in log) == 1
    assert r.state()["stages"]["plots"] == "done" and "metrics_by_run.png" in r.repo().git.ls_files()
    intact(ws, before)


def _writeup_script() -> list:
    """Every writeup turn answered; only the title is written (the kill, not the paper, is tested)."""
    sections = ["title and abstract", "introduction", "background", "method", "experimental setup",
                "results", "conclusion"]
    keep = "I checked it against the list; it passes, so I changed nothing."
    title = edit("latex/template.tex", r"\title{\placeholder{title}}", r"\title{A Stronger L1 Penalty}")
    out = []
    for name in sections:
        out += [{"expect": f"Now: the {name}", "reply": title if name == sections[0] else keep},
                {"expect": "critically", "reply": keep}]
    return out + [{"expect": "related work section", "reply": keep}, {"expect": "Add citations", "reply": keep}]


@pytest.mark.fault("SIGKILL in writeup, then --resume")
def test_sigkill_during_a_writeup_turn_then_resume(harness, intact, tmp_path):
    no_plots = copy_template(tmp_path / "no_plots", drop=("plot.py",))
    script = [l1_edit("0.02", "0.05"), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}] + _writeup_script()
    slow = 2 + 4  # the background's write turn: answered slowly, and the harness killed meanwhile
    script[slow] = {**script[slow], "delay": 4}
    llm = harness.serve(script)
    proc = harness.start("--idea", str(harness.idea_path), "--stop-after", "writeup", template=str(no_plots))
    assert wait_for(lambda: llm.position >= slow + 1)
    ws = harness.workspace()
    time.sleep(0.5)
    before = snapshot(ws)
    _kill(proc)
    assert harness.state()["writeup"]["steps_done"] == 4
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr + r.stdout
    # the interrupted question was asked again word for word; the ones answered before were not
    assert llm.remaining == 0 and [q["kind"] for q in llm.requests].count("repeat") == 1
    log = r.log()
    assert sum(s.startswith("[writeup] LaTeX template copied") for s in log) == 1
    assert sum(s.startswith("[writeup] title and abstract, write") for s in log) == 1
    assert sum(s.startswith("[writeup] background, write") for s in log) == 1
    assert r.state()["stages"]["writeup"] == "done" and (ws / "paper.pdf").read_bytes()[:5] == b"%PDF-"
    assert r"\title{A Stronger L1 Penalty}" in (ws / "latex" / "template.tex").read_text()
    intact(ws, before)


@pytest.mark.fault("SIGINT to a harness started with SIGINT ignored, then --resume")
def test_ctrl_c_reaches_a_harness_started_in_the_background_by_a_script(harness, intact):
    # `python run_harness.py ... &` in a shell script starts it with SIGINT ignored
    slow = edit("experiment.py", "    cfg = Config()", "    cfg = Config()\n    time.sleep(6)")
    llm = harness.serve([slow, {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    proc = subprocess.Popen(harness.args("--idea", str(harness.idea_path)), cwd=harness.tmp, env=harness.env(),
                            text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    assert wait_for(lambda: harness.workspace() and (harness.workspace() / "run_1").exists())
    ws = harness.workspace()
    assert wait_for(lambda: harness.state()["experiments"]["pending_pgid"])
    pgid = harness.state()["experiments"]["pending_pgid"]
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    assert "interrupted; continue with --resume" in err and "Traceback" not in err
    assert wait_for(lambda: _dead(pgid), 10)  # the run in flight went with it
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0 and sorted(t.name for t in r.repo().tags) == ["run_0", "run_1"]
    intact(ws)
