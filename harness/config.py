"""The one typed configuration of a harness run: defaults < harness.yaml < command line.

Every value is checked here, so the stages can trust it. A bad key or value is a
UserError that names the key and what it expects.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.errors import UserError
from harness.records.state import Stage

REPO_ROOT = Path(__file__).resolve().parent.parent
FROM_CHECKOUT = (REPO_ROOT / "run_harness.py").is_file() and (REPO_ROOT / "prompts").is_dir()
"""True when running from a source checkout; False for a `pip install .` (a wheel)."""
PACKAGE_DATA = Path(__file__).resolve().parent / "_data"
"""Where a wheel carries prompts/, latex_template/, templates/ and recordings/ (pyproject.toml)."""


def resource_dir(name: str) -> Path:
    """One of the project's data folders: the checkout's own when running from source, the
    copy installed inside the package otherwise."""
    return (REPO_ROOT if FROM_CHECKOUT else PACKAGE_DATA) / name


def envs_dir() -> Path:
    """The folder of experiment environments (<python_env>/bin/python): $SAE_HARNESS_ENVS,
    else the checkout's .venvs/ built by setup.sh."""
    import os

    return Path(os.environ["SAE_HARNESS_ENVS"]).expanduser() if os.environ.get("SAE_HARNESS_ENVS") \
        else REPO_ROOT / ".venvs"

SandboxLevel = Literal["auto", "namespace", "process"]
Executor = Literal["local", "ray"]
EditFormat = Literal["diff", "whole", "udiff"]


@dataclass
class HarnessConfig:
    template: str = "sae_variants"
    """Template folder under templates/ (or a path to one) copied into each workspace."""
    model: str = ""
    """litellm model string (claude-sonnet-4-5, gpt-5, ...), scripted:FILE or replay:RECORDING; empty: the first provider with an API key set, else the idea's recording."""
    recordings: Path = resource_dir("recordings")
    """Folder of recorded sessions (NAME.jsonl, from a workspace's chat.jsonl) replayed when no model is given."""
    api_base: str | None = None
    """Base URL of an OpenAI-compatible server (ollama, vLLM, llama.cpp)."""
    stop_after: Stage = "review"
    """Last stage to run: baseline, experiments, plots, writeup or review (later stages stay pending)."""
    max_runs: int = 10
    """Experiment runs the agent may use, baseline not counted."""
    seeds: int | None = None
    """Seeds for the baseline and for the confirmation of the best run (default: the template's default_seeds, else 3; 1 turns the noise estimate off)."""
    workspace_root: Path = Path("workspaces")
    """Where idea workspaces (one git repo each) are created."""
    budget_usd: float | None = None
    """Stop an idea cleanly once its model calls have cost this much."""
    budget_tokens: int | None = None
    """Stop an idea cleanly once its model calls have used this many tokens (sent + received)."""
    run_timeout: int | None = None
    """Seconds one experiment run may take before its process group is killed (default: the template's)."""
    sandbox: SandboxLevel = "auto"
    """Isolation of experiment/plot processes: namespace (bubblewrap), process, or auto (the best that works)."""
    run_memory_gb: float | None = None
    """Address-space limit of one experiment or plot process, in GB (none by default)."""
    max_fix_attempts: int = 4
    """Failed runs in a row the agent may try to fix before the experiments stage stops."""
    writeup_without_results: bool = False
    """Run the plots and writeup stages even when no experiment run succeeded (normally such an idea ends as failed)."""
    reviewers: int = 3
    """Reviewers who each fill the review form for the paper (the review stage), before one meta-review."""
    improve: bool = False
    """After the review: one revision of the paper from the meta-review, recompiled and its claims checked again."""
    max_idle_turns: int = 3
    """Replies in a row that leave experiment.py unchanged before the stage stops."""
    edit_format: EditFormat = "diff"
    """aider edit format: diff (SEARCH/REPLACE blocks) or whole."""
    stream: bool = True
    """Stream model replies (token counts then come from aider's tokenizer)."""
    api_attempts: int = 5
    """Tries per model call before the idea stops (429, 5xx, timeouts, empty replies)."""
    api_retry_wait: float = 2.0
    """First back-off wait in seconds between API tries; doubles each time, capped at 60 s."""
    request_timeout: float = 600.0
    """Seconds to wait for one model reply."""
    model_metadata: dict[str, Any] = field(default_factory=dict)
    """For models litellm does not know: max_input_tokens, input_cost_per_token, output_cost_per_token."""
    executor: Executor = "local"
    """Where a batch's ideas run: local (a process per idea on this machine) or ray (tasks on a Ray cluster)."""
    ray_address: str | None = None
    """Address of an existing Ray cluster for --executor ray (default: start a local Ray instance)."""
    agents: int | None = None
    """Ideas of a batch worked on at once (default: twice the slots, so slots stay busy while agents think)."""
    slots: int | None = None
    """Experiment/plot processes at once (default: one per GPU in --gpus; without GPUs, a quarter of the cores)."""
    gpus: str | None = None
    """GPU ids experiments may use, comma-separated, or none for CPU slots (default: every visible GPU)."""
    template_settings: dict[str, Any] = field(default_factory=dict)
    """Values merged into the template's settings file in each new workspace (sae_variants: experiment_config.yaml, e.g. {model: pythia-70m-deduped, device: cuda})."""

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["workspace_root"] = str(self.workspace_root)
        out["recordings"] = str(self.recordings)
        return out


