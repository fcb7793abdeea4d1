"""A template's template.yaml: what the harness must know about an experiment folder.

The harness treats templates as data: which interpreter runs them, which files the agent
may edit, which are protected, which metrics matter and which direction is better.
"""

from __future__ import annotations

import hashlib
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from harness.config import envs_dir, resource_dir
from harness.errors import UserError

_OPS = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


Better = Literal["higher", "lower"]


def is_better(better: Better, a: float, b: float) -> bool:
    """True if value a beats value b for a metric whose `better` direction is given.
    NaN never beats anything, and anything beats NaN: a run that produced no number is
    never anyone's best."""
    if math.isnan(a):
        return False
    if math.isnan(b):
        return True
    return a > b if better == "higher" else a < b


@dataclass(frozen=True)
class Metric:
    name: str
    path: tuple[str, ...]
    """Key path into final_info.json."""
    better: Better
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
        return is_better(self.better, a, b)


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
class Evaluation:
    """The template's evaluation step: protected code the harness runs on a finished run's folder,
    in a private folder of its own, so that the numbers everyone reads are not the agent's."""

    command: tuple[str, ...]
    """argv; `python` is the template's interpreter, `{run_dir}` the run folder (read-only to the
    step) and `{out}` the file the step must write (a JSON object of result sections)."""
    code: tuple[str, ...]
    """Protected files and folders copied from the template source (never the workspace) into the
    step's folder; the settings file is added, rebuilt from the template and the harness config."""
    output: str = "evaluation.json"
    """Name of the copy written into each run folder, for people and plot.py."""
    timeout: int = 1800


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
    cache_env: tuple[str, ...] = ()
    """Environment variables that may point the template's cache elsewhere; the first one set
    (as the harness sees it) wins over cache_dir, and runs are told the folder through the
    first of them."""
    cache_dir: str | None = None
    """The template's shared cache folder by default (~ is the user's home as the harness sees
    it). Read-only to experiment and plot runs; writable while run_0 builds it."""
    settings_file: str | None = None
    """A YAML file of the template's own settings that the harness config may override
    (`template_settings`) in each new workspace, e.g. a smaller model or fewer tokens."""
    evaluation: Evaluation | None = None
    """None: the run's own final_info.json is all there is, and its numbers are labelled
    self-reported wherever they appear."""
    seed_arg: str | None = None
    """The option experiment.py takes a seed with (`--seed` gets `--seed=S`); without it every
    setting runs once and no noise band is known. Seed 0 is the script's own default, so
    seed 0 runs are started without the option, exactly as before seeds existed."""
    default_seeds: int | None = None
    """Seeds when the harness config names none (a slow template may ask for fewer)."""
    extra: dict[str, Any] = field(default_factory=dict)

    def seed_args(self, seed: int) -> list[str]:
        """The extra command-line arguments of a run with this seed."""
        return [f"{self.seed_arg}={seed}"] if seed and self.seed_arg else []

    def cache_folder(self) -> Path | None:
        for var in self.cache_env:
            if os.environ.get(var):
                return Path(os.environ[var]).expanduser().resolve()
        return Path(self.cache_dir).expanduser().resolve() if self.cache_dir else None

    def cache_vars(self) -> tuple[tuple[str, str], ...]:
        folder = self.cache_folder()
        return ((self.cache_env[0], str(folder)),) if folder and self.cache_env else ()

    @property
    def python(self) -> Path:
        """The interpreter experiments run with (never the harness's own)."""
        return envs_dir() / self.python_env / "bin" / "python"

    def baseline_key(self, root: Path | None = None, execution: str = "") -> str:
        """Hash of everything run_0 depends on, so a cached baseline is reused only when valid.
        `root`: a workspace, whose settings file may differ from the template's; `execution`:
        how the runs will execute (numerics.signature)."""
        root = root or self.root
        h = hashlib.sha256()
        h.update(self.name.encode())
        h.update(execution.encode())
        stamp = envs_dir() / self.python_env / ".stamp"
        if stamp.exists():
            h.update(stamp.read_bytes())
        inputs = self.baseline_inputs
        if self.evaluation is not None:  # run_0's numbers come from the evaluation step too
            h.update(repr(self.evaluation).encode())
            inputs = inputs + tuple(c for c in self.evaluation.code if c not in inputs)
        for rel in inputs:
            p = root / rel
            files = sorted(x for x in p.rglob("*") if x.is_file()) if p.is_dir() else [p]
            for f in files:
                if f.is_file() and "__pycache__" not in f.parts:
                    h.update(str(f.relative_to(root)).encode())
                    h.update(f.read_bytes())
        return h.hexdigest()[:16]

    def merged_settings(self, overrides: dict[str, Any]) -> dict[str, Any] | None:
        """The settings file with `overrides` merged in; every key must already exist there,
        so a typo is an error now rather than a setting silently ignored hours later."""
        if not overrides:
            return None
        if not self.settings_file:
            raise UserError(f"template_settings given, but template {self.name} has no settings_file "
                            "in its template.yaml; remove template_settings from the config")
        path = self.root / self.settings_file
        base = yaml.safe_load(path.read_text(encoding="utf-8")) or {}

        def merge(into: dict, new: dict, where: str) -> dict:
            out = dict(into)
            for key, value in new.items():
                if key not in into:
                    raise UserError(f"template_settings: '{where}{key}' is not a setting in {path} "
                                    f"(known: {', '.join(map(str, into))})")
                both_maps = isinstance(value, dict) and isinstance(into[key], dict)
                out[key] = merge(into[key], value, f"{where}{key}.") if both_maps else value
            return out

        return merge(base, overrides, "")

    def write_settings(self, workspace: Path, overrides: dict[str, Any]) -> None:
        merged = self.merged_settings(overrides)
        if merged is not None:
            header = (f"# {self.name} settings with the harness config's template_settings applied;\n"
                      f"# the template's own copy ({self.settings_file}) explains each value.\n")
            (workspace / self.settings_file).write_text(header + yaml.safe_dump(merged, sort_keys=False),
                                                        encoding="utf-8")


