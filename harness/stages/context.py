"""IdeaContext: everything a stage needs to work on one idea.

Stages communicate only through the workspace and state.json; this object carries the
handles to both, plus the agent, the console and the sandbox runs go into. The
orchestrator (harness/pipeline.py) builds it and calls the stages in order; stages import
it from here, never from the orchestrator, so the import graph stays one-way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console

from harness.agent.chatlog import CHAT_LOG, read_totals
from harness.agent.session import Agent, AgentSettings
from harness.config import HarnessConfig
from harness.execution.sandbox import Sandbox, make_sandbox
from harness.execution.slots import SlotPool
from harness.ideas import Idea
from harness.progress import Progress
from harness.records.state import State, save_state
from harness.template import TemplateSpec
from harness.workspace import RevertedEdit, Workspace


@dataclass
class IdeaContext:
    """Everything a stage needs; stages communicate only through the workspace and state."""
    cfg: HarnessConfig
    spec: TemplateSpec
    idea: Idea
    ws: Workspace
    state: State
    console: Console
    log: logging.Logger
    settings: AgentSettings
    slots: SlotPool | None = None
    """Device slots shared with the other ideas of a batch (None: a lone idea runs at once)."""
    _agent: Agent | None = field(default=None, repr=False)
    progress: Progress | None = field(default=None, repr=False)

    @property
    def path(self) -> Path:
        return self.ws.path

    @property
    def agent(self) -> Agent:
        if self._agent is None:
            self._agent = Agent(self.settings, self.path)
        return self._agent

    @property
    def run_timeout(self) -> int:
        return self.cfg.run_timeout or self.spec.run_timeout

    @property
    def seeds(self) -> int:
        """Seeds per setting: the config's, else the template's default, else 3; a template
        whose experiment.py takes no seed runs each setting once."""
        if not self.spec.seed_arg:
            return 1
        return self.cfg.seeds or self.spec.default_seeds or 3

    @property
    def sandbox(self) -> Sandbox:
        folder = self.spec.cache_folder()
        return make_sandbox(self.cfg.sandbox, self.cfg.run_memory_gb, self.run_timeout,
                            (folder,) if folder else (), self.spec.cache_vars())

    def save(self) -> None:
        save_state(self.path, self.state)

    def totals(self) -> tuple[int, float]:
        """Tokens and dollars this idea has spent so far (all sessions, resumed ones included)."""
        return (self._agent.tokens, self._agent.cost) if self._agent else read_totals(self.path / CHAT_LOG)

    def record_undone(self, stage: str, when: str, edits: list[RevertedEdit]) -> None:
        """Keep in state.json (and say) what the harness undid, for a reviewer and for resume."""
        for e in edits:
            self.state.undone.append({"stage": stage, "when": when, "path": e.path, "action": e.action,
                                      "detail": e.detail})
        if edits:
            self.say(stage, f"{when}: undid {'; '.join(e.describe() for e in edits)}")

    def child_started(self, pgid: int | None) -> None:
        """Record (None: forget) the process group of a run, so a resume can kill what a crash left."""
        self.state.child_pgid = pgid
        self.save()

    def say(self, stage: str, text: str) -> None:
        if self.progress:
            self.progress.update(stage, self.state.experiments.next_run)
        self.log.info("[%s] %s", stage, text)
        self.console.print(f"[bold]{self.idea.name}[/] [cyan]{stage}[/] {text}", highlight=False)
