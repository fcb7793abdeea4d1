"""The harness scores runs itself (issue 16, item 1): a run that lies in final_info.json, or
rewrites an earlier run's evaluation.json, changes no number anyone reads, and an SAE whose
encode cannot be exported fails its run with a line saying what to change.

One harness session on the SAE template's tiny setting, real sandbox, real SmolLM2
activations, real SAE training with the template's 2 seeds, the scripted model making the
edits; it is also the SAE template's end-to-end test (metrics fed back against the baseline,
seeds reaching training, the confirmation run), since a second session would cost as much again:
  run_1  k = 16, and experiment.py writes a made-up "explained variance 0.99" into final_info.json
  run_2  also rewrites run_1/evaluation.json (and tries the harness's own copy under .harness/)
  run_3  encode branches in Python on a tensor's value: torch.export refuses it
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml
from conftest import REPO, edit, l1_edit

sys.path.insert(0, str(REPO / "tests"))
from sae_cache import build_tiny_once, copy_shared, link_shared  # noqa: E402

from harness.errors import UserError  # noqa: E402
from harness.paper.claims import verify_paper  # noqa: E402
from harness.results.metrics import ResultsError, read_results  # noqa: E402
from harness.results.store import Store  # noqa: E402
from harness.template import load_template  # noqa: E402
from tests.support import copy_template  # noqa: E402

TINY = yaml.safe_load((REPO / "tests" / "sae_template" / "tiny_config.yaml").read_text())
READ_ONLY_KINDS = ("models", "sparse_probing")  # linked: the sandbox shows them read-only
WRITTEN_KINDS = ("activations", "core_eval", "absorption")  # copied: a run may add to the absorption memo
EV = ("core evaluation results", "eval_result_metrics", "reconstruction_quality", "explained_variance")
WRITE = '    (out / "final_info.json").write_text(json.dumps(final_info, indent=2, default=str))'
FAKE = ('    final_info["core evaluation results"] = {"eval_result_metrics": '
        '{"reconstruction_quality": {"explained_variance": 0.99}}}')
TAMPER = '''
    earlier = out.parent / "run_1" / "evaluation.json"
    forged = json.loads(earlier.read_text())
    forged["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"]["explained_variance"] = 0.99
    earlier.write_text(json.dumps(forged))
    try:
        (out.parent / ".harness" / "evaluations" / "run_1.json").write_text(json.dumps(forged))
        print("harness copy rewritten")
    except OSError:
        print("harness copy is read-only")'''
ENCODE = '''    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.activate(self.pre_acts(x)) * self.input_scale'''
BRANCHY = '''    def encode(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:  # a Python branch on a tensor's value
            return self.activate(self.pre_acts(x)) * self.input_scale
        return self.activate(self.pre_acts(-x)) * self.input_scale'''


# A scorer for the toy template: fixed numbers, plus what it could see and do from where the
# harness started it (the agent's experiment.py must not be importable, the run folder read-only).
SCORER = """import json, os, sys
run_dir, out = sys.argv[1], sys.argv[2]
try:
    import experiment  # noqa: F401
    importable = True
except ImportError:
    importable = False
try:
    open(os.path.join(run_dir, "scorer_was_here"), "w").close()
    run_dir_writable = True
except OSError:
    run_dir_writable = False
loss = json.load(open(os.path.join(run_dir, "final_info.json")))["training results"]["final_loss"]
json.dump({"core evaluation results": {"eval_result_metrics": {
              "reconstruction_quality": {"explained_variance": 0.5}, "sparsity": {"l0": 3.0},
              "misc": {"frac_dead": 0.0}}},
           "feature recovery": {"mean_max_cosine": 0.25},
           "scorer": {"agent_code_importable": importable, "run_dir_writable": run_dir_writable,
                      "final_loss_seen": loss, "files": sorted(os.listdir("."))}}, open(out, "w"))
"""
EVALUATION = """evaluation:
  command: [python, scorer.py, "{run_dir}", "{out}"]
  code: [scorer.py]
  timeout: 60
