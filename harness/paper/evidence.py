"""What a reviewer is given besides the paper: the evidence the harness holds about it.

A reviewer who reads only the PDF can accept a paper whose numbers no run produced. Here
each reviewer also gets what the harness knows and the paper may not say: the claims
check's findings (numbers that trace to no run file, comparisons the runs contradict),
every run's headline metrics with a noise band where the run file carries a standard
error, the runs that are degenerate, failed, or whose exported SAE disagrees with the
run's own, and what the agent changed in the template's code. Findings carry short tags
(C1, C2, ...) so that a review can be checked for having addressed each of them.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import git

from harness.records.files import read_json
from harness.records.state import State
from harness.results.metrics import (
    ResultsError,
    fmt_short,
    headline_metrics,
    read_final_info,
    summarise,
)
from harness.template import TemplateSpec

PAPER_LIMIT = 40_000
"""Characters of paper text a reviewer gets (a 9-page paper's LaTeX body is ~30k)."""
DIFF_LINES = 160
MAX_FINDINGS = 12
NOT_CODE = re.compile(r"(^|/)(latex/|run_\d|chat\.jsonl$|harness\.log$|claims\.json$|review\.json$|"
                      r"paper\.pdf$|report\.html$|notes\.txt$|results_table\.tex$|.*\.(png|pdf)$)")
"""Workspace files that are outputs or prose, not the agent's change to the method."""


@dataclass
class Finding:
    tag: str
    """C1, C2, ...: the name a review uses for it."""
    kind: str
    line: int
    text: str
    why: str

    def describe(self) -> str:
        return f"[{self.tag}] {self.kind}, paper line {self.line}: {self.text} -- {self.why}"


@dataclass
class Evidence:
    paper: str
    """The paper's text: the LaTeX body, or the PDF's text when there is no source."""
    paper_source: str
    findings: list[Finding] = field(default_factory=list)
    findings_more: int = 0
    """Findings beyond MAX_FINDINGS, counted, not listed."""
    claims_present: bool = False
    claims_total: int = 0
    run_table: str = ""
    noise_note: str = ""
    flagged_runs: list[str] = field(default_factory=list)
    diff_stat: str = ""
    diff: str = ""
    diff_more: int = 0


def paper_text(ws: Path) -> tuple[str, str]:
    """(text, where it came from): the LaTeX body if the source is there, else pdftotext of paper.pdf."""
    tex = ws / "latex" / "template.tex"
    if tex.is_file():
        text = tex.read_text(encoding="utf-8", errors="replace")
        body = text.split("\\begin{document}", 1)
        return (body[1] if len(body) == 2 else text)[:PAPER_LIMIT], "latex/template.tex"
    pdf = ws / "paper.pdf"
    if pdf.is_file():
        try:
            out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                                 timeout=120)
        except (OSError, subprocess.TimeoutExpired):
            return "", "paper.pdf (pdftotext is not available)"
        return out.stdout[:PAPER_LIMIT], "paper.pdf (pdftotext)"
    return "", "no paper (neither latex/template.tex nor paper.pdf)"


def findings(ws: Path) -> tuple[list[Finding], int, bool, int]:
    """The claims check's findings in claims.json: unmatched numbers and run mentions, then
    comparisons it flagged. Returns (findings shown, how many more, claims.json present, claims)."""
    data = read_json(ws / "claims.json")
    if not isinstance(data, dict):
        return [], 0, False, 0
    out: list[Finding] = []
    seen: set[tuple] = set()
    for r in data.get("results", []):
        if not isinstance(r, dict) or r.get("status") == "ok":
            continue
        key = (r.get("line"), r.get("text"))
        if key in seen:
            continue
        seen.add(key)
        kind = "run mention with no such run" if r.get("kind") == "run" else "number found in no run file"
        why = r.get("note") or f"in \"{str(r.get('context', '')).strip()}\""
        out.append(Finding("", kind, int(r.get("line") or 0), str(r.get("text", "")).strip(), why))
    for s in data.get("statements", []):
        if not isinstance(s, dict) or s.get("status") != "flagged":
            continue
        key = (s.get("line"), s.get("sentence"))
        if key in seen:
            continue  # one sentence may be flagged once per metric it names; one finding is enough
        seen.add(key)
        nums = ", ".join(f"{k} = {fmt_short(v)}" for k, v in (s.get("numbers") or {}).items())
        why = str(s.get("why", "")).strip() + (f" (values: {nums})" if nums else "")
        out.append(Finding("", "comparison the run files contradict", int(s.get("line") or 0),
                           f"\"{str(s.get('sentence', '')).strip()}\"", why))
    for k, f in enumerate(out, 1):
        f.tag = f"C{k}"
    return out[:MAX_FINDINGS], max(0, len(out) - MAX_FINDINGS), True, int(data.get("claims", 0) or 0)


