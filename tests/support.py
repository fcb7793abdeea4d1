"""What the harness and fault suites share: a scripted model per test, and the real CLI.

The harness always runs as a real subprocess (`run_harness.py` under the harness
environment), against a scripted OpenAI-compatible server started in this process on
127.0.0.1, so tests exercise aider, litellm, git and the experiment processes for real.
Each suite's conftest.py imports the fixtures from here; a module rather than one
conftest importing another, because every conftest.py is imported under the same name.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import git
import pytest
import yaml

from harness.agent.scripted_llm import Entry, ScriptedLLM

REPO = Path(__file__).resolve().parents[1]
IDEA = {
    "Name": "toy_l1",
    "Title": "A Stronger L1 Penalty on a Toy SAE",
    "Experiment": "Raise the L1 coefficient and compare with the baseline.",
    "Technical_Details": "ReLU SAE on synthetic sparse data; vary l1_coeff.",
    "Implementation_Plan": "1. Change Config.l1_coeff.\n2. Run.",
    "Interestingness": 3, "Feasibility": 10, "Novelty": 1, "Overall_Score": 4, "novel": False,
}



def child_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a harness started by a test: no real provider keys, a private HOME
    (so caches and aider's settings stay in the test's folder)."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("OPENAI", "ANTHROPIC")) and k != "SAE_HARNESS_CACHE"}
    return env | {"HOME": str(home), "PYTHONUNBUFFERED": "1", **extra}


def one_line_error(r, *words) -> str:
    """A user error: exit 2, one line on stderr naming the problem and the fix, no traceback."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stderr + r.stdout
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def edit(path: str, search: str, replace: str) -> str:
    """One SEARCH/REPLACE block as a coding agent writes it."""
    return (f"{path}\n```\n<<<<<<< SEARCH\n{search.strip(chr(10))}\n=======\n"
            f"{replace.strip(chr(10))}\n>>>>>>> REPLACE\n```\n")


def l1_edit(old: str, new: str) -> str:
    line = "    l1_coeff: float = {}    # weight of the L1 sparsity penalty"
    return edit("experiment.py", line.format(old), line.format(new))


def wait_for(cond, timeout: float = 60.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except (OSError, ValueError):  # a file the harness is replacing at this very moment
            pass
        time.sleep(0.1)
    return False


def copy_template(dest: Path, name: str = "toy", drop: tuple[str, ...] = (), patch: dict | None = None) -> Path:
    """A private copy of a template, e.g. with a slower experiment.py or without plot.py."""
    shutil.copytree(REPO / "templates" / name, dest, ignore=shutil.ignore_patterns("__pycache__"))
    for rel in drop:
        (dest / rel).unlink()
    for rel, (old, new) in (patch or {}).items():
        text = (dest / rel).read_text()
        assert old in text, f"{old!r} not in {rel}"
        (dest / rel).write_text(text.replace(old, new, 1))
    return dest


@dataclass
class HarnessRun:
    returncode: int
    stdout: str
    stderr: str
    workspace: Path | None

    def repo(self) -> git.Repo:
        return git.Repo(self.workspace)

    def log(self) -> list[str]:
        return [c.summary for c in reversed(list(self.repo().iter_commits()))]

    def state(self) -> dict:
        return json.loads((self.workspace / "state.json").read_text())

    def chat(self) -> list[dict]:
        return [json.loads(x) for x in (self.workspace / "chat.jsonl").read_text().splitlines()]


class Harness:
    """Runs `run_harness.py` in a subprocess with a private HOME and workspace root."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.root = tmp / "workspaces"
        self.home = tmp / "home"
        self.home.mkdir()
        self.idea_path = tmp / "idea.json"
        self.idea_path.write_text(json.dumps(IDEA))
        self.llm: ScriptedLLM | None = None
        self.extra_env: dict[str, str] = {}

    def serve(self, replies: list) -> ScriptedLLM:
        entries = [Entry(reply=r) if isinstance(r, str) else Entry(**r) for r in replies]
        if self.llm:
            self.llm.stop()
        self.llm = ScriptedLLM(entries).start()
        return self.llm

    def env(self) -> dict[str, str]:
        return child_env(self.home, OPENAI_API_KEY="sk-test-secret-do-not-leak") | self.extra_env

    def args(self, *extra: str, template: str = "toy") -> list[str]:
        base = [str(REPO / ".venvs" / "harness" / "bin" / "python"), str(REPO / "run_harness.py")]
        common = ["--workspace-root", str(self.root)]
        if self.llm and "--model" not in extra:
            common += ["--model", "openai/scripted", "--api-base", self.llm.url]
        if "--resume" not in extra and "--template" not in extra:
            common += ["--template", template]
        if "--resume" not in extra and "--stop-after" not in extra:
            common += ["--stop-after", "experiments"]  # most tests are about one stage
        return base + list(extra) + common

    def start(self, *extra: str, **kw) -> subprocess.Popen:
        return subprocess.Popen(self.args(*extra, **kw), cwd=self.tmp, env=self.env(), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)

    def run(self, *extra: str, timeout: float = 240, **kw) -> HarnessRun:
        proc = self.start(*extra, **kw)
        out, err = proc.communicate(timeout=timeout)
        return HarnessRun(proc.returncode, out, err, self.workspace())

    def workspace(self) -> Path | None:
        found = sorted(p for p in self.root.glob("*_*") if (p / "state.json").exists()) if self.root.exists() else []
        return found[-1] if found else None

    def state(self) -> dict:
        ws = self.workspace()
        if ws is None:
            raise FileNotFoundError(f"no workspace under {self.root} yet")
        return json.loads((ws / "state.json").read_text())

    def write_config(self, data: dict) -> Path:
        path = self.tmp / "harness.yaml"
        path.write_text(yaml.safe_dump(data))
        return path


@pytest.fixture
def harness(tmp_path):
    h = Harness(tmp_path)
    yield h
    if h.llm:
        h.llm.stop()


@pytest.fixture(scope="session", autouse=True)
def _environments_built():
    for env in ("harness", "sae"):
        if not (REPO / ".venvs" / env / "bin" / "python").exists():
            pytest.exit(f".venvs/{env} missing: run `bash setup.sh` (bash test.sh does it for you)", returncode=2)
    assert sys.version_info >= (3, 11)
