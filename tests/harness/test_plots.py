"""The plots stage: real plot.py runs under the experiment environment (matplotlib)."""

from __future__ import annotations

from conftest import edit, l1_edit

LABELS = '''labels = {
    "run_0": "baseline",
}'''
LABELS_2 = '''labels = {
    "run_0": "baseline",
    "run_1": "L1 = 0.1",
}'''


def _experiments():
    return [l1_edit("0.02", "0.1"), {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}]


def test_plots_are_made_committed_and_described(harness):
    notes = edit("notes.txt", "# Notes on the experiments (filled in by the agent, read by the writeup)",
                 "# Notes on the experiments (filled in by the agent, read by the writeup)\n\n"
                 "## Figures\nmetrics_by_run.png: explained variance, L0 and MMCS for the baseline and run 1.")
    llm = harness.serve(_experiments() + [
        {"expect": "Edit `plot.py`", "reply": edit("plot.py", LABELS, LABELS_2)},
        {"expect": "metrics_by_run.png", "reply": notes},
    ])
    r = harness.run("--idea", str(harness.idea_path), "--stop-after", "plots")
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0
    ws = r.workspace
    assert (ws / "metrics_by_run.png").stat().st_size > 5000 and (ws / "metrics_by_run.pdf").exists()
    assert (ws / "metrics_by_run.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tracked = r.repo().git.ls_files().split()
    assert "metrics_by_run.png" in tracked and "metrics_by_run.pdf" in tracked
    assert "metrics_by_run.png" in (ws / "notes.txt").read_text()
    log = r.log()
    assert any(s.startswith("[plots] turn 1: agent edit of plot.py") for s in log)
    assert any(s.startswith("[plots] figures from plot.py") for s in log)
    assert any(s.startswith("[plots] turn 2: agent edit of notes.txt") for s in log)
    assert r.state()["stages"]["plots"] == "done"


def test_a_plot_that_keeps_failing_is_recorded_and_the_idea_goes_on(harness):
    broken = edit("plot.py", LABELS, LABELS + "\nraise SystemExit('no plots today')")
    harness.serve(_experiments() + [
        {"expect": "Edit `plot.py`", "reply": broken},
        {"expect": "no plots today", "reply": "I cannot fix it."},
    ])
    cfg = harness.write_config({"max_fix_attempts": 2})
    r = harness.run("--idea", str(harness.idea_path), "--stop-after", "plots", "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    state = r.state()
    assert state["status"] == "done" and state["stages"]["plots"] == "failed"
    assert "without figures" in state["plots"]["outcome"]
    assert (r.workspace / "run_1" / "final_info.json").exists()
