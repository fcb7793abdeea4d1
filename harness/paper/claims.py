"""The claims check: every number in the paper traced to a file, every run named exists.

Reference sessions wrote papers with numbers no file contains and cited runs that never
ran. Here each number the paper states (harness/paper/texscan.py decides which ones count) is
looked up among the values the workspace holds:

  - every number in a completed run's final_info.json (any depth; numeric lists longer
    than RAW_LIST_LIMIT are raw data, not results, and are skipped), the config, seed
    and duration in its meta.json, every number in notes.txt and in idea.json;
  - a completed run is run_N/ with a final_info.json that parses to an object and, when
    meta.json or state.json says otherwise, not a failed or timed-out one. Runs that
    did not complete contribute nothing.

A number matches when
  1. it equals a known value to its printed precision: 0.85 stands for anything that
     rounds to it (0.845 .. 0.855); "85.3\\%" may also be the fraction 0.853 (but "45\\%"
     as written only a value the files also wrote as a percentage); "16k" may be 16000
     or 16384;
  2. or it reads as a comparison (a word such as by, reduction, lower, of the baseline
     within COMPARE_WINDOW characters, or a factor like 3x) and is the difference,
     ratio or relative change of two *other numbers the paper states that matched in
     step 1*: two numbers of its own sentence ("from 0.0421 to 0.0370, a 12.1\\%
     reduction"), or the same result key in two runs, stated anywhere, when its
     sentence names that metric ("improves explained variance by 0.02"). Intervals
     carry the operands' printed precision through; operands too coarse to pin the
     claim down do not count (DERIVED_SLACK).
Derived values need their operands on the page because a reader must be able to check
them, and because among the thousands of pairs of file values some pair fits almost
any made-up percentage.

"Run N" (and "Runs 4 and 5", "Runs 1--3") is valid only when run_N completed.

Sentences that compare runs ("Run 3's top-1 accuracy is the highest of all runs") are
checked against the headline metrics by harness/paper/comparisons.py when the template is
known; flagged ones go back in the correction round with the numbers.
"""

from __future__ import annotations

import bisect
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from harness.agent.prompts import render
from harness.paper.comparisons import RunValues, Statement, find_statements
from harness.paper.texscan import mask, plain_numbers, scan, sentence_breaks
from harness.records.files import read_json
from harness.records.run_meta import read_meta
from harness.results.metrics import ResultsError, read_results
from harness.results.noise import NOISE_FILE, finished, seed_of_folder
from harness.template import TemplateSpec, load_template

CLAIMS_FILE = "claims.json"
RAW_LIST_LIMIT = 64
"""Numeric lists longer than this (per-latent statistics, histograms) are not read:
with thousands of such values any short decimal would match one by chance."""

MESSAGE_BUDGET = 1500
MAX_STATEMENTS_SHOWN = 8
DERIVED_SLACK = 10
"""A derived value may be this many times less precise than the claim it supports:
0.0421 and 0.0370 pin a relative change to 12.1 +- 0.2 %, which backs "12.1%"."""

# Sources of equal standing are ranked: run files first, then notes, then the idea.
_PRIORITY = {"evaluation": 0, "final_info": 0, "meta": 1, "notes": 2, "idea": 3}
# A derived number is a comparison and reads like one: "improves EV by 0.02",
# "a 12\\% reduction", "95\\% of the baseline's", "lower than". Without such a word near
# it, a number is a stated value and must be found as a value.
COMPARE_WINDOW = 60
_COMPARE_WORDS = re.compile(
    r"\b(?:by|improv\w*|reduc\w*|gain\w*|drops?|dropped|falls?|fell|rises?|rose|increas\w*|"
    r"decreas\w*|lower|higher|less|more|fewer|faster|slower|better|worse|smaller|larger|"
    r"relative|difference|change[sd]?|ratio|times|fold|baseline|compared|versus|vs|over|than|"
    r"shrinks?|grows?|cuts?|of\s+(?:the\s+)?(?:baseline|original|reference))\b", re.I)
