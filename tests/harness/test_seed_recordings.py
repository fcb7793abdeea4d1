"""The seed ideas' recordings against today's SAE template, without running the SAEs.

Each recording's edits are applied to a copy of templates/sae_variants with aider's own
SEARCH/REPLACE code, in order, as a replay would apply them: a template change that breaks
a recording fails here in seconds rather than ten minutes into README command 1. The
resulting experiment.py is then checked by tests/seed_ideas/check_<idea>.py, which tests
the idea's maths on tensors small enough to work out by hand (experiment interpreter).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from aider.coders.editblock_coder import (
    DEFAULT_FENCE,
    do_replace,
    find_original_update_blocks,
)
from conftest import REPO

SEED_IDEAS = ["feature_momentum", "orthogonal_sae"]


def _apply_recording(name: str, workspace: Path) -> list[str]:
    """Apply every edit of the recording's experiments and plots stages; returns files edited."""
    edited = []
    for n, line in enumerate((REPO / "recordings" / f"{name}.jsonl").read_text().splitlines(), 1):
        rec = json.loads(line)
        if not rec.get("ok") or rec["stage"] not in ("experiments", "plots"):
            continue
        for path, search, replace in find_original_update_blocks(rec["reply"]):
            target = workspace / path
            new = do_replace(str(target), target.read_text(), search, replace, DEFAULT_FENCE)
            assert new is not None, f"recordings/{name}.jsonl line {n}: the edit of {path} no longer applies"
            target.write_text(new)
            edited.append(path)
    return edited


@pytest.mark.parametrize("name", SEED_IDEAS)
def test_recording_applies_to_the_template_and_the_maths_holds(name, tmp_path):
    recording = REPO / "recordings" / f"{name}.jsonl"
    assert recording.exists(), f"{recording} is missing"
    assert (REPO / "ideas" / f"{name}.json").exists()
    ws = tmp_path / "ws"
    shutil.copytree(REPO / "templates" / "sae_variants", ws, ignore=shutil.ignore_patterns("__pycache__"))
    edited = _apply_recording(name, ws)
    assert "experiment.py" in edited and "plot.py" in edited and "notes.txt" in edited
    check = REPO / "tests" / "seed_ideas" / f"check_{name}.py"
    proc = subprocess.run([str(REPO / ".venvs" / "sae" / "bin" / "python"), str(check), str(ws)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "maths ok" in proc.stdout


@pytest.mark.parametrize("name", SEED_IDEAS)
def test_recording_covers_every_stage_with_at_least_three_runs(name):
    lines = [json.loads(x) for x in (REPO / "recordings" / f"{name}.jsonl").read_text().splitlines()]
    stages = {rec["stage"] for rec in lines}
    assert {"experiments", "plots", "writeup"} <= stages
    run_prompts = [rec for rec in lines if rec["stage"] == "experiments" and "finished in" in rec["prompt"]]
    assert len({rec["turn"] for rec in run_prompts}) >= 3  # results of >= 3 runs were fed back
