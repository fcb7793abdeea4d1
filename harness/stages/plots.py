"""Plots: the agent edits plot.py, the harness runs it, the agent describes the figures.

A plot stage that keeps failing is recorded as failed and the idea goes on without
figures (the writeup is told so); a broken plot is no reason to lose the experiments.
Each step (ask for an edit, run plot.py, ask for descriptions) and the prompt of the
next are recorded in state.json (PlotsProgress) before the next begins, so a resumed stage repeats
only the step it was killed in: the same question, or the same run of plot.py.
"""

from __future__ import annotations

from pathlib import Path

from harness.agent.prompts import render
from harness.execution.process import run_process, scrubbed_env, tail
from harness.stages.context import IdeaContext
from harness.stages.turns import agent_turn
from harness.workspace import HARNESS_DIR

STAGE = "plots"
PLOT_TIMEOUT_S = 600
FIGURE_SUFFIXES = (".png", ".pdf")


def _logs(ctx: IdeaContext) -> Path:
    """Where plot.py's stdout.log and stderr.log go (outside git, rewritten each run)."""
    return ctx.path / HARNESS_DIR / "plot_logs"


def _figures(ws: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in ws.iterdir() if p.suffix in FIGURE_SUFFIXES and p.is_file()}


def _advance(ctx: IdeaContext, step: str, attempt: int = 0, message: str = "") -> None:
    p = ctx.state.plots
    p.step, p.attempt, p.next_message = step, attempt, message
    ctx.save()


def _turn(ctx: IdeaContext, session) -> None:
    turn = ctx.state.plots.turn + 1
    agent_turn(ctx, session, STAGE, ctx.state.plots.next_message, turn, ["plot.py", "notes.txt"], f"turn {turn}")
    ctx.state.plots.turn = turn


def _run_plot(ctx: IdeaContext, attempt: int) -> tuple[list[str], str, str]:
    """Run plot.py: (figures it made, why it failed or '', a note for the agent's next prompt)."""
    before = _figures(ctx.path)
    logs = _logs(ctx)
    logs.mkdir(parents=True, exist_ok=True)
    proc = run_process([str(ctx.spec.python), "plot.py"], ctx.path, logs / "stdout.log", logs / "stderr.log",
                       PLOT_TIMEOUT_S, env=scrubbed_env(), sandbox=ctx.sandbox, on_start=ctx.child_started,
                       slots=ctx.slots, slot_label="plot.py")
    ctx.child_started(None)
    removed = ctx.ws.remove_special_files()
    ctx.record_undone(STAGE, f"plot.py run {attempt}", removed)
    note = render("removed_files", items=[e.describe() for e in removed]) if removed else ""
    made = sorted(n for n, t in _figures(ctx.path).items() if before.get(n) != t)
    if proc.ok and any(n.endswith(".png") for n in made):
        return made, "", note
    reason = ("it timed out" if proc.timed_out else f"it exited with status {proc.exit_code}"
              if not proc.ok else "it ran but wrote no PNG figure")
    return made, reason, note


def run(ctx: IdeaContext) -> None:
    if not (ctx.path / "plot.py").exists():
        ctx.state.stages[STAGE] = "skipped"
        return
    if not ctx.state.plots.step:
        _advance(ctx, "edit", 1, render("plots_edit", runs=ctx.state.done_runs()))
    session = ctx.agent.session(STAGE, files=["plot.py", "notes.txt"],
                                history_path=ctx.path / HARNESS_DIR / f"chat_{STAGE}.json")
    try:
        while True:
            kind, attempt = ctx.state.plots.step, ctx.state.plots.attempt
            if kind == "edit":
                _turn(ctx, session)
                _advance(ctx, "run", attempt)
            elif kind == "run":
                made, reason, note = _run_plot(ctx, attempt)
                if not reason:
                    ctx.ws.commit(f"[{STAGE}] figures from plot.py: {', '.join(made)}")
                    ctx.say(STAGE, f"plot.py made {', '.join(made)}")
                    _advance(ctx, "describe", message=render("plots_describe", figures=made) + note)
                    continue
                ctx.say(STAGE, f"plot.py failed ({reason}), attempt {attempt} of {ctx.cfg.max_fix_attempts}")
                if attempt >= ctx.cfg.max_fix_attempts:
                    ctx.state.stages[STAGE] = "failed"
                    ctx.state.plots.outcome = "plot.py kept failing; the writeup goes on without figures"
                    ctx.say(STAGE, ctx.state.plots.outcome)
                    _advance(ctx, "done")
                    return
                _advance(ctx, "edit", attempt + 1, render(
                    "plots_failed", reason=reason, attempt=attempt, max_attempts=ctx.cfg.max_fix_attempts,
                    stderr_tail=tail(_logs(ctx) / "stderr.log") or "(empty)") + note)
            elif kind == "describe":
                _turn(ctx, session)
                _advance(ctx, "done")
            else:
                return
    finally:
        session.close()
