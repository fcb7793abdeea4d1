"""Recordings and replays: a past session's model replies, served again in order.

Every session writes chat.jsonl (one line per model request: stage, turn, attempt, the
turn's message, the reply). `--model replay:FILE` turns the successful lines of such a
file back into a script for the local scripted server, so the real aider path applies
the same edits again and the idea reproduces without an API key or cost; experiments,
plots and the paper's compilation all run for real.

A replay can only be faithful while the files it edits are the same as when it was
recorded. aider tells the model when a SEARCH block does not match; a request like that
where the recording had none (or the reverse) means the replay has left the recorded
path, and the server refuses it with a message naming the recording and the turn.
"""

from __future__ import annotations

import json
from pathlib import Path

from harness.agent.scripted_llm import Entry, is_edit_failure
from harness.errors import UserError


def recording_path(spec: str) -> Path:
    """A recording is a chat.jsonl file, or a workspace folder holding one."""
    path = Path(spec)
    if path.is_dir():
        path = path / "chat.jsonl"
    if not path.is_file():
        raise UserError(f"recording {spec} not found; pass replay:PATH to a chat.jsonl file "
                        f"(or a workspace folder that has one), e.g. replay:recordings/feature_momentum.jsonl")
    return path


def recorded_stages(spec: str) -> frozenset[str]:
    """The stages a recording holds successful replies for."""
    stages = set()
    for line in recording_path(spec).read_text(encoding="utf-8").splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict) and rec.get("ok", True) and "stage" in rec:
            stages.add(str(rec["stage"]))
    return frozenset(stages)


def load_recording(spec: str) -> list[Entry]:
    """The recording's successful replies in order, each marked with where it came from."""
    path = recording_path(spec)
    entries: list[Entry] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):
                continue  # a last line cut short by a kill
            raise UserError(f"{path}:{n}: not a JSON line; is this a chat.jsonl recording?") from None
        if not isinstance(rec, dict) or "reply" not in rec or "stage" not in rec:
            raise UserError(f"{path}:{n}: not a chat.jsonl record (needs stage, turn and reply)")
        if not rec.get("ok", True):
            continue  # failed requests (timeouts, 5xx) were retried; their answers are the next lines
        # recordings made before `request` was logged cannot be checked for divergence
        failed = is_edit_failure(rec["request"]) if "request" in rec else None
        entries.append(Entry(reply=rec["reply"], edit_failed=failed, stage=str(rec["stage"]),
                             origin=f"{path.name} line {n} ({rec['stage']} turn {rec.get('turn')})"))
    if not entries:
        raise UserError(f"{path}: the recording holds no successful model replies")
    return entries
