"""The one place that talks to the coding agent (aider) and, through it, to litellm.

A ChatSession is one stage's conversation: a non-interactive aider Coder that sees only
the files the stage hands it and edits them with SEARCH/REPLACE blocks. The harness (not
aider) commits the edits, so each commit message can name the stage and turn. Every model
call is appended to chat.jsonl with tokens, cost and latency; API failures are retried
here with back-off (aider's own retry loop is switched off so that there is one policy);
a budget in dollars or tokens stops the idea cleanly.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

# litellm downloads its model price map at import unless told otherwise (no network here,
# and a stall of seconds elsewhere); this must happen before aider imports litellm.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import aider.coders.base_coder as _base_coder  # noqa: E402
import litellm  # noqa: E402  (after the environment variable above)
from aider.coders import Coder  # noqa: E402
from aider.exceptions import LiteLLMExceptions  # noqa: E402
from aider.io import InputOutput  # noqa: E402
from aider.models import Model, model_info_manager  # noqa: E402
from rich.console import Console  # noqa: E402
from tenacity import (  # noqa: E402
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from harness.agent.chatlog import CHAT_LOG, read_totals  # noqa: E402
from harness.agent.edit_guard import guard_edits  # noqa: E402
from harness.agent.masking import mask_secrets  # noqa: E402
from harness.agent.scripted_llm import SIDE_STAGES, STAGE_HEADER  # noqa: E402
from harness.errors import IdeaStopped, UserError  # noqa: E402
from harness.records.files import write_json

# aider's model-info lookup downloads litellm's price map whenever its cache is empty;
# hand it litellm's bundled copy instead, which also gives known models their prices.
if not model_info_manager.content:
    model_info_manager.content = dict(litellm.model_cost)
    model_info_manager._cache_loaded = True

# One retry policy, ours: aider's internal loop would otherwise retry for up to a minute
# with its own timings before we ever saw the error.
_base_coder.RETRY_TIMEOUT = 0

DEFAULT_METADATA = {
    "max_input_tokens": 128_000,
    "max_output_tokens": 8_192,
    "litellm_provider": "openai",
    "mode": "chat",
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
}


@dataclass(frozen=True)
class AgentSettings:
    model: str
    api_base: str | None = None
    api_key: str | None = None
    edit_format: str = "diff"
    stream: bool = True
    attempts: int = 5
    retry_wait: float = 2.0
    request_timeout: float = 600.0
    budget_usd: float | None = None
    budget_tokens: int | None = None
    model_metadata: dict = field(default_factory=dict)
    replayed_stages: frozenset[str] | None = None
    """When replaying a recording: the stages it holds replies for (a stage it lacks, made
    after it was recorded, is skipped rather than fed replies meant for other requests)."""


@dataclass
class CallRecord:
    """One line of chat.jsonl: one request to the model and what it cost."""
    ts: str
    stage: str
    turn: int
    attempt: int
    model: str
    prompt_tokens: int
    completion_tokens: int
    cost_usd: float
    latency_s: float
    ok: bool
    error: str = ""
    prompt: str = ""
    """The user message of the turn (file contents and history are not repeated here)."""
    reply: str = ""
    request: str = ""
    """The last user message of this request, when it is not the turn's prompt: aider's own
    follow-ups (e.g. "SEARCH/REPLACE block failed to match"). Replays check it."""


@dataclass
class TurnResult:
    reply: str
    edited: list[str]
    """Files aider says it wrote (the harness checks git for the truth)."""
    failed_edits: int
    """SEARCH/REPLACE rounds aider had to send back because a block did not match."""
    calls: list[CallRecord]


class TransientAPIError(Exception):
    pass


class BudgetExceeded(IdeaStopped):
    pass


class _SortedSet(set):
    def __iter__(self):
        return iter(sorted(set.__iter__(self)))


class _QuietIO(InputOutput):
    """aider's terminal I/O, sent to harness.log instead; never asks, never opens URLs."""

    def __init__(self, log_path: Path):
        super().__init__(yes=True, pretty=False, fancy_input=False, chat_history_file=None,
                         input_history_file=None)
        self.log_file = log_path.open("a", encoding="utf-8")
        self.console = Console(file=self.log_file, force_terminal=False, no_color=True, width=120)
        self.errors: list[str] = []

    def tool_error(self, message="", strip=True):
        self.errors.append(str(message))
        super().tool_error(message, strip)

    def offer_url(self, url, prompt="", allow_never=True):
        return False

    def close(self):
        self.log_file.close()


def register_model(settings: AgentSettings) -> Model:
    """Build aider's Model, teaching aider/litellm about models they do not know."""
    info = model_info_manager.get_model_info(settings.model)
    if not info or settings.model_metadata:
        model_info_manager.local_model_metadata[settings.model] = {
            **DEFAULT_METADATA, **(info or {}), **settings.model_metadata}
    model = Model(settings.model)
    extra = dict(model.extra_params or {})
    extra["timeout"] = settings.request_timeout
    extra["max_retries"] = 0  # the provider SDK would retry 429/5xx silently; ours is the one policy
    if settings.api_base:
        extra["api_base"] = settings.api_base
    if settings.api_key:
        extra["api_key"] = settings.api_key
    model.extra_params = extra
    return model