_PERCENT_KEY = re.compile(r"pct|percent", re.I)
# abbreviations papers use for metrics whose keys spell them out
_ALIASES = {"ev": {"explained", "variance"}, "fvu": {"variance", "unexplained"},
            "acc": {"accuracy"}, "ce": {"cross", "entropy"}, "kl": {"kl", "div"}}
_STOP = {"mean", "score", "scores", "eval", "evals", "results", "result", "metrics", "metric",
         "core", "info", "final", "json", "value", "values", "total", "run", "config"}


@dataclass
class Claim:
    kind: Literal["number", "run"]
    text: str
    line: int
    column: int
    start: int
    end: int
    value: float
    """The number as written (85.3 for 85.3\\%), or the run index for a run mention."""
    ulp: float = 0.0
    percent: bool = False
    factor: bool = False
    kilo: bool = False
    context: str = ""
    sentence: int = 0
    """Index of the sentence (or table cell) the claim sits in."""
    sentence_text: str = field(default="", repr=False)
    """The sentence with markup masked out; it starts at offset sentence_start."""
    sentence_start: int = field(default=0, repr=False)


@dataclass
class ClaimResult:
    claim: Claim
    status: Literal["ok", "unmatched"]
    source: str | None = None
    """Where the value was found, e.g. run_2/final_info.json:core.explained_variance."""
    how: str | None = None
    """value | percent of value | thousands | difference | ratio | relative change | run"""
    note: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        c = self.claim
        return {"text": c.text, "line": c.line, "kind": c.kind, "value": c.value,
                "matched": self.source, "how": self.how, "status": self.status,
                "note": self.note, "context": c.context}


# --- extraction -------------------------------------------------------------------------

def _line_index(tex: str) -> list[int]:
    return [0] + [i + 1 for i, ch in enumerate(tex) if ch == "\n"]


def _context(tex: str, starts: list[int], line: int, start: int, end: int, width: int = 50) -> str:
    a = starts[line - 1]
    b = starts[line] - 1 if line < len(starts) else len(tex)
    lo, hi = max(a, start - width), min(b, end + width)
    text = tex[lo:hi].strip()
    return ("..." if lo > a else "") + text + ("..." if hi < b else "")


def extract_claims(tex: str) -> list[Claim]:
    """Numeric claims and run mentions in a LaTeX document, in text order."""
    numbers, runs = scan(tex)
    starts = _line_index(tex)
    breaks = sentence_breaks(tex)
    masked = mask(tex)
    claims: list[Claim] = []

    def sentence(pos: int) -> tuple[int, str, int]:
        k = bisect.bisect_right(breaks, pos)
        a = breaks[k - 1] if k else 0
        b = breaks[k] if k < len(breaks) else len(tex)
        return k, masked[a:b], a

    def where(pos: int) -> tuple[int, int]:
        line = bisect.bisect_right(starts, pos)
        return line, pos - starts[line - 1] + 1

    for tok in numbers:
        line, col = where(tok.start)
        claims.append(Claim("number", tok.text, line, col, tok.start, tok.end, tok.value, tok.ulp,
                            tok.percent, tok.factor, tok.kilo, _context(tex, starts, line, tok.start, tok.end),
                            *sentence(tok.start)))
    for run in runs:
        line, col = where(run.start)
        for n in run.runs:
            k, text, at = sentence(run.start)
            claims.append(Claim("run", run.text, line, col, run.start, run.end, float(n),
                                context=_context(tex, starts, line, run.start, run.end),
                                sentence=k, sentence_text=text, sentence_start=at))
    claims.sort(key=lambda c: (c.start, c.value))
    return claims


# --- known values -----------------------------------------------------------------------

@dataclass(frozen=True)
class KnownValue:
    value: float
    source: str
    percent: bool = False
    """Written as a percentage (91.4% in notes, a *_pct key): "91.4\\%" may match it as is."""


