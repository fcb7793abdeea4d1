"""Plots of the runs, for the writeup. The agent edits this file after the experiments.

Usage: python plot.py   (writes PNG and PDF figures into this folder)
"""

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display needed
import matplotlib.pyplot as plt  # noqa: E402

# Which runs to plot, and their names in the legend. Runs not listed are left out.
labels = {
    "run_0": "baseline",
}

METRICS = {
    "explained variance": ("core evaluation results", "eval_result_metrics", "reconstruction_quality",
                           "explained_variance"),
    "L0": ("core evaluation results", "eval_result_metrics", "sparsity", "l0"),
    "feature recovery (MMCS)": ("feature recovery", "mean_max_cosine"),
}


def load(run):
    return json.loads((Path(run) / "final_info.json").read_text())


def get(info, path):
    for key in path:
        info = info[key]
    return info


def main():
    runs = [r for r in labels if (Path(r) / "final_info.json").exists()]
    infos = {r: load(r) for r in runs}
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.2))
    for ax, (name, path) in zip(axes, METRICS.items()):
        ax.bar([labels[r] for r in runs], [get(infos[r], path) for r in runs], color="tab:blue")
        ax.set_title(name)
        ax.tick_params(axis="x", rotation=30)
    fig.tight_layout()
    for ext in ("png", "pdf"):
        fig.savefig(f"metrics_by_run.{ext}", dpi=150)
    print("wrote metrics_by_run.png/.pdf")


if __name__ == "__main__":
    main()
