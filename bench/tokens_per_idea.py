"""Prompt tokens a whole idea costs: experiments -> plots -> paper -> review, replayed with the scripted model;
and what generating ideas costs: `ideas` on sae_variants with the demo script (5 ideas, one
refinement round each, novelty searches answered by the offline index).

Replays the scripted toy idea of tests/harness/test_writeup.py (1 run, plots, 16 writeup
calls) and three reviewers plus a meta-review (REVIEWERS) through the real CLI, aider and
latexmk, then prints the prompt tokens of every
model call from the workspace's chat.jsonl, per stage and in total, beside the reference
transcript's figure (its aider "Tokens: N sent" lines, summed).

    .venvs/harness/bin/python bench/tokens_per_idea.py [--part all|idea|ideation|experiments] [--runs 5]

`--part experiments` replays the experiments stage alone for an idea of --runs runs (each reply
changes l1_coeff and adds a section to notes.txt, as the prompt asks) and prints the prompt
tokens of every turn, which should stay flat: only notes.txt, written by the agent, may grow.

Token counts are aider's: with streaming (the default) it counts every message it sends, its
system prompt and the files' contents included, with litellm's tokenizer (its default one for
a model it does not know), close to what an OpenAI model bills. Without streaming they are the scripted
server's (characters / 4).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests" / "harness")]

from conftest import IDEA  # noqa: E402
from test_writeup import _good_texts, _sections, _upstream  # noqa: E402

from harness.agent.scripted_llm import Entry, ScriptedLLM  # noqa: E402
from tests.support import edit, l1_edit  # noqa: E402

REFERENCE = Path("/work/shared/seeds") if Path("/work/shared/seeds").exists() else ROOT.parent / "shared" / "seeds"


def reference_tokens() -> tuple[int, int] | None:
    files = sorted(REFERENCE.glob("004_*.txt"))
    if not files:
        return None
    sent = [float(x) * 1000 for x in re.findall(r"Tokens: ([0-9.]+)k sent", files[0].read_text())]
    return len(sent), int(sum(sent))


def ideation() -> None:
    """`ideas --template sae_variants --n 5` with demo/ideas_sae_variants.script.yaml, offline."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_ideas_"))
    out = tmp / "ideas"
    cmd = [str(ROOT / ".venvs/harness/bin/python"), str(ROOT / "run_harness.py"), "ideas", "--template", "sae_variants",
           "--n", "5", "--reflections", "1", "--sources", "offline", "--out", str(out),
           "--model", f"scripted:{ROOT / 'demo' / 'ideas_sae_variants.script.yaml'}"]
    subprocess.run(cmd, env={**os.environ, "HOME": str(tmp)}, check=True, capture_output=True)
    calls = [json.loads(x) for x in (out / "chat.jsonl").read_text().splitlines()]
    per_stage: dict[str, list[int]] = defaultdict(list)
    for c in calls:
        per_stage[c["stage"]].append(c["prompt_tokens"])
    files = [p for p in out.glob("*.json") if p.name != "ideation.json"]
    print(f"ideation (sae_variants, {len(files)} ideas written, {len(calls)} calls):")
    for stage, toks in per_stage.items():
        print(f"  stage {stage:<10} {sum(toks):>9,} prompt tokens over {len(toks)} calls "
              f"(largest request {max(toks):,})")
    total = sum(sum(t) for t in per_stage.values())
    completion = sum(c["completion_tokens"] for c in calls)
    print(f"  total: {total:,} prompt + {completion:,} completion tokens; "
          f"{total / max(len(files), 1):,.0f} prompt tokens per idea written")


def _review_replies() -> list[str]:
    """Three filled forms and a meta-review; the soundness sections name the claims check's first
    findings' tags, so a paper with findings costs no repair rounds here (those are counted apart)."""
    tags = " ".join(f"C{i}" for i in range(1, 13))
    form = {"summary": "s", "strengths": ["a"], "weaknesses": ["b"], "questions": ["c"],
            "soundness_evidence": f"The evidence ({tags}) was read.", "soundness": 3, "presentation": 3,
            "contribution": 2, "overall": 5, "confidence": 3, "decision": "reject"}
    meta = {"summary": "s", "soundness_evidence": f"({tags})", "strengths": ["a"], "weaknesses": ["b"],
            "revision_requests": [], "decision": "reject"}
    return [json.dumps(form)] * 3 + [json.dumps(meta)]


NOTES_HEAD = "# Notes on the experiments (filled in by the agent, read by the writeup)"


