"""`run_harness.py ideas`: ideas proposed by the scripted model, checked by the real validator,
novelty-checked against real literature clients (talking HTTP to a local fake API) or the
shipped offline index, written as idea files that `batch` accepts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from batchkit import cli
from literature_server import FakeLiterature, closed_port_url

from harness.ideation.literature.chain import Literature, LiteratureSettings
from tests.support import one_line_error

TOY_METRICS = ("explained_variance", "l0", "frac_dead", "mean_max_cosine")


def idea(name: str, title: str, metric: str = "l0", **extra) -> dict:
    return {"Name": name, "Title": title,
            "Abstract": f"{title}.", "Experiment": f"Try {name.replace('_', ' ')}.",
            "Technical_Details": f"{name}: one new term in the loss, weight 0.1, everything else fixed.",
            "Implementation_Plan": ["1. Add the setting to Config.", "2. Use it in the loss.", "3. Run the sweep."],
            "Primary_Metric": metric, "Expected_Direction": "lower" if metric == "l0" else "higher",
            "Interestingness": 6, "Feasibility": 9, "Novelty": 6, "Overall_Score": 7, **extra}


def draft(data: dict, done: bool = True, **entry) -> dict:
    text = f"THOUGHT: worth a try.\n```json\n{json.dumps(data, indent=1)}\n```\n" + ("I am done\n" if done else "")
    return {"reply": text, **entry}


def query(q: str, **entry) -> dict:
    return {"reply": f'THOUGHT: search first.\n```json\n{{"Query": "{q}"}}\n```', **entry}


def decide(novel: bool, papers: list[str], **entry) -> dict:
    body = {"Decision": "novel" if novel else "not novel", "Papers": papers,
            "Reason": "Decided by the papers found." if papers else "No hit does this."}
    return {"reply": f"THOUGHT: enough.\n```json\n{json.dumps(body)}\n```", **entry}


def ideas_cli(tmp: Path, script: list[dict], *args: str, env: dict | None = None, timeout: float = 240):
    path = tmp / f"script_{len(list(tmp.glob('script_*.yaml')))}.yaml"
    path.write_text(yaml.safe_dump(script, sort_keys=False))
    (tmp / "fast.yaml").write_text("api_attempts: 1\n")  # a script that runs out is an error at once
    extra = {"SAE_HARNESS_LITERATURE_CACHE": str(tmp / "litcache"), "SAE_HARNESS_LITERATURE_RETRY_WAIT": "0.05",
             **(env or {})}
    old = {k: os.environ.get(k) for k in extra}
    os.environ.update(extra)  # cli() builds the child's environment from ours
    try:
        return cli(tmp, "ideas", "--template", "toy", "--model", f"scripted:{path}", "--config",
                   str(tmp / "fast.yaml"), *args, timeout=timeout)
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def written(out: Path) -> dict[str, dict]:
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("*.json")) if p.name != "ideation.json"}


def test_malformed_reply_gets_one_repair_naming_the_field_then_is_dropped_and_counted(tmp_path):
    out = tmp_path / "out"
    no_title = {k: v for k, v in idea("l1_ramp", "Ramping the L1 Penalty").items() if k != "Title"}
    script = [
        draft(no_title, expect="idea 1 of 1"),
        {"reply": "Sorry, here it is: {\"Name\": \"l1_ramp\",", "expect": "field 'Title' is missing"},
        draft(idea("decoder_norm_free", "Letting Decoder Norms Float"), expect="stayed malformed"),
        query("decoder norm constraint sparse autoencoder"),
        decide(True, []),
    ]
    r = ideas_cli(tmp_path, script, "--n", "1", "--sources", "offline", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "malformed reply (field 'Title' is missing" in r.stdout
    assert "dropped, the reply stayed malformed after one repair (the reply holds no JSON object" in r.stdout
    assert list(written(out)) == ["decoder_norm_free"]
    tally = json.loads((out / "ideation.json").read_text())
    assert tally["malformed_dropped"] == 1 and tally["written"] == 1
    assert "1 malformed drafts" in r.stdout
    log = [json.loads(x) for x in (out / "chat.jsonl").read_text().splitlines()]
    assert [c["stage"] for c in log] == ["ideas"] * 3 + ["novelty"] * 2
    assert all(c["prompt_tokens"] > 0 for c in log)


def test_a_near_duplicate_of_an_existing_idea_is_dropped_and_said(tmp_path):
    seeds = tmp_path / "seeds"
    seeds.mkdir()
    (seeds / "toy_l1_sweep.json").write_text((Path(__file__).parents[2] / "ideas" / "toy_l1_sweep.json").read_text())
    seed_title = json.loads((seeds / "toy_l1_sweep.json").read_text())["Title"]
    out = tmp_path / "out"
    script = [
        draft(idea("l1_sweep_again", seed_title + "?"), expect=seed_title),  # the seed is shown to the model
        draft(idea("tied_init", "Initialising the Encoder as the Decoder's Transpose"), expect="too close to toy_l1_sweep"),
        query("tied initialisation encoder decoder transpose"),
        decide(True, []),
    ]
    r = ideas_cli(tmp_path, script, "--n", "1", "--sources", "offline", "--out", str(out), "--seed-ideas", str(seeds))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "as a duplicate of toy_l1_sweep (title" in r.stdout
    assert list(written(out)) == ["tied_init"]
    assert json.loads((out / "ideation.json").read_text())["duplicates_dropped"] == 1


def test_every_online_source_down_uses_the_offline_index_and_says_so_once(tmp_path):
    out = tmp_path / "out"
    down = {"SAE_HARNESS_S2_URL": closed_port_url(), "SAE_HARNESS_OPENALEX_URL": closed_port_url()}
    script = [
        draft(idea("batch_topk_k", "Annealing k in a BatchTopK Toy SAE")),
        query("batchtopk sparse autoencoder"),
        decide(False, ["bussmann2024batchtopk"]),
        draft(idea("feature_recovery_noise", "Feature Recovery Under Input Noise", metric="mean_max_cosine")),
        query("denoising autoencoder robust features"),
        query("sparse coding noise recovery dictionary"),
        decide(True, []),
    ]
    r = ideas_cli(tmp_path, script, "--n", "2", "--out", str(out), env=down)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("literature: using the offline index") == 1, r.stdout
    assert "Semantic Scholar unreachable" in r.stdout and "OpenAlex unreachable" in r.stdout
    ideas = written(out)
    assert ideas["batch_topk_k"]["novel"] is False
    evidence = ideas["batch_topk_k"]["Novelty_Evidence"]
    assert evidence["papers"][0]["id"] == "bussmann2024batchtopk"
    assert evidence["papers"][0]["arxiv"] == "2412.06410"
    assert [s["source"] for s in ideas["feature_recovery_noise"]["Novelty_Evidence"]["searches"]] == ["offline index"] * 2


def test_rate_limited_then_answered_search_is_retried_and_its_evidence_kept(tmp_path):
    out = tmp_path / "out"
    with FakeLiterature(s2=[429]) as fake:
        env = {"SAE_HARNESS_S2_URL": fake.url, "SAE_HARNESS_OPENALEX_URL": fake.url}
        script = [draft(idea("topk_aux", "An Auxiliary Loss for Dead Latents in TopK")),
                  query("topk dead latents auxiliary loss"),
                  decide(False, ["s2-topk-paper"])]
        r = ideas_cli(tmp_path, script, "--n", "1", "--out", str(out), env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert fake.count("s2") == 2 and fake.count("openalex") == 0
    assert "offline index" not in r.stdout
    evidence = written(out)["topk_aux"]["Novelty_Evidence"]
    assert evidence["searches"][0]["source"] == "Semantic Scholar"
    assert evidence["papers"] == [{"id": "s2-topk-paper", "title": "Scaling and Evaluating Sparse Autoencoders",
                                   "year": 2024, "venue": "ICLR", "arxiv": "2406.04093",
                                   "url": "https://www.semanticscholar.org/paper/s2-topk-paper"}]


def test_chain_retries_429_caches_answers_and_moves_on_from_a_failing_source(tmp_path):
    said: list[str] = []
    with FakeLiterature(s2=[429, 200, 503, 503]) as fake:
        settings = LiteratureSettings(sources=("semantic_scholar", "openalex", "offline"), cache_dir=tmp_path / "c",
                                      urls={"semantic_scholar": fake.url, "openalex": fake.url},
                                      attempts=2, retry_wait=0.01)
        lit = Literature(settings, said.append)
        first = lit.search("sparse autoencoders")  # 429, then 200
        again = lit.search("Sparse autoencoders ")  # same query: from the disk cache
        other = lit.search("gated sparse autoencoders")  # 503 twice: Semantic Scholar is given up
        later = lit.search("jumprelu")  # straight to OpenAlex
    assert (first.source, first.cached, first.papers[0].arxiv) == ("Semantic Scholar", False, "2406.04093")
    assert again.cached and again.papers[0].id == "s2-topk-paper"
    assert other.source == later.source == "OpenAlex"
    assert other.papers[0].summary == "Gating separates detection from magnitude"
    assert other.papers[0].doi == "10.48550/arXiv.2404.16014"
    assert fake.count("s2") == 4 and fake.count("openalex") == 2
    assert len(said) == 1 and "HTTP 503 after 2 attempts" in said[0]


def test_resume_mid_ideation_keeps_the_ideas_written_and_continues_the_count(tmp_path):
    out = tmp_path / "out"
    first = [draft(idea("warm_l1", "Warming Up the L1 Penalty")), query("l1 warmup"), decide(True, []),
             draft(idea("never_written", "A Draft the Model Never Finishes"), done=False)]
    r = ideas_cli(tmp_path, first, "--n", "3", "--sources", "offline", "--out", str(out))
    assert r.returncode == 1, r.stdout + r.stderr
    assert "stopped: model API still failing" in r.stdout
    assert "1 of 3 ideas" in r.stdout and f"--out {out}" not in r.stdout.split("continue:")[0]
    assert list(written(out)) == ["warm_l1"]
    calls_before = len((out / "chat.jsonl").read_text().splitlines())
    second = [draft(idea("untied_bias", "Separate Pre-Encoder and Decoder Biases"), expect="warm_l1: Warming Up"),
              query("decoder bias"), decide(True, []),
              draft(idea("sqrt_penalty", "A Square-Root Sparsity Penalty"), expect="idea 3 of 3"),
              query("sparsity penalty"), decide(True, [])]
    r = ideas_cli(tmp_path, second, "--n", "3", "--sources", "offline", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "1 idea(s) already there; generating 2 more" in r.stdout
    assert sorted(written(out)) == ["sqrt_penalty", "untied_bias", "warm_l1"]
    assert len((out / "chat.jsonl").read_text().splitlines()) == calls_before + 6  # one log, both sessions
    assert json.loads((out / "ideation.json").read_text())["written"] == 3


def test_bad_arguments_are_one_line_errors(tmp_path):
    one_line_error(cli(tmp_path, "ideas", "--template", "toy", "--n", "0", "--model", "scripted:x.yaml"), "--n")
    one_line_error(cli(tmp_path, "ideas", "--template", "toy", "--sources", "arxiv", "--model", "scripted:x.yaml"),
                   "unknown source arxiv", "semantic_scholar, openalex, offline")
    one_line_error(cli(tmp_path, "ideas", "--template", "nope", "--model", "scripted:x.yaml"), "nope")


@pytest.mark.timeout(600)
def test_five_ideas_end_to_end_then_batch_runs_the_novel_ones(tmp_path):
    """The issue's first 'done when', on the toy template: five ideas with refinement rounds and
    offline-index evidence, then `batch` on the folder (baseline stage only) skips the one judged
    not novel and runs the others."""
    out = tmp_path / "generated"
    names = ["l1_ramp", "decoder_renorm", "topk_anneal", "bias_init_median", "frac_dead_resample"]
    titles = ["Ramping the L1 Penalty In", "Renormalising Decoder Columns Every Step",
              "Annealing k from Dense to Sparse", "Initialising the Decoder Bias at the Median",
              "Resampling Dead Latents from High-Loss Inputs"]
    metrics = ["l0", "explained_variance", "l0", "explained_variance", "frac_dead"]
    script: list[dict] = []
    for i, (n, t, m) in enumerate(zip(names, titles, metrics)):
        script.append(draft(idea(n, t, m), done=False, expect=f"idea {i + 1} of 5"))
        script.append(draft(idea(n, t, m, Feasibility=8), done=True, expect="Round 2 of 3"))
        script.append(query("k-sparse autoencoders annealing k" if i == 2 else t.lower()))
        script.append(decide(i != 2, ["makhzani2013ksparse"] if i == 2 else []))
    r = ideas_cli(tmp_path, script, "--n", "5", "--reflections", "2", "--sources", "offline", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    ideas = written(out)
    assert sorted(ideas) == sorted(names)
    for n, data in ideas.items():
        assert data["Feasibility"] == 8  # the refined version was kept
        assert data["Primary_Metric"] in TOY_METRICS
        assert data["Novelty_Evidence"]["searches"][0]["source"] == "offline index"
        assert data["Novelty_Evidence"]["searches"][0]["hits"]
        assert data["novel"] is (n != "topk_anneal")
    assert "run them: python run_harness.py batch" in r.stdout

    empty = tmp_path / "agent.yaml"
    empty.write_text("[]\n")  # the baseline stage asks the model nothing
    b = cli(tmp_path, "batch", str(out), "--template", "toy", "--model", f"scripted:{empty}",
            "--stop-after", "baseline", "--workspace-root", str(tmp_path / "ws"), timeout=500)
    assert b.returncode == 0, b.stdout + b.stderr
    assert "skipping topk_anneal.json: judged not novel (makhzani2013ksparse)" in b.stdout
    assert "batch done: 4 done, 0 failed" in b.stdout
    batch = json.loads(next((tmp_path / "ws" / "batches").glob("*/batch.json")).read_text())
    assert sorted(batch["ideas"]) == sorted(set(names) - {"topk_anneal"})


def test_batch_skips_only_ideas_the_check_judged_not_novel(tmp_path):
    """A bare `"novel": false` (the demo idea has one) still runs; with the check's evidence it is
    skipped and named, unless --include-not-novel; a folder of nothing but such ideas is an error."""
    folder = tmp_path / "ideas"
    folder.mkdir()
    judged = idea("judged", "Judged Not Novel", novel=False,
                  Novelty_Evidence={"decision": "not novel", "papers": [{"id": "gao2024scaling"}], "searches": []})
    (folder / "judged.json").write_text(json.dumps(judged))
    bad_model = ["--template", "toy", "--model", "scripted:/nonexistent.yaml"]  # fails after the novelty filter
    r = cli(tmp_path, "batch", str(folder), *bad_model)
    one_line_error(r, "every idea given was judged not novel", "--include-not-novel")
    (folder / "bare.json").write_text(json.dumps(idea("bare", "A Bare Flag", novel=False)))
    r = cli(tmp_path, "batch", str(folder), *bad_model)
    assert "skipping judged.json: judged not novel (gao2024scaling)" in r.stdout
    assert "skipping bare.json" not in r.stdout
    one_line_error(r, "/nonexistent.yaml does not exist")
    r = cli(tmp_path, "batch", str(folder), *bad_model, "--include-not-novel")
    assert "skipping" not in r.stdout
    one_line_error(r, "/nonexistent.yaml does not exist")


def test_a_token_budget_stops_ideation_cleanly(tmp_path):
    out = tmp_path / "out"
    script = [draft(idea("warm_l1", "Warming Up the L1 Penalty")), query("l1 warmup"), decide(True, [])]
    r = ideas_cli(tmp_path, script, "--n", "1", "--sources", "offline", "--out", str(out), "--budget-tokens", "500")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "stopped: budget spent:" in r.stdout and "raise --budget-tokens" in r.stdout
    assert not written(out)
    assert len((out / "chat.jsonl").read_text().splitlines()) == 1  # the one request made before the check


def test_a_malformed_refinement_keeps_the_last_good_version_and_an_unbacked_decision_stays_undecided(tmp_path):
    out = tmp_path / "out"
    script = [
        draft(idea("warm_l1", "Warming Up the L1 Penalty"), done=False),
        {"reply": "I would rather not.", "expect": "Round 2 of 2"},
        {"reply": '```json\n{"Name": "warm_l1", "Title": ""}\n```', "expect": "holds no JSON object"},
        query("l1 warmup schedule"),
        decide(False, ["made_up_2031"]),
        decide(False, ["made_up_2031"], expect="which no search returned"),
    ]
    r = ideas_cli(tmp_path, script, "--n", "1", "--reflections", "1", "--sources", "offline", "--out", str(out))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "refinement round 2 dropped, still malformed after one repair (field 'Title' must be" in r.stdout
    assert "no usable decision" in r.stdout and "kept as undecided" in r.stdout
    data = written(out)["warm_l1"]
    assert data["Title"] == "Warming Up the L1 Penalty" and "novel" not in data
    assert data["Novelty_Evidence"]["decision"] == "undecided"
    assert data["Novelty_Evidence"]["searches"][0]["source"] == "offline index"
    tally = json.loads((out / "ideation.json").read_text())
    assert (tally["refinements_dropped"], tally["undecided"], tally["written"]) == (1, 1, 1)