def check_model_keys(settings: AgentSettings) -> None:
    """A missing API key is a one-line error before anything starts."""
    if settings.api_base or settings.api_key:
        return
    model = register_model(settings)
    if model.missing_keys:
        keys = " and ".join(model.missing_keys)
        raise UserError(f"model '{settings.model}' needs {keys} in the environment; export it, "
                        f"or pass --api-base for a local OpenAI-compatible server")


class Agent:
    """Model settings, accounting and budget for one idea's workspace."""

    def __init__(self, settings: AgentSettings, workspace: Path):
        self.settings = settings
        self.workspace = workspace
        self.chat_log = workspace / CHAT_LOG
        self.tokens, self.cost = read_totals(self.chat_log)
        self._lock = threading.Lock()

    def check_budget(self) -> None:
        s = self.settings
        if s.budget_usd is not None and self.cost >= s.budget_usd:
            raise BudgetExceeded(f"budget spent: ${self.cost:.4f} of ${s.budget_usd:.4f}; "
                                 f"raise --budget-usd and --resume to go on")
        if s.budget_tokens is not None and self.tokens >= s.budget_tokens:
            raise BudgetExceeded(f"budget spent: {self.tokens} of {s.budget_tokens} tokens; "
                                 f"raise budget_tokens and --resume to go on")

    def record(self, rec: CallRecord) -> None:
        with self._lock:
            self.tokens += rec.prompt_tokens + rec.completion_tokens
            self.cost += rec.cost_usd
            with self.chat_log.open("a", encoding="utf-8") as fh:
                fh.write(json.dumps(asdict(rec), ensure_ascii=False) + "\n")

    def session(self, stage: str, files: list[str], read_only: list[str] = (),
                history_path: Path | None = None) -> ChatSession:
        return ChatSession(self, stage, files, list(read_only), history_path)


