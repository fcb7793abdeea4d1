"""run_0: the unmodified template, computed once per template version and then cached.

With seeds (config `seeds`, template `seed_arg`) the baseline also runs seeds 1..n-1 into
run_0_seed<s>/, each cached under its own entry beside run_0's, and writes noise.json:
the spread every later comparison is judged against (results/noise.py).

The cache key hashes the template files the baseline depends on, the experiment
environment's stamp and what decides the runs' last digits (the CPU's vector units and the
thread count, execution/numerics.py), so a changed template, environment or thread setting
recomputes it and nobody has to precompute baselines by hand.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from harness.agent.masking import mask_secrets
from harness.errors import IdeaStopped
from harness.execution import numerics
from harness.execution.runs import run_experiment, set_aside
from harness.records.run_meta import RunMeta, read_meta, write_meta
from harness.records.state import RunRecord
from harness.results.metrics import evaluation_path, read_results, summarise
from harness.results.noise import finished, seed_folder, write_noise
from harness.stages.context import IdeaContext

HARNESS_EVALUATION = "harness_evaluation.json"
"""The harness's copy of a baseline run's evaluation inside its cache entry (harness-written: the
cache lives outside every workspace), put back under .harness/ when the entry is reused."""


def cache_dir(ctx: IdeaContext) -> Path:
    key = ctx.spec.baseline_key(ctx.path, numerics.signature(ctx.slots))
    return ctx.cfg.workspace_root.resolve() / ".baseline_cache" / f"{ctx.spec.name}_{key}"


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
        for seed in range(1, ctx.seeds):
            _extra_seed(ctx, cached, seed)
    if not ctx.spec.seed_arg:
        ctx.say("baseline", f"template {ctx.spec.name} declares no seed_arg in template.yaml: each setting "
                            "runs once, so no noise band is known")
        return
    if ctx.seeds < 2:
        return  # one seed: no spread to record, and the workspace stays as it was before seeds
    noise = write_noise(ctx.spec, ctx.path, [])
    base = noise.baseline
    if base and len(base.seeds) > 1:
        first = ctx.spec.metrics[0].name if ctx.spec.metrics else next(iter(base.metrics), None)
        if first in base.metrics:
            ctx.say("baseline", f"{len(base.seeds)} seeds: {first} {base.metrics[first].text()} "
                                f"(noise band ±{base.metrics[first].band:.3g})")
    ctx.ws.commit("[baseline] noise.json: the baseline seeds' spread")


def _extra_seed(ctx: IdeaContext, cached: Path, seed: int) -> None:
    """Seed s of the baseline in run_0_seed<s>/, cached beside run_0 under its own entry, so
    a later idea asking for more seeds reuses the ones already computed."""
    name = seed_folder(0, seed)
    folder, entry = ctx.path / name, cached.with_name(f"{cached.name}_seed{seed}")
    if finished(ctx.spec, folder):
        return  # done before an interruption
    if _cached(ctx, entry):
        _restore(ctx, entry, folder)
    else:
        if set_aside(ctx.path, 0, "interrupted", seed=seed):
            ctx.say("baseline", f"{name} was interrupted by a harness restart; kept for review, running it again")
        ctx.say("baseline", f"computing {name} (seed {seed}; cached afterwards)")
        outcome = run_experiment(ctx.path, ctx.spec, 0, ctx.run_timeout, ctx.ws.repo.tags["run_0"].commit.hexsha,
                                 sandbox=ctx.sandbox, on_start=ctx.child_started, slots=ctx.slots,
                                 cache_writable=True, seed=seed, settings=ctx.cfg.template_settings)
        ctx.child_started(None)
        ctx.record_undone("baseline", name, outcome.removed)
        if not outcome.ok:
            ctx.ws.commit(f"[baseline] {name} failed: {outcome.error}")
            raise IdeaStopped(f"the baseline's seed {seed} ({name}) failed ({outcome.error}); does experiment.py "
                              f"accept {ctx.spec.seed_arg}=S? see {folder}/stderr.log:\n"
                              f"{mask_secrets(outcome.stderr_tail()).text[-600:]}")
        _store(folder, entry)
        ctx.say("baseline", f"{name} done in {outcome.process.duration_s:.1f} s")
    ctx.ws.commit(f"[baseline] {name}: the unmodified template, seed {seed}")


def _cached(ctx: IdeaContext, entry: Path) -> bool:
    """A complete cache entry: the run ended well and, where the template has an evaluation
    step, the harness's evaluation of it is kept too."""
    meta = read_meta(entry) if entry.is_dir() else None
    return (meta is not None and meta.status == "ok" and (entry / "final_info.json").is_file()
            and (ctx.spec.evaluation is None or (entry / HARNESS_EVALUATION).is_file()))


def _restore(ctx: IdeaContext, entry: Path, folder: Path) -> None:
    """Copy a baseline cache entry into the workspace, its harness evaluation back under
    .harness/, and record in meta.json where it came from."""
    if folder.exists():
        shutil.rmtree(folder)
    shutil.copytree(entry, folder)
    kept = folder / HARNESS_EVALUATION
    if kept.is_file():
        evaluation_path(folder).parent.mkdir(parents=True, exist_ok=True)
        shutil.move(kept, evaluation_path(folder))
    meta = read_meta(folder) or RunMeta()
    meta.cached_from = str(entry)
    write_meta(folder, meta)
    ctx.say("baseline", f"{folder.name} from cache {entry.name}")


def _store(run_dir: Path, cached: Path) -> None:
    cached.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp_", dir=cached.parent))
    shutil.copytree(run_dir, tmp, dirs_exist_ok=True)
    if evaluation_path(run_dir).is_file():
        shutil.copy2(evaluation_path(run_dir), tmp / HARNESS_EVALUATION)
    try:
        tmp.rename(cached)  # atomic: a half-written cache entry is never visible
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another idea cached it meanwhile


def _baseline(ctx: IdeaContext, cached: Path) -> None:
    run_dir = ctx.path / "run_0"
    if ctx.ws.has_tag("run_0"):
        pass  # committed before an interruption; only the state record is missing
    elif _cached(ctx, cached):
        _restore(ctx, cached, run_dir)
    else:
        if set_aside(ctx.path, 0, "interrupted"):  # a harness killed while run_0 ran
            ctx.say("baseline", "run_0 was interrupted by a harness restart; kept for review, running it again")
        ctx.say("baseline", f"computing run_0 (cached afterwards for {numerics.signature(ctx.slots)}; "
                            f"timeout {ctx.run_timeout} s)")
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
        _store(run_dir, cached)
        ctx.say("baseline", f"run_0 done in {outcome.process.duration_s:.1f} s")
    results = read_results(ctx.spec, run_dir)
    commit = ctx.ws.commit("[baseline] run_0: the unmodified template") or ctx.ws.head()
    ctx.ws.tag("run_0", commit)
    summary = summarise(ctx.spec, 0, results.info)
    ctx.state.runs["0"] = RunRecord(index=0, status="done", folder="run_0", commit=commit,
                                    exit_code=0, degenerate=summary.degenerate, mismatch=results.mismatch)
