"""The review stage: reviewers given the paper and the harness's evidence, the form checked
field by field with one repair, the claims check's findings required in the soundness
section, the meta-review, --improve, the `review` command, the report and the leaderboard.

One finished toy workspace (the README's toy demo, run through the whole pipeline with its
scripted reviewers) is built per module; tests that change it work on copies.
"""

from __future__ import annotations

import json
import shutil
import subprocess

import git
import pytest
from batchkit import cli
from conftest import REPO, edit

from harness.paper.review_form import FormError, parse_review
from tests.support import Harness

FALSE = "Run 2 has a higher explained variance than the baseline, at 0.9871."
"""Injected into a finished paper: a number no run holds and a comparison the runs contradict."""


def form(**change) -> str:
    base = {"summary": "A sweep of the L1 coefficient on a toy SAE.", "strengths": ["clear"], "weaknesses": ["one seed"],
            "questions": ["seeds?"], "soundness_evidence": "The run table supports the sweep.",
            "soundness": 3, "presentation": 3, "contribution": 2, "overall": 5, "confidence": 3, "decision": "reject"}
    base.update(change)
    return json.dumps({k: v for k, v in base.items() if v is not None})


META = json.dumps({"summary": "Agreed: the sweep is clean but C1 and C2 undermine the results section.",
                   "soundness_evidence": "C1 is a number no run holds and C2 a comparison the runs contradict.",
                   "strengths": ["clear"], "weaknesses": ["false claim about run 2"],
                   "revision_requests": ["Remove the sentence claiming run 2's explained variance is 0.9871."],
                   "decision": "reject"})


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A toy workspace through every stage, review included, with the demo script."""
    tmp = tmp_path_factory.mktemp("review")
    r = cli(tmp, "--idea", str(REPO / "ideas" / "toy_l1_sweep.json"), "--template", "toy",
            "--model", f"scripted:{REPO / 'demo' / 'toy_l1_sweep.script.yaml'}",
            "--workspace-root", str(tmp / "ws"), timeout=400)
    assert r.returncode == 0, (r.stdout[-3000:], r.stderr[-3000:])
    return next(p for p in (tmp / "ws").iterdir() if (p / "state.json").is_file()), r


def copy_with_false_claim(ws, dest):
    """The finished workspace, its paper given one false sentence and the claims check run again."""
    from harness.paper.claims import verify_paper

    root = dest / "workspaces"
    shutil.copytree(ws, root / ws.name, symlinks=True)
    ws = root / ws.name
    tex = ws / "latex" / "template.tex"
    text = tex.read_text()
    anchor = "No run has dead latents."
    assert anchor in text
    tex.write_text(text.replace(anchor, anchor + " " + FALSE, 1))
    report = verify_paper(ws, tex)
    assert len(report.unmatched) == 1 and len(report.flagged) == 1, report.message()
    repo = git.Repo(ws)
    repo.git.add("-A")
    repo.index.commit("test: a false claim in the paper")
    return ws


def test_pipeline_reviews_the_paper_and_commits_review_json(finished):
    ws, r = finished
    state = json.loads((ws / "state.json").read_text())
    assert state["stages"]["review"] == "done" and state["status"] == "done"
    data = json.loads((ws / "review.json").read_text())
    assert [o["status"] for o in data["reviewers"]] == ["ok", "ok", "ok"]
    overall = [o["review"]["overall"] for o in data["reviewers"]]
    assert data["meta_review"]["overall"] == round(sum(overall) / 3, 2)
    assert "review.json" in git.Repo(ws).git.ls_files().split()
    assert "meta-review 5.33/10" in r.stdout
    calls = [json.loads(x) for x in (ws / "chat.jsonl").read_text().splitlines()]
    review_calls = [c for c in calls if c["stage"] == "review"]
    assert len(review_calls) == 4 and all(c["ok"] and c["prompt_tokens"] > 500 for c in review_calls[:3])
    # each reviewer saw the evidence, not only the paper
    assert "Results the harness recorded" in review_calls[0]["prompt"] and "experiment.py" in review_calls[0]["prompt"]


def test_bad_forms_are_repaired_once_then_dropped_and_findings_must_be_cited(finished, tmp_path):
    ws = copy_with_false_claim(finished[0], tmp_path)
    h = Harness(tmp_path)
    line = next(x for x in (ws / "latex" / "template.tex").read_text().splitlines() if FALSE in x)
    improve = edit("latex/template.tex", line, line.replace(" " + FALSE, ""))
    llm = h.serve([
        {"expect": "Review the paper below", "reply": "I liked the paper. Accept."},        # 1: not JSON
        {"expect": "could not be used", "reply": form(soundness_evidence="Looks fine.")},    # 1: ignores C1, C2
        {"expect": "does not mention C1, C2", "reply": form(
            soundness_evidence="C1: 0.9871 is in no run file. C2: run_2's EV is below the baseline's.", overall=3)},
        {"expect": "Review the paper below", "reply": "```json\n" + form(
            soundness_evidence="C1 and C2 show the results paragraph is wrong.", overall=4) + "\n```"},
        {"expect": "Review the paper below", "reply": form(overall=None)},                  # 3: missing field
        {"expect": "field 'overall' is missing", "reply": form(overall=11)},                 # 3: out of range
        {"expect": "You are the area chair", "reply": META},
        {"expect": "meta-review asks for these changes", "reply": improve},
    ])
    out = subprocess.run([*h.args()[:2], "review", str(ws), "--again", "--improve", "--model", "openai/scripted",
                          "--api-base", llm.url], cwd=tmp_path, env=h.env(), capture_output=True, text=True, timeout=300)
    h.llm.stop()
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    assert "Traceback" not in out.stdout + out.stderr
    assert llm.remaining == 0
    data = json.loads((ws / "review.json").read_text())
    first, second, third = data["reviewers"]
    assert first["status"] == "ok" and first["repairs"] == 2 and first["review"]["overall"] == 3
    assert second["status"] == "ok" and second["repairs"] == 0
    assert third["status"] == "dropped" and "'overall' must be a whole number from 1 to 10" in third["reason"]
    assert data["meta_review"]["overall"] == 3.5  # the two kept reviews' mean, not the model's word
    assert [f["tag"] for f in data["evidence"]["findings"]] == ["C1", "C2"]
    sent = [m["messages"][-1]["content"] for m in llm.requests if m["kind"] == "script"]
    assert "not one JSON object" in sent[1] and "field 'overall' is missing" in sent[5]
    assert "[C1] number found in no run file" in sent[0] and "[C2] comparison the run files contradict" in sent[0]
    # --improve: one revision, recompiled, the claims check run again and clean
    rev = data["revision"]
    assert rev["findings_before"] == 2 and rev["findings_after"] == 0 and rev["paper_updated"]
    claims = json.loads((ws / "claims.json").read_text())
    assert claims["unmatched"] == 0 and claims["statements_flagged"] == 0
    assert FALSE not in (ws / "latex" / "template.tex").read_text()
    log = [c.summary for c in git.Repo(ws).iter_commits()]
    assert any(s.startswith("[review] revised paper") for s in log)
    state = json.loads((ws / "state.json").read_text())
    assert state["stages"]["review"] == "done" and state["status"] == "done" and state["review"]["revised"]

    # the report shows it; the leaderboard ranks by it
    r = cli(tmp_path, "report", str(ws))
    assert r.returncode == 0, r.stderr
    page = (ws / "report.html").read_text()
    assert "Meta-review: overall 3.5/10, reject" in page and "dropped: did not fill the form" in page
    assert "[C1] number found in no run file" in page and 'href="review.json"' in page
    board = cli(tmp_path, "leaderboard", "--metric", "review", "--workspace-root", str(ws.parent))
    assert board.returncode == 0 and "toy_l1_sweep" in board.stdout and "3.5" in board.stdout, board.stdout


def test_every_reviewer_failing_the_form_fails_the_stage_clearly(finished, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(finished[0], root / finished[0].name, symlinks=True)
    ws = root / finished[0].name
    h = Harness(tmp_path)
    llm = h.serve(["not json at all", '{"summary": "x"}'])
    r = subprocess.run([*h.args()[:2], "review", str(ws), "--again", "--reviewers", "1", "--model", "openai/scripted",
                        "--api-base", llm.url], cwd=tmp_path, env=h.env(), capture_output=True, text=True, timeout=200)
    h.llm.stop()
    assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr, r.stderr
    assert "no reviewer filled the form" in r.stdout
    data = json.loads((ws / "review.json").read_text())
    assert data["meta_review"] is None and data["reviewers"][0]["status"] == "dropped"
    assert "field 'strengths' is missing" in data["reviewers"][0]["reason"]
    assert json.loads((ws / "state.json").read_text())["stages"]["review"] == "failed"


def test_review_resumes_after_a_budget_stop_without_asking_again(finished, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(finished[0], root / finished[0].name, symlinks=True)
    ws = root / finished[0].name
    spent = sum(json.loads(x)["prompt_tokens"] + json.loads(x)["completion_tokens"]
                for x in (ws / "chat.jsonl").read_text().splitlines())
    h = Harness(tmp_path)
    replies = [form(overall=n) for n in (4, 5, 6)] + [META.replace("C1 and C2 undermine", "nothing undermines")]
    llm = h.serve(replies)
    base = [*h.args()[:2], "review", str(ws), "--model", "openai/scripted", "--api-base", llm.url]
    r = subprocess.run([*base, "--again", "--budget-tokens", str(spent + 1)], cwd=tmp_path, env=h.env(),
                       capture_output=True, text=True, timeout=200)
    assert r.returncode == 1 and "budget spent" in r.stdout, (r.stdout, r.stderr)
    state = json.loads((ws / "state.json").read_text())
    assert state["stages"]["review"] == "stopped" and len(state["review"]["reviewers"]) == 1
    r = subprocess.run(base, cwd=tmp_path, env=h.env(), capture_output=True, text=True, timeout=200)
    h.llm.stop()
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert llm.remaining == 0 and len([q for q in llm.requests if q["kind"] == "script"]) == 4
    data = json.loads((ws / "review.json").read_text())
    assert [o["review"]["overall"] for o in data["reviewers"]] == [4, 5, 6] and data["meta_review"]["overall"] == 5.0


def test_replaying_a_recording_without_review_replies_skips_the_review_with_a_line(finished, tmp_path):
    root = tmp_path / "ws"
    shutil.copytree(finished[0], root / finished[0].name, symlinks=True)
    ws = root / finished[0].name
    old = tmp_path / "old_recording.jsonl"  # as recordings made before the stage existed
    old.write_text("".join(x + "\n" for x in (ws / "chat.jsonl").read_text().splitlines()
                           if json.loads(x)["stage"] != "review"))
    r = cli(tmp_path, "review", str(ws), "--again", "--model", f"replay:{old}")
    assert r.returncode == 0, r.stderr
    assert "review skipped: the recording holds no review replies" in r.stdout
    assert json.loads((ws / "state.json").read_text())["stages"]["review"] == "skipped"


def test_a_replay_serves_the_recorded_reviews_to_review_requests_only(finished, tmp_path):
    """The recording's first replies are the experiments stage's; the review requests must get
    the recorded reviews (their own queue, asked for by header), through litellm for real."""
    root = tmp_path / "ws"
    shutil.copytree(finished[0], root / finished[0].name, symlinks=True)
    ws = root / finished[0].name
    before = json.loads((ws / "review.json").read_text())
    r = cli(tmp_path, "review", str(ws), "--again", "--model", f"replay:{finished[0] / 'chat.jsonl'}")
    assert r.returncode == 0, (r.stdout, r.stderr)
    after = json.loads((ws / "review.json").read_text())
    assert after["reviewers"] == before["reviewers"] and after["meta_review"] == before["meta_review"]

    from harness.agent.scripted_llm import Entry, ScriptedLLM

    with ScriptedLLM([Entry("plan", stage="experiments"), Entry("form", stage="review")],
                     exhausted_reply="none") as llm:
        assert llm.choose([{"role": "user", "content": "start"}])[1] == "plan"
        # a request only the replay makes (a claims correction) must not take the review's reply
        assert llm.choose([{"role": "user", "content": "correct the claims"}])[1] == "none"
        assert llm.choose([{"role": "user", "content": "review"}], "review")[1] == "form"


def test_review_command_input_errors_are_one_line(tmp_path):
    from tests.support import one_line_error

    r = cli(tmp_path, "review", str(tmp_path / "nowhere"))
    one_line_error(r, "no such folder")
    r = cli(tmp_path, "review", str(tmp_path))
    one_line_error(r, "not a harness workspace")
    (tmp_path / "state.json").write_text(json.dumps({"idea": "x", "template": "toy", "created": "now"}))
    r = cli(tmp_path, "review", str(tmp_path))
    one_line_error(r, "has no paper yet", "--resume")


@pytest.mark.parametrize("reply, field", [
    ("Accept!", "not one JSON object"),
    ('["a list"]', "not one JSON object"),
    (form(decision="maybe"), "field 'decision' must be \"accept\" or \"reject\""),
    (form(soundness=0), "field 'soundness' must be a whole number from 1 to 4"),
    (form(confidence=4.5), "field 'confidence'"),
    (form(strengths=[1, 2]), "field 'strengths' must be a list of strings"),
    (form(summary=" "), "field 'summary' must be a non-empty string"),
])
def test_the_form_check_names_the_field(reply, field):
    with pytest.raises(FormError) as exc:
        parse_review(reply)
    assert field in str(exc.value)


def test_the_form_check_takes_json_inside_prose_or_a_fence():
    review = parse_review("Here is my review:\n```json\n" + form(overall="7", decision="Accept") + "\n```\nThanks.")
    assert review.overall == 7 and review.decision == "accept"
