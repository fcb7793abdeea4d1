"""Seeds and the noise band, end to end on the toy template (real runs, real git; scripted model).

The baseline with several seeds is computed once and then comes from the cache; the agent's
feedback says "within noise" only for a difference inside the band; the confirmation reruns
the best run's own commit with the other seeds and survives a SIGKILL; the report greys a
within-noise cell.
"""

from __future__ import annotations

import json
import re
import signal
import statistics
import subprocess
from pathlib import Path

from conftest import IDEA, REPO, l1_edit

from harness.execution.process import group_alive
from tests.support import child_env, copy_template, one_line_error, wait_for

EV = ("core evaluation results", "eval_result_metrics", "reconstruction_quality", "explained_variance")
L0 = ("core evaluation results", "eval_result_metrics", "sparsity", "l0")


def _value(folder: Path, path: tuple[str, ...]) -> float:
    node = json.loads((folder / "final_info.json").read_text())
    for key in path:
        node = node[key]
    return node


def _config(folder: Path) -> dict:
    return json.loads((folder / "final_info.json").read_text())["training results"]["config"]


def _line(prompt: str, label: str) -> str:
    return next(ln for ln in prompt.splitlines() if ln.startswith(label))


def test_baseline_seeds_are_computed_once_then_cached_and_give_mean_and_std(harness):
    harness.serve([])
    r = harness.run("--idea", str(harness.idea_path), "--seeds", "3", "--stop-after", "baseline")
    assert r.returncode == 0, r.stderr
    ws = r.workspace
    folders = [ws / "run_0", ws / "run_0_seed1", ws / "run_0_seed2"]
    for seed, folder in enumerate(folders):
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["status"] == "ok" and meta["seed"] == seed and "cached_from" not in meta
        assert _config(folder)["seed"] == seed  # experiment.py really got the seed
        assert meta["command_line"].endswith("" if seed == 0 else f" --seed={seed}")
    evs = [_value(f, EV) for f in folders]
    assert len(set(evs)) == 3  # different seeds, different numbers
    noise = json.loads((ws / "noise.json").read_text())
    spread = noise["runs"]["0"]["metrics"]["explained_variance"]
    assert noise["runs"]["0"]["seeds"] == [0, 1, 2] and spread["n"] == 3
    assert abs(spread["mean"] - statistics.fmean(evs)) < 1e-12
    assert abs(spread["std"] - statistics.stdev(evs)) < 1e-12
    assert abs(noise["bands"]["explained_variance"] - 2 * statistics.stdev(evs)) < 1e-12
    assert "3 seeds: explained_variance" in r.stdout
    assert "[baseline] run_0_seed2: the unmodified template, seed 2" in r.log()

    # a second idea: every seed from the cache, nothing run again
    again = harness.run("--idea", str(harness.idea_path), "--seeds", "3", "--stop-after", "baseline")
    assert again.returncode == 0, again.stderr
    ws2 = again.workspace
    assert ws2 != ws
    for name in ("run_0", "run_0_seed1", "run_0_seed2"):
        assert f"{name} from cache" in again.stdout
        assert json.loads((ws2 / name / "meta.json").read_text())["cached_from"]
    assert "computing" not in again.stdout
    assert json.loads((ws2 / "noise.json").read_text())["runs"] == noise["runs"]

    # another thread count moves a run's last digits like another seed: that baseline is computed anew
    harness.extra_env["OMP_NUM_THREADS"] = "3"
    third = harness.run("--idea", str(harness.idea_path), "--seeds", "1", "--stop-after", "baseline")
    assert third.returncode == 0, third.stderr
    assert "computing run_0 (cached afterwards for threads 3; cpu " in third.stdout
    assert "from cache" not in third.stdout


