"""Comparative statements in the paper, checked against the runs' headline metrics.

The number check (claims.py) proves that every number the paper prints exists in a run
file; it cannot tell that "Run 3's top-1 probing accuracy is the highest of all runs" is
false when the table beside it says run 1 is highest. This module reads the sentences
that compare runs or describe an effect, resolves which runs and which metric each one
speaks of, and checks the relation against the values and, where given, the noise band.

A statement is checked only when its runs, its metric and its relation all resolve
without doubt; everything else is recorded as "unresolved" and never flagged. A wrong
flag sends the writer to "fix" a true sentence in the one correction round, so the rules
below prefer missing a false statement to flagging a true one.

Reading a sentence:
  - clauses: the sentence is cut at ";", ":", "while", "whereas", "but", ", and", ", so";
    each clause carries at most one claim per metric it names;
  - metric mentions: the template's labels and names, plus common abbreviations
    (EV, CE, KL, top-1, ...); a phrase that fits two metrics of the template is ignored;
    text in parentheses names no metric (it is usually a gloss: "(explained variance,
    CE loss and KL scores between ...)");
  - relation cues: higher/lower (literal), better/improves/worse (by the metric's
    direction of better), highest/lowest/best/worst (superlatives), matches/unchanged/
    no effect (equality), each possibly negated by not/never/fails to a few words before
    it, or by a "no" right before it; "loses less X", "reduces X less than Run 2 does" and
    "by less than" speak of the size of a change and are not read as orderings; a metric
    (or a list of metrics) belongs to the nearest cue of its clause not across a comma;
  - runs: "Run 3", "Runs 1--3" (texscan), "the baseline" (run 0), "all (three) runs",
    "every other run", "no run/setting" (all non-baseline runs, negated), "the best run".
    Runs after the cue and "than/below/above/to/as/over/against" are the reference; runs
    before it, or after "in"/"for", are the subject. A clause without a subject takes the
    previous clause's (same sentence only); a comparative without a reference compares
    with the baseline only when the sentence names the baseline and no "than" points
    elsewhere.

Checking (noise[m] is the half-width under which a difference of metric m counts as noise):
  - an ordering (higher, better, highest, ...) must hold for every subject/reference
    pair; with a noise band it must also exceed the band, else "within noise";
  - an equality holds when every difference is within the band; without a band it cannot
    be checked and stays unresolved;
  - a negated ordering holds when the difference is within the band or goes the other way.
"""

from __future__ import annotations

import bisect
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal

from harness.paper.texscan import mask, scan, sentence_breaks
from harness.results.metrics import ResultsError, read_results, summarise
from harness.results.noise import read_noise
from harness.template import Metric, TemplateSpec

Relation = Literal["higher", "lower", "better", "worse", "highest", "lowest", "best", "worst", "same"]
Status = Literal["holds", "flagged", "unresolved"]

# --- metrics ----------------------------------------------------------------------------

# Abbreviations and paraphrases papers use for metrics. Keyed by a word of the metric's
# name, so that any template's "explained_variance" or "absorption" gets them.
_ALIASES: dict[str, tuple[str, ...]] = {
    "explained_variance": ("ev", "variance explained"),
    "l0": ("l0", "active latents", "number of active latents"),
    "ce_loss": ("ce score", "ce loss", "ce loss score", "cross entropy score", "cross entropy loss score",
                "spliced cross entropy score", "cross entropy loss"),
    "kl_div": ("kl score", "kl divergence", "kl divergence score", "kl"),
    "frac_dead": ("dead latents", "dead fraction", "fraction of dead latents", "latents are dead", "dead"),
    "sparse_probing_top1": ("top 1 probing accuracy", "probing accuracy", "probe top 1", "top 1 accuracy",
                            "sparse probing", "sparse probing accuracy", "probing", "top 1"),
    "absorption": ("absorption fraction", "absorption", "mean absorption"),
    "mean_max_cosine": ("feature recovery", "recovery", "mmcs", "mean max cosine"),
}


def _words_of(text: str) -> list[str]:
    return [w for w in re.split(r"[^a-z0-9]+", text.lower()) if w]


