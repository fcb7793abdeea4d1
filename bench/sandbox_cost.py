"""What the isolation costs per run: the namespace sandbox's start-up and saekit's cache check.

    .venvs/harness/bin/python bench/sandbox_cost.py [--repeat 10] [--check-mb 600]

Times, over --repeat tries (median), a trivial command and the experiment interpreter
starting with numpy, each bare and inside the namespace sandbox (the same bubblewrap command
line a run gets, on a scratch workspace), then the cache check of an artefact of --check-mb
MB (SHA-256 of every file, as saekit does whenever a run uses an artefact; the default
training artefact is about 600 MB). Prints the machine's load average with the figures:
on a shared machine they are upper bounds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.config import envs_dir  # noqa: E402
from harness.execution.sandbox import bwrap_works, make_sandbox  # noqa: E402


def _median_s(argv: list[str], cwd: Path, env: dict[str, str], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--check-mb", type=int, default=600)
    args = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} {os.getloadavg()[1]:.1f} on {os.cpu_count()} cores")
    python = str(envs_dir() / "sae" / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="sandbox-cost-") as tmp:
        ws, cache = Path(tmp) / "ws", Path(tmp) / "cache"
        ws.mkdir()
        (ws / ".git").mkdir()
        if bwrap_works():
            sb = make_sandbox("namespace", None, 60, (cache,))
            env = {**os.environ, **sb.env(ws)}
            for label, cmd in (("true", ["/bin/true"]), ("python -c 'import numpy'", [python, "-c", "import numpy"])):
                bare = _median_s(cmd, ws, env, args.repeat)
                caged = _median_s(sb.wrap(cmd, ws), ws, env, args.repeat)
                print(f"{label:<26} bare {bare:6.3f} s   namespace {caged:6.3f} s   cost {caged - bare:+.3f} s")
        else:
            print("bubblewrap cannot make namespaces here: no namespace figures")
        code = (f"import sys, time; sys.path.insert(0, {str(ROOT / 'templates' / 'sae_variants')!r})\n"
                "from pathlib import Path\nfrom saekit import cache\n"
                f"root = Path({str(cache)!r})\n"
                f"size = {args.check_mb} * 2**20\n"
                "e = cache.cached_dir('big', {'n': 1}, lambda o: (o / 'acts.pt').write_bytes(b'\\1' * size), root)\n"
                "t = time.perf_counter(); assert cache.check(e, {'n': 1}) is None\n"
                f"print(f'cache check of {args.check_mb} MB: {{time.perf_counter() - t:.2f}} s')\n")
        subprocess.run([python, "-c", code], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
