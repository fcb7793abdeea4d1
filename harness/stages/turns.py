"""One agent turn, the same in every stage: ask, undo forbidden edits, commit the rest.

The commit message names the stage and the turn, so `git log` reads as the agent's
history; the chat.jsonl lines of the turn go into the same commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.agent.prompts import render
from harness.agent.session import ChatSession, TurnResult
from harness.stages.context import IdeaContext
from harness.workspace import RevertedEdit


@dataclass
class Turn:
    result: TurnResult
    edited: list[str]
    """Files the agent changed and was allowed to."""
    reverted: list[str]
    """Files it changed but may not; their edits are undone."""
    refused: list[str] = field(default_factory=list)
    """Paths aider refused to touch at all (outside the workspace, .git, git-ignored)."""

    @property
    def reply(self) -> str:
        return self.result.reply

    def reverted_note(self, allowed: list[str]) -> str:
        """A line for the next prompt, so the agent learns why its edit vanished."""
        if not (self.reverted or self.refused):
            return ""
        return render("reverted", paths=self.reverted, refused=self.refused, editable=allowed)


def agent_turn(ctx: IdeaContext, session: ChatSession, stage: str, message: str, turn: int,
               allowed: list[str], label: str | Callable[[str], str],
               commit_empty: bool = False) -> Turn:
    """label names the turn in its commit subject; a callable gets the reply, for labels that
    depend on what the agent answered."""
    before = ctx.ws.dirty_paths()
    session.refused.clear()
    result = session.ask(message, turn)
    edited, forbidden = ctx.ws.split_agent_changes(before, set(allowed))
    undone = ctx.ws.revert(forbidden, f"{stage}_turn_{turn}") if forbidden else []
    undone += [RevertedEdit(path, "refused", why) for path, why in session.refused]
    ctx.record_undone(stage, f"turn {turn}", undone)
    if edited or commit_empty:
        first = next((ln.strip() for ln in result.reply.splitlines() if ln.strip()), "")[:72]
        what = f"agent edit of {', '.join(edited)}" if edited else "no edit"
        name = label(result.reply) if callable(label) else label
        ctx.ws.commit(f"[{stage}] {name}: {what}\n\n{first}", paths=edited + ["chat.jsonl"])
    return Turn(result, edited, [e.path for e in undone if e.action != "refused"],
                [e.path for e in undone if e.action == "refused"])
