"""Plain chat requests for ideation, through litellm (no aider: nothing is edited).

Every request is appended to the output folder's chat.jsonl in the same record shape the
coding agent writes (stage, tokens, cost, latency), so the same readers total it. The budget
is checked before each request; transient API errors are retried with back-off.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from tenacity import (
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from harness.agent.chatlog import CHAT_LOG, read_totals
from harness.errors import IdeaStopped

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import


class BudgetSpent(IdeaStopped):
    pass


class _Transient(Exception):
    pass


@dataclass(frozen=True)
class ChatSettings:
    model: str
    api_base: str | None = None
    api_key: str | None = None
    timeout: float = 600.0
    attempts: int = 5
    retry_wait: float = 2.0
    budget_usd: float | None = None
    budget_tokens: int | None = None


class ChatClient:
    def __init__(self, settings: ChatSettings, folder: Path):
        self.settings = settings
        self.log = folder / CHAT_LOG
        self.tokens, self.cost = read_totals(self.log)
        self.calls = 0

    def check_budget(self) -> None:
        s = self.settings
        if s.budget_usd is not None and self.cost >= s.budget_usd:
            raise BudgetSpent(f"budget spent: ${self.cost:.4f} of ${s.budget_usd:.4f}; raise --budget-usd and "
                              "run the same command again (ideas written so far are kept)")
        if s.budget_tokens is not None and self.tokens >= s.budget_tokens:
            raise BudgetSpent(f"budget spent: {self.tokens} of {s.budget_tokens} tokens; raise --budget-tokens "
                              "and run the same command again (ideas written so far are kept)")

    def ask(self, messages: list[dict], stage: str, turn: int) -> str:
        """The reply text to `messages`; IdeaStopped when the API stays down or the budget is spent."""
        import litellm

        litellm.suppress_debug_info = True  # its "Give Feedback" banner on every failed request
        self.check_budget()
        s = self.settings

        def once(attempt: int) -> str:
            started = time.monotonic()
            try:
                resp = litellm.completion(model=s.model, messages=messages, api_base=s.api_base, api_key=s.api_key,
                                          timeout=s.timeout, max_retries=0, stream=False)
            except (litellm.RateLimitError, litellm.APIConnectionError, litellm.Timeout,
                    litellm.InternalServerError, litellm.ServiceUnavailableError) as exc:
                self._record(stage, turn, attempt, messages, 0, 0, 0.0, started, False, str(exc)[:300], "")
                raise _Transient(str(exc)) from exc
            except Exception as exc:  # noqa: BLE001 - auth, bad request: asking again will not help
                self._record(stage, turn, attempt, messages, 0, 0, 0.0, started, False, str(exc)[:300], "")
                raise IdeaStopped(f"model request failed: {str(exc)[:200]}") from exc
            text = resp.choices[0].message.content or ""
            usage = getattr(resp, "usage", None)
            prompt_t = int(getattr(usage, "prompt_tokens", 0) or 0)
            completion_t = int(getattr(usage, "completion_tokens", 0) or 0)
            try:
                cost = float(litellm.completion_cost(completion_response=resp) or 0.0)
            except Exception:  # noqa: BLE001 - an unpriced model (local, scripted) costs nothing known
                cost = 0.0
            self._record(stage, turn, attempt, messages, prompt_t, completion_t, cost, started, True, "", text)
            return text

        attempt_no = 0
        try:
            for attempt in Retrying(retry=retry_if_exception_type(_Transient), stop=stop_after_attempt(s.attempts),
                                    wait=wait_exponential(multiplier=s.retry_wait, max=60), reraise=True):
                with attempt:
                    attempt_no += 1
                    return once(attempt_no)
        except _Transient as exc:
            raise IdeaStopped(f"model API still failing after {s.attempts} attempts: {str(exc)[:200]}") from exc
        raise AssertionError("unreachable")

    def _record(self, stage, turn, attempt, messages, prompt_t, completion_t, cost, started, ok, error, reply):
        self.calls += 1
        self.tokens += prompt_t + completion_t
        self.cost += cost
        last_user = next((m["content"] for m in reversed(messages) if m["role"] == "user"), "")
        rec = {"ts": datetime.now(timezone.utc).isoformat(timespec="seconds"), "stage": stage, "turn": turn,
               "attempt": attempt, "model": self.settings.model, "prompt_tokens": prompt_t,
               "completion_tokens": completion_t, "cost_usd": cost,
               "latency_s": round(time.monotonic() - started, 3), "ok": ok, "error": error,
               "prompt": last_user, "reply": reply}
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