def _phrases(m: Metric) -> set[str]:
    """Every phrase that names metric m, as space-separated lowercase words."""
    label = re.sub(r"\([^)]*\)", " ", m.label)  # "L0 (active latents per token)" -> "L0"
    out = {" ".join(_words_of(label)), " ".join(_words_of(m.name))}
    for key, aliases in _ALIASES.items():
        if m.name == key or m.name.startswith(key + "_") and key != "explained_variance":
            out.update(aliases)
    return {p for p in out if p}


def _phrase_pattern(phrase: str) -> str:
    # hyphens, tildes and line breaks separate words in LaTeX as spaces do
    return r"(?<![a-z0-9])" + r"[\s\-~]+".join(re.escape(w) for w in phrase.split()) + r"(?![a-z0-9])"


@dataclass(frozen=True)
class MetricVocabulary:
    """Phrase -> metric name for one template; phrases that fit two metrics are dropped."""
    pattern: re.Pattern | None
    by_phrase: dict[str, str]

    @classmethod
    def of(cls, metrics: Iterable[Metric]) -> "MetricVocabulary":
        owners: dict[str, set[str]] = {}
        for m in metrics:
            for p in _phrases(m):
                owners.setdefault(p, set()).add(m.name)
        by_phrase = {p: next(iter(names)) for p, names in owners.items() if len(names) == 1}
        if not by_phrase:
            return cls(None, {})
        # longest first: "explained variance without the dominant dimension" before "explained variance"
        ordered = sorted(by_phrase, key=lambda p: (-len(p), p))
        return cls(re.compile("|".join(f"(?P<p{i}>{_phrase_pattern(p)})" for i, p in enumerate(ordered)), re.I),
                   {f"p{i}": by_phrase[p] for i, p in enumerate(ordered)})

    def find(self, text: str) -> list[tuple[int, int, str]]:
        """(start, end, metric name) of every metric mention in text."""
        if self.pattern is None:
            return []
        return [(m.start(), m.end(), self.by_phrase[m.lastgroup]) for m in self.pattern.finditer(text)]


# --- run values -------------------------------------------------------------------------

@dataclass
class RunValues:
    """The headline metrics of the completed runs, and what the check needs to know of them."""
    metrics: dict[str, Metric]
    values: dict[int, dict[str, float]]
    """run -> metric name -> value, completed runs only."""
    noise: dict[str, float] = field(default_factory=dict)
    """metric name -> half-width of the noise band; {} means no noise information."""

    @classmethod
    def from_workspace(cls, ws: Path, spec: TemplateSpec, completed: Iterable[int],
                       noise: dict[str, float] | None = None) -> "RunValues":
        values: dict[int, dict[str, float]] = {}
        for n in completed:
            try:
                info = read_results(spec, Path(ws) / f"run_{n}").info
            except ResultsError:
                continue
            s = summarise(spec, n, info)
            values[n] = {k: v for k, v in s.values.items() if v is not None and math.isfinite(v)}
        # a run trained with several seeds is its mean over them, as the harness's own noise rule
        # and the paper's tables have it: comparing seed 0 alone could pass or flag a statement
        # that the mean decides the other way
        noise_file = read_noise(Path(ws))
        for n, seeds in noise_file.runs.items():
            for name in seeds.metrics:
                if n in values and (spread := noise_file.seeded(n, name)) is not None:
                    values[n][name] = spread.mean
        return cls({m.name: m for m in spec.metrics}, values, dict(noise or {}))

    def value(self, run: int, metric: str) -> float | None:
        return self.values.get(run, {}).get(metric)


# --- cues -------------------------------------------------------------------------------