def field_docs() -> dict[str, str]:
    """The docstring under each field, for --help and error messages."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(HarnessConfig))
    docs: dict[str, str] = {}
    body = tree.body[0].body  # type: ignore[attr-defined]
    for node, nxt in zip(body, body[1:]):
        if isinstance(node, ast.AnnAssign) and isinstance(nxt, ast.Expr):
            docs[node.target.id] = nxt.value.value  # type: ignore[union-attr]
    return docs


_POSITIVE = {"reviewers", "max_runs", "max_fix_attempts", "max_idle_turns", "api_attempts", "run_timeout",
             "budget_tokens", "request_timeout"}
_NON_NEGATIVE = {"budget_usd", "api_retry_wait"}
_POSITIVE |= {"run_memory_gb", "agents", "slots"}


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """Check one value against its field's type; return it converted."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _coerce(key, value, args[0], source)

    def bad(expected: str) -> UserError:
        return UserError(f"{source}: '{key}' must be {expected}, got {value!r}")

    if origin is Literal:
        allowed = typing.get_args(hint)
        if value not in allowed:
            raise bad(f"one of {', '.join(allowed)}")
        return value

    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad("true or false")
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise bad("a whole number")
        try:
            return int(value)
        except ValueError:
            raise bad("a whole number") from None
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise bad("a number")
        try:
            return float(value)
        except ValueError:
            raise bad("a number") from None
    if hint is str:
        if not isinstance(value, (str, int, float)) or isinstance(value, bool):
            raise bad("a string")
        return str(value)
    if hint is Path:
        if not isinstance(value, (str, Path)) or not str(value):
            raise bad("a path")
        return Path(value)
    if origin is dict:
        if not isinstance(value, dict):
            raise bad("a mapping")
        return dict(value)
    raise bad(str(hint))  # pragma: no cover - a field type this function does not know


def _validate(cfg: HarnessConfig, source: str) -> None:
    for key in _POSITIVE:
        v = getattr(cfg, key)
        if v is not None and v <= 0:
            raise UserError(f"{source}: '{key}' must be greater than 0, got {v}")
    for key in _NON_NEGATIVE:
        v = getattr(cfg, key)
        if v is not None and v < 0:
            raise UserError(f"{source}: '{key}' must be 0 or more, got {v}")
    if cfg.gpus is not None and cfg.gpus != "none" and not all(
            g.strip().isdigit() for g in cfg.gpus.split(",")):
        raise UserError(f"{source}: 'gpus' must be GPU ids like 0,1 or none, got {cfg.gpus!r}")
    if cfg.reviewers > 10:
        raise UserError(f"{source}: 'reviewers' must be at most 10, got {cfg.reviewers}")
    if cfg.seeds is not None and not 1 <= cfg.seeds <= 10:
        raise UserError(f"{source}: 'seeds' must be between 1 and 10, got {cfg.seeds} "
                        "(1 runs each setting once, without a noise estimate)")
    if cfg.max_runs > 50:
        raise UserError(f"{source}: 'max_runs' must be at most 50, got {cfg.max_runs}")


def apply_values(cfg: HarnessConfig, values: dict[str, Any], source: str) -> HarnessConfig:
    """Return cfg with `values` applied; unknown keys and bad values raise UserError."""
    hints = typing.get_type_hints(HarnessConfig)
    known = {f.name for f in dataclasses.fields(HarnessConfig)}
    changes: dict[str, Any] = {}
    for raw_key, value in values.items():
        key = str(raw_key).replace("-", "_")
        if key not in known:
            close = [k for k in known if k.split("_")[0] == key.split("_")[0]]
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise UserError(f"{source}: unknown key '{raw_key}'{hint}; known keys: {', '.join(sorted(known))}")
        changes[key] = _coerce(key, value, hints[key], source)
    new = dataclasses.replace(cfg, **changes)
    _validate(new, source)
    return new


def load_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"config file {path} does not exist; pass an existing YAML file to --config")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise UserError(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)}); fix the syntax") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UserError(f"{path}: must be a YAML mapping of key: value, got {type(data).__name__}")
    return data


def build_config(config_file: Path | None, cli_values: dict[str, Any]) -> HarnessConfig:
    """defaults < config file < command line (only the options actually given)."""
    cfg = HarnessConfig()
    if config_file is not None:
        cfg = apply_values(cfg, load_config_file(config_file), str(config_file))
    given = {k: v for k, v in cli_values.items() if v is not None}
    cfg = apply_values(cfg, given, "command line")
    return cfg