"""


def _scored_toy(tmp_path, block: str = EVALUATION, protected: str = "[template.yaml, scorer.py]"):
    tpl = copy_template(tmp_path / "scored_toy", patch={"template.yaml": ("protected: [template.yaml]",
                                                                          f"protected: {protected}")})
    (tpl / "scorer.py").write_text(SCORER)
    with (tpl / "template.yaml").open("a") as fh:
        fh.write(block)
    return tpl


@pytest.mark.parametrize("block, protected, message", [
    ("evaluation: {command: [python, scorer.py], code: [scorer.py]}\n", "[template.yaml, scorer.py]", "'{out}'"),
    ("evaluation: {command: python, code: [scorer.py]}\n", "[template.yaml, scorer.py]", "non-empty list"),
    (EVALUATION, "[template.yaml]", "scorer.py is not protected"),
    (EVALUATION.replace("[scorer.py]", "[nothing.py]"), "[template.yaml, nothing.py]", "nothing.py does not exist"),
    (EVALUATION + "  output: final_info.json\n", "[template.yaml, scorer.py]", "output must be a plain file name"),
    ("evaluation: {command: [python, '{out}'], code: [], when: always}\n", "[template.yaml]", "must be a mapping of"),
])
def test_evaluation_block_errors_are_one_line_and_name_the_fix(tmp_path, block, protected, message):
    with pytest.raises(UserError) as err:
        load_template(str(_scored_toy(tmp_path, block, protected)))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_toy_scored_by_the_harness_in_its_own_folder(harness, tmp_path):
    """Fast and template-agnostic: the step runs protected code only, in the sandbox, and a later
    run that rewrites an earlier run's evaluation.json changes nothing."""
    tpl = _scored_toy(tmp_path)
    forge = ('    print(json.dumps(results["core evaluation results"]["eval_result_metrics"]))\n'
             '    earlier = os.path.join(os.path.dirname(os.path.abspath(out_dir)), "run_1", "evaluation.json")\n'
             '    forged = json.load(open(earlier))\n'
             '    forged["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"]'
             '["explained_variance"] = 0.99\n'
             '    json.dump(forged, open(earlier, "w"))')
    harness.serve([{"expect": "explained variance", "reply": l1_edit("0.02", "0.03")},
                   {"expect": "Run 1 finished", "reply": edit("experiment.py", forge.splitlines()[0], forge)},
                   {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path), template=str(tpl))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ws = r.workspace
    spec = load_template(str(tpl))
    for i in (0, 1, 2):
        results = read_results(spec, ws / f"run_{i}")
        assert results.info["core evaluation results"]["eval_result_metrics"]["reconstruction_quality"][
            "explained_variance"] == 0.5
        scorer = results.info["scorer"]
        assert scorer["agent_code_importable"] is False
        assert "experiment.py" not in scorer["files"] and "scorer.py" in scorer["files"]
        # toy's own final_info.json reports its real EV (about 0.9): not the harness's 0.5
        assert any("final_info.json says explained variance" in m for m in results.mismatch)
        if "namespace" in (ws / "harness.log").read_text():
            assert scorer["run_dir_writable"] is False
    assert any("run_1/evaluation.json was changed or removed" in m for m in read_results(spec, ws / "run_1").mismatch)
    feedback = r.chat()[1]["prompt"]
    assert "measured 0.5" in feedback and "WARNING: this run's own files disagree" in feedback
    assert "run_1/evaluation.json" in feedback and "self-reported" not in feedback
    assert r.state()["runs"]["1"]["mismatch"]
    # without the harness's copy the run has no numbers at all (never the run's own)
    (ws / ".harness" / "evaluations" / "run_2.json").unlink()
    with pytest.raises(ResultsError, match="no evaluation by the harness"):
        read_results(spec, ws / "run_2")


def test_a_template_without_evaluation_is_labelled_self_reported(harness):
    harness.serve([{"expect": "explained variance", "reply": l1_edit("0.02", "0.03")},
                   {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "self-reported: this template has no harness evaluation" in r.chat()[1]["prompt"]
    assert not r.state()["runs"]["1"]["mismatch"]


def _the_template_ran_end_to_end(r, harness_ev) -> None:
    for info in harness_ev:
        assert {"core evaluation results", "sparse probing evaluation results",
                "absorption evaluation results"} <= set(info)
    l0 = [i["core evaluation results"]["eval_result_metrics"]["sparsity"]["l0"] for i in harness_ev[:2]]
    assert l0 == [32.0, 16.0]  # TopK pins L0 at k: the agent's edit is what ran
    # the workspace ran with the tiny setting, committed with the template
    assert "train_tokens: 20000" in (r.workspace / "experiment_config.yaml").read_text()
    # the agent saw run_1 against the baseline's 2 seeds, with the template's headline metrics
    feedback = r.chat()[1]["prompt"]
    for name in ("explained variance", "CE loss score", "L0", "sparse probing top-1", "mean absorption fraction"):
        assert name in feedback, name
    assert "Run 1 finished" in feedback and "run_0 (2 seeds)" in feedback
    assert r.state()["runs"]["1"]["status"] == "done" and not r.state()["runs"]["1"]["degenerate"]
    # the baseline's seed 1 and the confirmation of run_1 (the best by explained variance, tied
    # with run_2) ran with --seed=1, which reached TrainConfig.seed
    for folder, l0_expected in (("run_0_seed1", 32.0), ("run_1_seed1", 16.0)):
        info = json.loads((r.workspace / folder / "final_info.json").read_text())
        assert info["training results"]["config"]["seed"] == 1
        scored = json.loads((r.workspace / ".harness" / "evaluations" / f"{folder}.json").read_text())
        assert scored["core evaluation results"]["eval_result_metrics"]["sparsity"]["l0"] == l0_expected
        assert json.loads((r.workspace / folder / "meta.json").read_text())["seed"] == 1


def _get(node, path):
    for key in path:
        node = node[key]
    return node


@pytest.mark.timeout(4500)  # a cold run_0 and three evaluations: 33 min for run_0 + run_1 at load 15-18
def test_runs_cannot_report_their_own_scores(harness):
    cache = harness.home / ".cache" / "sae_harness" / "activations"
    build_tiny_once()
    link_shared(cache, READ_ONLY_KINDS)
    copy_shared(cache, WRITTEN_KINDS)
    lie = edit("experiment.py", "    k: int = 32  # topk: active latents per token",
               "    k: int = 16  # topk: active latents per token") + edit("experiment.py", WRITE, FAKE + "\n" + WRITE)
    tamper = edit("experiment.py", FAKE, FAKE + TAMPER)
    harness.serve([{"expect": "explained variance", "reply": lie},
                   {"expect": "Run 1 finished", "reply": tamper},
                   {"expect": "Run 2 finished", "reply": edit("experiment.py", ENCODE, BRANCHY)},
                   {"expect": "Run 3 failed", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"template_settings": TINY, "run_timeout": 1800})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg), template="sae_variants", timeout=4200)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    ws = r.workspace

    harness_ev = [json.loads((ws / ".harness" / "evaluations" / f"run_{i}.json").read_text()) for i in (0, 1, 2)]
    _the_template_ran_end_to_end(r, harness_ev)
    measured = _get(harness_ev[1], EV)
    assert 0 < measured < 0.99
    assert _get(harness_ev[1], ("core evaluation results", "eval_result_metrics", "sparsity", "l0")) == 16.0
    assert _get(json.loads((ws / "run_1" / "final_info.json").read_text()), EV) == 0.99  # the lie is on disk
    assert _get(json.loads((ws / "run_1" / "evaluation.json").read_text()), EV) == 0.99  # and the forgery
    assert "harness copy is read-only" in (ws / "run_2" / "stdout.log").read_text()

    # the agent's feedback: the measured value, and the mismatch spelled out
    chat = r.chat()
    after_run_1 = chat[1]["prompt"]
    assert f"{measured:.4f}".rstrip("0") in after_run_1 and "0.99 " not in after_run_1.split("```")[1]
    assert "final_info.json says explained variance 0.99; the harness's evaluation measured" in after_run_1
    # run_3: the export refused, with what to change
    failed = chat[3]["prompt"]
    assert "saekit could not export SAE.encode with torch.export" in failed
    assert "free of Python branches on tensor values" in failed

    # console and state.json
    assert "MISMATCH: run_1/final_info.json says explained variance 0.99" in r.stdout + r.stderr
    state = r.state()
    assert any("says explained variance 0.99" in m for m in state["runs"]["1"]["mismatch"])

    # the store and leaderboard read the harness's numbers; the report flags run_1
    store = Store(harness.root / "results.sqlite")
    store.sync_workspace(ws)
    rows = {row.run: row for row in store.runs() if row.status == "done"}
    assert abs(rows[1].metrics["explained_variance"] - measured) < 1e-9
    board = subprocess.run([str(REPO / ".venvs" / "harness" / "bin" / "python"), str(REPO / "run_harness.py"),
                            "leaderboard", "--workspace-root", str(harness.root)],
                           capture_output=True, text=True, env=harness.env(), cwd=harness.tmp, timeout=120)
    assert board.returncode == 0, board.stderr[-2000:]
    rep = subprocess.run([str(REPO / ".venvs" / "harness" / "bin" / "python"), str(REPO / "run_harness.py"),
                          "report", str(ws)], capture_output=True, text=True, env=harness.env(),
                         cwd=harness.tmp, timeout=300)
    assert rep.returncode == 0, rep.stderr[-2000:]
    html = (ws / "report.html").read_text()
    assert "mismatch: run_1/final_info.json says explained variance 0.99" in html
    assert "run_1/evaluation.json was changed or removed after the harness wrote it" in html

    # the paper: the measured value is backed by a run file, the made-up one is not
    tex = ws / "check.tex"
    tex.write_text(f"Run 1 reaches an explained variance of {measured:.3f}. Run 1 reaches 0.990.\n")
    report = verify_paper(ws, tex)
    status = {c.claim.text: c.status for c in report.results if c.claim.kind == "number"}
    assert any(s == "ok" and f"{measured:.3f}" in t for t, s in status.items()), status
    assert any(s != "ok" and "0.990" in t for t, s in status.items()), status
    claims = json.loads((ws / "claims.json").read_text())
    assert any("explained variance 0.99" in m for m in claims["mismatch"]["run_1"])
