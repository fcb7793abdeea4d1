"""Near-duplicate ideas: the same name, a near-identical title, or mostly the same words."""

from __future__ import annotations

import re
from difflib import SequenceMatcher
from typing import Any

TITLE_RATIO = 0.85
"""difflib ratio of two lower-cased titles at or above which they are the same title."""
WORDS_JACCARD = 0.6
"""Share of content words (title, abstract, experiment) two ideas must have in common."""

_STOP = frozenset("a an the of to in on for and or with by from as at is are be we our this that its their "
                  "it into than then each per via using use which what how".split())


def _words(idea: dict[str, Any]) -> set[str]:
    text = " ".join(str(idea.get(k, "")) for k in ("Title", "Abstract", "Experiment"))
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if w not in _STOP and len(w) > 2}


def duplicate_of(idea: dict[str, Any], others: list[dict[str, Any]]) -> tuple[dict[str, Any], str] | None:
    """The first existing idea `idea` nearly repeats, and why; None when it is new."""
    title = str(idea.get("Title", "")).strip().lower()
    words = _words(idea)
    for other in others:
        if str(other.get("Name", "")) == str(idea.get("Name", "")):
            return other, "the same Name"
        ratio = SequenceMatcher(None, title, str(other.get("Title", "")).strip().lower()).ratio()
        if ratio >= TITLE_RATIO:
            return other, f"title {ratio:.0%} alike"
        theirs = _words(other)
        if words and theirs:
            jaccard = len(words & theirs) / len(words | theirs)
            if jaccard >= WORDS_JACCARD:
                return other, f"{jaccard:.0%} of the words in common"
    return None
