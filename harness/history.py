"""`run_harness.py history WORKSPACE`: what the agent changed, in order, from the workspace's git log.

Every agent edit is one commit whose subject the harness wrote ("[stage] turn N for run_i:
agent edit of FILES"), so the history is read back from git alone; `--show N` prints one
edit's diff and `--runs` lists the runs with the commit each one ran.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass
from pathlib import Path

import git
from rich.console import Console
from rich.syntax import Syntax
from rich.table import Table

from harness.errors import UserError
from harness.records.run_meta import read_meta

# "[experiments] turn 3 for run_2: agent edit of experiment.py" / "[experiments] turn 4, ALL_COMPLETED: ..."
# / "[writeup] method (turn 5): agent edit of ..."
EDIT_RE = re.compile(r"^\[(?P<stage>\w+)\] (?P<label>.*?): (?:agent edit of (?P<files>.+)|no edit)$")
TURN_RE = re.compile(r"turn (\d+)")
RUN_RE = re.compile(r"for run_(\d+)")


@dataclass
class Edit:
    number: int
    stage: str
    turn: int | None
    run: int | None
    files: list[str]
    added: int
    removed: int
    commit: git.Commit

    @property
    def label(self) -> str:
        return self.commit.summary


def _repo(workspace: Path) -> git.Repo:
    if not (workspace / "state.json").exists() or not (workspace / ".git").exists():
        raise UserError(f"{workspace} is not a harness workspace (no state.json or .git); "
                        "pass a folder under workspaces/")
    return git.Repo(workspace)


def agent_edits(workspace: Path) -> list[Edit]:
    """Commits that changed a file on the agent's behalf, oldest first, numbered from 1."""
    repo = _repo(workspace)
    edits: list[Edit] = []
    for commit in reversed(list(repo.iter_commits())):
        m = EDIT_RE.match(commit.summary)
        if not m or not m.group("files"):
            continue
        files = [f.strip() for f in m.group("files").split(",")]
        stats = commit.stats.files
        turn, run = TURN_RE.search(m.group("label")), RUN_RE.search(m.group("label"))
        edits.append(Edit(
            number=len(edits) + 1, stage=m.group("stage"),
            turn=int(turn.group(1)) if turn else None, run=int(run.group(1)) if run else None,
            files=files,
            added=sum(stats.get(f, {}).get("insertions", 0) for f in files),
            removed=sum(stats.get(f, {}).get("deletions", 0) for f in files),
            commit=commit,
        ))
    return edits


def runs(workspace: Path) -> list[dict]:
    """Every run folder with its status and the commit of the code it ran."""
    repo = _repo(workspace)
    tags = {t.name: t.commit.hexsha for t in repo.tags}
    out = []
    for folder in sorted(workspace.glob("run_*"), key=_run_order):
        meta = read_meta(folder)
        out.append({
            "run": folder.name,
            "status": (meta.status or "unknown") if meta else "unknown",
            "commit": meta.commit[:10] if meta else "",
            "tag": folder.name if folder.name in tags else "",
            "seconds": meta.duration_s if meta else None,
            "error": meta.error if meta else "",
        })
    return out


def _run_order(path: Path) -> tuple:
    parts = path.name.split("_")
    return (int(parts[1]) if parts[1].isdigit() else 10**6, path.name)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="run_harness.py history",
                                description="The agent's edits to an idea's workspace, from its git log.")
    p.add_argument("workspace", type=Path)
    p.add_argument("--show", type=int, metavar="N", help="print the diff of edit N")
    p.add_argument("--runs", action="store_true", help="list the runs and the commit each one ran")
    p.error = lambda message: (_ for _ in ()).throw(UserError(f"history: {message} (see history --help)"))
    args = p.parse_args(argv)
    ws = args.workspace.resolve()
    console = Console(highlight=False)

    if args.runs:
        table = Table(title=f"Runs in {ws.name}")
        for col in ("run", "status", "commit", "seconds", "note"):
            table.add_column(col)
        for r in runs(ws):
            secs = f"{r['seconds']:.1f}" if isinstance(r["seconds"], (int, float)) else ""
            table.add_row(r["run"], r["status"], r["commit"], secs, r["error"][:60])
        console.print(table)
        return 0

    edits = agent_edits(ws)
    if args.show is not None:
        if not 1 <= args.show <= len(edits):
            raise UserError(f"history --show {args.show}: there are {len(edits)} edits; pick 1..{len(edits)}")
        e = edits[args.show - 1]
        parent = e.commit.parents[0] if e.commit.parents else None
        diff = git.Repo(ws).git.diff(parent.hexsha if parent else git.NULL_TREE, e.commit.hexsha, "--", *e.files)
        console.print(f"[bold]edit {e.number}[/] {e.commit.hexsha[:10]} {e.label}")
        if console.is_terminal:
            console.print(Syntax(diff, "diff", theme="ansi_dark", word_wrap=True))
        else:  # piped: the plain diff, unwrapped, for patch or grep
            print(diff)
        return 0

    table = Table(title=f"Agent edits in {ws.name} ({len(edits)})")
    for col in ("#", "stage", "turn", "run", "files", "+/-", "commit"):
        table.add_column(col)
    for e in edits:
        table.add_row(str(e.number), e.stage, str(e.turn or ""), "" if e.run is None else f"run_{e.run}",
                      ", ".join(e.files), f"+{e.added} -{e.removed}", e.commit.hexsha[:10])
    console.print(table)
    console.print("show one with: run_harness.py history WORKSPACE --show N")
    return 0
