"""Figures from the runs' result files: python plot.py

Each run folder holds final_info.json (written by experiment.py: training log, timings) and
evaluation.json (written by the harness, which scores the saved SAE itself: the eval sections).
load_runs merges them, the harness's sections winning, so figures show the harness's numbers.

Edit `labels` to choose which runs appear and what they are called. Each figure is written as PNG
(for looking at) and PDF (for the paper).

Where the harness ran a setting with several seeds (run_0_seed1/, run_3_seed2/, ... beside
run_0/ and run_3/), load_runs() gives that run's mean over its seeds, and every number it holds
carries the standard deviation too: formatted, it prints as "mean$\pm$std" (so a LaTeX table
shows mean ± std without further code), bars get error bars. `float(v)` is the plain mean.
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

# run directory -> label in the legend; runs missing on disk are skipped
labels = {
    "run_0": "Baseline (TopK)",
}

CORE = "core evaluation results"
PROBING = "sparse probing evaluation results"
ABSORPTION = "absorption evaluation results"

# (title, key path into the merged results, better)
HEADLINE = [
    ("Explained variance", (CORE, "eval_result_metrics", "reconstruction_quality", "explained_variance"), "higher"),
    ("EV without dominant dim", (CORE, "eval_result_metrics", "reconstruction_quality", "explained_variance_excl_dominant_dim"), "higher"),
    ("L0", (CORE, "eval_result_metrics", "sparsity", "l0"), "lower"),
    ("CE loss score", (CORE, "eval_result_metrics", "model_performance_preservation", "ce_loss_score"), "higher"),
    ("KL div score", (CORE, "eval_result_metrics", "model_behavior_preservation", "kl_div_score"), "higher"),
    ("Sparse probing top-1", (PROBING, "eval_result_metrics", "sae", "sae_top_1_test_accuracy"), "higher"),
    ("Mean absorption fraction", (ABSORPTION, "eval_result_metrics", "mean", "mean_absorption_fraction_score"), "lower"),
]


class Seeded(float):
    """A mean over seeds that remembers its standard deviation (sample std, n - 1)."""

    def __new__(cls, mean: float, std: float, n: int):
        obj = super().__new__(cls, mean)
        obj.std, obj.n = std, n
        return obj

    def __format__(self, spec: str) -> str:
        return f"{float.__format__(self, spec)}$\\pm${format(self.std, spec)}"


def _seed_folders(run: str) -> list[Path]:
    """The run's own folder and its finished seed folders (run_3_seed1, ...)."""
    out = [Path(run)]
    for p in sorted(Path(".").glob(f"{run}_seed*")):
        meta = p / "meta.json"
        ok = meta.exists() and json.loads(meta.read_text()).get("status") == "ok"
        if p.name[len(run) + 5:].isdigit() and ok and (p / "final_info.json").exists():
            out.append(p)
    return out


def _combine(infos: list):
    """Nested results of several seeds -> one, numbers replaced by their Seeded mean."""
    first = infos[0]
    if isinstance(first, dict):
        return {k: _combine([i[k] for i in infos if isinstance(i, dict) and k in i]) for k in first}
    numbers = [x for x in infos if isinstance(x, (int, float)) and not isinstance(x, bool)]
    if len(numbers) == len(infos) > 1 and not isinstance(first, bool):
        mean = sum(numbers) / len(numbers)
        std = (sum((x - mean) ** 2 for x in numbers) / (len(numbers) - 1)) ** 0.5
        return Seeded(mean, std, len(numbers))
    return first


def _results(folder: Path) -> dict:
    """A run's numbers: its own final_info.json (training logs, timings) with the harness's
    evaluation.json over it, which holds every score."""
    info = json.loads((folder / "final_info.json").read_text())
    evaluation = folder / "evaluation.json"
    if evaluation.exists():
        info.update(json.loads(evaluation.read_text()))
    return info


def load_runs() -> dict[str, dict]:
    runs = {}
    for run, label in labels.items():
        path = Path(run) / "final_info.json"
        if path.exists():
            runs[label] = _combine([_results(f) for f in _seed_folders(run)])
    return runs


def get(info: dict, path: tuple):
    for key in path:
        if not isinstance(info, dict) or key not in info:
            return None
        info = info[key]
    return info


def save(fig, name: str) -> None:
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(f"{name}.{ext}", dpi=150)
    plt.close(fig)


def plot_headline(runs: dict[str, dict]) -> None:
    fig, axes = plt.subplots(1, len(HEADLINE), figsize=(3.2 * len(HEADLINE), 3.6))
    names = list(runs)
    for ax, (title, path, better) in zip(axes, HEADLINE):
        values = [get(runs[n], path) for n in names]
        errors = [getattr(v, "std", 0.0) for v in values]
        ax.bar(range(len(names)), [v if v is not None else 0 for v in values], color="tab:blue",
               yerr=errors if any(errors) else None, capsize=3)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{title} ({better} is better)", fontsize=9)
        ax.set_ylabel(title)
    save(fig, "headline_metrics")


def plot_sparse_probing(runs: dict[str, dict]) -> None:
    ks = [1, 2, 5, 10, 20, 50]
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for i, (name, info) in enumerate(runs.items()):
        sae = get(info, (PROBING, "eval_result_metrics", "sae")) or {}
        ys = [sae.get(f"sae_top_{k}_test_accuracy") for k in ks]
        ax.plot(ks, ys, marker="o", label=name)
        if i == 0:  # the LM's own residual stream is the same for every run
            llm = get(info, (PROBING, "eval_result_metrics", "llm")) or {}
            ax.plot(ks, [llm.get(f"llm_top_{k}_test_accuracy") for k in ks], "k--", marker="x", label="LM residual stream")
    ax.set_xscale("log")
    ax.set_xlabel("k (latents or residual dimensions used by the probe)")
    ax.set_ylabel("test accuracy")
    ax.set_title("Sparse probing, mean over datasets")
    ax.legend(fontsize=8)
    save(fig, "sparse_probing")


def plot_training(runs: dict[str, dict]) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for name, info in runs.items():
        log = get(info, ("training results", "log")) or []
        ax.plot([r["step"] for r in log], [r["mse"] for r in log], label=name)
    ax.set_xlabel("training step")
    ax.set_ylabel("reconstruction MSE (scaled units)")
    ax.set_yscale("log")
    ax.set_title("Training")
    ax.legend(fontsize=8)
    save(fig, "training_curves")


if __name__ == "__main__":
    runs = load_runs()
    if not runs:
        raise SystemExit(f"none of {list(labels)} has a final_info.json")
    plot_headline(runs)
    plot_sparse_probing(runs)
    plot_training(runs)