def _str_list(data: dict, key: str, src: str) -> tuple[str, ...]:
    v = data.get(key, [])
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise UserError(f"{src}: '{key}' must be a list of paths")
    return tuple(v)


def _evaluation(data: dict, root: Path, protected: tuple[str, ...], src: str) -> Evaluation | None:
    block = data.get("evaluation")
    if block is None:
        return None
    where = f"{src}: evaluation"
    if not isinstance(block, dict) or set(block) - {"command", "code", "output", "timeout"}:
        raise UserError(f"{where} must be a mapping of command, code, output and timeout "
                        f"(e.g. {{command: [python, -m, saekit.evaluate_run, --run_dir, '{{run_dir}}', "
                        f"--out, '{{out}}'], code: [saekit/]}})")
    command = block.get("command")
    if not isinstance(command, list) or not command or not all(isinstance(x, str) for x in command):
        raise UserError(f"{where}.command must be a non-empty list of strings, e.g. [python, -m, my.eval]")
    if not any("{out}" in x for x in command):
        raise UserError(f"{where}.command must pass '{{out}}', the file the step writes its results to")
    code = _str_list(block, "code", where)
    for rel in code:
        if not (root / rel).exists():
            raise UserError(f"{where}.code: {rel} does not exist in {root}; list files of the template")
        if not any(rel.rstrip("/") == p.rstrip("/") or rel.startswith(p) for p in protected):
            raise UserError(f"{where}.code: {rel} is not protected; add it to 'protected', or the agent "
                            f"could edit the code that scores it")
    output = block.get("output", "evaluation.json")
    if not isinstance(output, str) or "/" in output or output in ("final_info.json", "meta.json"):
        raise UserError(f"{where}.output must be a plain file name other than final_info.json and meta.json")
    timeout = block.get("timeout", 1800)
    if not isinstance(timeout, int) or timeout <= 0:
        raise UserError(f"{where}.timeout must be a positive whole number of seconds")
    return Evaluation(command=tuple(command), code=code, output=output, timeout=timeout)


def find_template(name_or_path: str) -> Path:
    p = Path(name_or_path)
    for cand in (p, resource_dir("templates") / name_or_path):
        if (cand / "template.yaml").is_file():
            return cand.resolve()
    known = sorted(d.name for d in resource_dir("templates").iterdir() if (d / "template.yaml").is_file())
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
                  "baseline_inputs", "metrics", "degenerate", "settings_file", "cache_env",
                  "cache_dir", "evaluation", "seed_arg", "default_seeds"}
    timeout = data.get("run_timeout", 1800)
    if not isinstance(timeout, int) or timeout <= 0:
        raise UserError(f"{src}: 'run_timeout' must be a positive whole number of seconds")
    protected = _str_list(data, "protected", src)
    seed_arg = data.get("seed_arg")
    if seed_arg is not None and (not isinstance(seed_arg, str) or not seed_arg.startswith("-")
                                 or "=" in seed_arg or " " in seed_arg):
        raise UserError(f"{src}: 'seed_arg' must be an option like --seed, got {seed_arg!r}")
    default_seeds = data.get("default_seeds")
    if default_seeds is not None and (isinstance(default_seeds, bool) or not isinstance(default_seeds, int)
                                      or not 1 <= default_seeds <= 10):
        raise UserError(f"{src}: 'default_seeds' must be a whole number from 1 to 10, got {default_seeds!r}")
    return TemplateSpec(
        name=str(data.get("name", root.name)),
        root=root,
        description=str(data.get("description", "")),
        python_env=str(data.get("python_env", "sae")),
        run_timeout=timeout,
        editable=_str_list(data, "editable", src) or ("experiment.py",),
        protected=protected,
        baseline_inputs=_str_list(data, "baseline_inputs", src) or ("experiment.py",),
        metrics=tuple(metrics),
        degenerate=tuple(rules),
        settings_file=str(data["settings_file"]) if data.get("settings_file") else None,
        cache_env=_str_list(data, "cache_env", src),
        cache_dir=str(data["cache_dir"]) if data.get("cache_dir") else None,
        evaluation=_evaluation(data, root, protected, src),
        seed_arg=seed_arg,
        default_seeds=default_seeds,
        extra={k: v for k, v in data.items() if k not in known_keys},
    )