_CUES: list[tuple[str, Relation]] = [
    # equality first: "no effect" must not read as a negated "effect"
    (r"no (?:visible |measurable |clear |significant )?(?:effect|change|difference)", "same"),
    (r"unchanged|same|identical|comparable|equal(?:s|led)?|indistinguishable|on par|level with|"
     r"at the baseline'?s? level|match(?:es|ed)?", "same"),
    (r"outperform(?:s|ed)?|beat(?:s|en)?|improv(?:e|es|ed|ing|ements?)|better|gains?", "better"),
    (r"worse|worsen(?:s|ed)?|hurts?|degrad(?:e|es|ed)|underperform(?:s|ed)?", "worse"),
    (r"highest|largest|greatest", "highest"),
    (r"lowest|smallest|fewest", "lowest"),
    (r"best", "best"),
    (r"worst", "worst"),
    (r"higher|larger|greater|more|above|exceed(?:s|ed)?|ris(?:es|ing)|rose|raises?|raised|"
     r"increas(?:e|es|ed)", "higher"),
    (r"lower(?:s|ed)?|smaller|less|fewer|below|f[ae]ll(?:s)?|drop(?:s|ped)?|decreas(?:e|es|ed)|"
     r"reduc(?:e|es|ed)|cuts?", "lower"),
]
_CUE = re.compile("|".join(f"(?P<c{i}>(?<![a-z])(?:{p})(?![a-z]))" for i, (p, _) in enumerate(_CUES)), re.I)
_CUE_KIND = {f"c{i}": rel for i, (_, rel) in enumerate(_CUES)}
# verbs that say a value moved; "from A to B" after them names the reference A and the subject B
_CHANGE_VERB = re.compile(r"ris(?:es|ing)|rose|f[ae]ll(?:s)?|drop(?:s|ped)?|increas|decreas|grow|shrink", re.I)
# verbs whose size can itself be compared: "reduces the KL score less than Run 2 does"
_CHANGE_CUE = re.compile(r"ris|rose|f[ae]ll|drop|increas|decreas|reduc|lower|rais|improv|cut", re.I)
_NEGATION = re.compile(r"(?<![a-z])(?:not|never|neither|nor|without|fails? to|failed to|cannot|"
                       r"\w+n't)(?![a-z])", re.I)
# a bare "no" negates only the word it stands before ("no better"); further away it is a
# determiner ("with no warm-up, Run 2 has lower ...")
_NO_BEFORE = re.compile(r"(?<![a-z])no\s+$", re.I)
NEGATION_WINDOW = 30
"""A negation word counts for a cue when it ends this many characters or fewer before it."""
PAIR_WINDOW = 70
"""A metric farther than this from every cue of its clause is not taken as compared."""

_SUPERLATIVE = {"highest", "lowest", "best", "worst"}


@dataclass(frozen=True)
class Cue:
    start: int
    end: int
    relation: Relation
    negated: bool


def _cues(text: str) -> list[Cue]:
    out = []
    for m in _CUE.finditer(text):
        rel = _CUE_KIND[m.lastgroup]
        before = text[max(0, m.start() - 12):m.start()].lower()
        if re.search(r"\bby\s+(?:a\s+|far\s+)?$", before):
            continue  # "by less than that spread": the size of a margin, not an ordering
        if rel == "higher" and m.group().lower() == "more" and re.match(r"\s+than\s+\d", text[m.end():]):
            continue
        if rel in ("higher", "lower") and re.fullmatch(r"more|less|fewer", m.group(), re.I) and \
                re.search(r"(?<![a-z])(?:los(?:es|t|e)|costs?|gain(?:s|ed)?|sacrific\w*)\s+$", before):
            continue  # "loses less explained variance": the size of a change, not an ordering
        neg = False
        if not m.group().lower().startswith("no "):
            window = text[max(0, m.start() - NEGATION_WINDOW):m.start()]
            neg = bool(_NEGATION.search(window) or _NO_BEFORE.search(window))
        out.append(Cue(m.start(), m.end(), rel, neg))
    return _drop_change_amounts(text, out)


_AMOUNT = re.compile(r"more|less|fewer", re.I)


def _drop_change_amounts(text: str, cues: list[Cue]) -> list[Cue]:
    """"Run 1 reduces the KL score less than Run 2 does" compares two changes, not two
    values: a change verb followed in its clause by more/less/fewer makes both unusable."""
    drop: set[int] = set()
    for i, c in enumerate(cues):
        if not _CHANGE_CUE.match(text, c.start):
            continue
        for j in range(i + 1, len(cues)):
            d = cues[j]
            if _AMOUNT.fullmatch(text[d.start:d.end]) and d.start - c.end <= PAIR_WINDOW:
                drop |= {i, j}
    return [c for k, c in enumerate(cues) if k not in drop]


# --- runs -------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunRef:
    """A place in the text that names runs."""
    start: int
    end: int
    runs: tuple[int, ...] | None
    """None: "every other run" (all completed runs but the subject)."""
    negates: bool = False
    """"no run", "no setting": the statement is about all runs, negated."""
    best: bool = False
    """"the best run": resolved once the metric is known."""


