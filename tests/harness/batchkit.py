"""The three-idea batch the batch tests share: two good ideas with full scripts (three runs,
a figure, a paper) and one whose every run crashes, each with its own scripted model."""

from __future__ import annotations

import copy
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import yaml
from conftest import REPO, edit

from tests.support import child_env

DEMO_IDEA = json.loads((REPO / "ideas" / "toy_l1_sweep.json").read_text())
DEMO_SCRIPT = yaml.safe_load((REPO / "demo" / "toy_l1_sweep.script.yaml").read_text())
GOOD = ("toy_l1_sweep", "toy_l1_second")
CRASH = "toy_crash"


def _crash(n: int) -> str:
    search = "    cfg = Config()" if n == 1 else f"    raise RuntimeError('boom {n - 1}')"
    replace = f"    cfg = Config()\n    raise RuntimeError('boom {n}')" if n == 1 else f"    raise RuntimeError('boom {n}')"
    return edit("experiment.py", search, replace)


def write_batch_inputs(folder: Path) -> tuple[Path, Path]:
    """ideas/<name>.json and scripts/<name>.yaml for the three ideas; returns both folders."""
    ideas, scripts = folder / "ideas", folder / "scripts"
    ideas.mkdir(parents=True)
    scripts.mkdir()
    second = dict(DEMO_IDEA, Name=GOOD[1], Title="A Second Look at the Sparsity Penalty of a Toy SAE")
    crash = dict(DEMO_IDEA, Name=CRASH, Title="An Idea Whose Code Always Crashes")
    for idea in (DEMO_IDEA, second, crash):
        (ideas / f"{idea['Name']}.json").write_text(json.dumps(idea, indent=2))
    (scripts / f"{GOOD[0]}.yaml").write_text(yaml.safe_dump(DEMO_SCRIPT))
    script = copy.deepcopy(DEMO_SCRIPT)
    script[0]["expect"] = second["Title"]  # the same sweep, asked for under another title
    (scripts / f"{GOOD[1]}.yaml").write_text(yaml.safe_dump(script))
    crashes = [{"expect": crash["Title"], "reply": _crash(1)}]
    crashes += [{"expect": f"boom {n - 1}", "reply": _crash(n)} for n in range(2, 5)]
    (scripts / f"{CRASH}.yaml").write_text(yaml.safe_dump(crashes))
    return ideas, scripts


def cli(tmp: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """run_harness.py with exactly these arguments (sub-commands take no --template etc.)."""
    home = tmp / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run([str(REPO / ".venvs" / "harness" / "bin" / "python"), str(REPO / "run_harness.py"), *args],
                          cwd=tmp, env=child_env(home), text=True, capture_output=True, timeout=timeout)



def batch_dir(root: Path) -> Path:
    found = sorted((root / "batches").iterdir())
    assert len(found) == 1, found
    return found[0]


def metric(info: dict, path: str) -> float:
    node = info
    for key in path.split("/"):
        node = node[key]
    return float(node)


def toy_metrics() -> list[dict]:
    return yaml.safe_load((REPO / "templates" / "toy" / "template.yaml").read_text())["metrics"]


def intervals(workspaces: list[Path]) -> list[tuple[float, float, str]]:
    """(start, end, what) of every experiment process the workspaces record in meta.json."""
    from datetime import datetime

    out = []
    for ws in workspaces:
        for meta_path in ws.glob("run_*/meta.json"):
            meta = json.loads(meta_path.read_text())
            if "cached_from" in meta:
                continue  # run_0 copied from the cache: it ran once, for another workspace
            start = datetime.fromisoformat(meta["started_at"]).timestamp()
            out.append((start, start + meta["duration_s"], f"{ws.name}/{meta_path.parent.name}"))
    return sorted(out)


@dataclass
class Batch:
    tmp: Path
    root: Path
    result: subprocess.CompletedProcess
    folder: Path

    def record(self) -> dict:
        return json.loads((self.folder / "batch.json").read_text())

    def workspace(self, name: str) -> Path:
        return Path(self.record()["ideas"][name]["workspace"])

    def holds(self) -> list[dict]:
        return [json.loads(x) for x in (self.folder / "slots.jsonl").read_text().splitlines()]


def run_batch(tmp: Path, *extra: str) -> Batch:
    ideas, scripts = write_batch_inputs(tmp)
    root = tmp / "workspaces"
    r = cli(tmp, "batch", str(ideas), "--model", f"scripted:{scripts}", "--template", "toy",
            "--workspace-root", str(root), "--slots", "1", "--agents", "3", *extra, timeout=420)
    return Batch(tmp, root, r, batch_dir(root))


def shared_batch(tmp_path_factory, worker_id: str) -> Batch:
    """run_batch() once per test session, however many xdist workers ask for it: the first
    runs it under a lock, the others wait and read where it is (the pytest-xdist recipe)."""
    import fcntl

    if worker_id == "master":
        return run_batch(tmp_path_factory.mktemp("batch"))
    shared = tmp_path_factory.getbasetemp().parent  # this session's, common to its workers
    note = shared / "local_batch.json"
    with open(shared / "local_batch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if note.is_file():
            d = json.loads(note.read_text())
            r = subprocess.CompletedProcess(d["args"], d["returncode"], d["stdout"], d["stderr"])
            return Batch(Path(d["tmp"]), Path(d["root"]), r, Path(d["folder"]))
        tmp = shared / "local_batch"
        tmp.mkdir()
        b = run_batch(tmp)
        note.write_text(json.dumps({"tmp": str(b.tmp), "root": str(b.root), "folder": str(b.folder),
                                    "args": b.result.args, "returncode": b.result.returncode,
                                    "stdout": b.result.stdout, "stderr": b.result.stderr}))
        return b
