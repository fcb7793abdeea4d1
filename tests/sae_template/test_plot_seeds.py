"""The template's plot.py over seed folders: a run with seeds reads as mean ± std, in a
LaTeX table written the way agents write one (f"{v:.3f}") and as error bars."""

import json
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

EV = ["core evaluation results", "eval_result_metrics", "reconstruction_quality", "explained_variance"]


def _run(folder: Path, ev: float, status: str = "ok") -> None:
    folder.mkdir()
    info: dict = {}
    node = info
    for key in EV[:-1]:
        node = node.setdefault(key, {})
    node[EV[-1]] = ev
    info["training results"] = {"log": [{"step": 0, "mse": 1.0}, {"step": 10, "mse": 0.5}]}
    (folder / "final_info.json").write_text(json.dumps(info))
    (folder / "meta.json").write_text(json.dumps({"status": status}))


def test_seeded_runs_print_as_mean_pm_std_and_plot(template_dir, tmp_path):
    shutil.copy(template_dir / "plot.py", tmp_path / "plot.py")
    _run(tmp_path / "run_0", 0.90)
    _run(tmp_path / "run_0_seed1", 0.92)
    _run(tmp_path / "run_0_seed2", 0.97)
    _run(tmp_path / "run_0_seed3", 0.10, status="failed")  # a failed seed counts for nothing
    _run(tmp_path / "run_1", 0.95)
    script = """
import plot
plot.labels = {"run_0": "base", "run_1": "one"}
runs = plot.load_runs()
ev = plot.get(runs["base"], plot.HEADLINE[0][1])
print(f"{ev:.3f}|{plot.get(runs['one'], plot.HEADLINE[0][1]):.3f}|{float(ev):.6f}|{ev.n}")
plot.plot_headline(runs)
plot.plot_training(runs)
"""
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    base, one, mean, n = out.stdout.strip().splitlines()[-1].split("|")
    std = statistics.stdev([0.90, 0.92, 0.97])
    assert base == f"{statistics.fmean([0.90, 0.92, 0.97]):.3f}$\\pm${std:.3f}"
    assert one == "0.950" and n == "3" and abs(float(mean) - 0.93) < 1e-6
    assert (tmp_path / "headline_metrics.png").stat().st_size > 1000