_COUNTS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9}
_GROUP = re.compile(
    r"(?<![a-z])(?:(?P<all>all|every|each)\s+(?:(?P<count>two|three|four|five|six|seven|eight|nine|\d+)\s+)?"
    r"(?P<other>other\s+)?(?:runs?|settings?|variants?|configurations?)"
    r"|(?P<none>no|none of the)\s+(?:other\s+)?(?:runs?|settings?|variants?)"
    r"|(?P<sweep>the\s+sweep)"
    r"|(?P<best>the\s+best\s+run)"
    r"|(?P<base>(?:the\s+|an?\s+|its\s+)?(?:unpenali[sz]ed\s+)?baseline(?:'s)?))(?![a-z])", re.I)


def _group_refs(text: str, completed: list[int]) -> list[RunRef]:
    non_base = tuple(r for r in completed if r != 0)
    out = []
    for m in _GROUP.finditer(text):
        if m.group("base"):
            out.append(RunRef(m.start(), m.end(), (0,)))
        elif m.group("best"):
            out.append(RunRef(m.start(), m.end(), (), best=True))
        elif m.group("none"):
            out.append(RunRef(m.start(), m.end(), non_base, negates=True))
        elif m.group("sweep"):
            out.append(RunRef(m.start(), m.end(), tuple(completed)))
        elif m.group("other"):
            out.append(RunRef(m.start(), m.end(), None))
        else:
            count = m.group("count")
            if count:
                k = _COUNTS.get(count.lower()) or int(count)
                # "all three runs" are the runs besides the baseline, if there are three
                if k != len(non_base):
                    continue
                out.append(RunRef(m.start(), m.end(), non_base))
            else:
                out.append(RunRef(m.start(), m.end(), tuple(completed)))
    return out


# --- statements -------------------------------------------------------------------------

@dataclass
class Statement:
    """One comparison the paper makes: subject runs vs reference runs on one metric."""
    sentence: str
    line: int
    metric: str | None = None
    relation: Relation | None = None
    negated: bool = False
    subject: tuple[int, ...] = ()
    reference: tuple[int, ...] = ()
    status: Status = "unresolved"
    why: str = ""
    numbers: dict[str, float] = field(default_factory=dict)
    """run_N -> value of the metric, for the runs the statement involves."""
    label: str = ""
    """The metric's label, for people (the name is for programs)."""

    @property
    def flagged(self) -> bool:
        return self.status == "flagged"

    def describe(self) -> str:
        """What was resolved, e.g. "run_3: highest sparse probing top-1 accuracy (against run_0, run_1)"."""
        if self.metric is None or self.relation is None:
            return ""
        subj = ", ".join(f"run_{r}" for r in self.subject)
        ref = ", ".join(f"run_{r}" for r in self.reference)
        rel = ("not " if self.negated else "") + self.relation
        what = self.label or self.metric
        if self.relation in _SUPERLATIVE or self.relation == "same":
            return f"{subj}: {rel} {what} (against {ref})"
        return f"{subj}: {rel} {what} than {ref}"

    def to_dict(self) -> dict[str, Any]:
        return {"sentence": self.sentence, "line": self.line, "metric": self.metric,
                "relation": self.relation, "negated": self.negated, "subject": list(self.subject),
                "reference": list(self.reference), "status": self.status, "why": self.why,
                "numbers": self.numbers}


_CLAUSE_SPLIT = re.compile(r";|:(?!\d)|,?\s+(?:while|whereas|but|although|though)\s+|,\s+(?:and|so)\s+", re.I)
# words that make the run after them the reference: "lower than Run 2", "below the baseline"
_AFTER_REF = re.compile(r"(?<![a-z])(?:than|below|above|to|as|over|against|versus|vs\.?|from|among|across)(?![a-z])",
                        re.I)
# before the cue, a reference is introduced: "compared with the baseline, Run 2 has lower ..."
_BEFORE_REF = re.compile(r"(?<![a-z])(?:than|compared\s+(?:with|to)|relative\s+to|versus|vs\.?)\s*$", re.I)
_SUBJECT_PREP = re.compile(r"(?<![a-z])(?:in|for|of)\s*$", re.I)
_THAN = re.compile(r"(?<![a-z])than(?![a-z])", re.I)


