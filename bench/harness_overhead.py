"""Harness overhead per experiment run: wall time minus experiment time minus model time.

Runs one idea with N runs on the toy template against the scripted model (each reply
changes the L1 coefficient), as a real subprocess, and prints the figures.

    .venvs/harness/bin/python bench/harness_overhead.py [--runs 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from harness.agent.scripted_llm import Entry, ScriptedLLM  # noqa: E402

LINE = "    l1_coeff: float = {}    # weight of the L1 sparsity penalty"


def edit(old: str, new: str) -> str:
    return (f"experiment.py\n```\n<<<<<<< SEARCH\n{LINE.format(old)}\n=======\n"
            f"{LINE.format(new)}\n>>>>>>> REPLACE\n```\n")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=6)
    n = ap.parse_args().runs
    values = ["0.02"] + [f"{0.03 + 0.02 * i:.2f}" for i in range(n)]
    replies = [Entry(edit(values[i], values[i + 1])) for i in range(n)] + [Entry("ALL_COMPLETED")]
    tmp = Path(tempfile.mkdtemp(prefix="bench_overhead_"))
    idea = json.loads((ROOT / "ideas" / "toy_l1_sweep.json").read_text())
    (tmp / "idea.json").write_text(json.dumps(idea))
    env = {**os.environ, "HOME": str(tmp)}
    with ScriptedLLM(replies) as llm:
        cmd = [str(ROOT / ".venvs/harness/bin/python"), str(ROOT / "run_harness.py"), "--idea", str(tmp / "idea.json"),
               "--template", "toy", "--model", "openai/scripted", "--api-base", llm.url,
               "--workspace-root", str(tmp / "ws"), "--max-runs", str(n), "--stop-after", "experiments"]
        t0 = time.monotonic()
        subprocess.run(cmd, env={**env, "OPENAI_API_KEY": "sk-bench"}, check=True, capture_output=True)
        wall = time.monotonic() - t0
    ws = next(p for p in (tmp / "ws").iterdir() if (p / "state.json").exists())
    runs = sorted(ws.glob("run_*/meta.json"))
    experiment_s = sum(json.loads(p.read_text())["duration_s"] for p in runs)
    calls = [json.loads(x) for x in (ws / "chat.jsonl").read_text().splitlines()]
    model_s = sum(c["latency_s"] for c in calls)
    overhead = wall - experiment_s - model_s
    print(f"runs (incl. baseline run_0): {len(runs)}   model calls: {len(calls)}")
    print(f"wall time:        {wall:7.2f} s (includes ~start-up: python, aider, litellm imports)")
    print(f"experiment time:  {experiment_s:7.2f} s")
    print(f"model time:       {model_s:7.2f} s (scripted server latency)")
    print(f"harness overhead: {overhead:7.2f} s total, {overhead / len(runs):.2f} s per run")


if __name__ == "__main__":
    main()
