"""One experiment run: `python experiment.py --out_dir=run_<i>` and what it left behind."""

from __future__ import annotations

import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.execution.evaluation import evaluate_run
from harness.execution.process import (
    ProcessResult,
    run_process,
    scrubbed_env,
    tail,
)
from harness.execution.sandbox import Sandbox
from harness.records.run_meta import RunMeta, write_meta
from harness.results.metrics import ResultsError, read_final_info, read_results
from harness.results.noise import seed_folder
from harness.template import TemplateSpec
from harness.workspace import RevertedEdit, Workspace

if TYPE_CHECKING:
    from harness.execution.slots import SlotPool

STDERR_TAIL = 1500


@dataclass
class RunOutcome:
    index: int
    folder: Path
    process: ProcessResult
    info: dict[str, Any] | None
    error: str
    """Why the run counts as failed ('' if it succeeded)."""
    removed: list[RevertedEdit] = field(default_factory=list)
    """Links and other special files the run left, removed (see links.py)."""
    mismatch: list[str] = field(default_factory=list)
    """Where the run's own final_info.json disagrees with the harness's evaluation."""
    evaluation_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.error

    def stderr_tail(self) -> str:
        return tail(self.folder / "stderr.log", STDERR_TAIL)


def run_experiment(workspace: Path, spec: TemplateSpec, index: int, timeout_s: float, commit: str,
                   on_start: Callable[[int], None] | None = None, sandbox: Sandbox | None = None,
                   slots: SlotPool | None = None, cache_writable: bool = False,
                   settings: dict[str, Any] | None = None, seed: int = 0) -> RunOutcome:
    """Run experiment.py into run_<index>/ (seed 0) or run_<index>_seed<seed>/, then (when the
    template declares one) the harness's evaluation of what it saved. `settings`: the harness
    config's template_settings, for the evaluation's own copy of the settings file."""
    name = seed_folder(index, seed)
    folder = workspace / name
    if folder.exists():
        shutil.rmtree(folder)  # callers move anything worth keeping aside first
    folder.mkdir()
    args = [f"--out_dir={name}", *spec.seed_args(seed)]
    command = [str(spec.python), "experiment.py", *args]
    proc = run_process(command, workspace, folder / "stdout.log", folder / "stderr.log",
                       timeout_s, env=scrubbed_env(), on_start=on_start, sandbox=sandbox,
                       slots=slots, slot_label=name, cache_writable=cache_writable)
    # before the harness writes meta.json or reads anything the run left
    removed = Workspace(workspace).remove_special_files()
    folder.mkdir(exist_ok=True)  # the run may have replaced its folder by a link, now removed
    info, error = None, ""
    if proc.timed_out:
        error = f"it was killed after the {timeout_s:g} s timeout"
    elif proc.exit_code != 0:
        error = f"it exited with status {proc.exit_code}"
    else:
        try:
            info = read_final_info(folder)
        except ResultsError as exc:
            error = str(exc)
    mismatch: list[str] = []
    evaluation_s = 0.0
    if not error and spec.evaluation is not None:
        evaluated = evaluate_run(workspace, spec, folder, settings or {}, sandbox=sandbox, slots=slots,
                                 on_start=on_start, cache_writable=cache_writable)
        evaluation_s, error = evaluated.seconds, evaluated.error
        if not error:
            try:
                results = read_results(spec, folder)
                info, mismatch = results.info, results.mismatch
            except ResultsError as exc:
                error = str(exc)
    write_meta(folder, RunMeta(**asdict(proc), run=index, seed=seed, commit=commit,
                               status="ok" if not error else "failed",
                               error=error, command_line=" ".join(["python experiment.py", *args]),
                               isolation=sandbox.describe() if sandbox else "process (no limits)",
                               removed=[r.describe() for r in removed], python=command[0],
                               evaluation_s=evaluation_s, mismatch=mismatch,
                               self_reported=spec.evaluation is None))
    return RunOutcome(index, folder, proc, info, error, removed, mismatch, evaluation_s)


def set_aside(workspace: Path, index: int, kind: str, seed: int = 0) -> Path | None:
    """Keep a failed or interrupted run's folder for review as run_<i>[_seed<s>]_<kind>_<n>."""
    base = seed_folder(index, seed)
    folder = workspace / base
    if not folder.exists():
        return None
    if not any(folder.iterdir()):
        folder.rmdir()  # it never started (its idea was waiting for a batch slot): nothing to review
        return None
    n = 1
    while (workspace / f"{base}_{kind}_{n}").exists():
        n += 1
    dest = workspace / f"{base}_{kind}_{n}"
    folder.rename(dest)
    return dest