def _blank_parens(text: str) -> str:
    """Text with everything inside (...) blanked, same length."""
    out, depth = [], 0
    for ch in text:
        if ch == "(":
            depth += 1
            out.append(" ")
        elif ch == ")" and depth:
            depth -= 1
            out.append(" ")
        else:
            out.append(" " if depth else ch)
    return "".join(out)


def _clauses(sentence: str) -> list[tuple[int, int]]:
    spans, at = [], 0
    plain = _blank_parens(sentence)
    for m in _CLAUSE_SPLIT.finditer(plain):
        spans.append((at, m.start()))
        at = m.end()
    spans.append((at, len(sentence)))
    return [(a, b) for a, b in spans if sentence[a:b].strip()]


@dataclass
class _Mention:
    start: int
    end: int
    ref: RunRef


def _run_mentions(sentence: str, explicit: list[tuple[int, int, tuple[int, ...]]],
                  completed: list[int]) -> list[_Mention]:
    """Run mentions in a sentence. Inside parentheses only a bare "(Run 2)" counts: it names
    the subject of what follows, while "(... between Run 4's and the baseline's)" is a gloss."""
    plain = _blank_parens(sentence)
    out = [_Mention(a, b, RunRef(a, b, runs)) for a, b, runs in explicit
           if plain[a:b].strip() or _alone_in_parens(sentence, a, b)]
    for ref in _group_refs(plain, completed):
        if not any(m.start <= ref.start < m.end for m in out):
            out.append(_Mention(ref.start, ref.end, ref))
    return sorted(out, key=lambda m: m.start)


def _alone_in_parens(s: str, a: int, b: int) -> bool:
    return bool(re.search(r"\(\s*$", s[:a])) and bool(re.match(r"\s*\)", s[b:]))


_LIST_GAP = re.compile(r"\s*(?:,\s*)?(?:(?:and|or)\s+)?(?:the\s+|its\s+|their\s+)?$", re.I)


def _metric_groups(text: str, metrics: list[tuple[int, int, str]]) -> list[tuple[int, int, list[str]]]:
    """Metrics written as a list ("explained variance, L0 and absorption") share one claim."""
    groups: list[tuple[int, int, list[str]]] = []
    for a, b, name in sorted(metrics):
        if groups and _LIST_GAP.match(text[groups[-1][1]:a]):
            ga, _, names = groups[-1]
            groups[-1] = (ga, b, names + [name])
        else:
            groups.append((a, b, [name]))
    return groups


def _pair_metrics(text: str, metrics: list[tuple[int, int, str]], cues: list[Cue]) -> list[tuple[str, Cue]]:
    """Each metric (or list of metrics) with its nearest cue; a metric named twice counts once."""
    pairs: dict[str, Cue] = {}
    for a, b, names in _metric_groups(text, metrics):
        best = None
        for c in cues:
            gap = c.start - b if c.start >= b else a - c.end
            if gap < 0 or gap > PAIR_WINDOW or "," in text[min(b, c.end):max(a, c.start)]:
                continue  # across a comma the cue belongs to another part of the sentence
            if best is None or gap < best[0]:
                best = (gap, c)
        for name in names:
            if best and name not in pairs:
                pairs[name] = best[1]
    return list(pairs.items())


@dataclass
class _Roles:
    subject: list[RunRef]
    reference: list[RunRef]
    than_elsewhere: bool
    """"than" follows the cue but names no run ("smaller than the reconstruction error")."""


def _roles(clause: str, at: int, cue: Cue, mentions: list[_Mention]) -> _Roles:
    """Which mentions of the clause (starting at offset at) are compared (subject) and
    with what (reference)."""
    subject, reference = [], []
    c0, c1 = cue.start - at, cue.end - at
    change = _CHANGE_VERB.match(clause, c0) is not None
    from_to = re.search(r"(?<![a-z])from(?![a-z]).*?(?<![a-z])to(?![a-z])", clause[c1:], re.I | re.S)
    for m in mentions:
        s = m.start - at
        if s < c0:
            (reference if _BEFORE_REF.search(clause[:s]) else subject).append(m.ref)
            continue
        between = clause[c1:s]
        if cue.relation in _SUPERLATIVE:
            reference.append(m.ref)  # "the highest of all runs": the scope, judged against all
            continue
        if change and from_to:
            # "falls from 14.99 at the baseline to 4.876 in Run 3": from names the reference
            (subject if s >= c1 + from_to.end() else reference).append(m.ref)
            continue
        chunk = between.split(",")[-1]
        if _AFTER_REF.search(chunk) or (chunk is between and re.fullmatch(r"\s*(?:the\s+)?", between)):
            reference.append(m.ref)  # "below the baseline", "beat the baseline"
        elif _SUBJECT_PREP.search(clause[:s]):
            subject.append(m.ref)  # "lower in all three runs", "the gain of Run 2"
    than = _THAN.search(clause, c1)
    than_elsewhere = bool(than) and not any(m.start - at >= than.start() for m in mentions)
    return _Roles(subject, reference, than_elsewhere)


