"""A template's template.yaml: what the harness must know about an experiment folder.

The harness treats templates as data: which interpreter runs them, which files the agent
may edit, which are protected, which metrics matter and which direction is better.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.config import REPO_ROOT
from harness.errors import UserError

_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True)
class Metric:
    name: str
    path: tuple[str, ...]
    """Key path into final_info.json."""
    better: str
    """'higher' or 'lower'."""
    label: str

    def lookup(self, info: dict[str, Any]) -> float | None:
        node: Any = info
        for key in self.path:
            if not isinstance(node, dict) or key not in node:
                return None
            node = node[key]
        if isinstance(node, bool) or not isinstance(node, (int, float)):
            return None
        return float(node)

    def is_better(self, a: float, b: float) -> bool:
        """True if value a beats value b (NaN never beats anything)."""
        if math.isnan(a):
            return False
        if math.isnan(b):
            return True
        return a > b if self.better == "higher" else a < b


@dataclass(frozen=True)
class DegenerateRule:
    metric: str
    op: str
    value: float
    reason: str

    def broken_by(self, x: float) -> bool:
        return _OPS[self.op](x, self.value)

    def describe(self) -> str:
        return f"{self.metric} {self.op} {self.value:g} ({self.reason})"


@dataclass(frozen=True)
class TemplateSpec:
    name: str
    root: Path
    description: str
    python_env: str
    run_timeout: int
    editable: tuple[str, ...]
    protected: tuple[str, ...]
    baseline_inputs: tuple[str, ...]
    metrics: tuple[Metric, ...]
    degenerate: tuple[DegenerateRule, ...]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def python(self) -> Path:
        """The interpreter experiments run with (never the harness's own)."""
        return REPO_ROOT / ".venvs" / self.python_env / "bin" / "python"

    def baseline_key(self) -> str:
        """Hash of everything run_0 depends on, so a cached baseline is reused only when valid."""
        h = hashlib.sha256()
        h.update(self.name.encode())
        stamp = REPO_ROOT / ".venvs" / self.python_env / ".stamp"
        if stamp.exists():
            h.update(stamp.read_bytes())
        for rel in self.baseline_inputs:
            p = self.root / rel
            files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
            for f in files:
                if f.is_file() and "__pycache__" not in f.parts:
                    h.update(str(f.relative_to(self.root)).encode())
                    h.update(f.read_bytes())
        return h.hexdigest()[:16]


def _str_list(data: dict, key: str, src: str) -> tuple[str, ...]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"{src}: '{key}' must be a list of paths")
    return tuple(v)


def find_template(name_or_path: str) -> Path:
    p = Path(name_or_path)
    for cand in (p, REPO_ROOT / "templates" / name_or_path):
        if (cand / "template.yaml").is_file():
            return cand.resolve()
    known = sorted(d.name for d in (REPO_ROOT / "templates").iterdir() if (d / "template.yaml").is_file())
    raise UserError(f"template '{name_or_path}' not found; use one of: {', '.join(known)} (or a folder with a template.yaml)")


def load_template(name_or_path: str) -> TemplateSpec:
    root = find_template(name_or_path)
    src = str(root / "template.yaml")
    try:
        data = yaml.safe_load((root / "template.yaml").read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise UserError(f"{src}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{src}: must be a YAML mapping")
    metrics = []
    for i, m in enumerate(data.get("metrics", []) or []):
        if not isinstance(m, dict) or not {"name", "path", "better"} <= set(m):
            raise UserError(f"{src}: metrics[{i}] needs name, path and better")
        if m["better"] not in ("higher", "lower"):
            raise UserError(f"{src}: metrics[{i}].better must be higher or lower, got {m['better']!r}")
        metrics.append(Metric(m["name"], tuple(str(m["path"]).split("/")), m["better"], m.get("label", m["name"])))
    names = {m.name for m in metrics}
    rules = []
    for i, r in enumerate(data.get("degenerate", []) or []):
        if not isinstance(r, dict) or r.get("op") not in _OPS or r.get("metric") not in names:
            raise UserError(f"{src}: degenerate[{i}] needs a metric from 'metrics' and an op in {', '.join(_OPS)}")
        rules.append(DegenerateRule(r["metric"], r["op"], float(r["value"]), str(r.get("reason", ""))))
    known_keys = {"name", "description", "python_env", "run_timeout", "editable", "protected",
                  "baseline_inputs", "metrics", "degenerate"}
    timeout = data.get("run_timeout", 1800)
    if not isinstance(timeout, int) or timeout <= 0:
        raise UserError(f"{src}: 'run_timeout' must be a positive whole number of seconds")
    return TemplateSpec(
        name=str(data.get("name", root.name)),
        root=root,
        description=str(data.get("description", "")),
        python_env=str(data.get("python_env", "sae")),
        run_timeout=timeout,
        editable=_str_list(data, "editable", src) or ("experiment.py",),
        protected=_str_list(data, "protected", src),
        baseline_inputs=_str_list(data, "baseline_inputs", src) or ("experiment.py",),
        metrics=tuple(metrics),
        degenerate=tuple(rules),
        extra={k: v for k, v in data.items() if k not in known_keys},
    )