def _stderr(info: dict, path: tuple[str, ...]) -> float | None:
    node = info
    for key in path[:-1]:
        node = node.get(key) if isinstance(node, dict) else None
    v = node.get(path[-1] + "_stderr") if isinstance(node, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def run_table(ws: Path, spec: TemplateSpec, state: State) -> tuple[str, str, list[str]]:
    """(table, note on noise, flagged runs): one row per completed run, value +- standard error
    where the run file has one."""
    flagged: list[str] = []
    rows, metrics, banded = [], None, set()
    for r in state.done_runs():
        try:
            info = read_final_info(ws / r.folder)
        except ResultsError as exc:
            flagged.append(f"run_{r.index}: its results cannot be read ({exc})")
            continue
        metrics = metrics or headline_metrics(spec, info)
        s = summarise(spec, r.index, info)
        cells = []
        for m in metrics:
            v, err = s.values.get(m.name), _stderr(info, m.path)
            if err is not None:
                banded.add(m.label)
            cells.append(fmt_short(v) + (f" +- {fmt_short(err)}" if err is not None and v is not None else ""))
        rows.append(" | ".join([f"run_{r.index}{' (baseline)' if r.index == 0 else ''}"] + cells))
        if s.degenerate:
            flagged.append(f"run_{r.index}: degenerate ({'; '.join(s.degenerate)})")
        check = read_json(ws / r.folder / "sae" / "cfg.json")
        export = check.get("metadata", {}).get("export_check") if isinstance(check, dict) else None
        if isinstance(export, dict) and export.get("matches") is False:
            flagged.append(f"run_{r.index}: the exported SAE does not reproduce the run's own SAE "
                           f"({export.get('tokens_disagreeing', '?')} of {export.get('tokens', '?')} tokens disagree)")
    for r in sorted(state.runs.values(), key=lambda r: r.index):
        if r.status == "failed":
            flagged.append(f"run_{r.index}: failed (exit code {r.exit_code}); its numbers must not appear")
    if not rows:
        return "(no completed runs)", "", flagged
    head = ["run"] + [f"{m.label} ({'higher' if m.better == 'higher' else 'lower'} is better)" for m in metrics]
    note = (f"+- is one standard error from the run file ({', '.join(sorted(banded))}); " if banded else "") + \
        "each run was trained once: metrics without +- have no measured noise band, so small differences " \
        "between runs may be seed noise"
    return "\n".join([" | ".join(head), *rows]), note, flagged


def agent_diff(ws: Path) -> tuple[str, str, int]:
    """(stat, patch, lines left out) of the agent's code against the template: the workspace's
    first commit (the template plus idea.json) to HEAD, outputs and prose left out."""
    try:
        repo = git.Repo(ws)
        first = repo.git.rev_list("--max-parents=0", "HEAD").split()[-1]
        changed = [p for p in repo.git.diff("--name-only", first, "HEAD").splitlines() if not NOT_CODE.search(p)]
        if not changed:
            return "(the agent changed no code)", "", 0
        stat = repo.git.diff("--stat", first, "HEAD", "--", *changed)
        patch = repo.git.diff("--no-color", "-U2", first, "HEAD", "--", *changed).splitlines()
    except (git.GitError, ValueError, IndexError) as exc:
        return f"(no diff: {exc})", "", 0
    return stat, "\n".join(patch[:DIFF_LINES]), max(0, len(patch) - DIFF_LINES)


def gather(ws: Path, spec: TemplateSpec, state: State) -> Evidence:
    text, source = paper_text(ws)
    found, more, present, total = findings(ws)
    table, note, flagged = run_table(ws, spec, state)
    stat, patch, diff_more = agent_diff(ws)
    return Evidence(paper=text, paper_source=source, findings=found, findings_more=more, claims_present=present,
                    claims_total=total, run_table=table, noise_note=note, flagged_runs=flagged,
                    diff_stat=stat, diff=patch, diff_more=diff_more)


def unaddressed(evidence: Evidence, text: str) -> list[str]:
    """Tags of the findings a review's soundness section does not mention."""
    return [f.tag for f in evidence.findings if not re.search(rf"\b{f.tag}\b", text)]
