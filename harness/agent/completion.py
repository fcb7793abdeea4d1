"""Plain chat completions through litellm: a question and a text answer, no files, no edits.

The coding agent's turns go through aider (session.py); judging a finished paper needs
none of that, only the model. These calls still go the same way as aider's as far as the
project can see: the same model settings and endpoint, secrets masked before sending, the
same retry policy for transient errors, the same budget, and one chat.jsonl line per
request with tokens, cost and latency.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timezone

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # no price-map download at import

import litellm  # noqa: E402
from tenacity import (  # noqa: E402
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential,
)

from harness.agent.masking import mask_secrets  # noqa: E402
from harness.agent.scripted_llm import SIDE_STAGES, STAGE_HEADER  # noqa: E402
from harness.agent.session import Agent, CallRecord, TransientAPIError  # noqa: E402
from harness.errors import IdeaStopped  # noqa: E402

# litellm's exception classes that a retry can cure; anything else (auth, a bad request)
# would fail the same way again
_RETRYABLE = (litellm.exceptions.RateLimitError, litellm.exceptions.APIConnectionError,
              litellm.exceptions.Timeout, litellm.exceptions.ServiceUnavailableError,
              litellm.exceptions.InternalServerError)


def _cost(agent: Agent, response, prompt_tokens: int, completion_tokens: int) -> float:
    meta = agent.settings.model_metadata
    if "input_cost_per_token" in meta or "output_cost_per_token" in meta:
        return (prompt_tokens * float(meta.get("input_cost_per_token", 0.0))
                + completion_tokens * float(meta.get("output_cost_per_token", 0.0)))
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # noqa: BLE001 - a model litellm has no price for costs what we cannot know: 0
        return 0.0


class Completer:
    """Asks one stage's questions of the idea's model; each call is one chat.jsonl line."""

    def __init__(self, agent: Agent, stage: str):
        self.agent = agent
        self.stage = stage
        self._secrets = tuple(x for x in (agent.settings.api_key,) if x)

    def ask(self, messages: list[dict[str, str]], turn: int) -> str:
        """The reply's text. Raises IdeaStopped when the budget is spent or the API keeps failing."""
        self.agent.check_budget()
        sent = [{**m, "content": mask_secrets(m["content"], self._secrets).text} for m in messages]
        prompt = next((m["content"] for m in reversed(sent) if m["role"] == "user"), "")
        s = self.agent.settings
        retrying = Retrying(stop=stop_after_attempt(s.attempts),
                            wait=wait_exponential(multiplier=s.retry_wait, min=s.retry_wait, max=60),
                            retry=retry_if_exception_type(TransientAPIError), reraise=True)
        try:
            for attempt in retrying:
                with attempt:
                    return self._once(sent, prompt, turn, attempt.retry_state.attempt_number)
        except TransientAPIError as exc:
            raise IdeaStopped(f"model API failed {s.attempts} times in a row ({exc}); "
                              f"check the model/endpoint and --resume") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _once(self, messages: list[dict[str, str]], prompt: str, turn: int, attempt: int) -> str:
        s = self.agent.settings
        kwargs = dict(model=s.model, messages=messages, timeout=s.request_timeout, num_retries=0)
        if s.api_base:
            kwargs["api_base"] = s.api_base
        if s.api_key:
            kwargs["api_key"] = s.api_key
        if s.replayed_stages is not None and self.stage in SIDE_STAGES:
            kwargs["extra_headers"] = {STAGE_HEADER: self.stage}  # its own queue of recorded replies
        started = time.monotonic()

        def log(pt: int, ct: int, cost: float, ok: bool, error: str = "", reply: str = "") -> None:
            self.agent.record(CallRecord(
                ts=datetime.now(timezone.utc).isoformat(timespec="milliseconds"), stage=self.stage, turn=turn,
                attempt=attempt, model=s.model, prompt_tokens=pt, completion_tokens=ct, cost_usd=cost,
                latency_s=round(time.monotonic() - started, 3), ok=ok, error=error, prompt=prompt, reply=reply))

        try:
            response = litellm.completion(**kwargs)
        except _RETRYABLE as exc:
            log(0, 0, 0.0, False, f"{type(exc).__name__}: {exc}"[:500])
            raise TransientAPIError(f"{type(exc).__name__}: {str(exc)[:300]}") from None
        except Exception as exc:  # noqa: BLE001 - litellm wraps every provider's errors differently
            log(0, 0, 0.0, False, f"{type(exc).__name__}: {exc}"[:500])
            raise IdeaStopped(f"model API refused the request: {type(exc).__name__}: {str(exc)[:300]}") from None
        text = (response.choices[0].message.content or "") if response.choices else ""
        usage = getattr(response, "usage", None)
        pt = int(getattr(usage, "prompt_tokens", 0) or 0)
        ct = int(getattr(usage, "completion_tokens", 0) or 0)
        log(pt, ct, _cost(self.agent, response, pt, ct), bool(text.strip()), "" if text.strip() else "empty reply",
            text)
        if not text.strip():
            raise TransientAPIError("empty reply from the model")
        return text
