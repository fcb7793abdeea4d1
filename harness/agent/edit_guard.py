"""Edits aider must refuse outright, because the harness could not undo them afterwards.

aider runs non-interactively (it answers yes to its own questions), so a reply naming
`/home/me/.bashrc`, `../../elsewhere.py` or `.git/hooks/post-commit` would be applied with
the user's rights. Edits inside the workspace that git sees are left to the harness
(undone after the turn if the stage did not hand the agent that file); everything git
cannot see is refused here: paths outside the workspace (after following links), paths
inside .git, and git-ignored paths (state.json, .harness/, caches).
"""

from __future__ import annotations

import subprocess
from pathlib import Path


def why_refused(workspace: Path, full_path: str) -> str | None:
    ws, target = workspace.resolve(), Path(full_path).resolve()
    if target != ws and ws not in target.parents:
        return "outside the workspace"
    rel = target.relative_to(ws)
    if rel.parts[:1] == (".git",):
        return "inside .git"
    ignored = subprocess.run(["git", "check-ignore", "-q", "--", str(rel)], cwd=ws,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return "ignored by git" if ignored.returncode == 0 else None


def guard_edits(coder, workspace: Path) -> list[tuple[str, str]]:
    """Make `coder` refuse such edits; returns the list it appends (path, reason) to."""
    refused: list[tuple[str, str]] = []
    allowed_to_edit = coder.allowed_to_edit

    def guarded(path):
        why = why_refused(workspace, coder.abs_root_path(path))
        if why:
            refused.append((path, why))
            coder.io.tool_error(f"Skipping edits to {path}: {why}")
            return False
        return allowed_to_edit(path)

    coder.allowed_to_edit = guarded
    return refused
