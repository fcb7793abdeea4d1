"""Which model an idea talks to: a live litellm model, a local server, a script or a replay.

    --model claude-sonnet-4-5            any litellm model string; key from the environment
    --model openai/qwen2.5-coder --api-base http://127.0.0.1:11434/v1   a local server
    --model scripted:FILE.yaml           hand-written replies (tests, demos)
    --model replay:FILE.jsonl            a past session's replies, in order
    (no --model)                         the first provider whose API key is set, else the
                                         idea's recording under recordings/, else an error

Scripted and replayed models are served by harness.agent.scripted_llm on 127.0.0.1 and reach
aider through litellm exactly as a live model does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console

from harness.agent.prompts import render
from harness.config import HarnessConfig
from harness.errors import UserError
from harness.ideas import Idea

# Checked in this order when no --model is given; each is a model litellm knows by name.
DEFAULT_MODELS = (
    ("ANTHROPIC_API_KEY", "claude-sonnet-4-5"),
    ("OPENAI_API_KEY", "gpt-5"),
    ("GEMINI_API_KEY", "gemini/gemini-2.5-pro"),
    ("DEEPSEEK_API_KEY", "deepseek/deepseek-chat"),
)


@dataclass
class ModelChoice:
    settings: "AgentSettings"  # noqa: F821 (harness.agent.session imports aider: loaded late)
    server: object | None = None
    """The local ScriptedLLM serving a script or a recording, if any."""
    note: str = ""
    """Said once at start: where replies come from."""


def default_model(idea: Idea | None, recordings: Path) -> str:
    for var, model in DEFAULT_MODELS:
        if os.environ.get(var):
            return model
    recording = recordings / f"{idea.name}.jsonl" if idea else None
    if recording and recording.exists():
        return f"replay:{os.path.relpath(recording)}"
    known = ", ".join(var for var, _ in DEFAULT_MODELS)
    where = f"and there is no {recording} to replay" if recording else ""
    raise UserError(f"no --model given, none of {known} is set {where}; pass --model "
                    "(e.g. claude-sonnet-4-5, or openai/MODEL --api-base URL for a local server)")


def resolve(cfg: HarnessConfig, idea: Idea | None, console: Console) -> ModelChoice:
    from harness.agent.session import AgentSettings, check_model_keys

    model = cfg.model or default_model(idea, Path(cfg.recordings))
    common = dict(edit_format=cfg.edit_format, stream=cfg.stream, attempts=cfg.api_attempts,
                  retry_wait=cfg.api_retry_wait, request_timeout=cfg.request_timeout,
                  budget_usd=cfg.budget_usd, budget_tokens=cfg.budget_tokens, model_metadata=cfg.model_metadata)
    kind, _, arg = model.partition(":")
    if kind in ("scripted", "replay") and arg:
        from harness.agent.replay import load_recording, recorded_stages
        from harness.agent.scripted_llm import ScriptedLLM, load_script

        if kind == "scripted":
            entries, note = load_script(Path(arg)), f"scripted model: replies are read from {arg}"
        else:
            entries = load_recording(arg)
            note = f"replaying {arg}: {len(entries)} recorded replies, no language model involved"
        if not cfg.model:
            note += " (no --model given and no API key set)"
        # A replay's runs may differ from the recorded ones within training noise, and a data-dependent
        # request (a claims correction) may then have no recorded answer: it gets a reply that changes
        # nothing, and the check's findings stay on record in claims.json.
        beyond = None if kind == "scripted" else render("recording_exhausted").rstrip("\n")
        server = ScriptedLLM(entries, exhausted_reply=beyond).start()
        # model name says what it is in chat.jsonl and state.json; the server ignores it
        settings = AgentSettings(model=f"openai/{kind}", api_base=server.url, api_key="sk-local",
                                 replayed_stages=recorded_stages(arg) if kind == "replay" else None, **common)
        return ModelChoice(settings, server, note)
    settings = AgentSettings(model=model, api_base=cfg.api_base, **common)
    check_model_keys(settings)
    note = f"model {model}" + (f" at {cfg.api_base}" if cfg.api_base else "")
    if not cfg.model:
        note += " (chosen from the API key in the environment; pass --model to pick another)"
    return ModelChoice(settings, None, note)
