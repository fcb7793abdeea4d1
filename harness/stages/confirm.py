"""Confirmation: the experiments stage's best run again, with the baseline's other seeds.

One number against one number says little when a second seed moves it as much; after the
agent's loop ends, the best run (by the idea's declared Primary_Metric, else the template's
first metric) is rerun with seeds 1..n-1 into run_<i>_seed<s>/, so the paper compares two
distributions. It is the tail of the experiments stage (same --stop-after name), recorded
step by step in state.json (`confirm`), so a kill at any moment resumes at the seed it hit.

The code that runs is run_<i>'s own: the editable files are checked out from the run's
commit for the duration of the process and restored from HEAD afterwards. Every agent edit
is committed by then, so HEAD holds them all and nothing of the agent's later work is lost,
even when the harness dies between the two checkouts (the resume restores HEAD first).
"""

from __future__ import annotations

import git

from harness.execution.runs import run_experiment, set_aside
from harness.results.metrics import best_so_far
from harness.results.noise import seed_folder, write_noise
from harness.stages import experiments
from harness.stages.context import IdeaContext

STAGE = "experiments"


def after_experiments(ctx: IdeaContext) -> None:
    """The experiments stage as the pipeline runs it: the agent's loop, then the confirmation."""
    experiments.run(ctx)
    run(ctx)


def run(ctx: IdeaContext) -> None:
    prog = ctx.state.confirm
    if prog.done:
        return
    if prog.pending_seed is not None:
        _recover(ctx)
    if ctx.seeds < 2:
        _finish(ctx, "no confirmation: one seed per setting" + ("" if ctx.spec.seed_arg else
                     f" (template {ctx.spec.name} declares no seed_arg)"))
        return
    if prog.run is None:
        metric = experiments.declared_metric(ctx) or (ctx.spec.metrics[0] if ctx.spec.metrics else None)
        best = best_so_far(ctx.spec, experiments.run_summaries(ctx), metric) if metric else None
        if best is None:
            _finish(ctx, "no confirmation: no run without a degenerate flag to confirm")
            return
        prog.run, prog.metric = best[1], metric.name
        ctx.save()
        ctx.say(STAGE, f"confirming run_{prog.run} (best by {metric.label}) with seeds 1..{ctx.seeds - 1}")
    ctx.ws.commit(f"[{STAGE}] before confirming run_{prog.run}")  # HEAD must hold every edit
    for seed in range(1, ctx.seeds):
        if seed not in prog.seeds_done:
            _one_seed(ctx, prog.run, seed)
    noise = write_noise(ctx.spec, ctx.path, [prog.run])
    confirmed = noise.runs.get(prog.run)
    spread = confirmed.metrics.get(prog.metric) if confirmed else None
    base = noise.baseline.metrics.get(prog.metric) if noise.baseline else None
    if spread and base:
        within = noise.within(prog.metric, spread.mean, base.mean)
        verdict = "" if within is None else " (within noise)" if within else " (beyond noise)"
        text = (f"run_{prog.run} over seeds {', '.join(map(str, confirmed.seeds))}: {prog.metric} "
                f"{spread.text()} against the baseline's {base.text()}{verdict}")
    else:
        text = f"run_{prog.run}: no second seed finished, nothing to compare"
    ctx.ws.commit(f"[{STAGE}] run_{prog.run} confirmed with {ctx.seeds} seeds", paths=["noise.json"])
    _finish(ctx, text)


def _files(ctx: IdeaContext, commit: str) -> list[str]:
    """The editable files present both in the run's commit and at HEAD (what decides the code)."""
    repo = ctx.ws.repo
    out = []
    for f in ctx.spec.editable:
        try:
            repo.git.cat_file("-e", f"{commit}:{f}")
            repo.git.cat_file("-e", f"HEAD:{f}")
        except git.GitCommandError:
            continue
        out.append(f)
    return out


def _restore(ctx: IdeaContext, commit: str) -> None:
    files = _files(ctx, commit)
    if files:
        ctx.ws.repo.git.checkout("HEAD", "--", *files)


def _recover(ctx: IdeaContext) -> None:
    """A harness killed while a confirmation seed ran: HEAD's files back, the half-made folder aside."""
    prog = ctx.state.confirm
    rec = ctx.state.runs[str(prog.run)]
    _restore(ctx, rec.commit)
    kept = set_aside(ctx.path, prog.run, "interrupted", seed=prog.pending_seed)
    if kept:
        ctx.ws.commit(f"[{STAGE}] {seed_folder(prog.run, prog.pending_seed)} was interrupted by a harness "
                      "restart; kept for review", paths=[kept.name])
        ctx.say(STAGE, f"{kept.name}: the interrupted confirmation run, kept for review; running it again")
    prog.pending_seed = None
    ctx.save()


def _one_seed(ctx: IdeaContext, run: int, seed: int) -> None:
    prog = ctx.state.confirm
    rec = ctx.state.runs[str(run)]
    name = seed_folder(run, seed)
    prog.pending_seed = seed
    ctx.save()
    files = _files(ctx, rec.commit)
    ctx.say(STAGE, f"{name}: run_{run}'s code ({rec.commit[:8]}) with seed {seed}")
    ctx.ws.repo.git.checkout(rec.commit, "--", *files)
    try:
        outcome = run_experiment(ctx.path, ctx.spec, run, ctx.run_timeout, rec.commit, on_start=ctx.child_started,
                                 sandbox=ctx.sandbox, slots=ctx.slots, seed=seed,
                                 settings=ctx.cfg.template_settings)
    finally:
        ctx.child_started(None)
        _restore(ctx, rec.commit)
    ctx.record_undone(STAGE, name, outcome.removed)
    if outcome.ok:
        ctx.ws.commit(f"[{STAGE}] {name} results (confirmation)\n\n{outcome.process.duration_s:.1f} s", paths=[name])
        ctx.say(STAGE, f"{name} ok in {outcome.process.duration_s:.1f} s")
    else:
        kept = set_aside(ctx.path, run, "failed", seed=seed)
        ctx.ws.commit(f"[{STAGE}] {name} failed (confirmation): {outcome.error}",
                      paths=[kept.name] if kept else None)
        ctx.say(STAGE, f"{name} failed: {outcome.error}; the confirmation goes on without it")
    prog.seeds_done.append(seed)
    prog.pending_seed = None
    ctx.save()


def _finish(ctx: IdeaContext, outcome: str) -> None:
    prog = ctx.state.confirm
    prog.done, prog.outcome = True, outcome
    ctx.save()
    ctx.say(STAGE, outcome)
