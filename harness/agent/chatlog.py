"""Reading chat.jsonl, the record of every model request an idea made (written by agent.py).

Kept apart from agent.py, which imports aider and litellm, so that the store, the
leaderboard and the report can read it without that start-up cost.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

CHAT_LOG = "chat.jsonl"


def read_chat_log(path: Path) -> list[dict[str, Any]]:
    """The records of a chat.jsonl, oldest first; [] when there is none. A line cut short
    by a kill is skipped (replays, which need every line, read it strictly: replay.py)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def tokens_of(rec: dict[str, Any]) -> int:
    return int(rec.get("prompt_tokens", 0)) + int(rec.get("completion_tokens", 0))


def read_totals(path: Path) -> tuple[int, float]:
    """Tokens and dollars spent so far by an idea, from its chat.jsonl."""
    recs = read_chat_log(path)
    return sum(tokens_of(r) for r in recs), sum(float(r.get("cost_usd", 0.0)) for r in recs)
