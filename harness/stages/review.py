"""Review: N reviewers fill a NeurIPS-style form for the paper, with the harness's evidence
beside it, then a meta-review; `--improve` revises the paper once from the meta-review.

Each reviewer is one short conversation: the request (evidence + paper + form), at most
one repair request when the reply does not fill the form (naming the field), and at most
one when its soundness section skips a claims-check finding (naming the tags). A reviewer
still failing after that is dropped and recorded with the reason; the meta-review uses the
rest. Progress (each reviewer's outcome, the meta-review) is kept in state.json, so a
resumed stage asks only what is missing. review.json is committed like the other stages'
outputs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from harness.agent.completion import Completer
from harness.agent.prompts import render
from harness.paper.claims import CLAIMS_FILE, verify_paper
from harness.paper.evidence import Evidence, findings, gather, unaddressed
from harness.paper.review_form import (
    FIELDS,
    FormError,
    MetaReview,
    Review,
    parse_meta,
    parse_review,
)
from harness.records.files import write_json
from harness.stages.context import IdeaContext
from harness.stages.turns import agent_turn
from harness.stages.writeup import PAPER, TEX, _compile, _publish
from harness.workspace import HARNESS_DIR

STAGE = "review"
REVIEW_FILE = "review.json"
FOCUS = (
    "You care most about whether the evidence supports each claim.",
    "You care most about whether the method is clearly explained and the comparison with the baseline is fair.",
    "You care most about whether the contribution matters to people who train and evaluate SAEs.",
)
"""Reviewers differ in emphasis, as a real committee does (and their requests differ, so a
scripted or replayed model can tell them apart)."""


@dataclass
class ReviewerOutcome:
    reviewer: int
    status: Literal["ok", "dropped"]
    review: dict[str, Any] | None
    reason: str = ""
    """Why the reviewer was dropped, or what its repairs were."""
    repairs: int = 0


def skip_reason(ctx: IdeaContext) -> str:
    """Why the stage cannot run here ('' when it can)."""
    replayed = ctx.settings.replayed_stages
    if replayed is not None and STAGE not in replayed:
        return ("the recording holds no review replies (it was made before the review stage existed); "
                "re-record it, or review with a model: run_harness.py review "
                f"{ctx.path} --model MODEL")
    if not (ctx.path / TEX).is_file() and not (ctx.path / PAPER).is_file():
        return "there is no paper to review (no latex/template.tex or paper.pdf)"
    return ""


def _ask_reviewer(ctx: IdeaContext, ask: Completer, ev: Evidence, number: int, total: int) -> ReviewerOutcome:
    system = render("review_system", number=number, total=total, focus=FOCUS[(number - 1) % len(FOCUS)])
    messages = [{"role": "system", "content": system}, {"role": "user", "content": render("review_request", ev=ev)}]
    tags = [f.tag for f in ev.findings]
    form_repaired = evidence_repaired = False
    turn = number * 10
    notes: list[str] = []
    while True:
        turn += 1
        reply = ask.ask(messages, turn)
        messages.append({"role": "assistant", "content": reply})
        try:
            review = parse_review(reply)
        except FormError as exc:
            if form_repaired:
                return ReviewerOutcome(number, "dropped", None, f"did not fill the form after one repair: {exc}",
                                       len(notes))
            form_repaired = True
            notes.append(f"form repaired ({exc})")
            ctx.say(STAGE, f"reviewer {number}: {exc}; one repair request")
            messages.append({"role": "user", "content": render("review_repair", error=str(exc), fields=FIELDS)})
            continue
        missing = unaddressed(ev, review.soundness_evidence)
        if not missing:
            return ReviewerOutcome(number, "ok", review.to_dict(), "; ".join(notes), len(notes))
        if evidence_repaired:
            return ReviewerOutcome(number, "dropped", review.to_dict(),
                                   f"its soundness section still ignores claims-check findings {', '.join(missing)} "
                                   "after one repair", len(notes))
        evidence_repaired = True
        notes.append(f"evidence repaired (missed {', '.join(missing)})")
        ctx.say(STAGE, f"reviewer {number}: soundness section does not mention {', '.join(missing)}; one repair request")
        messages.append({"role": "user", "content": render("review_evidence_repair", missing=missing, tags=tags)})


def _ask_meta(ctx: IdeaContext, ask: Completer, ev: Evidence, reviews: list[Review]) -> tuple[MetaReview | None, str]:
    prompt = render("review_meta", reviews=reviews, title=ctx.idea.title, findings=ev.findings)
    messages = [{"role": "system", "content": "You are the area chair of a machine-learning workshop. "
                                              "You answer with one JSON object and nothing else."},
                {"role": "user", "content": prompt}]
    error = ""
    for turn in (1, 2):
        reply = ask.ask(messages, turn)
        try:
            meta = parse_meta(reply, reviews)
        except FormError as exc:
            error = str(exc)
            if turn == 1:
                ctx.say(STAGE, f"meta-review: {exc}; one repair request")
                messages += [{"role": "assistant", "content": reply},
                             {"role": "user", "content": render("review_repair", error=error,
                                                                fields=("summary", "soundness_evidence", "strengths",
                                                                        "weaknesses", "revision_requests",
                                                                        "decision"))}]
            continue
        missing = unaddressed(ev, meta.soundness_evidence)
        return meta, (f"its soundness section does not mention {', '.join(missing)}" if missing else "")
    return None, f"the meta-review did not fill its form after one repair: {error}"


def _improve(ctx: IdeaContext, ev: Evidence, meta: MetaReview) -> dict[str, Any]:
    """One revision of the paper by the coding agent, recompiled, its claims checked again."""
    before = dict(unmatched=len(ev.findings) + ev.findings_more)
    session = ctx.agent.session(STAGE, files=[TEX], read_only=["notes.txt"],
                                history_path=ctx.path / HARNESS_DIR / f"chat_{STAGE}_revision.json")
    try:
        turn = agent_turn(ctx, session, STAGE, render("review_improve", meta=meta, findings=ev.findings), 1,
                          [TEX], "revision from the meta-review (turn 1)", commit_empty=True)
        result, _ = _compile(ctx, session, 1, 1, "compile fix after the revision")
    finally:
        session.close()
    report = verify_paper(ctx.path, ctx.path / TEX, spec=ctx.spec)
    published = _publish(ctx, result)
    after, _, _, _ = findings(ctx.path)
    out = dict(edited=turn.edited, compiled=result.ok, paper_updated=published,
               claims=len(report.results), findings_before=before["unmatched"],
               findings_after=len(after), unmatched_after=len(report.unmatched), flagged_after=len(report.flagged))
    ctx.ws.commit(f"[{STAGE}] revised paper: {'paper.pdf updated' if published else 'no PDF'}; claims check "
                  f"{before['unmatched']} findings before, {len(after)} after",
                  paths=[TEX, PAPER, CLAIMS_FILE, "chat.jsonl"])
    return out


def _write(ctx: IdeaContext, ev: Evidence, meta: MetaReview | None, meta_note: str,
           revision: dict[str, Any] | None) -> None:
    p = ctx.state.review
    write_json(ctx.path / REVIEW_FILE, {
        "paper": ev.paper_source,
        "evidence": {"claims_checked": ev.claims_total, "findings": [asdict(f) for f in ev.findings],
                     "findings_more": ev.findings_more, "flagged_runs": ev.flagged_runs},
        "reviewers": p.reviewers,
        "meta_review": meta.to_dict() if meta else None,
        "meta_note": meta_note,
        "revision": revision,
    })


def run(ctx: IdeaContext) -> None:
    why = skip_reason(ctx)
    if why:
        ctx.state.stages[STAGE] = "skipped"
        ctx.state.review.outcome = f"skipped: {why}"
        ctx.say(STAGE, f"review skipped: {why}")
        return
    p = ctx.state.review
    ev = gather(ctx.path, ctx.spec, ctx.state)
    ask = Completer(ctx.agent, STAGE)
    total = ctx.cfg.reviewers
    ctx.say(STAGE, f"{total} reviewers; evidence: {len(ev.findings) + ev.findings_more} claims-check findings, "
                   f"{len(ev.flagged_runs)} flagged runs")
    for number in range(len(p.reviewers) + 1, total + 1):
        outcome = _ask_reviewer(ctx, ask, ev, number, total)
        p.reviewers.append(asdict(outcome))
        ctx.save()
        r = outcome.review
        ctx.say(STAGE, f"reviewer {number}: " + (f"overall {r['overall']}/10, {r['decision']}" if outcome.status == "ok"
                                                 else f"dropped ({outcome.reason})"))
    reviews = [Review(**o["review"]) for o in p.reviewers if o["status"] == "ok"]
    meta, meta_note = (MetaReview(**p.meta), "") if p.meta else (None, "")
    if not reviews:
        meta_note = "no reviewer filled the form; no meta-review"
    elif meta is None:
        meta, meta_note = _ask_meta(ctx, ask, ev, reviews)
        p.meta = meta.to_dict() if meta else None
        ctx.save()
    _write(ctx, ev, meta, meta_note, p.revision)
    kept = f"{len(reviews)} of {total} reviews"
    ctx.ws.commit(f"[{STAGE}] {kept}; meta-review " + (f"{meta.overall}/10, {meta.decision}" if meta else "missing"),
                  paths=[REVIEW_FILE, "chat.jsonl"])
    if meta and ctx.cfg.improve and not p.revised:
        p.revision = _improve(ctx, ev, meta)
        p.revised = True
        ctx.save()
        _write(ctx, ev, meta, meta_note, p.revision)
        ctx.ws.commit(f"[{STAGE}] review.json records the revision", paths=[REVIEW_FILE])
    p.outcome = (f"{kept}; meta-review {meta.overall}/10, {meta.decision}" if meta else f"{kept}; {meta_note}") + \
        (f" ({meta_note})" if meta and meta_note else "")
    ctx.say(STAGE, p.outcome)
    if meta is None:
        ctx.state.stages[STAGE] = "failed"
