"""One idea, start to finish (or resumed): the stages in order, each recorded in state.json."""

from __future__ import annotations

import errno
import logging
import time
from datetime import datetime
from pathlib import Path

import git
from rich.console import Console

from harness.agent.session import AgentSettings
from harness.config import HarnessConfig
from harness.errors import IdeaStopped, UserError
from harness.execution.process import kill_stale_group
from harness.ideas import check_declared_metric, load_idea
from harness.progress import Progress
from harness.records.state import STAGES, State, load_state, save_state
from harness.stages import baseline, confirm, experiments, plots, review, writeup
from harness.stages.context import IdeaContext
from harness.template import load_template
from harness.workspace import Workspace

RUNNERS = dict(zip(STAGES, (baseline.run, confirm.after_experiments, plots.run, writeup.run, review.run), strict=True))
"""Each stage's entry point, in the order of STAGES (the one place stage names are spelled);
the experiments stage ends with the confirmation of its best run over seeds (stages/confirm.py)."""


class _QuietFileHandler(logging.FileHandler):
    def handleError(self, record):
        pass  # a log line lost to a full disk is no reason for a traceback; the console has it


def _logger(ws: Path) -> logging.Logger:
    log = logging.getLogger(f"harness.{ws.name}")
    log.setLevel(logging.INFO)
    log.propagate = False
    if not log.handlers:
        h = _QuietFileHandler(ws / "harness.log", encoding="utf-8")
        h.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        log.addHandler(h)
    return log


def new_idea(cfg: HarnessConfig, idea_path: Path, settings: AgentSettings, console: Console) -> IdeaContext:
    idea = load_idea(idea_path)
    spec = load_template(cfg.template)
    check_declared_metric(idea, [m.name for m in spec.metrics], str(idea_path))
    if not spec.python.exists():
        raise UserError(f"template {spec.name} runs with {spec.python}, which does not exist; run `bash setup.sh` "
                        "first (or set SAE_HARNESS_ENVS to a folder holding <env>/bin/python)")
    ws = Workspace.create(cfg.workspace_root, idea, spec, settings=cfg.template_settings)
    state = State(idea=idea.name, template=str(spec.root), created=datetime.now().isoformat(timespec="seconds"),
                  config=cfg.to_dict(), stages={s: "pending" for s in STAGES})
    save_state(ws.path, state)
    ctx = IdeaContext(cfg, spec, idea, ws, state, console, _logger(ws.path), settings)
    ctx.say("setup", f"workspace {ws.path}")
    return ctx


def resume_idea(cfg: HarnessConfig, ws_path: Path, settings: AgentSettings, console: Console) -> IdeaContext:
    if not ws_path.is_dir():
        raise UserError(f"--resume {ws_path}: no such folder; pass a workspace folder under {cfg.workspace_root}/")
    ws = Workspace(ws_path)
    state = load_state(ws.path)
    idea = load_idea(ws.path / "idea.json")
    spec = load_template(state.template)
    ctx = IdeaContext(cfg, spec, idea, ws, state, console, _logger(ws.path), settings)
    state.status, state.error = "running", ""
    if kill_stale_group(state.child_pgid, ws.path):
        ctx.say("resume", f"killed process group {state.child_pgid}, left running by the interrupted harness")
    state.child_pgid = None
    ctx.save()
    ctx.say("resume", f"workspace {ws.path} (stages: {', '.join(f'{k}={v}' for k, v in state.stages.items())})")
    return ctx


def run_stages(ctx: IdeaContext) -> State:
    """Run every stage not yet done. Returns the final state; raises nothing for idea-level failures."""
    stages = list(RUNNERS.items())
    last = STAGES.index(ctx.cfg.stop_after)
    t0 = time.monotonic()
    with Progress(ctx.console, ctx.idea.name, ctx.cfg.max_runs, ctx.totals) as ctx.progress:
        _run_stages(ctx, stages, last, t0)
    ctx.progress = None
    return ctx.state


def _run_stages(ctx: IdeaContext, stages: list, last: int, t0: float) -> None:
    ctx.say("setup", f"isolation of agent-written code: {ctx.sandbox.describe()}")
    try:
        for name, fn in stages:
            if ctx.state.stage_done(name) or STAGES.index(name) > last:
                continue
            if name in ("plots", "writeup", "review") and not ctx.cfg.writeup_without_results:
                why = experiments.without_results(ctx)
                if why:
                    _fail(ctx, why)
                    return
            ctx.state.stages[name] = "running"
            # a resumed stage may find what a run killed mid-way left (see links.py)
            ctx.record_undone(name, "before the stage", ctx.ws.remove_special_files())
            ctx.save()
            fn(ctx)
            if ctx.state.stages[name] == "running":  # a stage may end as skipped or failed
                ctx.state.stages[name] = "done"
            ctx.save()
        ctx.state.status = "done"
    except IdeaStopped as exc:
        _stop(ctx, str(exc))
    except (OSError, git.GitCommandError) as exc:
        if not disk_full(exc):
            raise
        what = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        _stop(ctx, f"disk full: no space left on device for writing in {ctx.path}{what}; free space on "
                   f"that disk and run --resume {ctx.path}")
    finally:
        # On a full disk these writes fail too; state.json then stays as last saved (it is
        # written atomically), which --resume handles like a harness killed at that moment.
        try:
            ctx.save()
            if ctx._agent is not None:
                ctx.say(ctx.state.status, f"tokens {ctx.agent.tokens}, cost ${ctx.agent.cost:.4f}")
            # whatever the harness wrote last (logs, chat) is part of the record
            ctx.ws.commit(f"[harness] {ctx.state.status}\n\nafter {time.monotonic() - t0:.0f} s")
        except (OSError, git.GitCommandError) as exc:
            if not disk_full(exc):
                raise


def _fail(ctx: IdeaContext, why: str) -> None:
    """Final unless the user asks otherwise: --resume with --writeup-without-results goes on."""
    ctx.state.status, ctx.state.error = "failed", why
    ctx.say("failed", f"{why}; no plots or paper (--resume {ctx.path} --writeup-without-results writes them anyway)")


def _stop(ctx: IdeaContext, why: str) -> None:
    for k, v in ctx.state.stages.items():
        if v == "running":
            ctx.state.stages[k] = "stopped"
    ctx.state.status, ctx.state.error = "stopped", why
    ctx.say("stopped", why)


def disk_full(exc: BaseException) -> bool:
    """ENOSPC or a quota, from Python or from a git command that hit it."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    return isinstance(exc, git.GitCommandError) and "No space left on device" in str(exc.stderr)
