"""The experiment loop: the agent edits experiment.py, the harness runs it, results go back.

A small state machine whose every step is recorded in state.json before and after it
happens, so a harness killed at any moment resumes without redoing a completed run:

    ask agent (turn) -> commit its edit -> run_<i> -> commit + tag run_<i> -> ask again ...

It stops when the agent answers ALL_COMPLETED, the runs are used up, a run keeps failing
after the allowed fix attempts, or the agent keeps replying without changing anything.
"""

from __future__ import annotations

from harness.agent.prompts import render
from harness.errors import IdeaStopped
from harness.execution.process import ProcessResult, kill_stale_group
from harness.execution.runs import RunOutcome, run_experiment, set_aside
from harness.records.run_meta import RunMeta, read_meta
from harness.records.state import RunRecord
from harness.results.metrics import (
    RunSummary,
    compact_table,
    read_results,
    summarise,
)
from harness.results.noise import noise_table, read_noise
from harness.stages.context import IdeaContext
from harness.stages.turns import agent_turn
from harness.workspace import HARNESS_DIR

STAGE = "experiments"
DONE_WORD = "ALL_COMPLETED"


def run_summaries(ctx: IdeaContext) -> list[RunSummary]:
    """The headline values and degenerate flags of every completed run, baseline included."""
    out = []
    for rec in ctx.state.done_runs():
        out.append(summarise(ctx.spec, rec.index, read_results(ctx.spec, ctx.path / rec.folder).info))
    return out


def _table_for(ctx: IdeaContext, index: int) -> tuple[str, RunSummary]:
    info = read_results(ctx.spec, ctx.path / f"run_{index}").info
    history = run_summaries(ctx)
    current = next((s for s in history if s.run == index), None) or summarise(ctx.spec, index, info)
    baseline = next((s for s in history if s.run == 0), None)
    noise = read_noise(ctx.path)
    if noise.bands():  # the baseline has seeds: judge the run against their spread
        return noise_table(ctx.spec, current, history, info, noise), current
    return compact_table(ctx.spec, current, baseline, history, info), current


def first_message(ctx: IdeaContext) -> str:
    table, _ = _table_for(ctx, 0)
    return render("experiment_start", idea=ctx.idea, max_runs=ctx.cfg.max_runs, editable=_files(ctx),
                  description=ctx.spec.description, baseline_table=table, declared=declared_metric(ctx))


def declared_metric(ctx: IdeaContext):
    """The template metric the idea named before any run, or None."""
    return next((m for m in ctx.spec.metrics if m.name == ctx.idea.primary_metric), None)


def run(ctx: IdeaContext) -> None:
    prog = ctx.state.experiments
    if not prog.next_message and prog.turn == 0:
        prog.next_message = first_message(ctx)
        prog.last_run_hash = ctx.ws.file_hash("experiment.py")
        ctx.save()
    _recover(ctx)
    session = ctx.agent.session(STAGE, files=_files(ctx),
                                history_path=ctx.path / HARNESS_DIR / f"chat_{STAGE}.json")
    try:
        while not prog.done:
            if prog.pending_run is not None:
                _do_run(ctx, prog.pending_run)
                continue
            if prog.next_run > ctx.cfg.max_runs:
                _finish(ctx, f"all {ctx.cfg.max_runs} runs used")
                break
            _turn(ctx, session)
    finally:
        session.close()


def without_results(ctx: IdeaContext) -> str:
    """Why the idea has nothing to write about ('' when some run succeeded): no run after
    the baseline completed, or every one that did is degenerate. Plots and a paper about
    nothing cost model calls and would only restate the baseline."""
    prog = ctx.state.experiments
    done = [r for r in ctx.state.done_runs() if r.index > 0]
    if any(not r.degenerate for r in done):
        return ""
    if done:
        flags = "; ".join(f"run_{r.index}: {', '.join(r.degenerate)}" for r in done)
        return f"no run succeeded: every run was degenerate ({flags})"
    failed = [r for r in ctx.state.runs.values() if r.index > 0 and r.status == "failed"]
    if prog.failed_edit_replies and not failed and prog.next_run == 1:
        return (f"no run succeeded: the agent's edits never applied ({prog.failed_edit_replies} "
                f"{'reply' if prog.failed_edit_replies == 1 else 'replies'} changed nothing)")
    return f"no run succeeded: {prog.stop_reason or 'the experiments stage ended without a run'}"