@dataclass
class KnownValues:
    """Every number the workspace's files hold, searchable by value."""
    values: list[KnownValue] = field(default_factory=list)
    completed_runs: set[int] = field(default_factory=set)
    failed_runs: set[int] = field(default_factory=set)
    _sorted: list[tuple[float, int, str, bool]] | None = field(default=None, repr=False)

    def add(self, value: float, source: str, percent: bool = False) -> None:
        if isinstance(value, bool) or not math.isfinite(value):
            return
        self.values.append(KnownValue(float(value), source, percent))
        self._sorted = None

    def add_text(self, text: str, source: str) -> None:
        """Numbers in free text; "91.4%" also counts as 0.914, "16k" as 16000 and 16384."""
        for value, line, kind in plain_numbers(text):
            where = f"{source}:{line}" if "\n" in text else source
            self.add(value, where, percent=kind == "%")
            if kind == "%":
                self.add(value / 100, where)
            elif kind == "k":
                self.add(value * 1000, where)
                self.add(value * 1024, where)

    def add_json(self, data: Any, source: str, path: str = "") -> None:
        if isinstance(data, dict):
            for k, v in data.items():
                self.add_json(v, source, f"{path}.{k}" if path else str(k))
        elif isinstance(data, list):
            if len(data) > RAW_LIST_LIMIT and all(isinstance(x, (int, float)) for x in data):
                return
            for i, v in enumerate(data):
                self.add_json(v, source, f"{path}[{i}]")
        elif isinstance(data, (int, float)) and not isinstance(data, bool):
            self.add(data, f"{source}:{path}" if path else source, bool(_PERCENT_KEY.search(path)))
        elif isinstance(data, str):
            try:
                self.add(float(data), f"{source}:{path}")
            except ValueError:
                self.add_text(data, f"{source}:{path}" if path else source)

    @classmethod
    def from_workspace(cls, ws: Path, spec: TemplateSpec | None = None) -> "KnownValues":
        """With a template that has an evaluation step, a run's numbers are the harness's
        (results.metrics.read_results); its own final_info.json adds only what the evaluation
        does not cover (training logs, timings), so a number the run made up matches nothing."""
        ws = Path(ws)
        known = cls()
        failed_in_state = _failed_in_state(ws)
        for run_dir in sorted(ws.glob("run_*")):
            m = re.fullmatch(r"run_(\d+)", run_dir.name)
            if seed_of_folder(run_dir.name):  # another seed of run_<i>: its numbers
                if spec is not None and finished(spec, run_dir):
                    source = (f"{run_dir.name}/{spec.evaluation.output} (harness)" if spec.evaluation
                              else f"{run_dir.name}/final_info.json")
                    known.add_json(read_results(spec, run_dir).info, source)
                elif spec is None and (meta := read_meta(run_dir)) is not None and meta.status == "ok":
                    known.add_json(read_json(run_dir / "final_info.json"), f"{run_dir.name}/final_info.json")
            if not m or not run_dir.is_dir():
                continue
            n = int(m.group(1))
            info, source = read_json(run_dir / "final_info.json"), f"{run_dir.name}/final_info.json"
            if spec is not None and spec.evaluation is not None and isinstance(info, dict):
                try:
                    info = read_results(spec, run_dir).info
                    source = f"{run_dir.name}/{spec.evaluation.output} (harness)"
                except ResultsError:
                    info = None  # not scored by the harness: the run did not complete
            meta = read_meta(run_dir)
            if not isinstance(info, dict) or n in failed_in_state or (meta is not None and meta.process_failed):
                known.failed_runs.add(n)
                continue
            known.completed_runs.add(n)
            known.add_json(info, source)
            if meta is not None:
                known.add_json(meta.duration_s, f"{run_dir.name}/meta.json", "duration_s")
                known.add_json(meta.seed, f"{run_dir.name}/meta.json", "seed")
                for key in ("config", "seed"):  # written by templates that record them
                    if key in meta.extra:
                        known.add_json(meta.extra[key], f"{run_dir.name}/meta.json", key)
        noise = read_json(ws / NOISE_FILE)  # means and spreads over seeds, which tables quote
        if isinstance(noise, dict):
            known.add_json(noise.get("runs", {}), NOISE_FILE)
            known.add_json(noise.get("bands", {}), NOISE_FILE)  # the bands a paper quotes as its rule
        notes = ws / "notes.txt"
        if notes.is_file():
            known.add_text(notes.read_text(encoding="utf-8", errors="replace"), "notes.txt")
        idea = read_json(ws / "idea.json")
        if idea is not None:
            known.add_json(idea, "idea.json")
        return known

    def _index(self) -> list[tuple[float, int, str, bool]]:
        if self._sorted is None:
            self._sorted = sorted((kv.value, _priority(kv.source), kv.source, kv.percent) for kv in self.values)
        return self._sorted

    def _in(self, lo: float, hi: float, percent_only: bool = False):
        index = self._index()
        i = bisect.bisect_left(index, (lo, -1, "", False))
        while i < len(index) and index[i][0] <= hi:
            if index[i][3] or not percent_only:
                yield index[i]
            i += 1

    def find(self, lo: float, hi: float, context: str = "", percent_only: bool = False) -> str | None:
        """The best source of a value in [lo, hi]: the one whose key names a word of the
        claim's sentence, then one that holds the value exactly as printed, then run files
        before notes before the idea, then the closest."""
        best: tuple | None = None
        words = _words(context)
        mid = (lo + hi) / 2
        for value, prio, source, _ in self._in(lo, hi, percent_only):
            inexact = abs(value - mid) > 1e-9 * max(1.0, abs(mid))
            rank = (-_affinity(source, words), inexact, prio, abs(value - mid), source)
            if best is None or rank < best:
                best = rank
        return best[-1] if best else None


