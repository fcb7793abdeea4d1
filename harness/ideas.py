"""Idea files: load one JSON file and check it field by field.

An idea is what the agent is asked to implement. The schema follows the idea generators
SAE researchers already use (flat JSON keys); extra keys are kept, not rejected, so that
ideas from other generators still load.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import UserError

REQUIRED_TEXT = ("Name", "Title", "Experiment", "Technical_Details", "Implementation_Plan")
OPTIONAL_TEXT = ("Abstract", "Research_Impact", "Interestingness_Evaluation",
                 "Feasibility_Evaluation", "Novelty_Evaluation")
SCORES = ("Interestingness", "Feasibility", "Novelty", "Overall_Score")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class Idea:
    name: str
    title: str
    experiment: str
    technical_details: str
    implementation_plan: str
    abstract: str = ""
    scores: dict[str, float] = field(default_factory=dict)
    novel: bool | None = None
    primary_metric: str = ""
    """The headline metric the idea is about, named before any run (a template metric's name)."""
    expected_direction: Literal["higher", "lower", ""] = ""
    """Which way the idea expects that metric to move against the baseline."""
    raw: dict[str, Any] = field(default_factory=dict)
    """The file's whole content, written unchanged into the workspace as idea.json."""


def _text(value: Any) -> str | None:
    """Idea generators write steps either as one string or as a list of strings."""
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return "\n".join(v.strip() for v in value)
    return None


def parse_idea(data: Any, source: str) -> Idea:
    if not isinstance(data, dict):
        raise UserError(f"{source}: an idea file must hold one JSON object, got {type(data).__name__}")
    texts: dict[str, str] = {}
    for key in REQUIRED_TEXT:
        if key not in data:
            raise UserError(f"{source}: field '{key}' is missing (expected a non-empty string)")
        text = _text(data[key])
        if not text:
            raise UserError(f"{source}: field '{key}' must be a non-empty string, got {data[key]!r:.60}")
        texts[key] = text
    for key in OPTIONAL_TEXT:
        if key in data and _text(data[key]) is None:
            raise UserError(f"{source}: field '{key}' must be a string, got {data[key]!r:.60}")
    if not NAME_RE.match(texts["Name"]):
        raise UserError(
            f"{source}: field 'Name' must be a slug of letters, digits, '_' or '-' "
            f"(at most 64, used in folder names), got {texts['Name']!r}"
        )
    scores: dict[str, float] = {}
    for key in SCORES:
        if key in data:
            v = data[key]
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise UserError(f"{source}: field '{key}' must be a number, got {v!r:.60}")
            scores[key] = float(v)
    novel = data.get("novel")
    if novel is not None and not isinstance(novel, bool):
        raise UserError(f"{source}: field 'novel' must be true or false, got {novel!r:.60}")
    primary, direction = data.get("Primary_Metric", ""), data.get("Expected_Direction", "")
    if not isinstance(primary, str):
        raise UserError(f"{source}: field 'Primary_Metric' must be the name of a template metric, got {primary!r:.60}")
    if direction not in ("", "higher", "lower"):
        raise UserError(f"{source}: field 'Expected_Direction' must be higher or lower, got {direction!r:.60}")
    if direction and not primary:
        raise UserError(f"{source}: field 'Expected_Direction' needs 'Primary_Metric' (the metric it is about)")
    return Idea(
        name=texts["Name"],
        title=texts["Title"],
        experiment=texts["Experiment"],
        technical_details=texts["Technical_Details"],
        implementation_plan=texts["Implementation_Plan"],
        abstract=_text(data.get("Abstract", "")) or "",
        scores=scores,
        novel=novel,
        primary_metric=primary.strip(),
        expected_direction=direction,
        raw=data,
    )


def check_declared_metric(idea: Idea, metric_names: list[str], source: str) -> None:
    """A declared primary metric must be one the template reports."""
    if idea.primary_metric and idea.primary_metric not in metric_names:
        raise UserError(f"{source}: field 'Primary_Metric' is {idea.primary_metric!r}, which the template does not "
                        f"report; use one of {', '.join(metric_names)}")


def load_idea(path: Path) -> Idea:
    if not path.is_file():
        raise UserError(f"idea file {path} does not exist; pass the path of an idea JSON file to --idea")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise UserError(f"{path}: not UTF-8 text; save the idea file as UTF-8 JSON") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON at line {exc.lineno} column {exc.colno} ({exc.msg}); fix the syntax") from None
    return parse_idea(data, str(path))
