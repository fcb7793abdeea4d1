"""Secrets masked out of everything the harness sends to the model.

Defence in depth behind the sandbox: a run's stderr tail, a metric summary, a file the
agent asks to see may carry a credential (the sandbox hides the user's files, but the
process level does not, and a template might print its own settings). Every message the
harness sends passes through mask_secrets() first; the harness log gets how many values
were masked, never which.

Two kinds of secret are found: the values of the harness's own credential-looking
environment variables (the API key it was started with, a cloud token in the user's shell)
and text in the well-known formats of provider keys, cloud keys, tokens and private keys.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_SECRET_NAME = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION|PRIVATE)", re.I)
MIN_VALUE = 8
"""Shorter values ('1', 'true', a port) would mask ordinary text."""

# Formats that identify a secret without knowing its value. Each is specific enough that
# ordinary experiment output (numbers, paths, hashes of commits) does not match.
PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = tuple((name, re.compile(rx)) for name, rx in (
    ("private key", r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[\s\S]*?"
                    r"(?:-----END [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----|\Z)"),
    ("Anthropic key", r"\bsk-ant-[A-Za-z0-9_\-]{16,}"),
    ("OpenAI-style key", r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{16,}"),
    ("AWS access key id", r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"),
    ("AWS secret key", r"(?i)(aws_secret_access_key|aws_session_token)(\s*[=:]\s*)[\"']?[A-Za-z0-9/+=]{20,}"),
    ("GitHub token", r"\b(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{40,})"),
    ("GitLab token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    ("Hugging Face token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("Google API key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    ("Slack token", r"\bxox[abposr]-[A-Za-z0-9\-]{10,}"),
    ("Stripe key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("JSON web token", r"\beyJ[A-Za-z0-9_\-]{10,}\.eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}"),
    ("bearer token", r"(?i)(\bbearer\s+)[A-Za-z0-9_\-\.=~+/]{16,}"),
    ("credential in a URL", r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s:/@]+:)[^\s@/]{6,}(?=@)"),
    ("password setting", r"(?i)(\b(?:password|passwd|secret|api_?key|access_?token)\b\s*[=:]\s*)[\"']?[^\s\"',;]{8,}"),
))
_KEEPS_PREFIX = {"AWS secret key", "bearer token", "credential in a URL", "password setting"}


def _placeholder(kind: str) -> str:
    return f"[masked: {kind}]"


def environment_secrets(environ: dict[str, str] | None = None) -> tuple[str, ...]:
    """Values of credential-looking variables of the harness's environment, longest first
    (so a key that contains another is masked whole)."""
    env = os.environ if environ is None else environ
    values = {v.strip() for k, v in env.items() if _SECRET_NAME.search(k) and len(v.strip()) >= MIN_VALUE}
    return tuple(sorted(values, key=len, reverse=True))


@dataclass
class Masked:
    text: str
    count: int
    kinds: dict[str, int]


def mask_secrets(text: str, extra: tuple[str, ...] = ()) -> Masked:
    """`text` with every secret replaced by a placeholder naming its kind."""
    kinds: dict[str, int] = {}
    for value in (*environment_secrets(), *sorted({e for e in extra if len(e) >= MIN_VALUE}, key=len, reverse=True)):
        n = text.count(value)
        if n:
            text = text.replace(value, _placeholder("value of a credential variable"))
            kinds["credential variable"] = kinds.get("credential variable", 0) + n
    for kind, rx in PATTERNS:
        def sub(m: re.Match[str], kind: str = kind) -> str:
            kinds[kind] = kinds.get(kind, 0) + 1
            keep = "".join(g or "" for g in m.groups()) if kind in _KEEPS_PREFIX else ""
            return keep + _placeholder(kind)
        text = rx.sub(sub, text)
    return Masked(text, sum(kinds.values()), kinds)