def test_feedback_says_within_noise_and_the_best_run_is_confirmed_from_its_own_commit(harness):
    llm = harness.serve([
        l1_edit("0.02", "0.0201"),  # a nudge: inside the band
        {"expect": "Run 1 finished", "reply": l1_edit("0.0201", "0.3")},  # far outside it
        {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"},
    ])
    r = harness.run("--idea", str(harness.idea_path), "--seeds", "3")
    assert r.returncode == 0, r.stderr
    assert llm.remaining == 0
    ws = r.workspace
    prompts = [q["prompt"] for q in r.chat()]
    first = _line(prompts[1], "L0 (active latents)")
    second = _line(prompts[2], "L0 (active latents)")
    assert "within noise" in first, prompts[1]
    assert "within noise" not in second and "beyond noise" in second, prompts[2]
    assert "run_0 (3 seeds)" in prompts[1] and "±" in first and "noise band" in prompts[1]

    # run_1 keeps the explained variance, run_2 loses it: run_1 is the best and is confirmed
    state = r.state()
    assert state["confirm"]["run"] == 1 and state["confirm"]["seeds_done"] == [1, 2] and state["confirm"]["done"]
    run1_commit = state["runs"]["1"]["commit"]
    for seed in (1, 2):
        folder = ws / f"run_1_seed{seed}"
        meta = json.loads((folder / "meta.json").read_text())
        assert meta["status"] == "ok" and meta["seed"] == seed and meta["commit"] == run1_commit
        assert _config(folder)["l1_coeff"] == 0.0201 and _config(folder)["seed"] == seed
    # the agent's later edit is still the workspace's code, and git has nothing pending
    assert "l1_coeff: float = 0.3 " in (ws / "experiment.py").read_text()
    assert not r.repo().is_dirty(untracked_files=True)
    noise = json.loads((ws / "noise.json").read_text())
    assert noise["runs"]["1"]["seeds"] == [0, 1, 2]
    assert "confirming run_1" in r.stdout and "run_1 over seeds 0, 1, 2" in r.stdout
    # the closing console table: run_1 as its mean over seeds, a within-noise cell says so
    table = r.stdout[r.stdout.index("runs vs baseline"):]
    assert f"{noise['runs']['1']['metrics']['l0']['mean']:.4g} ±" in table, table
    assert "within" in table and "noise: a difference from the baseline mean" in table.replace("\n", " "), table

    # the report: a within-noise cell is grey (class noise), a far one coloured
    out = subprocess.run([str(REPO / ".venvs" / "harness" / "bin" / "python"), str(REPO / "run_harness.py"),
                          "report", str(ws)], cwd=harness.tmp, env=child_env(harness.home), text=True,
                         capture_output=True, timeout=300)
    assert out.returncode == 0, out.stderr
    html = (ws / "report.html").read_text()
    rows = {m.group(1): re.findall(r'<td class="num (\w+)">([^<]*)</td>', m.group(2))
            for m in re.finditer(r'<tr[^>]*>\s*<td[^>]*>\s*(?:<[^>]+>)*\s*(run_\d+)(.*?)</tr>', html, re.S)}
    ev1, l0_1 = rows["run_1"][0], rows["run_1"][1]  # metric cells in the template's order: EV, L0, ...
    assert ev1[0] == "noise" and "within noise" in ev1[1] and l0_1[0] == "noise", rows["run_1"]
    # run_1 has three seeds now: its cells are its mean ± std, as in the paper's table
    l0_mean = noise["runs"]["1"]["metrics"]["l0"]["mean"]
    assert l0_1[1].startswith(f"{l0_mean:.4g} ± "), (l0_1, l0_mean)
    l0_2 = rows["run_2"][1]
    assert l0_2[0] == "better" and "within noise" not in l0_2[1], rows["run_2"]
    assert "td.noise" in html and "within seed noise" in html  # the grey and its legend


def test_a_kill_during_the_confirmation_resumes_at_the_seed_it_hit(harness, tmp_path):
    # run_1_seed2 hangs the first time only, so the harness is killed while it runs
    slow = copy_template(tmp_path / "slow_confirm", patch={"experiment.py": (
        "    cfg = Config()\n",
        "    cfg = Config()\n"
        "    if out_dir == 'run_1_seed2' and not os.path.exists('hung_once'):\n"
        "        open('hung_once', 'w').close()\n"
        "        time.sleep(120)\n")})
    llm = harness.serve([l1_edit("0.02", "0.05"),
                         {"expect": "Run 1 finished", "reply": l1_edit("0.05", "0.5")},
                         {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"sandbox": "process", "seeds": 3})
    proc = harness.start("--idea", str(harness.idea_path), "--config", str(cfg), template=str(slow))
    assert wait_for(lambda: harness.state()["confirm"]["pending_seed"] == 2 and harness.state()["child_pgid"],
                    timeout=180)
    ws, pgid = harness.workspace(), harness.state()["child_pgid"]
    # run_1's code, not the agent's later edit, is checked out while its seed runs
    assert "l1_coeff: float = 0.05 " in (ws / "experiment.py").read_text()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert group_alive(pgid)
    r = harness.run("--resume", str(ws))
    assert r.returncode == 0, r.stderr
    assert not group_alive(pgid) and llm.remaining == 0
    state = r.state()
    assert state["confirm"]["run"] == 1 and state["confirm"]["seeds_done"] == [1, 2]
    assert state["confirm"]["pending_seed"] is None and state["confirm"]["done"]
    assert "run_1_seed2_interrupted_1/stdout.log" in r.repo().git.ls_files()
    meta = json.loads((ws / "run_1_seed2" / "meta.json").read_text())
    assert meta["status"] == "ok" and meta["seed"] == 2 and meta["commit"] == state["runs"]["1"]["commit"]
    assert _config(ws / "run_1_seed2")["l1_coeff"] == 0.05
    log = r.log()
    assert sum(s.startswith("[experiments] run_1_seed1 results") for s in log) == 1  # seed 1 not redone
    assert sum(s.startswith("[experiments] run_1_seed2 results") for s in log) == 1
    # HEAD's experiment.py (the agent's last edit) is back, and nothing of it was lost
    assert "l1_coeff: float = 0.5 " in (ws / "experiment.py").read_text()
    assert not r.repo().is_dirty()


# --- the claims check gets the band (unit level, run files as a fresh machine measured them) ---

def _write_run(ws: Path, folder: str, values: dict[str, float], extra: dict | None = None) -> None:
    from harness.template import load_template
    info: dict = {}
    for m in load_template("sae_variants").metrics:
        node = info
        for key in m.path[:-1]:
            node = node.setdefault(key, {})
        node[m.path[-1]] = values.get(m.name, 31.99 if m.name == "l0" else 0.83)
    for (*path, key), v in (extra or {}).items():
        node = info
        for k in path:
            node = node[k]
        node[key] = v
    d = ws / folder
    d.mkdir(parents=True)
    (d / "final_info.json").write_text(json.dumps(info))
    # sae_variants is scored by the harness's evaluation step: its copy is what every reader takes
    (ws / ".harness" / "evaluations").mkdir(parents=True, exist_ok=True)
    (ws / ".harness" / "evaluations" / f"{folder}.json").write_text(json.dumps(info))
    (d / "evaluation.json").write_text(json.dumps(info))
    (d / "meta.json").write_text(json.dumps({"exit_code": 0, "timed_out": False, "duration_s": 500.0,
                                             "status": "ok", "seed": int(folder.rpartition("seed")[2] or 0)
                                             if "seed" in folder else 0}))


def test_claims_check_flags_an_improvement_within_the_seed_band(tmp_path):
    from harness.paper.claims import verify_paper
    from harness.results.noise import read_noise, write_noise
    from harness.template import load_template

    spec = load_template("sae_variants")
    ws = tmp_path / "ws"
    top1_stderr = {("sparse probing evaluation results", "eval_result_metrics", "sae",
                    "sae_top_1_test_accuracy_stderr"): 0.02}
    baseline = [(0.9363, 0.536), (0.9360, 0.563), (0.9366, 0.550)]
    for seed, (ev, top1) in enumerate(baseline):
        _write_run(ws, f"run_0_seed{seed}" if seed else "run_0",
                   {"explained_variance": ev, "sparse_probing_top1": top1}, top1_stderr)
    _write_run(ws, "run_1", {"explained_variance": 0.9368, "sparse_probing_top1": 0.5966})
    _write_run(ws, "run_2", {"explained_variance": 0.9290, "sparse_probing_top1": 0.565})
    (ws / "state.json").write_text(json.dumps({"idea": "x", "template": "sae_variants", "created": "2026-11-30"}))
    noise = write_noise(spec, ws, [])
    ev_std = statistics.stdev([b[0] for b in baseline])
    top1_std = statistics.stdev([b[1] for b in baseline])
    assert top1_std < 0.02  # so the probe's own stderr, not the seeds, sets the top-1 band
    assert abs(noise.bands()["explained_variance"] - 2 * ev_std) < 1e-12
    assert abs(noise.bands()["sparse_probing_top1"] - 2 * 0.02) < 1e-12
    assert read_noise(ws).bands() == noise.bands()

    tex = tmp_path / "paper.tex"
    tex.write_text("\\documentclass{article}\n\\begin{document}\n"
                   "Run 1 improves the explained variance over the baseline.\n\n"
                   "Run 2 improves the top-1 probing accuracy over the baseline.\n\n"
                   "Run 1 improves the top-1 probing accuracy over the baseline.\n\n"
                   "Over three seeds the baseline's top-1 probing accuracy is 0.5497.\n"
                   "\\end{document}\n")
    report = verify_paper(ws, tex, spec=spec, noise=noise.bands())
    flagged = {(s.metric, s.subject) for s in report.flagged}
    # 0.9368 vs 0.9363 is inside 2·std; 0.565 vs 0.536 inside 2·stderr; 0.5966 vs 0.536 beyond it
    assert flagged == {("explained_variance", (1,)), ("sparse_probing_top1", (2,))}, \
        [(s.describe(), s.status, s.why) for s in report.statements]
    assert all("within the noise band" in s.why for s in report.flagged)
    # without the band the same text passes: orderings alone hold
    assert verify_paper(ws, tex, spec=spec).flagged == []
    # the mean over seeds, which a table quotes, traces to noise.json
    mean = next(r for r in report.results if r.claim.text == "0.5497")
    assert mean.ok and mean.source.startswith("noise.json"), (mean.status, mean.source, mean.note)

    # run_2 confirmed with a second seed: the check compares its mean (0.5925), as the paper's
    # table and the harness's verdict do, so the same sentence now holds; and the band the
    # paper quotes as its rule (0.04) traces to noise.json
    _write_run(ws, "run_2_seed1", {"explained_variance": 0.9291, "sparse_probing_top1": 0.62}, top1_stderr)
    noise = write_noise(spec, ws, [2])
    tex.write_text(tex.read_text().replace("\\end{document}", "Our band for top-1 is 0.04.\n\\end{document}"))
    report = verify_paper(ws, tex, spec=spec, noise=noise.bands())
    assert {(s.metric, s.subject) for s in report.flagged} == {("explained_variance", (1,))}, \
        [(s.describe(), s.status, s.why) for s in report.statements]
    band = next(r for r in report.results if r.claim.text == "0.04")
    assert band.ok and band.source.startswith("noise.json"), (band.status, band.source, band.note)


def test_bad_seed_settings_are_one_line_errors(harness, tmp_path):
    for value in ("0", "11", "two"):
        r = harness.run("--idea", str(harness.idea_path), "--seeds", value)
        one_line_error(r, "seeds")
    bad = copy_template(tmp_path / "bad_seed_arg", patch={"template.yaml": ("seed_arg: --seed", "seed_arg: seed")})
    r = harness.run("--idea", str(harness.idea_path), template=str(bad))
    one_line_error(r, "seed_arg", "--seed")


def test_a_template_without_a_seed_option_runs_one_seed_and_says_so(harness, tmp_path):
    plain = copy_template(tmp_path / "no_seed", patch={"template.yaml": ("seed_arg: --seed", "")})
    harness.serve([])
    r = harness.run("--idea", str(harness.idea_path), "--seeds", "3", "--stop-after", "baseline", template=str(plain))
    assert r.returncode == 0, r.stderr
    assert "declares no seed_arg" in r.stdout and "no noise band" in r.stdout
    assert not list(r.workspace.glob("run_0_seed*")) and not (r.workspace / "noise.json").exists()


def test_the_writeup_gets_mean_and_std_and_whether_the_declared_change_left_the_noise(harness):
    from test_writeup import _good_texts, _sections, _upstream
    harness.idea_path.write_text(json.dumps(IDEA | {"Primary_Metric": "l0", "Expected_Direction": "lower"}))
    llm = harness.serve(_upstream() + _sections(_good_texts()))
    r = harness.run("--idea", str(harness.idea_path), "--stop-after", "writeup", "--seeds", "3", timeout=400)
    assert r.returncode == 0, r.stderr + r.stdout
    assert llm.remaining == 0
    state = r.state()
    assert state["confirm"]["run"] == 1 and state["confirm"]["metric"] == "l0"  # chosen by the declared metric
    section = next(c["prompt"] for c in r.chat() if "Now: the title and abstract" in c["prompt"])
    assert "run_0 (baseline) (mean ± std over seeds 0, 1, 2)" in section
    assert "run_1 (mean ± std over seeds 0, 1, 2)" in section
    assert "Noise: a difference from the baseline mean counts as real only when" in section
    assert re.search(r"The baseline over 3 seeds has [\d.]+ ± [\d.]+; over its seeds 0, 1, 2 run_1 has "
                     r"[\d.]+ ± [\d.]+: the difference of -[\d.]+ is beyond seed noise", section), section
    claims = json.loads((r.workspace / "claims.json").read_text())
    assert claims["noise_band"] is True and claims["unmatched"] == 0, claims