def _files(ctx: IdeaContext) -> list[str]:
    """What this stage hands the agent (plot.py waits for the plots stage)."""
    return [f for f in ctx.spec.editable if f in ("experiment.py", "notes.txt")] or ["experiment.py"]


def _finish(ctx: IdeaContext, reason: str) -> None:
    prog = ctx.state.experiments
    prog.done, prog.stop_reason = True, reason
    ctx.save()
    ctx.say(STAGE, f"finished: {reason}")


def _recover(ctx: IdeaContext) -> None:
    """Undo the traces of a harness killed mid-step (nothing committed is ever touched)."""
    prog = ctx.state.experiments
    if prog.pending_run is not None and kill_stale_group(prog.pending_pgid, ctx.path):
        ctx.say(STAGE, f"killed run_{prog.pending_run} left running by the interrupted harness")
    if prog.turn_in_flight:
        # The reply may have been half-applied: keep those edits as a stash for review, then
        # ask the same question again from the last committed state.
        dirty = [p for p in ctx.ws.dirty_paths() if p in ctx.spec.editable]
        sha = ctx.ws.stash_paths(dirty, f"harness: edits of interrupted {STAGE} turn {prog.turn + 1}")
        if sha:
            ctx.say(STAGE, f"set aside half-done edits of the interrupted turn as stash {sha[:8]}")
        prog.turn_in_flight = False
        ctx.save()


def _turn(ctx: IdeaContext, session) -> None:
    prog, ws = ctx.state.experiments, ctx.ws
    turn = prog.turn + 1
    prog.turn_in_flight = True
    ctx.save()
    ctx.say(STAGE, f"turn {turn}: asking the agent (run {prog.next_run} of at most {ctx.cfg.max_runs})")
    planned = f"turn {turn} for run_{prog.next_run}"
    message = prog.next_message
    if turn > 1 and prog.idle_turns == 0:  # a run's result: a fresh start keeps every turn's prompt flat
        session.forget_history()
        message = render("experiment_reminder", idea=ctx.idea, declared=declared_metric(ctx),
                         editable=_files(ctx), runs_left=ctx.cfg.max_runs - prog.next_run + 1,
                         max_runs=ctx.cfg.max_runs) + message
    # a final answer plans no run, and `history` must not list one for it
    done = agent_turn(ctx, session, STAGE, message, turn, _files(ctx),
                      lambda reply: f"turn {turn}, {DONE_WORD}" if DONE_WORD in reply else planned)
    result, note = done.result, done.reverted_note(_files(ctx))
    prog.turn, prog.turn_in_flight = turn, False

    if DONE_WORD in result.reply:
        ctx.save()
        _finish(ctx, f"the agent answered {DONE_WORD} after {prog.next_run - 1} runs")
        return
    if ws.file_hash("experiment.py") == prog.last_run_hash:
        prog.idle_turns += 1
        prog.failed_edit_replies += result.failed_edits > 0
        if prog.idle_turns >= ctx.cfg.max_idle_turns:
            ctx.save()
            _finish(ctx, f"{prog.idle_turns} replies in a row changed nothing")
            return
        prog.next_message = render("no_change", failed_edits=result.failed_edits > 0,
                                   run=prog.next_run, idle=prog.idle_turns, max_idle=ctx.cfg.max_idle_turns) + note
        ctx.save()
        ctx.say(STAGE, "experiment.py unchanged; told the agent instead of re-running")
        return
    prog.idle_turns = 0
    prog.pending_run, prog.pending_pgid = prog.next_run, None
    prog.next_message = note  # completed by _do_run
    ctx.save()


