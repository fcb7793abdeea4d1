"""Ideation: propose, refine and novelty-check ideas one at a time, writing each as an idea file.

For each idea the model sees the template (description, metrics, experiment.py) and every
idea already in the output folder and the seed folders; it drafts one idea, refines it over
up to R rounds (stopping when it says it is done), and the result must pass the same
validator as `--idea`. A malformed reply gets one repair request naming the problem; a second
failure drops the draft (or, during refinement, keeps the last good version) and is counted.
Near-duplicates are dropped and said. The survivors are checked for novelty and written.

The output folder is the state: ideas already there are kept and count toward N, so the
same command continues an interrupted run. Tallies are kept in ideation.json beside them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from harness.agent.prompts import render
from harness.errors import UserError
from harness.ideas import check_declared_metric, parse_idea
from harness.ideation.chat import ChatClient
from harness.ideation.literature.chain import Literature
from harness.ideation.novelty import check_novelty
from harness.ideation.replies import ReplyProblem, extract_json, says_done
from harness.ideation.similarity import duplicate_of
from harness.records.files import read_json, write_json
from harness.template import TemplateSpec

TALLY_FILE = "ideation.json"
EXPERIMENT_CHARS = 20_000
"""experiment.py is cut here in the prompt (the sae_variants one, ~14 k characters, fits whole)."""


@dataclass
class Tally:
    written: int = 0
    malformed_dropped: int = 0
    """Drafts dropped after their repair request also failed."""
    refinements_dropped: int = 0
    """Refinement replies dropped the same way (the previous version of the idea was kept)."""
    duplicates_dropped: int = 0
    not_novel: int = 0
    undecided: int = 0
    attempts: int = 0

    @classmethod
    def load(cls, folder: Path) -> Tally:
        path = folder / TALLY_FILE
        data = read_json(path) if path.exists() else {}
        return cls(**{k: int(v) for k, v in (data or {}).items() if k in cls.__dataclass_fields__})

    def save(self, folder: Path) -> None:
        write_json(folder / TALLY_FILE, asdict(self))


@dataclass
class IdeationPlan:
    spec: TemplateSpec
    n: int
    out: Path
    reflections: int = 3
    novelty_rounds: int = 3
    seed_dirs: list[Path] = field(default_factory=list)
    max_attempts: int | None = None
    """Drafts this session may ask for before giving up (default 3 per idea still missing)."""


def idea_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.json") if p.name != TALLY_FILE) if folder.is_dir() else []


def _existing(plan: IdeationPlan) -> list[dict[str, Any]]:
    out = []
    for folder in [plan.out, *plan.seed_dirs]:
        for path in idea_files(folder):
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except (ValueError, UnicodeDecodeError):
                raise UserError(f"{path} is not valid JSON; fix or remove it before generating more ideas") from None
            if isinstance(data, dict):
                out.append(data)
    return out


def _valid(reply: str, metric_names: list[str]) -> dict[str, Any]:
    data = extract_json(reply)
    try:
        idea = parse_idea(data, "the idea")
        check_declared_metric(idea, metric_names, "the idea")
    except UserError as exc:
        raise ReplyProblem(str(exc).removeprefix("the idea: ")) from None
    return data


class Ideation:
    def __init__(self, plan: IdeationPlan, chat: ChatClient, literature: Literature, say: Callable[[str], None],
                 step: Callable[[str], None] = lambda text: None):
        self.plan, self.chat, self.literature, self.say, self.step = plan, chat, literature, say, step
        self.metric_names = [m.name for m in plan.spec.metrics]
        self.tally = Tally.load(plan.out)
        self.dropped: list[str] = []
        """Why this session's earlier drafts were dropped; the next draft request says so (and so
        differs from the last one, which a deterministic model would otherwise answer the same way)."""

    def _ask_valid(self, messages: list[dict], stage: str, turn: int) -> tuple[dict | None, str]:
        """A valid idea from the next reply, after at most one repair request; (None, reason) if not."""
        for repair in (False, True):
            reply = self.chat.ask(messages, stage, turn)
            messages.append({"role": "assistant", "content": reply})
            try:
                return _valid(reply, self.metric_names), reply
            except ReplyProblem as exc:
                if repair:
                    return None, str(exc)
                self.say(f"idea {turn}: malformed reply ({exc}); asking once for a repair")
                messages.append({"role": "user", "content": render("ideas_repair", problem=str(exc))})
        raise AssertionError("unreachable")

    def _draft(self, number: int, existing: list[dict]) -> dict | None:
        spec, plan = self.plan.spec, self.plan
        experiment = (spec.root / "experiment.py").read_text(encoding="utf-8")[:EXPERIMENT_CHARS]
        rounds = plan.reflections + 1
        messages = [{"role": "system", "content": render("ideas_system")},
                    {"role": "user", "content": render(
                        "ideas_propose", template_name=spec.name, description=spec.description,
                        metrics=spec.metrics, experiment=experiment,
                        existing=[{"name": e.get("Name", "?"), "title": e.get("Title", "?")} for e in existing],
                        number=number, total=plan.n, rounds=rounds, dropped=self.dropped[-5:])}]
        self.step(f"idea {number}: drafting")
        idea, reply = self._ask_valid(messages, "ideas", number)
        if idea is None:
            self.tally.malformed_dropped += 1
            self.dropped.append(f"a draft whose reply stayed malformed ({reply})")
            self.say(f"idea {number}: dropped, the reply stayed malformed after one repair ({reply})")
            return None
        if self._duplicate(idea, existing, number):
            return None
        for r in range(2, rounds + 1):
            if says_done(reply):
                break
            self.step(f"idea {number}: refining, round {r} of {rounds}")
            messages.append({"role": "user", "content": render("ideas_reflect", round=r, rounds=rounds)})
            better, reply = self._ask_valid(messages, "ideas", number)
            if better is None:
                self.tally.refinements_dropped += 1
                self.say(f"idea {number}: refinement round {r} dropped, still malformed after one repair "
                         f"({reply}); keeping the previous version")
                break
            idea = better
        if self._duplicate(idea, existing, number):
            return None
        return idea

    def _duplicate(self, idea: dict, existing: list[dict], number: int) -> bool:
        dup = duplicate_of(idea, existing)
        if dup is None:
            return False
        other, why = dup
        self.tally.duplicates_dropped += 1
        self.dropped.append(f"'{idea.get('Title')}', too close to {other.get('Name')} ({why})")
        self.say(f"idea {number}: dropped '{idea.get('Title')}' as a duplicate of {other.get('Name')} ({why})")
        return True

    def run(self) -> Tally:
        plan = self.plan
        plan.out.mkdir(parents=True, exist_ok=True)
        have = len(idea_files(plan.out))
        missing = plan.n - have
        if have:
            self.say(f"{plan.out}: {have} idea(s) already there; generating {max(missing, 0)} more")
        budget = plan.max_attempts if plan.max_attempts is not None else 3 * max(missing, 0)
        tries = 0
        while len(idea_files(plan.out)) < plan.n:
            if tries >= budget:
                self.say(f"gave up after {tries} drafts this session; {len(idea_files(plan.out))} of {plan.n} "
                         "ideas written (run the same command again to continue)")
                break
            tries += 1
            self.tally.attempts += 1
            number = len(idea_files(plan.out)) + 1
            existing = _existing(plan)
            try:
                idea = self._draft(number, existing)
                if idea is not None:
                    self._judge_and_write(idea, number)
            finally:
                self.tally.save(plan.out)
        return self.tally

    def _judge_and_write(self, idea: dict, number: int) -> None:
        self.step(f"idea {number}: novelty check")
        result = check_novelty(idea, self.chat, self.literature, self.plan.novelty_rounds, number, self.say)
        idea = {**idea, "novel": result.novel, "Novelty_Evidence": result.evidence}
        if result.novel is None:
            idea.pop("novel")
            self.tally.undecided += 1
        elif not result.novel:
            self.tally.not_novel += 1
        parse_idea(idea, "generated idea")  # the file written must load with --idea; a bug here is ours
        path = self.plan.out / f"{idea['Name']}.json"
        write_json(path, idea)
        self.tally.written += 1
        verdict = {True: "novel", False: "NOT novel", None: "novelty undecided"}[result.novel]
        papers = ", ".join(p["id"] for p in result.evidence.get("papers", []))
        named = (f"closest: {papers}" if result.novel else papers) if papers else "no paper named"
        self.say(f"idea {number}: wrote {path.name} ({verdict}; {named})")
