"""Seed noise: the spread of a setting run with several seeds, and the band a difference
must leave before anyone calls it real.

A run's seed 0 lives in run_<i>/ (the folder every reader already knows); seed s > 0 of the
same code lives beside it in run_<i>_seed<s>/. The baseline runs every seed; the best run
gets the other seeds in the confirmation step. The rule, written once here:

    a difference from the baseline is real only when |Δ| >= 2 · max(std, stderr)

where std is the sample standard deviation of the baseline's seeds and stderr the
standard error the metric reports about itself (a `<key>_stderr` next to its key in
final_info.json, e.g. a probe's accuracy over few test examples), averaged over those seeds.
Values come only through results.metrics (read_results, summarise), so a change of where
metrics are read flows through here.

noise.json in the workspace records the result for the readers that have no template at
hand (the report, the claims check); the run folders stay the source.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from harness.records.files import read_json, write_atomic
from harness.records.run_meta import read_meta
from harness.results.metrics import (
    ResultsError,
    RunSummary,
    best_so_far,
    headline_metrics,
    read_results,
    summarise,
)
from harness.template import Metric, TemplateSpec

NOISE_FILE = "noise.json"
BAND_WIDTH = 2.0
"""Multiples of the spread a difference must reach (about a 95 % interval for a normal spread)."""
RULE = "a difference from the baseline mean counts as real only when |Δ| ≥ 2·max(std of the baseline seeds, the metric's own stderr)"
_SEED_FOLDER = re.compile(r"run_(\d+)_seed(\d+)")


def seed_folder(run: int, seed: int) -> str:
    """Where seed `seed` of run `run` lives: seed 0 is the run's own folder."""
    return f"run_{run}" if seed == 0 else f"run_{run}_seed{seed}"


def seed_of_folder(name: str) -> tuple[int, int] | None:
    """(run, seed) of a seed folder's name (run_3_seed2 -> (3, 2)); None for anything else."""
    m = _SEED_FOLDER.fullmatch(name)
    return (int(m.group(1)), int(m.group(2))) if m else None


def finished(spec: TemplateSpec, folder: Path) -> bool:
    """A seed run counts once its process ended well and its results read (the harness's
    evaluation, where the template has one)."""
    meta = read_meta(folder)
    if meta is None or meta.status != "ok":
        return False
    try:
        read_results(spec, folder)
    except ResultsError:
        return False
    return True


@dataclass
class Spread:
    """One metric of one setting over its seeds."""
    mean: float
    std: float | None
    """Sample standard deviation (n - 1); None with a single seed."""
    n: int
    stderr: float | None = None
    """The metric's own reported standard error, averaged over the seeds (None: not reported)."""

    @property
    def band(self) -> float | None:
        """Half-width of the noise band, or None when the spread is unknown (one seed)."""
        if self.std is None:
            return None
        return BAND_WIDTH * max(self.std, self.stderr or 0.0)

    def text(self, fmt=lambda v: f"{v:.4g}", std_fmt=None) -> str:
        """'mean ± std'; `std_fmt` (default: fmt) may print the spread to fewer digits."""
        return fmt(self.mean) if self.std is None else f"{fmt(self.mean)} ± {(std_fmt or fmt)(self.std)}"


@dataclass
class SeedSet:
    """A run's seeds that finished and each headline metric's spread over them."""
    run: int
    seeds: list[int] = field(default_factory=list)
    metrics: dict[str, Spread] = field(default_factory=dict)


def _stderr(metric: Metric, info: dict) -> float | None:
    if not metric.path:
        return None
    return Metric(metric.name, (*metric.path[:-1], metric.path[-1] + "_stderr"), metric.better,
                  metric.label).lookup(info)


def seed_set(spec: TemplateSpec, ws: Path, run: int) -> SeedSet:
    """Every finished seed of a run (seed 0 from run_<i>/, the others beside it)."""
    folders = [(0, ws / seed_folder(run, 0))]
    for p in sorted(ws.glob(f"run_{run}_seed*")):
        parsed = seed_of_folder(p.name)
        if parsed and parsed[0] == run and parsed[1] > 0:
            folders.append((parsed[1], p))
    out = SeedSet(run)
    values: dict[str, list[float]] = {}
    errors: dict[str, list[float]] = {}
    for seed, folder in sorted(folders):
        if not finished(spec, folder):
            continue
        info = read_results(spec, folder).info
        summary = summarise(spec, run, info)
        out.seeds.append(seed)
        for m in headline_metrics(spec, info):
            v = summary.values.get(m.name)
            if v is not None and math.isfinite(v):
                values.setdefault(m.name, []).append(v)
            e = _stderr(m, info)
            if e is not None and math.isfinite(e):
                errors.setdefault(m.name, []).append(e)
    for name, vs in values.items():
        es = errors.get(name)
        out.metrics[name] = Spread(statistics.fmean(vs), statistics.stdev(vs) if len(vs) > 1 else None, len(vs),
                                   statistics.fmean(es) if es else None)
    return out


