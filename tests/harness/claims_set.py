"""The labelled statement set (claims_labelled.yaml) and its scoring, shared by
tests/harness/test_comparisons.py and bench/claims_precision.py."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import yaml

from harness.paper.comparisons import RunValues, Statement, find_statements
from harness.template import load_template

LABELLED = Path(__file__).with_name("claims_labelled.yaml")


@dataclass
class Item:
    id: str
    text: str
    label: str
    values: RunValues
    split: str = "dev"
    statements: list[Statement] = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        return any(s.flagged for s in self.statements)


@dataclass
class Score:
    items: list[Item]
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def load_items(path: Path = LABELLED) -> list[Item]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    specs = {}
    items = []
    for row in data["statements"]:
        vs = data["value_sets"][row["values"]]
        if vs["template"] not in specs:
            specs[vs["template"]] = load_template(vs["template"])
        spec = specs[vs["template"]]
        noise = data["noise_sets"][row["noise"]] if row.get("noise") else {}
        runs = {int(r): {k: float(v) for k, v in vals.items()} for r, vals in vs["runs"].items()}
        values = RunValues({m.name: m for m in spec.metrics}, runs, dict(noise))
        items.append(Item(row["id"], row["text"], str(row["label"]).lower(), values, row.get("split", "dev")))
    return items


def score(items: list[Item]) -> Score:
    """Flagged versus labelled false: a flag on a true or uncheckable statement is a false
    positive, a false statement not flagged is a miss."""
    s = Score(items)
    for it in items:
        it.statements = find_statements(it.text, it.values)
        false = it.label == "false"
        if it.flagged and false:
            s.tp += 1
        elif it.flagged:
            s.fp += 1
        elif false:
            s.fn += 1
        else:
            s.tn += 1
    return s