# --- the check --------------------------------------------------------------------------

def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _goes_up(relation: Relation, better: str) -> bool:
    """Whether the relation says the subject's value is the larger one."""
    if relation in ("higher", "highest"):
        return True
    if relation in ("lower", "lowest"):
        return False
    good = relation in ("better", "best")
    return good == (better == "higher")


def _pair_problem(st: Statement, s: int, r: int, vs: float, vr: float, band: float | None,
                  better: str) -> str | None:
    """Why the statement fails for subject run s against reference run r, or None."""
    d = vs - vr
    within = band is not None and abs(d) <= band
    pair = f"run_{s} {_fmt(vs)} vs run_{r} {_fmt(vr)}: difference {_fmt(abs(d))}"
    if st.relation == "same":
        if st.negated:
            return None if not within else f"{pair} is within the noise band {_fmt(band)}"
        return None if within else f"{pair} exceeds the noise band {_fmt(band)}"
    up = _goes_up(st.relation, better)
    ordered = d > 0 if up else d < 0
    sym = ">" if up else "<"
    if st.negated:
        if not ordered or within:
            return None
        return f"run_{s} {_fmt(vs)} {sym} run_{r} {_fmt(vr)} holds" + (
            f", by more than the noise band {_fmt(band)}" if band is not None else "")
    if not ordered:
        return f"run_{s} {_fmt(vs)} {sym} run_{r} {_fmt(vr)} is false"
    if within:
        return f"{pair} is within the noise band {_fmt(band)}"
    return None


def _judge(st: Statement, values: RunValues) -> None:
    """Set st.status, st.why and st.numbers from the values and the noise band."""
    band = values.noise.get(st.metric)
    runs = sorted(set(st.subject) | set(st.reference))
    missing = [r for r in runs if values.value(r, st.metric) is None]
    if missing:
        st.status, st.why = "unresolved", f"no {st.metric} value for run_{missing[0]}"
        return
    v = {r: values.value(r, st.metric) for r in runs}
    st.numbers = {f"run_{r}": v[r] for r in runs}
    if st.relation == "same" and band is None:
        st.status, st.why = "unresolved", (f"no noise band for {st.metric}: a claim of no difference "
                                           "cannot be checked")
        return
    better = values.metrics[st.metric].better
    problems = [p for s in st.subject for r in st.reference if r != s
                for p in [_pair_problem(st, s, r, v[s], v[r], band, better)] if p]
    if not problems:
        st.status = "holds"
        return
    st.status = "flagged"
    st.why = "; ".join(problems[:3]) + (f"; and {len(problems) - 3} more" if len(problems) > 3 else "")
    if band is None:
        st.why += " (no noise band given: ordering only)"


def _resolve_runs(refs: list[RunRef], subject: tuple[int, ...], metric: Metric,
                  values: RunValues) -> tuple[int, ...] | None:
    runs: list[int] = []
    for ref in refs:
        if ref.best:
            best = None
            for r, vals in values.values.items():
                x = vals.get(metric.name)
                if r != 0 and x is not None and (best is None or metric.is_better(x, best[1])):
                    best = (r, x)
            if best is None:
                return None
            runs.append(best[0])
        elif ref.runs is None:
            runs += [r for r in values.values if r not in subject]
        else:
            runs += list(ref.runs)
    return tuple(dict.fromkeys(runs))


def _readable(sentence: str) -> str:
    """The sentence on one line, without the heading or paragraph command it may start with."""
    text = " ".join(sentence.split()).lstrip(". ")
    return re.sub(r"^(?:\\[A-Za-z]+\*?(?:\{[^}]*\})?\s*)+", "", text)