@dataclass
class Noise:
    """What noise.json holds: the baseline's spread (the band) and every seeded run's."""
    rule: str = RULE
    runs: dict[int, SeedSet] = field(default_factory=dict)

    @property
    def baseline(self) -> SeedSet | None:
        return self.runs.get(0)

    def _base(self, metric: str) -> Spread | None:
        return self.baseline.metrics.get(metric) if self.baseline else None

    def band(self, metric: str) -> float | None:
        spread = self._base(metric)
        return spread.band if spread else None

    def bands(self) -> dict[str, float]:
        """metric -> half-width, for the metrics whose band is known (verify_paper's noise=)."""
        if not self.baseline:
            return {}
        return {k: s.band for k, s in self.baseline.metrics.items() if s.band is not None}

    def within(self, metric: str, value: float | None, base: float | None) -> bool | None:
        """True when value - base is inside the band; None when the band is unknown."""
        band = self.band(metric)
        if band is None or value is None or base is None or not math.isfinite(value) or not math.isfinite(base):
            return None
        return abs(value - base) < band or value == base  # no difference is never a finding

    def seeded(self, run: int, metric: str) -> Spread | None:
        """The run's spread over its seeds, when it has more than one (a run's verdicts use its
        mean then, as the paper's table and the confirmation do)."""
        seeds = self.runs.get(run)
        spread = seeds.metrics.get(metric) if seeds else None
        return spread if spread is not None and spread.n > 1 and math.isfinite(spread.mean) else None

    def base_mean(self, metric: str) -> float | None:
        spread = self._base(metric)
        return spread.mean if spread else None

    def to_dict(self) -> dict:
        return {"rule": self.rule, "bands": self.bands(),
                "runs": {str(k): asdict(v) for k, v in sorted(self.runs.items())}}


def measure(spec: TemplateSpec, ws: Path, runs: list[int]) -> Noise:
    """The spread of the baseline and of every listed run that has more than one seed."""
    noise = Noise()
    for run in sorted({0, *runs}):
        s = seed_set(spec, ws, run)
        if s.seeds and (run == 0 or len(s.seeds) > 1):
            noise.runs[run] = s
    return noise


def write_noise(spec: TemplateSpec, ws: Path, runs: list[int]) -> Noise:
    noise = measure(spec, ws, runs)
    write_atomic(ws / NOISE_FILE, json.dumps(noise.to_dict(), indent=2) + "\n")
    return noise


def read_noise(ws: Path) -> Noise:
    """noise.json as written (an empty Noise where it is missing or malformed: never trusted)."""
    data = read_json(Path(ws) / NOISE_FILE)
    noise = Noise()
    if not isinstance(data, dict) or not isinstance(data.get("runs"), dict):
        return noise
    for key, raw in data["runs"].items():
        try:
            metrics = {name: Spread(**sp) for name, sp in raw.get("metrics", {}).items()}
            noise.runs[int(key)] = SeedSet(int(key), [int(x) for x in raw.get("seeds", [])], metrics)
        except (TypeError, ValueError, AttributeError):
            continue
    return noise


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.4g}"


def _fmt2(v: float | None) -> str:
    """A spread to two significant digits: the third is itself noise, and costs prompt tokens."""
    return "-" if v is None else f"{v:.2g}"


def noise_table(spec: TemplateSpec, current: RunSummary, history: list[RunSummary], info: dict,
                noise: Noise) -> str:
    """The agent's table when the baseline has a spread: the run against the baseline mean ±
    std, its difference from the mean, and whether that difference is inside the band. Spreads
    and differences to two significant digits, and no column for the band (the verdict and the
    std carry it): each number costs 3-5 prompt tokens, and the table is most of a turn's own text."""
    metrics = headline_metrics(spec, info)
    base = noise.baseline
    width = max([len(m.label) for m in metrics] + [6])
    head = f"run_0 ({len(base.seeds) if base else 0} seeds)"
    rows = [f"{'metric':<{width}}  better  run_{current.run:<6} {head:<18} {'Δ vs mean':<21} best (run)"]
    for m in metrics:
        arrow = "↑" if m.better == "higher" else "↓"
        v = current.values.get(m.name)
        spread = base.metrics.get(m.name) if base else None
        delta = "-"
        if current.run != 0 and v is not None and spread is not None:
            within = noise.within(m.name, v, spread.mean)
            delta = "no change" if v == spread.mean else \
                f"{v - spread.mean:+.2g}" + {True: " within noise", False: " beyond noise", None: ""}[within]
        best = best_so_far(spec, history, m)
        best_txt = f"{_fmt(best[0])} (run_{best[1]})" if best else "-"
        base_txt = spread.text(_fmt, _fmt2) if spread else "-"
        rows.append(f"{m.label:<{width}}  {arrow:^6}  {_fmt(v):<10} {base_txt:<18} {delta:<21} {best_txt}")
    rows.append("within noise: |Δ| < 2 × the larger of the baseline seeds' std and the metric's stderr "
                "(the noise band)")
    return "\n".join(rows)