def _priority(source: str) -> int:
    for key, prio in _PRIORITY.items():
        if key in source:
            return prio
    return len(_PRIORITY)


def _words(text: str) -> set[str]:
    words = set(re.findall(r"[a-z][a-z0-9]*", text.lower()))
    for short, long in _ALIASES.items():
        if short in words:
            words |= long
    return words


def _key_words(key: str) -> set[str]:
    return {w for w in re.split(r"[^a-z0-9]+", key.lower()) if len(w) > 1 and w not in _STOP}


def _affinity(source: str, words: set[str]) -> int:
    return len(_key_words(source.split(":", 1)[1] if ":" in source else "") & words)


def _failed_in_state(ws: Path) -> set[int]:
    state = read_json(ws / "state.json")
    runs = state.get("runs") if isinstance(state, dict) else None
    failed: set[int] = set()
    if isinstance(runs, dict):
        for rec in runs.values():
            if isinstance(rec, dict) and rec.get("status") == "failed" and isinstance(rec.get("index"), int):
                failed.add(rec["index"])
    return failed


# --- matching ---------------------------------------------------------------------------

def _window(value: float, ulp: float) -> tuple[float, float]:
    """Values that round to `value` at its printed precision (half a unit either side;
    truncation is not allowed: it would double the room for chance matches)."""
    half = 0.5 * ulp + 1e-9 * max(1.0, abs(value))
    return value - half, value + half


def _readings(c: Claim) -> list[tuple[float, float, str]]:
    """(value, ulp, how) the written number may stand for."""
    out = [(c.value, c.ulp, "value")]
    if c.percent:
        out.append((c.value / 100, c.ulp / 100, "percent of value"))
    if c.kilo:
        out = [(c.value * 1000, c.ulp * 1000, "thousands"), (c.value * 1024, c.ulp * 1024, "thousands")]
    return out


@dataclass(frozen=True)
class _Operand:
    lo: float
    hi: float
    claim: Claim
    keys: frozenset[str]


def _derived(a: _Operand, b: _Operand) -> list[tuple[float, float, str]]:
    """Intervals of |b - a|, b / a and |b - a| / |a| over the operands' precision."""
    out = []
    d_lo, d_hi = b.lo - a.hi, b.hi - a.lo
    out.append((_abs_interval(d_lo, d_hi) + ("difference",)))
    if a.lo > 0 or a.hi < 0:
        qs = [b.lo / a.lo, b.lo / a.hi, b.hi / a.lo, b.hi / a.hi]
        r_lo, r_hi = min(qs), max(qs)
        out.append((r_lo, r_hi, "ratio"))
        out.append((_abs_interval(r_lo - 1, r_hi - 1) + ("relative change",)))
    return out


def _abs_interval(lo: float, hi: float) -> tuple[float, float]:
    if lo <= 0 <= hi:
        return 0.0, max(-lo, hi)
    return min(abs(lo), abs(hi)), max(abs(lo), abs(hi))


