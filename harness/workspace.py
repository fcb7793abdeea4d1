"""An idea's workspace: a copy of the template in its own git repository.

Git is the review record: the first commit is the template plus idea.json, every agent
edit is one commit whose message names the stage and turn, every completed run is a
commit tagged run_<i>. Edits the agent is not allowed to make are reverted here.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import git

from harness.errors import UserError
from harness.execution.links import find_special
from harness.ideas import Idea
from harness.template import TemplateSpec

HARNESS_DIR = ".harness"
"""Harness-private files inside a workspace (chat history, rejected edits); git-ignored."""
HARNESS_OWNED = ("chat.jsonl", "harness.log")
"""Written by the harness, never by the agent; committed alongside the agent's edits."""
MAX_COMMITTED_FILE = 20 * 1024 * 1024

GITIGNORE = """\
# written by the harness: caches and large artefacts stay out of the review record
__pycache__/
*.pyc
.harness/
state.json
state.json.bak
.state.*
artifacts/
.cache/
*.pt
*.pth
*.ckpt
*.safetensors
*.npy
*.npz
latex/*.aux
latex/*.log
latex/*.fls
latex/*.fdb_latexmk
latex/*.out
latex/*.blg
latex/*.bbl
latex/*.synctex.gz
"""


def _sha(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except (FileNotFoundError, IsADirectoryError):
        return ""


@dataclass
class RevertedEdit:
    path: str
    action: str
    """'restored' (tracked file put back), 'moved' (new file moved to .harness/rejected) or
    'removed' (a link or other special file a run left; see links.py)."""
    detail: str = ""

    def describe(self) -> str:
        return f"{self.path} ({self.detail}): {self.action}" if self.detail else f"{self.path}: {self.action}"


class Workspace:
    def __init__(self, path: Path):
        self.path = path.resolve()
        try:
            self.repo = git.Repo(self.path)
        except (git.InvalidGitRepositoryError, git.NoSuchPathError):
            raise UserError(f"{path} is not a harness workspace (no git repository); pass a folder under workspaces/") from None

    # --- creation ----------------------------------------------------------
    @classmethod
    def create(cls, root: Path, idea: Idea, template: TemplateSpec, now: datetime | None = None,
               settings: dict | None = None) -> Workspace:
        now = now or datetime.now()
        root.mkdir(parents=True, exist_ok=True)
        base = f"{now:%Y%m%d_%H%M%S}_{idea.name}"
        path, n = root / base, 1
        while path.exists():
            n += 1
            path = root / f"{base}_{n}"
        shutil.copytree(template.root, path, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", ".git"))
        template.write_settings(path, settings or {})  # in the first commit: part of what the idea started from
        (path / "idea.json").write_text(json.dumps(idea.raw, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        own = (path / ".gitignore").read_text(encoding="utf-8") if (path / ".gitignore").exists() else ""
        (path / ".gitignore").write_text(GITIGNORE + ("\n" + own if own else ""), encoding="utf-8")
        (path / HARNESS_DIR).mkdir()
        repo = git.Repo.init(path, initial_branch="main")
        with repo.config_writer() as cw:
            # commits must work on machines with no global git identity
            cw.set_value("user", "name", "sae-harness")
            cw.set_value("user", "email", "harness@localhost")
            cw.set_value("commit", "gpgsign", "false")
        repo.git.add("--all")
        repo.git.commit("-m", f"[setup] template {template.name} + idea {idea.name}\n\n{idea.title}")
        return cls(path)

    # --- queries -----------------------------------------------------------
    def head(self) -> str:
        return self.repo.head.commit.hexsha

    def has_tag(self, name: str) -> bool:
        return name in {t.name for t in self.repo.tags}

    def file_hash(self, rel: str) -> str:
        return _sha(self.path / rel)

    def dirty_paths(self) -> dict[str, str]:
        """Changed, deleted or new (not ignored) paths -> content hash ('' if deleted)."""
        out: dict[str, str] = {}
        for line in self.repo.git.status("--porcelain=v1", "-z", "--untracked-files=all").split("\0"):
            if not line:
                continue
            rel = line[3:]
            out[rel] = _sha(self.path / rel)
        return out

    # --- changes -----------------------------------------------------------
    def commit(self, message: str, paths: list[str] | None = None) -> str | None:
        """Commit the given paths (default: everything not ignored). None if nothing changed."""
        self._exclude_huge_files()
        if paths is None:
            self.repo.git.add("--all")
        else:
            existing = [p for p in paths if (self.path / p).exists() or self._tracked(p)]
            if existing:
                self.repo.git.add("--all", "--", *existing)
        if not self.repo.is_dirty(index=True, working_tree=False, untracked_files=False):
            return None
        self.repo.git.commit("-m", message, "--no-verify")
        return self.head()

    def tag(self, name: str, commit: str | None = None) -> None:
        if not self.has_tag(name):
            self.repo.create_tag(name, ref=commit or self.head())

    def _tracked(self, rel: str) -> bool:
        return bool(self.repo.git.ls_files("--", rel))

    def _exclude_huge_files(self) -> None:
        """Keep multi-MB artefacts out of git (they stay on disk); the run's meta.json lists them."""
        exclude = self.path / ".git" / "info" / "exclude"
        listed = set(exclude.read_text().splitlines()) if exclude.exists() else set()
        new = []
        for rel in self.dirty_paths():
            p = self.path / rel
            if p.is_file() and p.stat().st_size > MAX_COMMITTED_FILE and "/" + rel not in listed:
                new.append("/" + rel)
        if new:
            exclude.parent.mkdir(parents=True, exist_ok=True)
            with exclude.open("a") as fh:
                fh.write("\n".join(new) + "\n")

    def split_agent_changes(self, before: dict[str, str], allowed: set[str]) -> tuple[list[str], list[str]]:
        """Paths changed since `before` (a dirty_paths() snapshot), split into allowed and not."""
        now = self.dirty_paths()
        changed = [p for p, h in now.items() if before.get(p) != h and p not in HARNESS_OWNED]
        # a path dirty before and clean now was changed back by the agent
        changed += [p for p in before if p not in now and p not in HARNESS_OWNED]
        ok = sorted(p for p in changed if p in allowed)
        bad = sorted(p for p in changed if p not in allowed)
        return ok, bad

    def revert(self, paths: list[str], label: str) -> list[RevertedEdit]:
        """Undo edits to paths the agent may not touch; new files are kept aside for review."""
        done = []
        for rel in paths:
            if self._tracked(rel):
                self.repo.git.checkout("HEAD", "--", rel)
                done.append(RevertedEdit(rel, "restored"))
            elif (self.path / rel).exists():
                dest = self.path / HARNESS_DIR / "rejected" / label / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.move(str(self.path / rel), dest)
                done.append(RevertedEdit(rel, "moved"))
        return done

    def remove_special_files(self) -> list[RevertedEdit]:
        """Remove the links, FIFOs and sockets a run left; put back tracked files they replaced."""
        done = []
        for rel, what in find_special(self.path):
            (self.path / rel).unlink()
            tracked = self._tracked(rel)
            if tracked:
                self.repo.git.checkout("HEAD", "--", rel)
            done.append(RevertedEdit(rel, "removed" + (", restored from git" if tracked else ""), what))
        return done

    def stash_paths(self, paths: list[str], message: str) -> str | None:
        """Set aside uncommitted edits (from an interrupted turn) as a git stash entry."""
        existing = [p for p in paths if (self.path / p).exists() or self._tracked(p)]
        if not existing:
            return None
        self.repo.git.stash("push", "--include-untracked", "-m", message, "--", *existing)
        return self.repo.git.rev_parse("stash@{0}")