def _statement(sentence: str, line: int, metric: Metric, cue: Cue, roles: _Roles, carried: list[RunRef],
               sentence_names_baseline: bool, values: RunValues) -> tuple[Statement, list[RunRef]]:
    st = Statement(sentence=_readable(sentence), line=line, metric=metric.name,
                   relation=cue.relation, negated=cue.negated, label=metric.label)
    # "No setting separated itself from the baseline: EV stayed at its level" must not carry
    # its "no" into the next clause, where it would invert the claim
    subj_refs = roles.subject or [r for r in carried if not r.negates]
    # "no setting beat the baseline": the "no" is the group's and the cue's at once
    st.negated = cue.negated or any(r.negates for r in subj_refs)
    if not subj_refs:
        st.why = "no run is named as the subject"
        return st, carried
    subject = _resolve_runs(subj_refs, (), metric, values)
    if not subject:
        st.why = "the subject's runs could not be resolved"
        return st, carried
    ref_refs = roles.reference
    if cue.relation in _SUPERLATIVE:
        # "the highest of all runs" / "the best of the sweep": the others are every completed run
        reference = tuple(r for r in values.values if r not in subject)
    elif ref_refs:
        reference = _resolve_runs(ref_refs, subject, metric, values) or ()
    elif roles.than_elsewhere:
        st.why = "compared with something that is not a run"
        return st, subj_refs
    elif sentence_names_baseline and 0 not in subject:
        reference = (0,)
    else:
        st.why = "no run to compare with"
        return st, subj_refs
    reference = tuple(r for r in reference if r not in subject)
    st.subject, st.reference = subject, reference
    unknown = [r for r in set(subject) | set(reference) if r not in values.values]
    if unknown:
        st.why = f"run_{unknown[0]} has no completed results (the number check reports run names)"
        return st, subj_refs
    if not reference:
        st.why = "nothing to compare with"
        return st, subj_refs
    _judge(st, values)
    return st, subj_refs


def find_statements(tex: str, values: RunValues) -> list[Statement]:
    """Every comparative statement in a LaTeX document that names a headline metric,
    resolved and checked where possible."""
    masked = mask(tex)
    vocab = MetricVocabulary.of(values.metrics.values())
    completed = sorted(values.values)
    _, run_mentions = scan(tex)
    line_starts = [0] + [i + 1 for i, ch in enumerate(tex) if ch == "\n"]
    bounds = [0] + sentence_breaks(tex) + [len(tex)]
    out: list[Statement] = []
    for a, b in zip(bounds, bounds[1:]):
        sentence = masked[a:b]
        if not sentence.strip():
            continue
        plain = _blank_parens(sentence)
        if not _CUE.search(plain) or not vocab.find(plain):
            continue
        explicit = [(m.start - a, m.end - a, m.runs) for m in run_mentions if a <= m.start < b]
        mentions = _run_mentions(sentence, explicit, completed)
        names_baseline = any(m.ref.runs == (0,) for m in mentions)
        carried: list[RunRef] = []
        for ca, cb in _clauses(sentence):
            clause = plain[ca:cb]
            local = [m for m in mentions if ca <= m.start < cb]
            # a cue inside a run phrase ("the best run") is not a relation
            cues = [Cue(c.start + ca, c.end + ca, c.relation, c.negated) for c in _cues(clause)
                    if not any(m.start <= c.start + ca < m.end for m in local)]
            metrics = [(s + ca, e + ca, n) for s, e, n in vocab.find(clause)]
            for name, cue in _pair_metrics(plain, metrics, cues):
                roles = _roles(sentence[ca:cb], ca, cue, local)
                line = bisect.bisect_right(line_starts, a + cue.start)  # where the claim is made
                st, subj = _statement(sentence, line, values.metrics[name], cue, roles, carried,
                                      names_baseline, values)
                out.append(st)
                carried = subj or carried
            # a clause that opens with runs ("Run 3 keeps ...") names the subject of the next
            lead = [m.ref for m in local if not sentence[ca:m.start].strip(" ~(,.\n")
                    or (cues and m.start < cues[0].start and not _BEFORE_REF.search(sentence[ca:m.start]))]
            if lead:
                carried = lead
    return out