def _do_run(ctx: IdeaContext, index: int) -> None:
    prog, ws = ctx.state.experiments, ctx.ws
    tag = f"run_{index}"
    if not ws.has_tag(tag):
        outcome = _completed_outcome(ctx, index)
        if outcome is None:
            if set_aside(ctx.path, index, "interrupted"):
                ws.commit(f"[{STAGE}] {tag} was interrupted by a harness restart; kept for review")
            ctx.say(STAGE, f"{tag}: running (timeout {ctx.run_timeout} s)")

            def record_pgid(pgid: int) -> None:
                prog.pending_pgid = pgid
                ctx.child_started(pgid)

            outcome = run_experiment(ctx.path, ctx.spec, index, ctx.run_timeout, ws.head(), on_start=record_pgid,
                                     sandbox=ctx.sandbox, slots=ctx.slots, settings=ctx.cfg.template_settings)
            ctx.state.child_pgid = None
            if outcome.removed:
                ctx.record_undone(STAGE, tag, outcome.removed)
                prog.next_message = render("removed_files", items=[e.describe() for e in outcome.removed]) \
                    + prog.next_message
        if not outcome.ok:
            _failed(ctx, outcome)
            return
        # durations go in the body: subjects stay identical between replays of one recording
        commit = ws.commit(f"[{STAGE}] {tag} results\n\n{outcome.process.duration_s:.1f} s") or ws.head()
        ws.tag(tag, commit)
    results = read_results(ctx.spec, ctx.path / tag)
    summary = summarise(ctx.spec, index, results.info)
    meta_commit = ws.repo.tags[tag].commit.hexsha
    ctx.state.runs[str(index)] = RunRecord(index=index, status="done", folder=tag, commit=meta_commit,
                                           exit_code=0, degenerate=summary.degenerate, mismatch=results.mismatch)
    table, _ = _table_for(ctx, index)
    duration = (read_meta(ctx.path / tag) or RunMeta()).duration_s
    prog.next_message = render("run_succeeded", run=index, duration=f"{duration:.1f}", table=table,
                               flags=summary.degenerate, runs_left=ctx.cfg.max_runs - index,
                               mismatch=results.mismatch,
                               self_reported=results.self_reported,
                               results_file=ctx.spec.evaluation.output if ctx.spec.evaluation
                               else "final_info.json") + prog.next_message
    prog.last_run_hash = ws.file_hash("experiment.py")
    prog.next_run, prog.fix_attempts = index + 1, 0
    prog.pending_run, prog.pending_pgid = None, None
    ctx.save()
    flag = f" DEGENERATE: {'; '.join(summary.degenerate)}" if summary.degenerate else ""
    flag += f" MISMATCH: {'; '.join(results.mismatch)}" if results.mismatch else ""
    ctx.say(STAGE, f"{tag} ok in {duration:.1f} s{flag}")


def _completed_outcome(ctx: IdeaContext, index: int) -> RunOutcome | None:
    """A run that finished before the harness died (meta.json says ok) is not run again."""
    folder = ctx.path / f"run_{index}"
    meta = read_meta(folder)
    if meta is None or meta.status != "ok":
        return None
    try:
        info = read_results(ctx.spec, folder).info
    except Exception:
        return None
    proc = ProcessResult(command=meta.command, exit_code=meta.exit_code, duration_s=meta.duration_s,
                         timed_out=False, started_at=meta.started_at, pgid=meta.pgid)
    ctx.say(STAGE, f"run_{index} had finished before the interruption; not running it again")
    return RunOutcome(index, folder, proc, info, "")


def _failed(ctx: IdeaContext, outcome: RunOutcome) -> None:
    prog, ws = ctx.state.experiments, ctx.ws
    prog.fix_attempts += 1
    stderr = outcome.stderr_tail()
    kept = set_aside(ctx.path, outcome.index, "failed")
    ws.commit(f"[{STAGE}] run_{outcome.index} failed (attempt {prog.fix_attempts}): {outcome.error}")
    ctx.say(STAGE, f"run_{outcome.index} failed: {outcome.error}; kept as {kept.name if kept else '-'}")
    prog.pending_run, prog.pending_pgid = None, None
    prog.last_run_hash = ws.file_hash("experiment.py")
    if prog.fix_attempts >= ctx.cfg.max_fix_attempts:
        why = (f"run_{outcome.index} failed {prog.fix_attempts} times in a row (last: {outcome.error}); "
               f"see {kept.name if kept else 'run_' + str(outcome.index)}/stderr.log")
        if outcome.index > 1:
            _finish(ctx, why + "; going on with the runs that succeeded")
            return
        ctx.save()
        raise IdeaStopped(why)
    prog.next_message = render("run_failed", run=outcome.index, reason=outcome.error, attempt=prog.fix_attempts,
                               max_attempts=ctx.cfg.max_fix_attempts, stderr_tail=stderr or "(empty)") + prog.next_message
    ctx.save()
