"""Precision and recall of the comparative-claims check on the labelled statement set.

    .venvs/harness/bin/python bench/claims_precision.py [--show]

A statement counts as flagged when any comparison the check finds in it is flagged, and as
positive when its label is "false" (tests/harness/claims_labelled.yaml says how labels were
given). Precision: flagged statements that are false; recall: false statements flagged.
Printed for the whole set and for each part of it (dev: the statements the rules were
written against; heldout, heldout3: labelled before the check was run on them); --show lists every statement with what
the check made of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "harness"))

from claims_set import LABELLED, Item, load_items, score  # noqa: E402


def _line(name: str, items: list[Item]) -> str:
    s = score(items)
    labels = {k: sum(1 for i in items if i.label == k) for k in ("true", "false", "uncheckable")}
    return (f"{name:<9} {len(items):>3} statements ({labels['false']} false, {labels['true']} true, "
            f"{labels['uncheckable']} uncheckable)  precision {s.precision:.3f}  recall {s.recall:.3f}  "
            f"TP {s.tp}  FP {s.fp}  FN {s.fn}  TN {s.tn}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--show", action="store_true", help="list each statement and the check's findings")
    args = ap.parse_args()
    t0 = time.perf_counter()
    items = load_items()
    print(f"labelled set: {LABELLED.relative_to(ROOT)}")
    print(_line("all", items))
    for split in dict.fromkeys(i.split for i in items):
        print(_line(split, [i for i in items if i.split == split]))
    checked = sum(1 for i in items for s in i.statements if s.status != "unresolved")
    unresolved = sum(1 for i in items for s in i.statements if s.status == "unresolved")
    print(f"comparisons found: {checked} checked, {unresolved} unresolved; "
          f"{time.perf_counter() - t0:.2f} s for the whole set")
    for it in items:
        wrong = it.flagged != (it.label == "false")
        if args.show or wrong:
            mark = "WRONG " if wrong else ""
            print(f"\n{mark}{it.id} [{it.label}] {'flagged' if it.flagged else 'not flagged'}: {it.text}")
            for s in it.statements:
                print(f"    {s.status:<10} {s.describe()}  {s.why}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
