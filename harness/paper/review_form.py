"""The reviewing form (NeurIPS-style) as typed records, and the check of a model's reply.

A reply is accepted only when it is one JSON object with every field of the form, each of
the right type and in range; otherwise the check names the first field that is wrong, so
the one repair request can say exactly what to fix. Weaker models wrap JSON in prose or
code fences, so the object is looked for inside the reply; nothing else is guessed.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Decision = Literal["accept", "reject"]

SCALES: dict[str, tuple[int, int]] = {
    "soundness": (1, 4), "presentation": (1, 4), "contribution": (1, 4),
    "overall": (1, 10), "confidence": (1, 5),
}
TEXTS = ("summary", "soundness_evidence")
LISTS = ("strengths", "weaknesses", "questions")
FIELDS = ("summary", "strengths", "weaknesses", "questions", "soundness_evidence",
          *SCALES, "decision")
"""Every field a reviewer must fill, in the order the prompt lists them."""


class FormError(ValueError):
    """A reply that does not fill the form; the message names the field and what it needs."""


@dataclass
class Review:
    summary: str
    strengths: list[str]
    weaknesses: list[str]
    questions: list[str]
    soundness_evidence: str
    """The soundness section: what the harness's evidence (claims check, run table, flagged
    runs, the agent's diff) says about the paper's claims."""
    soundness: int
    presentation: int
    contribution: int
    overall: int
    confidence: int
    decision: Decision

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MetaReview:
    summary: str
    soundness_evidence: str
    strengths: list[str]
    weaknesses: list[str]
    overall: float
    """Mean of the reviewers' overall scores (1-10)."""
    decision: Decision
    revision_requests: list[str] = field(default_factory=list)
    """What the paper should change, for --improve."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


META_FIELDS = ("summary", "soundness_evidence", "strengths", "weaknesses", "decision", "revision_requests")


def _json_object(reply: str) -> dict[str, Any]:
    text = reply.strip()
    fenced = re.search(r"```(?:json)?\s*\n(.*?)```", text, re.S)
    candidates = [fenced.group(1)] if fenced else []
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start:end + 1])
    candidates.append(text)
    last = ""
    for c in candidates:
        try:
            data = json.loads(c)
        except json.JSONDecodeError as exc:
            last = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            continue
        if isinstance(data, dict):
            return data
        last = f"the JSON value is a {type(data).__name__}, not an object"
    raise FormError(f"the reply is not one JSON object ({last or 'no JSON found'})")


def _text(data: dict, name: str) -> str:
    v = data.get(name)
    if not isinstance(v, str) or not v.strip():
        raise FormError(f"field '{name}' must be a non-empty string")
    return v.strip()


def _list(data: dict, name: str) -> list[str]:
    v = data.get(name)
    if isinstance(v, str) and v.strip():
        return [v.strip()]  # one item written as a string is still that one item
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise FormError(f"field '{name}' must be a list of strings")
    return [x.strip() for x in v if x.strip()]


def _score(data: dict, name: str) -> int:
    lo, hi = SCALES[name]
    v = data.get(name)
    if isinstance(v, str) and v.strip().isdigit():
        v = int(v.strip())
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v != int(v) or not lo <= v <= hi:
        raise FormError(f"field '{name}' must be a whole number from {lo} to {hi}, got {v!r}")
    return int(v)


def _decision(data: dict) -> Decision:
    v = data.get("decision")
    d = v.strip().lower() if isinstance(v, str) else v
    if d not in ("accept", "reject"):
        raise FormError(f"field 'decision' must be \"accept\" or \"reject\", got {v!r}")
    return d


def _missing(data: dict, names: tuple[str, ...]) -> None:
    gone = [n for n in names if n not in data]
    if gone:
        raise FormError(f"field '{gone[0]}' is missing" + (f" (also: {', '.join(gone[1:])})" if gone[1:] else ""))


def parse_review(reply: str) -> Review:
    """The form a reviewer filled, or FormError naming the first field that is wrong."""
    data = _json_object(reply)
    _missing(data, FIELDS)
    return Review(summary=_text(data, "summary"), strengths=_list(data, "strengths"),
                  weaknesses=_list(data, "weaknesses"), questions=_list(data, "questions"),
                  soundness_evidence=_text(data, "soundness_evidence"),
                  **{name: _score(data, name) for name in SCALES}, decision=_decision(data))


def parse_meta(reply: str, reviews: list[Review]) -> MetaReview:
    """The area chair's summary; its overall score is the reviewers' mean, not the model's word."""
    data = _json_object(reply)
    _missing(data, META_FIELDS)
    overall = round(sum(r.overall for r in reviews) / len(reviews), 2)
    return MetaReview(summary=_text(data, "summary"), soundness_evidence=_text(data, "soundness_evidence"),
                      strengths=_list(data, "strengths"), weaknesses=_list(data, "weaknesses"),
                      overall=overall, decision=_decision(data),
                      revision_requests=_list(data, "revision_requests"))
