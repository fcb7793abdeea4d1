"""Getting one JSON object out of a model's reply, with a problem text that names what is
wrong (it is sent back in the one repair request a reply gets)."""

from __future__ import annotations

import json
import re
from typing import Any

_FENCE = re.compile(r"```(?:json|JSON)?\s*\n(.*?)```", re.S)


class ReplyProblem(Exception):
    """What is wrong with a reply, in words that go back to the model."""


def extract_json(text: str) -> dict[str, Any]:
    """The last fenced JSON block of the reply, else the outermost {...} span."""
    blocks = _FENCE.findall(text)
    candidate = blocks[-1] if blocks else None
    if candidate is None:
        start, end = text.find("{"), text.rfind("}")
        if start < 0 or end <= start:
            raise ReplyProblem("the reply holds no JSON object (expected one in a ```json block)")
        candidate = text[start:end + 1]
    try:
        data = json.loads(candidate)
    except json.JSONDecodeError as exc:
        raise ReplyProblem(f"the JSON is not valid at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    if not isinstance(data, dict):
        raise ReplyProblem(f"the JSON must be one object, got {type(data).__name__}")
    return data


def says_done(text: str) -> bool:
    """The model's signal that refining has nothing left to change."""
    return "i am done" in text.lower()
