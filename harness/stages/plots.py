"""Plots: the agent edits plot.py, the harness runs it, the agent describes the figures.

A plot stage that keeps failing is recorded as failed and the idea goes on without
figures (the writeup is told so); a broken plot is no reason to lose the experiments.
"""

from __future__ import annotations

from pathlib import Path

from harness.executor import run_process, scrubbed_env, tail
from harness.pipeline import IdeaContext
from harness.prompts import render
from harness.stages.turns import agent_turn
from harness.workspace import HARNESS_DIR

STAGE = "plots"
PLOT_TIMEOUT_S = 600
FIGURE_SUFFIXES = (".png", ".pdf")


def _figures(ws: Path) -> dict[str, float]:
    return {p.name: p.stat().st_mtime for p in ws.iterdir() if p.suffix in FIGURE_SUFFIXES and p.is_file()}


def _turn(ctx: IdeaContext, session, message: str, turn: int) -> None:
    agent_turn(ctx, session, STAGE, message, turn, ["plot.py", "notes.txt"], f"turn {turn}")


def run(ctx: IdeaContext) -> None:
    if not (ctx.path / "plot.py").exists():
        ctx.state.stages[STAGE] = "skipped"
        return
    runs = ctx.state.done_runs()
    session = ctx.agent.session(STAGE, files=["plot.py", "notes.txt"],
                                history_path=ctx.path / HARNESS_DIR / f"chat_{STAGE}.json")
    try:
        turn = 1
        message = render("plots_edit", runs=runs)
        for attempt in range(1, ctx.cfg.max_fix_attempts + 1):
            _turn(ctx, session, message, turn)
            turn += 1
            before = _figures(ctx.path)
            logs = ctx.path / HARNESS_DIR / "plot_logs"
            logs.mkdir(parents=True, exist_ok=True)
            proc = run_process([str(ctx.spec.python), "plot.py"], ctx.path, logs / "stdout.log",
                               logs / "stderr.log", PLOT_TIMEOUT_S, env=scrubbed_env(), sandbox=ctx.sandbox,
                               slots=ctx.slots, slot_label="plot.py")
            made = sorted(n for n, t in _figures(ctx.path).items() if before.get(n) != t)
            if proc.ok and any(n.endswith(".png") for n in made):
                ctx.ws.commit(f"[{STAGE}] figures from plot.py: {', '.join(made)}")
                ctx.say(STAGE, f"plot.py made {', '.join(made)}")
                _turn(ctx, session, render("plots_describe", figures=made), turn)
                return
            reason = ("it timed out" if proc.timed_out else f"it exited with status {proc.exit_code}"
                      if not proc.ok else "it ran but wrote no PNG figure")
            ctx.say(STAGE, f"plot.py failed ({reason}), attempt {attempt} of {ctx.cfg.max_fix_attempts}")
            message = render("plots_failed", reason=reason, attempt=attempt, max_attempts=ctx.cfg.max_fix_attempts,
                             stderr_tail=tail(logs / "stderr.log") or "(empty)")
        ctx.state.stages[STAGE] = "failed"
        ctx.state.notes[STAGE] = "plot.py kept failing; the writeup goes on without figures"
        ctx.say(STAGE, ctx.state.notes[STAGE])
    finally:
        session.close()
