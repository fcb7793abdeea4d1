"""The template's evaluation step: the harness scores a finished run with protected code only.

After `experiment.py` exits 0 the harness copies the template's evaluation code (template.yaml
`evaluation.code`, from the template source: the run may have rewritten the workspace's copy)
and a settings file it rebuilds itself into `.harness/evaluator/`, and runs the step's command
there under the idea's sandbox. Under the namespace level the step sees that folder (writable),
the run folder (read-only) and the template cache (read-only), and nothing of the workspace:
no Python file the agent wrote is importable. Its output becomes the harness's copy
(`.harness/evaluations/run_<i>.json`, which runs cannot write) and a copy in the run folder for
people and plot.py; results.metrics.read_results reads the first and flags a changed second.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from harness.execution.process import run_process, scrubbed_env, tail
from harness.execution.sandbox import Sandbox
from harness.records.files import write_atomic
from harness.results.metrics import evaluation_path
from harness.template import TemplateSpec

if TYPE_CHECKING:
    from harness.execution.slots import SlotPool

EVALUATOR = Path(".harness") / "evaluator"
OUTPUT = "evaluation.json"
LOG = "evaluation.log"


@dataclass
class EvaluationOutcome:
    error: str
    """Why the run is failed by its evaluation ('' when it was scored)."""
    seconds: float
    sections: dict[str, Any] | None = None


def _stage_code(spec: TemplateSpec, folder: Path, settings: dict[str, Any]) -> None:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    assert spec.evaluation is not None
    for rel in spec.evaluation.code:
        src = spec.root / rel
        if src.is_dir():
            shutil.copytree(src, folder / rel.rstrip("/"), ignore=shutil.ignore_patterns("__pycache__"))
        else:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, folder / rel)
    if spec.settings_file:
        if settings:
            spec.write_settings(folder, settings)
        else:
            shutil.copy2(spec.root / spec.settings_file, folder / spec.settings_file)


def evaluate_run(workspace: Path, spec: TemplateSpec, run_dir: Path, settings: dict[str, Any],
                 sandbox: Sandbox | None = None, slots: SlotPool | None = None,
                 on_start: Callable[[int], None] | None = None, cache_writable: bool = False) -> EvaluationOutcome:
    """Score `run_dir` with the template's evaluation step; writes the harness's copy and the
    run folder's copy, or returns why it could not. `cache_writable`: only for the baseline's
    run_0, whose evaluation completes the shared cache (e.g. absorption's memo of prompt
    activations, which every later evaluation would otherwise recompute); never for a run
    whose code the agent wrote."""
    ev = spec.evaluation
    assert ev is not None
    start = time.monotonic()
    folder = workspace.resolve() / EVALUATOR
    _stage_code(spec, folder, settings)
    out = folder / OUTPUT
    run_abs = run_dir.resolve()
    command = [str(spec.python) if part == "python" else
               part.replace("{run_dir}", str(run_abs)).replace("{out}", str(out)) for part in ev.command]
    proc = run_process(command, folder, folder / "stdout.log", folder / "stderr.log", ev.timeout,
                       env=scrubbed_env(), on_start=on_start, sandbox=sandbox, slots=slots,
                       slot_label=f"evaluate {run_dir.name}", readable=(run_abs,), cache_writable=cache_writable)
    seconds = time.monotonic() - start
    log = (folder / "stdout.log").read_text(errors="replace") + (folder / "stderr.log").read_text(errors="replace")
    write_atomic(run_dir / LOG, log)
    if proc.timed_out:
        return EvaluationOutcome(f"the harness's evaluation was killed after its {ev.timeout} s timeout", seconds)
    if proc.exit_code != 0:
        last = [line for line in tail(folder / "stderr.log", 1500).splitlines() if line.strip()]
        why = last[-1].strip() if last else f"it exited with status {proc.exit_code}"
        return EvaluationOutcome(f"the harness's evaluation failed: {why}", seconds)
    try:
        sections = json.loads(out.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return EvaluationOutcome(f"the harness's evaluation wrote no readable {OUTPUT} ({exc})", seconds)
    if not isinstance(sections, dict):
        return EvaluationOutcome(f"the harness's evaluation wrote {OUTPUT} without a JSON object", seconds)
    text = json.dumps(sections, indent=2) + "\n"
    harness_copy = evaluation_path(run_dir)
    harness_copy.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(harness_copy, text)
    write_atomic(run_dir / ev.output, text)
    # what the step wrote beside its results (sae_bench's per-latent metrics, its log) is for
    # people: it goes to the run folder, the harness reads none of it
    staged = {OUTPUT, "stdout.log", "stderr.log", spec.settings_file or ""} | {c.rstrip("/") for c in ev.code}
    for extra in folder.iterdir():
        if extra.is_file() and not extra.is_symlink() and extra.name not in staged and extra.name != ev.output:
            shutil.copy2(extra, run_dir / extra.name)
    shutil.rmtree(folder, ignore_errors=True)
    return EvaluationOutcome("", seconds, sections)
