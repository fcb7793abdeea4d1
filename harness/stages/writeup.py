"""Writeup: the agent fills latex/template.tex section by section, the harness compiles it
and checks its claims.

Each section gets its own short conversation (write, then critique against a checklist),
so a prompt carries that section's context and not the whole paper's chat so far. The
file itself is in every request, so the agent still sees what earlier sections say.
Progress is a step counter in state.json (WriteupProgress): a resumed stage starts at the first step not
committed, instead of asking the model for sections it already has.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from harness.agent.prompts import load_data, render
from harness.config import resource_dir
from harness.paper.claims import CLAIMS_FILE, verify_paper
from harness.paper.latex import (
    CompileResult,
    LatexToolError,
    chktex_warnings,
    compile_pdf,
)
from harness.results.metrics import (
    RunSummary,
    best_so_far,
    headline_metrics,
    read_results,
    summarise,
)
from harness.results.noise import read_noise
from harness.stages.context import IdeaContext
from harness.stages.experiments import declared_metric, run_summaries
from harness.stages.turns import agent_turn
from harness.workspace import HARNESS_DIR

STAGE = "writeup"
TEMPLATE_DIR = resource_dir("latex_template")
TEX = "latex/template.tex"
BIB = "latex/references.bib"
PAPER = "paper.pdf"
COMPILE_FIX_ROUNDS = 3

SECTIONS = [(s["name"], s["parts"], s["purpose"]) for s in load_data("writeup_sections")]
"""(step name, placeholder parts it fills, what the section is for), from prompts/writeup_sections.yaml."""
STEPS = [f"{name}:{kind}" for name, _, _ in SECTIONS for kind in ("write", "refine")] + [
    "related work:sketch", "related work:cite"]

_BIB_ENTRY = re.compile(r"@(\w+)\s*\{\s*([^,\s]+)\s*,(.*?)\n\}", re.S)
_BIB_TITLE = re.compile(r"\btitle\s*=\s*\{(.*?)\}\s*,?\s*$", re.S | re.M)


def _figures(ws: Path) -> list[str]:
    return sorted(p.name for p in ws.glob("*.png") if p.is_file())


def _results_table(ctx: IdeaContext) -> tuple[str, str]:
    """One row per completed run, one column per headline metric: values as in the files.
    Also the best run per metric, where a degenerate run is never the best."""
    runs = ctx.state.done_runs()
    if not runs:
        return "(no completed runs)", ""
    infos = {r.index: read_results(ctx.spec, ctx.path / r.folder).info for r in runs}
    metrics = headline_metrics(ctx.spec, infos[runs[0].index])
    head = ["run"] + [f"{m.label} ({'higher' if m.better == 'higher' else 'lower'} is better)" for m in metrics]
    rows = [" | ".join(head)]
    summaries = [summarise(ctx.spec, r.index, infos[r.index]) for r in runs]
    noise = read_noise(ctx.path)
    for r, s in zip(runs, summaries):
        seeded = noise.runs.get(r.index)
        if seeded and len(seeded.seeds) > 1:  # mean ± std over the seeds, not seed 0 alone
            cells = [seeded.metrics[m.name].text() if m.name in seeded.metrics else "-" for m in metrics]
            seeds = f" (mean ± std over seeds {', '.join(map(str, seeded.seeds))})"
        else:
            cells = ["-" if s.values.get(m.name) is None else f"{s.values[m.name]:.4g}" for m in metrics]
            seeds = ""
        flag = f" (degenerate: {'; '.join(s.degenerate)})" if s.degenerate else ""
        rows.append(" | ".join([f"run_{r.index}{' (baseline)' if r.index == 0 else ''}{seeds}"] + cells) + flag)
    bands = noise.bands()
    if bands:
        rows.append(f"Noise: {noise.rule}. Bands: " + "; ".join(
            f"{m.label} ±{bands[m.name]:.3g}" for m in metrics if m.name in bands) + ".")
    return "\n".join(rows), _best_runs(ctx, summaries, metrics)


def _best_runs(ctx: IdeaContext, summaries: list[RunSummary], metrics) -> str:
    """What the paper may call the best result: a run whose numbers break the template's
    rules (NaN, EV < 0, all latents dead) would often 'win' (an all-dead SAE has the lowest
    L0), so degenerate runs are left out and named as such."""
    best = []
    for m in metrics:
        b = best_so_far(ctx.spec, summaries, m)
        best.append(f"{m.label}: {f'run_{b[1]} ({b[0]:.4g})' if b else 'no run without a degenerate flag'}")
    return render("best_runs", best=best, broken=[f"run_{s.run}" for s in summaries if s.degenerate]).rstrip("\n")


def _bib_entries(ws: Path) -> list[tuple[str, str]]:
    text = (ws / BIB).read_text(encoding="utf-8", errors="replace")
    out = []
    for m in _BIB_ENTRY.finditer(text):
        if m.group(1).lower() in ("comment", "string", "preamble"):
            continue
        t = _BIB_TITLE.search(m.group(3))
        title = re.sub(r"[{}]", "", t.group(1)) if t else ""
        out.append((m.group(2), re.sub(r"\s+", " ", title)))
    return out


def _declared(ctx: IdeaContext) -> dict | None:
    """Whether the expectation the idea declared before any run held: the non-degenerate run
    that moved the declared metric furthest in the expected direction, against run_0."""
    m = declared_metric(ctx)
    if m is None:
        return None
    direction = ctx.idea.expected_direction or m.better
    out = dict(label=m.label, direction=direction, run=None, noise="")
    values = {s.run: s for s in run_summaries(ctx)}
    base = values[0].values.get(m.name) if 0 in values else None
    moved = [(s.values[m.name], i) for i, s in values.items()
             if i > 0 and not s.degenerate and s.values.get(m.name) is not None]
    if base is None or not moved:
        return out
    value, run = (max if direction == "higher" else min)(moved)
    held = value > base if direction == "higher" else value < base
    return out | dict(run=run, value=f"{value:.4g}", base=f"{base:.4g}", held=held,
                      noise=_noise_sentence(ctx, m, run))


def _noise_sentence(ctx: IdeaContext, m, run: int) -> str:
    """Whether that run's difference from the baseline leaves the seed-noise band."""
    noise = read_noise(ctx.path)
    base = noise.baseline.metrics.get(m.name) if noise.baseline else None
    if base is None or base.band is None:
        return "Each run was trained once, so whether the difference exceeds seed noise is not known."
    seeded = noise.runs.get(run)
    spread = seeded.metrics.get(m.name) if seeded and run != 0 else None
    value = spread.mean if spread else _value_of(ctx, run, m.name)
    where = (f"over its seeds {', '.join(map(str, seeded.seeds))} run_{run} has {spread.text()}" if spread
             else f"run_{run} ran with one seed ({value:.4g})")
    within = noise.within(m.name, value, base.mean)
    verdict = "within seed noise, so it is not evidence either way" if within else "beyond seed noise"
    return (f"The baseline over {len(noise.baseline.seeds)} seeds has {base.text()}; {where}: the difference "
            f"of {value - base.mean:+.3g} is {verdict} (band ±{base.band:.3g}, {noise.rule}).")


