"""Comparative statements checked against the runs' headline metrics (issue 16, item 3)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from claims_set import load_items, score
from harness.paper.claims import verify_paper
from harness.paper.comparisons import MetricVocabulary, RunValues, find_statements
from harness.template import load_template

REPO = Path(__file__).resolve().parents[2]
SAE = load_template("sae_variants")
TOY = load_template("toy")
NAMES = ("explained_variance", "ce_loss_score", "sparse_probing_top1", "absorption", "frac_dead", "kl_div_score")
# feature_momentum as recorded (recordings/feature_momentum.jsonl), and as a fresh 2-core
# machine measured the same replay (issue 16): run_0 top-1 0.536, run 1 the highest,
# absorption of run_2 0.779 above run_0's 0.762
RECORDED = {0: (0.9362, 0.9711, 0.5628, 0.7885, 0.0425, 0.9532), 1: (0.9362, 0.9675, 0.5633, 0.7889, 0.0425, 0.9523),
            2: (0.9359, 0.9683, 0.565, 0.7476, 0.0365, 0.9519), 3: (0.9357, 0.9684, 0.585, 0.8041, 0.0399, 0.9525)}
MACHINE = {0: (0.9363, 0.9711, 0.536, 0.762, 0.0425, 0.9532), 1: (0.936, 0.9675, 0.5966, 0.7889, 0.0425, 0.9523),
           2: (0.9359, 0.9683, 0.565, 0.779, 0.0365, 0.9519), 3: (0.9357, 0.9684, 0.585, 0.8041, 0.0399, 0.9525)}
RUN3_TOP1 = "Run 3's top-1 probing accuracy is the highest of all runs."
RUN2_ABSORPTION = "with Run 2 the mean absorption fraction is lower than the baseline's."


def values(runs=RECORDED, noise=None, spec=SAE) -> RunValues:
    return RunValues({m.name: m for m in spec.metrics}, {r: dict(zip(NAMES, v)) for r, v in runs.items()},
                     dict(noise or {}))


def check(text: str, runs=RECORDED, noise=None):
    return find_statements(text, values(runs, noise))


def only(text: str, runs=RECORDED, noise=None):
    found = [s for s in check(text, runs, noise) if s.status != "unresolved"]
    assert len(found) == 1, [(s.describe(), s.status, s.why) for s in check(text, runs, noise)]
    return found[0]


# --- resolution -------------------------------------------------------------------------

def test_metrics_are_found_by_label_name_and_abbreviation():
    vocab = MetricVocabulary.of(SAE.metrics)
    cases = {
        "top-1 probing accuracy": "sparse_probing_top1", "the sparse-probing top-1 accuracy": "sparse_probing_top1",
        "EV": "explained_variance", "explained variance": "explained_variance",
        "explained variance without the dominant dimension": "explained_variance_excl_dominant_dim",
        "the CE score": "ce_loss_score", "the spliced cross-entropy score": "ce_loss_score",
        "KL": "kl_div_score", "dead latents": "frac_dead", "L0": "l0", "the mean absorption fraction": "absorption",
    }
    for text, name in cases.items():
        assert [n for _, _, n in vocab.find(text)] == [name], text
    # words that only look like a metric are not one
    assert vocab.find("every level of the evaluation; the kernel") == []


def test_runs_resolve_from_names_groups_and_the_baseline():
    s = only("In all three runs the CE score lies below the baseline's.")
    assert (s.subject, s.reference, s.relation) == ((1, 2, 3), (0,), "lower") and s.status == "holds"
    s = only("Runs 1 and 3 have more dead latents than Run 2.")
    assert s.subject == (1, 3) and s.reference == (2,)
    s = only("Run 2 has fewer dead latents than every other run.")
    assert s.reference == (0, 1, 3) and s.status == "holds"
    # "the best run" is found by the metric's direction of better, baseline left out
    s = only("The best run has a lower absorption fraction than the baseline.")
    assert s.subject == (2,) and s.status == "holds"


def test_better_follows_the_metric_direction_and_higher_is_literal():
    # absorption: lower is better, so Run 2 (0.7476 < 0.7885) improves it and has it lower
    assert only("Run 2 improves absorption over the baseline.").status == "holds"
    assert only("Run 2 has a lower absorption fraction than the baseline.").status == "holds"
    s = only("Run 2 has a higher absorption fraction than the baseline.")
    assert s.flagged and s.why.startswith("run_2 0.7476 > run_0 0.7885 is false")
    assert only("Run 3 outperforms Run 2 on absorption.").flagged


def test_negations_invert_the_claim():
    s = only("Run 2 does not reduce the absorption fraction relative to the baseline.")
    assert s.negated and s.flagged
    s = only("No setting beat the baseline on the spliced cross-entropy score.")
    assert s.negated and s.subject == (1, 2, 3) and s.status == "holds"
    assert only("Run 1 fails to improve the CE loss score over the baseline.").status == "holds"
    # a "no" further from the cue is a determiner, not a negation
    s = only("With no warm-up, Run 2 has a lower absorption fraction than the baseline.")
    assert not s.negated and s.status == "holds"


def test_superlatives_are_judged_against_every_other_run():
    s = only(RUN3_TOP1)
    assert s.relation == "highest" and s.reference == (0, 1, 2) and s.status == "holds"
    s = only(RUN3_TOP1, MACHINE)
    assert s.flagged and "run_3 0.585 > run_1 0.5966 is false" in s.why
    assert only("Run 1 has the worst KL divergence score of all runs.").status == "flagged"  # run_2 is worst


def test_noise_band_turns_small_differences_into_findings():
    band = {"sparse_probing_top1": 0.03, "absorption": 0.03, "explained_variance": 0.001}
    s = only(RUN3_TOP1, noise=band)  # 0.585 vs 0.565: 0.02 apart
    assert s.flagged and "difference 0.02 is within the noise band 0.03" in s.why
    assert only(RUN2_ABSORPTION, noise=band).status == "holds"  # 0.041 apart
    # a claim of no difference needs a band: unresolved without one, checked with one
    same = "Run 1 matches the baseline in explained variance."
    assert [s.status for s in check(same)] == ["unresolved"] and "no noise band" in check(same)[0].why
    assert only(same, noise=band).status == "holds"
    s = only("Run 2 matches the baseline in absorption.", noise=band)
    assert s.flagged and "exceeds the noise band" in s.why
    # without a band a flag says that only the order was checked
    assert "ordering only" in only(RUN3_TOP1, MACHINE).why


@pytest.mark.parametrize("text", [
    "The penalty is orders of magnitude smaller than the reconstruction error in absorption.",  # not a run
    "Its top-1 probing accuracy is the highest of all runs.",       # subject in another sentence
    "Absorption is higher with a slower average.",                   # no run named
    "Run 1 has a lower absorption fraction than Run 9.",             # no such run
    "Run 2 reaches 0.7476 (absorption, lower than Run 3's).",        # a gloss in parentheses
    "The training curves lie close together, so the penalty did not change how fast reconstruction improved.",
    "Run 1 loses less explained variance than Run 3.",               # the size of a change
    "Run 1 reduces the KL divergence score less than Run 2 does.",   # two changes compared
])
def test_what_cannot_be_resolved_is_never_flagged(text):
    assert not any(s.flagged for s in check(text, MACHINE))


# --- the recorded papers ------------------------------------------------------------------

def paper_of(script: str) -> str:
    """The LaTeX the scripted replies of a demo session write into latex/template.tex."""
    steps = yaml.safe_load((REPO / "demo" / script).read_text(encoding="utf-8"))
    parts = []
    for step in steps:
        reply = step.get("reply", "") if isinstance(step, dict) else ""
        for m in re.finditer(r"=======\n(.*?)>>>>>>> REPLACE", reply, re.S):
            if "latex/template.tex" in reply[:m.start()][-600:]:
                parts.append(m.group(1))
    return "\\begin{document}\n" + "\n\n".join(parts) + "\n\\end{document}\n"


def labelled_values(name: str) -> RunValues:
    """A value set, with the noise set of the same name where there is one."""
    data = yaml.safe_load((Path(__file__).with_name("claims_labelled.yaml")).read_text(encoding="utf-8"))
    vs = data["value_sets"][name]
    spec = load_template(vs["template"])
    return RunValues({m.name: m for m in spec.metrics},
                     {int(r): {k: float(v) for k, v in vals.items()} for r, vals in vs["runs"].items()},
                     dict(data["noise_sets"].get(name, {})))


@pytest.mark.parametrize("script, value_set, checked", [
    ("feature_momentum.script.yaml", "fm_recorded_1201", 2),
    ("orthogonal_sae.script.yaml", "orth_rerecorded", 2),
    ("toy_l1_sweep.script.yaml", "toy_recorded", 2),
])
def test_recorded_papers_pass_on_their_own_numbers(script, value_set, checked):
    """The replays must not get a correction round the recordings never had; and the check
    must have read the papers (a number of statements checked, not an empty pass)."""
    found = find_statements(paper_of(script), labelled_values(value_set))
    assert [s.describe() for s in found if s.flagged] == []
    assert len([s for s in found if s.status == "holds"]) >= checked


# --- through verify_paper, on run files --------------------------------------------------

def write_workspace(root: Path, runs: dict[int, tuple]) -> Path:
    ws = root / "ws"
    for n, vals in runs.items():
        info: dict = {}
        by_name = dict(zip(NAMES, vals))
        for m in SAE.metrics:
            node = info
            for key in m.path[:-1]:
                node = node.setdefault(key, {})
            node[m.path[-1]] = by_name.get(m.name, 31.99 if m.name == "l0" else 0.83)
        d = ws / f"run_{n}"
        d.mkdir(parents=True)
        (d / "final_info.json").write_text(json.dumps(info))
        # sae_variants is scored by the harness: its numbers are the harness's copy (results.metrics)
        (d / "evaluation.json").write_text(json.dumps(info))
        (ws / ".harness" / "evaluations").mkdir(parents=True, exist_ok=True)
        (ws / ".harness" / "evaluations" / f"run_{n}.json").write_text(json.dumps(info))
        (d / "meta.json").write_text(json.dumps({"exit_code": 0, "timed_out": False, "duration_s": 500.0}))
    (ws / "state.json").write_text(json.dumps({"idea": "feature_momentum", "template": "sae_variants",
                                               "created": "2026-11-30"}))
    return ws


PAPER = r"""\documentclass{article}
\begin{document}
\section{Results}
With $\lambda = 0.1$ and $\beta = 0.9$ (Run 2) the mean absorption fraction is lower than the
baseline's at the same explained variance. Run 3 keeps $\lambda = 0.1$ but averages
co-activation over a longer window, $\beta = 0.99$: its absorption fraction is higher than the
baseline's while its top-1 probing accuracy is the highest of all runs.
In all three runs the cross-entropy score with the SAE spliced in lies slightly below the baseline's.
\end{document}
"""


def test_both_quoted_statements_are_flagged_on_this_machines_run_files(tmp_path):
    tex = tmp_path / "paper.tex"
    tex.write_text(PAPER)
    ws = write_workspace(tmp_path / "machine", MACHINE)
    report = verify_paper(ws, tex)  # the template comes from state.json

    line = {word: next(i for i, t in enumerate(PAPER.splitlines(), 1) if word in t)
            for word in ("is lower than", "the highest", "lies slightly below")}
    flagged = {(s.line, s.metric, s.relation) for s in report.flagged}
    assert flagged == {(line["is lower than"], "absorption", "lower"),
                       (line["the highest"], "sparse_probing_top1", "highest")}
    assert not report.ok
    why = {s.metric: s.why for s in report.flagged}
    assert "run_2 0.779 < run_0 0.762 is false" in why["absorption"]
    assert "run_3 0.585 > run_1 0.5966 is false" in why["sparse_probing_top1"]

    saved = json.loads((ws / "claims.json").read_text())
    assert saved["statements_flagged"] == 2 and saved["noise_band"] is False
    rows = {(r["line"], r["metric"]): r for r in saved["statements"]}
    assert rows[(line["the highest"], "sparse_probing_top1")]["numbers"]["run_1"] == 0.5966
    assert rows[(line["lies slightly below"], "ce_loss_score")]["status"] == "holds"

    # the correction round's prompt names both, with the numbers, and says what was checked
    msg = report.message()
    assert "2 comparisons in the paper do not hold" in msg and "only the order" in msg
    assert f"line {line['is lower than']}:" in msg
    assert "0.779 < run_0 0.762" in msg and "run_3 0.585 > run_1 0.5966" in msg


def test_the_recordings_numbers_pass_and_a_noise_band_is_applied(tmp_path):
    tex = tmp_path / "paper.tex"
    tex.write_text(PAPER)
    ws = write_workspace(tmp_path / "recorded", RECORDED)
    report = verify_paper(ws, tex, spec=SAE)
    assert report.flagged == [] and len([s for s in report.statements if s.status == "holds"]) == 4

    band = {"sparse_probing_top1": 0.03, "absorption": 0.03, "ce_loss_score": 0.002, "explained_variance": 0.001}
    report = verify_paper(ws, tex, spec=SAE, noise=band)
    # run 3's absorption (0.8041 vs 0.7885) and top-1 (0.585 vs 0.565) differ by less than the band
    assert [(s.metric, s.relation) for s in report.flagged] == [("absorption", "higher"),
                                                                ("sparse_probing_top1", "highest")]
    assert all("within the noise band 0.03" in s.why for s in report.flagged)
    assert json.loads((ws / "claims.json").read_text())["noise_band"] is True


def test_without_a_template_only_numbers_are_checked(tmp_path):
    tex = tmp_path / "paper.tex"
    tex.write_text(PAPER)
    ws = write_workspace(tmp_path / "machine", MACHINE)
    (ws / "state.json").unlink()
    report = verify_paper(ws, tex)
    assert report.statements == [] and json.loads((ws / "claims.json").read_text())["statements"] == []


# --- the labelled set -----------------------------------------------------------------

PRECISION_FLOOR = 0.95
RECALL_FLOOR = 0.8


def test_labelled_set_precision_and_recall():
    """Measured 2026-11-30 (bench/claims_precision.py): 122 statements, 36 false; 34 flagged,
    all false (precision 1.0, recall 0.944). Parts labelled before the check first saw them:
    24 scored precision 1.0, recall 8/9; 22 more scored precision 10/12 (two wrong flags on
    "loses less X" / "reduces X less than", since fixed); the last 18, after that fix,
    precision 6/6, recall 6/7. The floors leave room for a wrong flag or two."""
    items = load_items()
    labels = [i.label for i in items]
    assert len(items) >= 40 and labels.count("false") >= 10 and labels.count("true") >= 10
    s = score(items)
    assert s.precision >= PRECISION_FLOOR, [i.id for i in s.items if i.flagged and i.label != "false"]
    assert s.recall >= RECALL_FLOOR, [i.id for i in s.items if not i.flagged and i.label == "false"]
