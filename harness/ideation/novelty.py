"""The novelty check of one idea: up to K rounds of search, then the model's decision.

The model writes a query; the harness searches (the literature chain: online sources,
else the offline index) and shows the hits; the model ends with novel / not novel and the
ids of the papers that decided it. Decision and evidence (every query, its source, its
hits, and the deciding papers) go into the idea file as `novel` and `Novelty_Evidence`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from harness.agent.prompts import render
from harness.ideation.chat import ChatClient
from harness.ideation.literature.chain import Literature
from harness.ideation.literature.paper import Paper
from harness.ideation.replies import ReplyProblem, extract_json

DECISIONS = {"novel": True, "not novel": False}


@dataclass
class NoveltyResult:
    novel: bool | None
    """None: no decision after every round and the repair request (the idea is kept, unjudged)."""
    evidence: dict[str, Any] = field(default_factory=dict)
    malformed: int = 0


def _read(reply: str, seen: dict[str, Paper], searched: bool) -> tuple[str | None, tuple[bool, list[str], str] | None]:
    """-> (query, None) or (None, (novel, paper ids, reason)); ReplyProblem names what is wrong."""
    data = extract_json(reply)
    if "Decision" in data:
        decision = str(data["Decision"]).strip().lower()
        if decision not in DECISIONS:
            raise ReplyProblem(f"field 'Decision' must be \"novel\" or \"not novel\", got {data['Decision']!r:.40}")
        if not searched:
            raise ReplyProblem(render("novelty_search_first").strip())
        papers = data.get("Papers", [])
        if not isinstance(papers, list) or not all(isinstance(p, str) for p in papers):
            raise ReplyProblem("field 'Papers' must be a list of paper ids as shown in the results")
        unknown = [p for p in papers if p not in seen]
        if unknown:
            raise ReplyProblem(f"field 'Papers' names {', '.join(unknown)[:200]}, which no search returned; "
                               "use the ids in square brackets")
        if not DECISIONS[decision] and not papers:
            raise ReplyProblem("field 'Papers' must name at least one paper that makes the idea not novel")
        reason = data.get("Reason", "")
        if not isinstance(reason, str) or not reason.strip():
            raise ReplyProblem("field 'Reason' must be a non-empty string")
        return None, (DECISIONS[decision], papers, reason.strip())
    query = data.get("Query")
    if not isinstance(query, str) or not query.strip():
        raise ReplyProblem("the JSON needs either a non-empty string field 'Query' or the field 'Decision'")
    return query.strip(), None


def check_novelty(idea: dict[str, Any], chat: ChatClient, literature: Literature, rounds: int, turn: int,
                  say: Callable[[str], None], hits: int = 8) -> NoveltyResult:
    messages = [{"role": "system", "content": render("novelty_system")},
                {"role": "user", "content": render("novelty_start", title=idea["Title"],
                                                    abstract=idea.get("Abstract", ""),
                                                    experiment=idea["Experiment"],
                                                    details=idea["Technical_Details"], rounds=rounds)}]
    seen: dict[str, Paper] = {}
    searches: list[dict[str, Any]] = []
    result = NoveltyResult(novel=None)
    searched_rounds, repaired = 0, False
    while True:
        reply = chat.ask(messages, "novelty", turn)
        messages.append({"role": "assistant", "content": reply})
        try:
            query, decision = _read(reply, seen, searched=bool(searches))
            if query is not None and searched_rounds >= rounds:
                raise ReplyProblem("no searches are left: decide now with the field 'Decision'")
        except ReplyProblem as exc:
            result.malformed += 1
            if repaired:
                say(f"novelty check of {idea['Name']}: no usable decision ({exc}); the idea is kept as undecided")
                result.evidence = {"decision": "undecided", "reason": str(exc), "papers": [], "searches": searches}
                return result
            repaired = True
            messages.append({"role": "user", "content": render("ideas_repair", problem=str(exc))})
            continue
        if decision is not None:
            novel, ids, reason = decision
            result.novel = novel
            result.evidence = {"decision": "novel" if novel else "not novel", "reason": reason,
                               "papers": [seen[i].reference() for i in ids], "searches": searches,
                               "checked": datetime.now(timezone.utc).isoformat(timespec="seconds")}
            return result
        found = literature.search(query, hits)
        searched_rounds += 1
        repaired = False
        for p in found.papers:
            seen[p.id] = p
        searches.append({"query": query, "source": found.source,
                         "hits": [{"id": p.id, "title": p.title, "year": p.year} for p in found.papers]})
        messages.append({"role": "user", "content": render(
            "novelty_results", round=searched_rounds, rounds=rounds, query=query, source=found.source,
            cached=found.cached, papers=found.papers, last=searched_rounds >= rounds)})