class ChatSession:
    """One stage's conversation with the coding agent."""

    def __init__(self, agent: Agent, stage: str, files: list[str], read_only: list[str],
                 history_path: Path | None):
        self.agent = agent
        self.stage = stage
        self.history_path = history_path
        self.io = _QuietIO(agent.workspace / "harness.log")
        self.model = register_model(agent.settings)
        if agent.settings.replayed_stages is not None and stage in SIDE_STAGES:
            # a replay serves this stage's replies from their own queue (see scripted_llm)
            self.model.extra_params = {**self.model.extra_params, "extra_headers": {STAGE_HEADER: stage}}
        done, cur = [], []
        if history_path and history_path.exists():
            saved = json.loads(history_path.read_text(encoding="utf-8"))
            done, cur = saved.get("done", []), saved.get("cur", [])
        ws = agent.workspace
        self.coder = Coder.create(
            main_model=self.model, io=self.io, edit_format=agent.settings.edit_format,
            fnames=[str(ws / f) for f in files], read_only_fnames=[str(ws / f) for f in read_only],
            use_git=False, auto_commits=False, dirty_commits=False, map_tokens=0,
            auto_lint=False, suggest_shell_commands=False, detect_urls=False,
            stream=agent.settings.stream, done_messages=done, cur_messages=cur,
        )
        # aider keeps chat files in sets, whose order changes from process to process; a
        # fixed order makes prompts reproducible (resume re-asks, replays match).
        self.coder.abs_fnames = _SortedSet(self.coder.abs_fnames)
        self.coder.abs_read_only_fnames = _SortedSet(self.coder.abs_read_only_fnames)
        # (path, reason) of edits aider refused: outside the workspace, in .git, git-ignored
        self.refused = guard_edits(self.coder, ws)
        self._main_thread = threading.get_ident()
        self._api_error: Exception | None = None
        self._call_started = 0.0
        self._pending: list[CallRecord] = []
        self._turn, self._attempt, self._prompt, self._request = 0, 0, "", ""
        self._own_secrets = tuple(x for x in (agent.settings.api_key,) if x)
        self._wrap_model_calls()

    def _wrap_model_calls(self) -> None:
        """Observe every request aider makes: errors (for our retry policy) and usage."""
        model, coder = self.model, self.coder
        send, account = model.send_completion, coder.calculate_and_show_tokens_and_cost

        def send_completion(*args, **kwargs):
            # the one door to the provider: every message, files aider added included
            if args:
                args = (self._masked(args[0]), *args[1:])
            elif "messages" in kwargs:
                kwargs["messages"] = self._masked(kwargs["messages"])
            if threading.get_ident() == self._main_thread:
                self._call_started = time.monotonic()
                messages = args[0] if args else kwargs.get("messages", [])
                self._request = next((str(m.get("content", "")) for m in reversed(messages)
                                      if m.get("role") == "user"), "")
            try:
                return send(*args, **kwargs)
            except Exception as exc:
                if threading.get_ident() == self._main_thread:
                    self._api_error = exc
                    self._log_call(0, 0, 0.0, ok=False, error=f"{type(exc).__name__}: {exc}"[:500])
                raise

        def calculate_and_show_tokens_and_cost(messages, completion=None):
            sent, received, cost = coder.message_tokens_sent, coder.message_tokens_received, coder.message_cost
            account(messages, completion)
            self._log_call(coder.message_tokens_sent - sent, coder.message_tokens_received - received,
                           coder.message_cost - cost, ok=True,
                           reply=coder.partial_response_content or "")

        model.send_completion = send_completion
        coder.calculate_and_show_tokens_and_cost = calculate_and_show_tokens_and_cost

    def _masked(self, messages: list[dict]) -> list[dict]:
        out, total = [], 0
        for m in messages:
            if isinstance(m, dict) and isinstance(m.get("content"), str):
                done = mask_secrets(m["content"], self._own_secrets)
                total += done.count
                m = {**m, "content": done.text}
            out.append(m)
        if total:
            self._note_masked(total)
        return out

    def _note_masked(self, count: int) -> None:
        # how many, never what: the log is itself a workspace file
        logging.getLogger(f"harness.{self.agent.workspace.name}").info(
            "[%s] masked %d secret-looking value(s) before sending to the model", self.stage, count)

    def _log_call(self, prompt_tokens, completion_tokens, cost, ok, error="", reply=""):
        rec = CallRecord(
            ts=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), stage=self.stage,
            turn=self._turn, attempt=self._attempt, model=self.agent.settings.model,
            prompt_tokens=int(prompt_tokens), completion_tokens=int(completion_tokens),
            cost_usd=float(cost), latency_s=round(time.monotonic() - self._call_started, 3),
            ok=ok, error=error, prompt=self._prompt, reply=reply,
            # aider may append its format reminder to the turn's own message: that is not a follow-up
            request="" if self._request.strip().startswith(self._prompt.strip()) else self._request[:2000])
        self._pending.append(rec)
        self.agent.record(rec)

    def ask(self, message: str, turn: int) -> TurnResult:
        """Send one message; aider applies the reply's edits to the files in the chat."""
        self.agent.check_budget()
        # masked here too, so that chat.jsonl (a workspace file) never holds the secret either
        done = mask_secrets(message, self._own_secrets)
        if done.count:
            self._note_masked(done.count)
        message = done.text
        self._turn, self._prompt, self._pending = turn, message, []
        s = self.agent.settings
        retrying = Retrying(
            stop=stop_after_attempt(s.attempts),
            wait=wait_exponential(multiplier=s.retry_wait, min=s.retry_wait, max=60),
            retry=retry_if_exception_type(TransientAPIError),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    self._attempt = attempt.retry_state.attempt_number
                    result = self._ask_once(message)
        except TransientAPIError as exc:
            raise IdeaStopped(f"model API failed {s.attempts} times in a row ({exc}); "
                              f"check the model/endpoint and --resume") from None
        self.save_history()
        return result

    def _ask_once(self, message: str) -> TurnResult:
        coder = self.coder
        done, cur = list(coder.done_messages), list(coder.cur_messages)
        files = {p: Path(p).read_bytes() for p in coder.abs_fnames if Path(p).exists()}
        self._api_error = None
        self.io.errors.clear()
        coder.aider_edited_files = set()
        coder.num_reflections = 0
        with contextlib.redirect_stdout(self.io.log_file):  # aider streams replies to stdout
            reply = coder.run(with_message=message) or ""
        err = self._api_error
        if err is not None or not reply.strip():
            # forget the failed exchange so the retry sends exactly the same conversation
            coder.done_messages, coder.cur_messages = done, cur
            for p, data in files.items():  # a reply cut off mid-stream may have half-applied edits
                Path(p).write_bytes(data)
            if err is not None:
                text = str(err)
                if "replay diverged" in text:  # our own server's words; litellm's wrapping adds nothing
                    raise IdeaStopped(text[text.index("replay diverged"):])
                if not LiteLLMExceptions().get_ex_info(err).retry:
                    raise IdeaStopped(f"model API refused the request: {type(err).__name__}: {str(err)[:300]}")
                raise TransientAPIError(f"{type(err).__name__}: {str(err)[:300]}")
            raise TransientAPIError("empty reply from the model")
        edited = sorted(str(Path(p).resolve().relative_to(self.agent.workspace))
                        if Path(p).is_absolute() else p for p in coder.aider_edited_files)
        return TurnResult(reply=reply, edited=edited, failed_edits=coder.num_reflections,
                          calls=list(self._pending))

    def forget_history(self) -> None:
        """Start the next turn without the earlier exchanges. In the experiment loop each turn's
        message carries the run table and notes.txt carries the plan, so the old replies only
        grew every prompt (+0.6k tokens a turn, ~14k by run 10) and set off aider's summariser."""
        self.coder.done_messages, self.coder.cur_messages = [], []

    def save_history(self) -> None:
        """Persist the conversation so a resumed stage asks the model exactly what it would have."""
        if self.history_path:
            write_json(self.history_path, {"done": self.coder.done_messages, "cur": self.coder.cur_messages},
                       indent=None)

    def close(self) -> None:
        self.io.close()
