"""run_0: the unmodified template, computed once per template version and then cached.

The cache key hashes the template files the baseline depends on and the experiment
environment's stamp, so a changed template or environment recomputes it and nobody has
to precompute baselines by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

HARNESS_EVALUATION = "harness_evaluation.json"
"""The harness's copy of run_0's evaluation inside a baseline cache entry (harness-written: the
cache lives outside every workspace), put back under .harness/ when the entry is reused."""

from harness.agent.masking import mask_secrets
from harness.errors import IdeaStopped
from harness.execution.runs import run_experiment, set_aside
from harness.records.run_meta import RunMeta, read_meta, write_meta
from harness.records.state import RunRecord
from harness.results.metrics import evaluation_path, read_results, summarise
from harness.stages.context import IdeaContext


def cache_dir(ctx: IdeaContext) -> Path:
    return ctx.cfg.workspace_root.resolve() / ".baseline_cache" / f"{ctx.spec.name}_{ctx.spec.baseline_key(ctx.path)}"


@contextlib.contextmanager
def _cache_lock(cached: Path):
    """Ideas of a batch start together: the first computes run_0, the others wait and copy it."""
    cached.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(cached.parent / f"{cached.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def run(ctx: IdeaContext) -> None:
    cached = cache_dir(ctx)
    with _cache_lock(cached):
        _baseline(ctx, cached)


def _baseline(ctx: IdeaContext, cached: Path) -> None:
    run_dir = ctx.path / "run_0"
    if ctx.ws.has_tag("run_0"):
        pass  # committed before an interruption; only the state record is missing
    elif (cached / "final_info.json").is_file():
        if run_dir.exists():
            shutil.rmtree(run_dir)
        shutil.copytree(cached, run_dir)
        kept = run_dir / HARNESS_EVALUATION
        if kept.is_file():
            evaluation_path(run_dir).parent.mkdir(parents=True, exist_ok=True)
            shutil.move(kept, evaluation_path(run_dir))
        meta = read_meta(run_dir) or RunMeta()
        meta.cached_from = str(cached)
        write_meta(run_dir, meta)
        ctx.say("baseline", f"run_0 from cache {cached.name}")
    else:
        if set_aside(ctx.path, 0, "interrupted"):  # a harness killed while run_0 ran
            ctx.say("baseline", "run_0 was interrupted by a harness restart; kept for review, running it again")
        ctx.say("baseline", f"computing run_0 (cached afterwards; timeout {ctx.run_timeout} s)")
        # run_0 is the unmodified template: the one run trusted to build the shared cache
        outcome = run_experiment(ctx.path, ctx.spec, 0, ctx.run_timeout, ctx.ws.head(), sandbox=ctx.sandbox,
                                 on_start=ctx.child_started, slots=ctx.slots, cache_writable=True,
                                 settings=ctx.cfg.template_settings)
        ctx.child_started(None)
        ctx.record_undone("baseline", "run_0", outcome.removed)
        if not outcome.ok:
            ctx.ws.commit(f"[baseline] run_0 failed: {outcome.error}")
            raise IdeaStopped(f"the baseline run_0 failed ({outcome.error}); the template itself is broken, "
                              f"see {run_dir}/stderr.log:\n{mask_secrets(outcome.stderr_tail()).text[-600:]}")
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp_", dir=cached.parent))
        shutil.copytree(run_dir, tmp, dirs_exist_ok=True)
        if evaluation_path(run_dir).is_file():
            shutil.copy2(evaluation_path(run_dir), tmp / HARNESS_EVALUATION)
        try:
            tmp.rename(cached)  # atomic: a half-written cache entry is never visible
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another idea cached it meanwhile
        ctx.say("baseline", f"run_0 done in {outcome.process.duration_s:.1f} s")
    results = read_results(ctx.spec, run_dir)
    commit = ctx.ws.commit("[baseline] run_0: the unmodified template") or ctx.ws.head()
    ctx.ws.tag("run_0", commit)
    summary = summarise(ctx.spec, 0, results.info)
    ctx.state.runs["0"] = RunRecord(index=0, status="done", folder="run_0", commit=commit,
                                    exit_code=0, degenerate=summary.degenerate, mismatch=results.mismatch)
