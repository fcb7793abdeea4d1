"""Checks run before the first model call: anything that would fail hours later fails now.

Users of tools like this one pay for a whole idea's experiments and then find at the very
end that LaTeX is missing or the endpoint was never reachable. Each check here ends in a
one-line UserError that names the problem and the fix.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from harness.agent.scripted_llm import PREFLIGHT_MARKER
from harness.agent.session import AgentSettings
from harness.config import HarnessConfig, resource_dir
from harness.errors import UserError
from harness.paper.latex import check_tex_tools, compile_template_check
from harness.records.state import STAGES

MIN_FREE_BYTES = 1 << 30
MODEL_TIMEOUT_S = 30
TEMPLATE_DIR = resource_dir("latex_template")


def _existing_parent(path: Path) -> Path:
    path = path.resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_disk(root: Path, need: int = MIN_FREE_BYTES) -> None:
    free = shutil.disk_usage(_existing_parent(root)).free
    if free < need:
        raise UserError(f"only {free / 2**30:.2f} GiB free under {root}; the run folders need at least "
                        f"{need / 2**30:.0f} GiB: free some space or pass --workspace-root on another disk")


def check_tex() -> None:
    missing = check_tex_tools()
    if missing:
        names = ", ".join(m.name for m in missing)
        raise UserError(f"{names} not found, needed for the writeup: run `bash setup.sh` (installs TeX Live) "
                        f"or {missing[0].hint}; or pass --stop-after plots")
    result = compile_template_check(TEMPLATE_DIR)
    if not result.ok:
        first = result.errors[0] if result.errors else "no PDF written"
        raise UserError(f"the LaTeX template {TEMPLATE_DIR} does not compile ({first}); "
                        "check the TeX Live installation (bash setup.sh)")


def check_model(settings: AgentSettings) -> None:
    # litellm fetches a price map at import unless told not to; the agent module does the same
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    kwargs = dict(model=settings.model, messages=[{"role": "user", "content": PREFLIGHT_MARKER}],
                  max_tokens=5, timeout=MODEL_TIMEOUT_S, num_retries=0)
    if settings.api_base:
        kwargs["api_base"] = settings.api_base
    if settings.api_key:
        kwargs["api_key"] = settings.api_key
    try:
        litellm.completion(**kwargs)
    except Exception as exc:  # any failure here means the idea could not have run
        text = " ".join(str(exc).split())[:200]
        raise UserError(f"model '{settings.model}' did not answer a one-line test request "
                        f"({type(exc).__name__}: {text}); check --model, --api-base and the API key") from None


def preflight(cfg: HarnessConfig, settings: AgentSettings) -> None:
    """Cheap checks first, so a machine without TeX never reaches the model."""
    check_disk(Path(cfg.workspace_root))
    if STAGES.index(cfg.stop_after) >= STAGES.index("writeup"):
        check_tex()
    check_model(settings)