_HOW_ORDER = {"difference": 0, "ratio": 1, "relative change": 2}


def check_claims(claims: Iterable[Claim], known: KnownValues) -> list[ClaimResult]:
    claims = list(claims)
    results: dict[int, ClaimResult] = {}
    operands: list[_Operand] = []

    for i, c in enumerate(claims):
        if c.kind == "run":
            results[i] = _check_run(c, known)
            continue
        if c.factor:
            continue  # "3x" states a ratio: a stray 3 in the files proves nothing
        for value, ulp, how in _readings(c):
            lo, hi = _window(value, ulp)
            # "45\\%" as written may only be a value the files also wrote as a percentage
            source = known.find(lo, hi, c.sentence_text, percent_only=c.percent and how == "value")
            if source:
                results[i] = ClaimResult(c, "ok", source, how)
                if value != 0 and not c.kilo:
                    # in the reading that matched: 30\% is 0.30 when the file says 0.30
                    operands.append(_Operand(lo, hi, c, _metric_keys([source])))
                break

    # Pairs a derived claim may come from: two numbers of the claim's own sentence, or
    # the same metric in two runs (stated anywhere) when the claim's sentence names it.
    by_metric = [(a, b, a.keys & b.keys) for a in operands for b in operands
                 if a.claim.start != b.claim.start and a.keys & b.keys]
    by_sentence: dict[int, list[_Operand]] = {}
    for op in operands:
        by_sentence.setdefault(op.claim.sentence, []).append(op)

    for i, c in enumerate(claims):
        if i in results:
            continue
        local = by_sentence.get(c.sentence, [])
        words = _words(c.sentence_text)
        pairs = [(a, b) for a in local for b in local if a.claim.start != b.claim.start]
        pairs += [(a, b) for a, b, keys in by_metric if any(_key_words(k) & words for k in keys)]
        found = _derived_match(c, pairs)
        direct = known.find(*_window(c.value, c.ulp), c.sentence_text) if c.factor and not found else None
        if found:
            how, a, b = found
            sym = {"difference": "-", "ratio": "/", "relative change": "vs"}[how]
            results[i] = ClaimResult(c, "ok", f"{how} of {b.text} (line {b.line}) {sym} {a.text} (line {a.line})", how)
        elif direct:
            results[i] = ClaimResult(c, "ok", direct, "value")
        else:
            results[i] = ClaimResult(c, "unmatched", note="no run file, notes.txt or idea.json holds this value, "
                                                         "nor is it a difference or ratio of two stated values")
    return [results[i] for i in range(len(claims))]


def _derived_match(c: Claim, pairs: list[tuple[_Operand, _Operand]]) -> tuple[str, Claim, Claim] | None:
    """The derivation of c from a pair; when several fit, the likeliest: operands that
    measure the same thing, then the ones the text puts nearest the claim."""
    if not (c.factor or _compares(c)):
        return None  # "an absorption score of 0.0131" states a value, not a comparison
    best = None
    readings = [(c.value, c.ulp)] if c.factor else [(v, u) for v, u, _ in _readings(c)]
    for value, ulp in readings:
        lo, hi = _window(abs(value), ulp)
        for a, b in pairs:
            if a.claim.value == b.claim.value:
                continue
            for d_lo, d_hi, how in _derived(a, b):
                if d_hi < lo or d_lo > hi or (c.factor and how != "ratio"):
                    continue
                if d_hi - d_lo > DERIVED_SLACK * (hi - lo):
                    continue  # operands too coarse to pin the claim down (0.10 / 0.1 "is" 71.4%)
                local = a.claim.sentence == b.claim.sentence == c.sentence
                rank = (not (a.keys & b.keys), not local, _distance(c, a, b), _HOW_ORDER[how],
                        a.claim.start, b.claim.start)
                if best is None or rank < best[0]:
                    best = (rank, how, a.claim, b.claim)
    return best[1:] if best else None


def _compares(c: Claim) -> bool:
    at = c.start - c.sentence_start
    near = c.sentence_text[max(0, at - COMPARE_WINDOW):at + len(c.text) + COMPARE_WINDOW]
    return bool(_COMPARE_WORDS.search(near))