def replay_toy(replies: list, stop_after: str, *args: str) -> tuple[Path, list[dict]]:
    """The toy idea through the real CLI up to `stop_after`, the scripted model answering with
    `replies`; returns the workspace and its chat.jsonl records."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_tokens_"))
    (tmp / "idea.json").write_text(json.dumps(IDEA))
    with ScriptedLLM([Entry(reply=r) if isinstance(r, str) else Entry(**r) for r in replies]) as llm:
        cmd = [str(ROOT / ".venvs/harness/bin/python"), str(ROOT / "run_harness.py"), "--idea", str(tmp / "idea.json"),
               "--template", "toy", "--model", "openai/scripted", "--api-base", llm.url,
               "--workspace-root", str(tmp / "ws"), "--stop-after", stop_after, *args]
        env = {**os.environ, "HOME": str(tmp), "OPENAI_API_KEY": "sk-bench"}
        subprocess.run(cmd, env=env, check=True, capture_output=True)
    ws = next(p for p in (tmp / "ws").iterdir() if (p / "state.json").exists())
    return ws, [json.loads(x) for x in (ws / "chat.jsonl").read_text().splitlines()]


def experiments(runs: int) -> None:
    """The experiments stage of the toy idea with `runs` runs, then ALL_COMPLETED."""
    values = [f"{0.02 * (i + 1):.2f}" for i in range(runs + 1)]
    replies = []
    for i in range(runs):
        section = (f"## Run {i + 1}\nl1_coeff {values[i]} -> {values[i + 1]}: the sparsity penalty raised again to see "
                   f"how far L0 falls before explained variance does. The table showed L0 and explained variance "
                   f"against the baseline's seeds; I quote only those numbers in the writeup.")
        reply = l1_edit(values[i], values[i + 1]) + edit("notes.txt", NOTES_HEAD, f"{NOTES_HEAD}\n\n{section}")
        replies.append(reply if i == 0 else {"expect": f"Run {i} finished", "reply": reply})
    replies.append({"expect": f"Run {runs} finished", "reply": "ALL_COMPLETED"})
    _, calls = replay_toy(replies, "experiments", "--max-runs", str(runs + 1))
    tokens = [c["prompt_tokens"] for c in calls if c["stage"] == "experiments"]
    print(f"experiments stage, {runs} runs (toy template, seeds as configured): prompt tokens per turn")
    print("  " + " / ".join(f"{t:,}" for t in tokens))
    print(f"  largest {max(tokens):,} (target <= 8,000); turns 2-{len(tokens)} grow by "
          f"{(tokens[-1] - tokens[1]) / max(1, len(tokens) - 2):.0f} tokens a turn (notes.txt)")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--part", choices=("all", "idea", "ideation", "experiments"), default="all")
    ap.add_argument("--runs", type=int, default=5, help="runs of the idea in --part experiments")
    args = ap.parse_args()
    part = args.part
    if part == "experiments":
        experiments(args.runs)
        return
    if part in ("all", "ideation"):
        ideation()
    if part == "ideation":
        return
    ws, calls = replay_toy(_upstream() + _sections(_good_texts()) + _review_replies(), "review")
    per_stage: dict[str, int] = defaultdict(int)
    print(f"{'call':>4}  {'stage':<12} {'turn':>4}  prompt tokens")
    for i, c in enumerate(calls, 1):
        per_stage[c["stage"]] += c["prompt_tokens"]
        print(f"{i:>4}  {c['stage']:<12} {c['turn']:>4}  {c['prompt_tokens']:>8,}")
    total = sum(per_stage.values())
    review = [c for c in calls if c["stage"] == "review"]
    if review:
        forms = [c for c in review if c["turn"] >= 10]  # reviewer k asks at turns 10k+1.., the meta-review at 1, 2
        print(f"review: {len(review)} calls; per reviewer request {max(c['prompt_tokens'] for c in forms):,} "
              f"prompt tokens (paper + evidence), meta-review {sum(c['prompt_tokens'] for c in review if c['turn'] < 10):,}; "
              f"completion tokens {sum(c['completion_tokens'] for c in review):,}")
    for stage, n in per_stage.items():
        print(f"stage {stage:<12} {n:>9,} prompt tokens")
    print(f"total: {total:,} prompt tokens over {len(calls)} calls (target <= 250,000)")
    ref = reference_tokens()
    if ref:
        print(f"reference transcript 004: {ref[1]:,} prompt tokens over {ref[0]} calls "
              f"({ref[1] / max(total, 1):.1f}x ours)")
    print(f"paper: {ws / 'paper.pdf'} ({'present' if (ws / 'paper.pdf').exists() else 'MISSING'})")


if __name__ == "__main__":
    main()
