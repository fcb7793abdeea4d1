"""`pip install .` (not editable) gives a working `sae-harness` command.

The wheel is built from a copy of the checkout, installed into a fresh virtual
environment, and the toy demo runs through its `sae-harness` script from a folder outside
the checkout: the prompts, the LaTeX template and the templates must come from the
package itself. aider and the other dependencies are made visible to the new environment
through a .pth file pointing at the harness environment's site-packages (installing them
again would download 700 MB and test pip, not this package); the wheel itself is installed
with pip like any other.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

from tests.support import REPO, child_env

SKIP = shutil.ignore_patterns(".git", ".venvs", "workspaces", ".test-results", "build", "*.egg-info",
                              "__pycache__", "tests")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    assert r.returncode == 0, (cmd, r.stdout[-3000:], r.stderr[-3000:])
    return r


def test_installed_wheel_runs_the_toy_demo(tmp_path):
    src = tmp_path / "src"
    shutil.copytree(REPO, src, ignore=SKIP)
    _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(src)])
    wheel = next((tmp_path / "dist").glob("harness-*.whl"))

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", str(venv)])
    py = venv / "bin" / "python"
    site = Path(_run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "harness_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    _run([str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)])

    out = tmp_path / "elsewhere"
    out.mkdir()
    where = _run([str(py), "-c", "import harness; print(harness.__file__)"], cwd=out).stdout.strip()
    assert where.startswith(str(site)), f"harness imported from {where}, not from the installed wheel"

    env = child_env(tmp_path / "home", SAE_HARNESS_ENVS=str(REPO / ".venvs"))
    env.pop("PYTHONPATH", None)
    r = subprocess.run([str(venv / "bin" / "sae-harness"), "--idea", str(REPO / "ideas" / "toy_l1_sweep.json"),
                        "--template", "toy", "--model", f"scripted:{REPO / 'demo' / 'toy_l1_sweep.script.yaml'}",
                        "--workspace-root", str(out / "ws")],
                       cwd=out, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    ws = next(p for p in (out / "ws").iterdir() if (p / "state.json").is_file())
    assert (ws / "paper.pdf").is_file() and (ws / "latex" / "template.tex").is_file()
    assert (ws / "run_0" / "final_info.json").is_file() and (ws / "run_1" / "final_info.json").is_file()
    # the workspace came from the packaged template, not from the checkout
    assert (ws / "template.yaml").read_text() == (site / "harness" / "_data" / "templates" / "toy" /
                                                  "template.yaml").read_text()