def _value_of(ctx: IdeaContext, run: int, metric: str) -> float:
    return next(s.values[metric] for s in run_summaries(ctx) if s.run == run)


def _context(ctx: IdeaContext) -> dict:
    runs = ctx.state.done_runs()
    table, best = _results_table(ctx)
    return dict(idea=ctx.idea, runs=[f"run_{r.index}" for r in runs], table=table, best=best,
                figures=_figures(ctx.path), plots_note=ctx.state.plots.outcome, declared=_declared(ctx))


def _turn(ctx: IdeaContext, session, message: str, turn: int, label: str) -> str:
    return agent_turn(ctx, session, STAGE, message, turn, [TEX], f"{label} (turn {turn})", commit_empty=True).reply


def _session(ctx: IdeaContext, name: str):
    slug = re.sub(r"\W+", "_", name)
    return ctx.agent.session(STAGE, files=[TEX], read_only=["notes.txt"],
                             history_path=ctx.path / HARNESS_DIR / f"chat_{STAGE}_{slug}.json")


def _copy_template(ctx: IdeaContext) -> None:
    dest = ctx.path / "latex"
    if (dest / "template.tex").exists():
        return  # resumed: the agent's text so far is in there
    dest.mkdir(exist_ok=True)
    for name in ("template.tex", "references.bib"):
        shutil.copyfile(TEMPLATE_DIR / name, dest / name)
    ctx.ws.commit(f"[{STAGE}] LaTeX template copied into latex/", paths=[TEX, BIB])


