"""What a fault must not take away from a workspace: completed runs, commits, tags, state.json.

`problems(ws)` checks a workspace on its own: state.json loads, every run it records done
has its folder, its run_<i> tag on the recorded commit and, in that commit, the very
files on disk; git agrees (no tag state does not know), fsck passes, nothing is left
uncommitted. `problems(ws, before)` also checks that everything a `snapshot` saw earlier
is still there, byte for byte, and that history was only appended to. Each problem is
one line; bench/fault_table.py counts them as data lost.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import git

from harness.errors import UserError
from harness.records.state import State, load_state


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    head: str
    tags: dict[str, str]
    files: dict[str, str]
    """Every file of every completed run folder -> its sha256."""
    done_runs: frozenset[str]
    done_stages: frozenset[str]


def snapshot(ws: Path) -> Snapshot:
    state = load_state(ws)
    repo = git.Repo(ws)
    files = {}
    for rec in state.done_runs():
        for p in sorted((ws / rec.folder).rglob("*")):
            if p.is_file():
                files[str(p.relative_to(ws))] = _sha(p)
    return Snapshot(head=repo.head.commit.hexsha, tags={t.name: t.commit.hexsha for t in repo.tags},
                    files=files, done_runs=frozenset(str(r.index) for r in state.done_runs()),
                    done_stages=frozenset(k for k, v in state.stages.items() if v == "done"))


def _run_problems(ws: Path, repo: git.Repo, state: State) -> list[str]:
    out = []
    tags = {t.name: t for t in repo.tags}
    for rec in state.done_runs():
        tag, info = tags.get(f"run_{rec.index}"), ws / rec.folder / "final_info.json"
        if not info.is_file():
            out.append(f"run_{rec.index} is done in state.json but {rec.folder}/final_info.json is gone")
        if tag is None:
            out.append(f"run_{rec.index} is done in state.json but has no tag")
            continue
        if tag.commit.hexsha != rec.commit:
            out.append(f"tag run_{rec.index} is on {tag.commit.hexsha[:8]}, state.json says {rec.commit[:8]}")
        try:
            blob = tag.commit.tree / f"{rec.folder}/final_info.json"
        except KeyError:
            out.append(f"the commit of run_{rec.index} does not hold {rec.folder}/final_info.json")
            continue
        if info.is_file() and blob.data_stream.read() != info.read_bytes():
            out.append(f"{rec.folder}/final_info.json differs from its committed version")
    done = {f"run_{r.index}" for r in state.done_runs()}
    out += [f"git has tag {name} but state.json has no completed run for it"
            for name in tags if name.startswith("run_") and name not in done]
    return out


def problems(ws: Path, before: Snapshot | None = None, clean: bool = True) -> list[str]:
    try:
        state = load_state(ws)
    except UserError as exc:
        return [f"state.json unreadable: {exc}"]
    repo = git.Repo(ws)
    out = _run_problems(ws, repo, state)
    fsck = repo.git.fsck("--no-progress", with_extended_output=True, with_exceptions=False)
    if fsck[0] != 0:
        out.append(f"git fsck failed: {fsck[2][:300]}")
    if clean and repo.is_dirty(untracked_files=True):
        out.append(f"left uncommitted: {repo.git.status('--short')[:300]}")
    if before is None:
        return out
    if not repo.is_ancestor(before.head, repo.head.commit.hexsha):
        out.append(f"commit {before.head[:8]} is no longer in the history of HEAD")
    now_tags = {t.name: t.commit.hexsha for t in repo.tags}
    out += [f"tag {n} moved or vanished" for n, c in before.tags.items() if now_tags.get(n) != c]
    for rel, sha in before.files.items():
        p = ws / rel
        if not p.is_file():
            out.append(f"{rel} is gone")
        elif _sha(p) != sha:
            out.append(f"{rel} changed")
    runs_now = {str(r.index) for r in state.done_runs()}
    out += [f"run_{i} no longer recorded done" for i in sorted(before.done_runs - runs_now)]
    stages_now = {k for k, v in state.stages.items() if v == "done"}
    out += [f"stage {s} no longer recorded done" for s in sorted(before.done_stages - stages_now)]
    return out