def _distance(c: Claim, a: _Operand, b: _Operand) -> int:
    """How far from the claim the text names the pair: the operands themselves when
    they share its sentence, else the nearest word of their metric's name."""
    if a.claim.sentence == b.claim.sentence == c.sentence:
        return abs(a.claim.start - c.start) + abs(b.claim.start - c.start)
    at = c.start - c.sentence_start
    text = c.sentence_text.lower()
    spots = [m.start() for key in a.keys & b.keys for w in _key_words(key)
             for m in re.finditer(r"\b" + re.escape(w) + r"\b", text)]
    return 2 * min((abs(p - at) for p in spots), default=10**6)


def _metric_keys(sources: list[str]) -> frozenset[str]:
    """The result keys a value was found under ("core.mse" from run_2/final_info.json:core.mse)."""
    return frozenset(src.split(":", 1)[1] for src in sources if "final_info.json:" in src or "(harness):" in src)


def _check_run(c: Claim, known: KnownValues) -> ClaimResult:
    n = int(c.value)
    if n in known.completed_runs:
        return ClaimResult(c, "ok", f"run_{n}/final_info.json", "run")
    done = ", ".join(str(r) for r in sorted(known.completed_runs)) or "none"
    why = (f"run_{n} did not complete" if n in known.failed_runs else f"there is no run_{n}")
    return ClaimResult(c, "unmatched", note=f"{why} (completed runs: {done})")


# --- the stage ----------------------------------------------------------------------------

@dataclass
class VerifyReport:
    paper: Path
    results: list[ClaimResult]
    claims_path: Path | None = None
    statements: list[Statement] = field(default_factory=list)
    """Comparative statements found (checked, flagged or unresolved); empty when the
    template is unknown."""
    noise_known: bool = False

    @property
    def unmatched(self) -> list[ClaimResult]:
        return [r for r in self.results if not r.ok]

    @property
    def flagged(self) -> list[Statement]:
        return [s for s in self.statements if s.flagged]

    @property
    def ok(self) -> bool:
        return not self.unmatched and not self.flagged

    def to_dict(self) -> dict[str, Any]:
        return {"paper": self.paper.name, "claims": len(self.results),
                "unmatched": len(self.unmatched),
                "results": [r.to_dict() for r in self.results],
                "statements_flagged": len(self.flagged),
                "noise_band": self.noise_known,
                "statements": [s.to_dict() for s in self.statements]}

    def message(self, budget: int = MESSAGE_BUDGET) -> str:
        """The unmatched claims and the false statements as a short instruction for the agent."""
        if self.ok:
            return render("claims_traced", count=len(self.results), paper=self.paper.name).rstrip("\n")
        parts = [self._unmatched_message(budget)] if self.unmatched else []
        if self.flagged:
            parts.append(render("claims_statements", statements=self.flagged[:MAX_STATEMENTS_SHOWN],
                                more=max(0, len(self.flagged) - MAX_STATEMENTS_SHOWN),
                                noise_known=self.noise_known, claims_file=CLAIMS_FILE).rstrip("\n"))
        return "\n\n".join(parts)

    def _unmatched_message(self, budget: int) -> str:
        head = render("claims_unmatched", count=len(self.unmatched), paper=self.paper.name).rstrip("\n")
        lines, used = [head], len(head)
        seen: set[tuple[int, str]] = set()
        for k, r in enumerate(self.unmatched):
            if (r.claim.line, r.claim.text) in seen:
                continue
            seen.add((r.claim.line, r.claim.text))
            what = (f"line {r.claim.line}: {r.claim.text.strip()} ({r.note})" if r.claim.kind == "run"
                    else f"line {r.claim.line}: {r.claim.text.strip()} in \"{r.claim.context}\"")
            if used + len(what) > budget:
                lines.append(f"... and {len(self.unmatched) - k} more (see {CLAIMS_FILE})")
                break
            lines.append("- " + what)
            used += len(what) + 3
        return "\n".join(lines)