def _write_sections(ctx: IdeaContext, turn: int) -> int:
    done = ctx.state.writeup.steps_done
    base = _context(ctx)
    keys = _bib_entries(ctx.path)
    for i in range(0, len(STEPS), 2):
        if done >= i + 2:
            turn += 2
            continue
        name = STEPS[i].split(":")[0]
        section = next((s for s in SECTIONS if s[0] == name), None)
        session = _session(ctx, name)
        try:
            if section:
                _, parts, purpose = section
                steps = [("write", render("writeup_section", section=name, parts=parts, purpose=purpose, **base)),
                         ("refine", render("writeup_refine", section=name, parts=parts, **base))]
            else:
                steps = [("sketch", render("writeup_related", keys=keys, **base)),
                         ("cite", render("writeup_cite", keys=keys))]
            for k, (kind, message) in enumerate(steps):
                if done > i + k:
                    turn += 1
                    continue
                turn += 1
                _turn(ctx, session, message, turn, f"{name}, {kind}")
                ctx.state.writeup.steps_done = i + k + 1
                ctx.save()
        finally:
            session.close()
    return turn


def _problems(tex: Path, result: CompileResult, level: str) -> str:
    lines = [result.message()] if not result.clean else []
    try:
        warns = chktex_warnings(tex, level=level)
    except LatexToolError as exc:
        warns = [str(exc)]
    if warns:
        lines.append("chktex found:\n" + "\n".join(f"- {w}" for w in warns[:15]))
    return "\n".join(lines)


def _compile(ctx: IdeaContext, session, turn: int, rounds: int, label: str) -> tuple[CompileResult, int]:
    tex = ctx.path / TEX
    level = ctx.sandbox.level  # TeX runs in the same cage as the idea's runs
    result = compile_pdf(tex, level=level)
    ctx.say(STAGE, f"compiled in {result.duration_s:.1f} s: {'ok' if result.ok else 'failed'}, "
                   f"{result.pages or '?'} pages")
    for attempt in range(1, rounds + 1):
        problems = _problems(tex, result, level)
        if not problems:
            break
        turn += 1
        _turn(ctx, session, render("writeup_compile", problems=problems, attempt=attempt, rounds=rounds),
              turn, f"{label} {attempt}")
        result = compile_pdf(tex, level=level)
        ctx.say(STAGE, f"recompiled in {result.duration_s:.1f} s: {'ok' if result.ok else 'failed'}")
    return result, turn


def _publish(ctx: IdeaContext, result: CompileResult) -> bool:
    if result.pdf is None or not result.pdf.is_file():
        return False
    shutil.copyfile(result.pdf, ctx.path / PAPER)
    return True


def run(ctx: IdeaContext) -> None:
    _copy_template(ctx)
    turn = _write_sections(ctx, 0)
    session = _session(ctx, "compile")
    try:
        result, turn = _compile(ctx, session, turn, COMPILE_FIX_ROUNDS, "compile fix")
        report = verify_paper(ctx.path, ctx.path / TEX, spec=ctx.spec, noise=read_noise(ctx.path).bands())
        first_unmatched = len(report.unmatched)
        if not report.ok:
            ctx.say(STAGE, f"{first_unmatched} of {len(report.results)} claims do not trace to run files, "
                           f"{len(report.flagged)} comparisons do not hold; one correction round")
            turn += 1
            _turn(ctx, session, render("writeup_claims", report=report.message()), turn, "claims correction")
            result, turn = _compile(ctx, session, turn, 1, "compile fix after claims")
            report = verify_paper(ctx.path, ctx.path / TEX, spec=ctx.spec, noise=read_noise(ctx.path).bands())
    finally:
        session.close()
    published = _publish(ctx, result)
    ctx.ws.commit(f"[{STAGE}] {PAPER if published else 'no PDF'}; claims check: "
                  f"{len(report.unmatched)} of {len(report.results)} unmatched",
                  paths=[TEX, PAPER, CLAIMS_FILE, "chat.jsonl"])
    ctx.state.writeup.outcome = (f"{'paper.pdf' if published else 'no PDF'}"
                              f"{f', {result.pages} pages' if result.pages else ''}; compile "
                              f"{'clean' if result.clean else 'ok with problems' if result.ok else 'failed'}; "
                              f"claims {len(report.results)}, unmatched {first_unmatched} before correction, "
                              f"{len(report.unmatched)} after; comparisons flagged {len(report.flagged)}")
    ctx.say(STAGE, ctx.state.writeup.outcome)
    if not published:
        ctx.state.stages[STAGE] = "failed"