def verify_paper(ws: Path, tex_path: Path, spec: TemplateSpec | None = None,
                 noise: dict[str, float] | None = None) -> VerifyReport:
    """Check the paper's claims against the workspace and write ws/claims.json.

    spec: the template, for its headline metrics (default: the one state.json names);
    without one, comparative statements are not checked. noise: metric name -> half-width
    of the band within which a difference counts as noise; None or {} checks orderings only."""
    ws, tex_path = Path(ws), Path(tex_path)
    tex = tex_path.read_text(encoding="utf-8", errors="replace")
    spec = spec or _workspace_template(ws)
    known = KnownValues.from_workspace(ws, spec)
    results = check_claims(extract_claims(tex), known)
    statements: list[Statement] = []
    if spec is not None and spec.metrics:
        values = RunValues.from_workspace(ws, spec, sorted(known.completed_runs), noise)
        statements = find_statements(tex, values)
    report = VerifyReport(paper=tex_path, results=results, claims_path=ws / CLAIMS_FILE,
                          statements=statements, noise_known=bool(noise))
    data = report.to_dict()
    if spec is not None and spec.evaluation is not None:
        data["mismatch"] = _mismatches(ws, spec, sorted(known.completed_runs))
    report.claims_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return report


def _mismatches(ws: Path, spec: TemplateSpec, runs: list[int]) -> dict[str, list[str]]:
    """Per run, where its own files disagree with the harness's evaluation (shown in claims.json
    so a reader of the checked paper sees which runs tried to report other numbers)."""
    out = {}
    for n in runs:
        try:
            found = read_results(spec, ws / f"run_{n}").mismatch
        except ResultsError:
            continue
        if found:
            out[f"run_{n}"] = found
    return out


def _workspace_template(ws: Path) -> TemplateSpec | None:
    """The template state.json names, if it still loads (a check must not fail on it)."""
    state = read_json(ws / "state.json")
    name = state.get("template") if isinstance(state, dict) else None
    if not isinstance(name, str) or not name:
        return None
    try:
        return load_template(name)
    except Exception:  # noqa: BLE001 - a moved or broken template only disables this part
        return None


# --- marking ------------------------------------------------------------------------------

_MARK_MACRO = "unverified"
_MARK_DEF = (
    "% claims check: numbers that no run file holds are printed in red\n"
    "\\DeclareRobustCommand{\\" + _MARK_MACRO + "}[1]"
    "{\\textcolor{red}{#1\\ifmmode^{\\dagger}\\else\\textsuperscript{$\\dagger$}\\fi}}\n")
_MARK_LEGEND = ("\\noindent\\textcolor{red}{$\\dagger$ Red numbers could not be traced to a run's "
                "final\\_info.json, notes.txt or idea.json; see claims.json.}\\par\n")


def mark_unmatched(tex: str, results: Iterable[ClaimResult]) -> str:
    """tex with each unmatched claim wrapped in a red \\unverified{...} and a legend at the
    top, for the report's copy of the paper (the agent's file is left as it is)."""
    spans = sorted({(r.claim.start, r.claim.end) for r in results if not r.ok}, reverse=True)
    if not spans:
        return tex
    out = tex
    for start, end in spans:
        if out[max(0, start - len(_MARK_MACRO) - 2):start] == f"\\{_MARK_MACRO}{{":
            continue  # already marked by an earlier pass
        out = f"{out[:start]}\\{_MARK_MACRO}{{{out[start:end]}}}{out[end:]}"
    if f"\\DeclareRobustCommand{{\\{_MARK_MACRO}}}" not in out:
        begin = re.search(r"\\begin\s*\{document\}", out)
        if begin:
            has_color = re.search(r"\\usepackage(\[[^\]]*\])?\{[^}]*\b(x?color)\b", out[:begin.start()])
            pre = "" if has_color else "\\usepackage{xcolor}\n"
            out = out[:begin.start()] + pre + _MARK_DEF + out[begin.start():]
            begin = re.search(r"\\begin\s*\{document\}", out)
            title = re.search(r"\\maketitle\b", out[begin.end():])
            at = begin.end() + title.end() if title else begin.end()
            out = out[:at] + "\n" + _MARK_LEGEND + out[at:]
    return out
