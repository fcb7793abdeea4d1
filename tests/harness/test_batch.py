"""Batches end to end: three ideas at once through the real CLI, real aider, git, latexmk
and experiment processes; each idea's model is a scripted server of its own.

One module-scoped batch (two good ideas that go all the way to a paper, one whose every
run crashes) feeds the tests of the batch itself, the leaderboard, the results store and
the HTML report; the Ray test runs the same batch again on a local Ray instance.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest
from batchkit import CRASH, GOOD, Batch, cli, intervals, metric, run_batch, toy_metrics


def check_outcome(b: Batch) -> None:
    """What any backend must deliver for the three-idea batch."""
    r = b.result
    assert r.returncode == 1, r.stdout + r.stderr  # not every idea finished
    rec = b.record()
    assert rec["status"] == "done"
    assert {n: e["status"] for n, e in rec["ideas"].items()} == {GOOD[0]: "done", GOOD[1]: "done", CRASH: "failed"}
    crash = rec["ideas"][CRASH]
    assert "run_1 failed 4 times in a row" in crash["reason"] and crash["exit_code"] == 1
    assert "boom 4" in (b.workspace(CRASH) / "run_1_failed_4" / "stderr.log").read_text()
    assert f"{CRASH}: failed: run_1 failed 4 times" in r.stdout
    for name in GOOD:
        ws = b.workspace(name)
        state = json.loads((ws / "state.json").read_text())
        assert state["status"] == "done" and state["stages"]["writeup"] == "done", state
        pdf = ws / "paper.pdf"
        assert pdf.read_bytes()[:5] == b"%PDF-"
        text = " ".join(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True).stdout.split())
        assert "L1 Sweep on a Toy Sparse Autoencoder" in text and "14.99" in text
        assert f"{name}: done: paper: {pdf}" in r.stdout
    # the ideas were worked on at the same time ...
    ideas = rec["ideas"].values()
    assert max(e["started"] for e in ideas) < min(e["finished"] for e in ideas)
    # ... but with one slot, no two experiment processes ever ran at once
    spans = intervals([b.workspace(n) for n in (*GOOD, CRASH)])
    assert len(spans) == 2 * 3 + 4 + 1  # two sweeps of 3 runs, 4 crashes, one computed run_0
    for (s1, e1, w1), (s2, e2, w2) in zip(spans, spans[1:]):
        assert s2 >= e1 - 0.05, f"{w1} and {w2} overlapped"
    holds = b.holds()
    assert sorted(h["label"] for h in holds) == sorted(["plot.py"] * 2 + [w.split("/")[1].split("_failed")[0]
                                                                         for _, _, w in spans])
    assert all(h["device"] == "cpu" and h["slot"] == 0 for h in holds)
    for h1, h2 in zip(sorted(holds, key=lambda h: h["acquired"]), sorted(holds, key=lambda h: h["acquired"])[1:]):
        assert h2["acquired"] >= h1["released"]
    for ws in map(b.workspace, (*GOOD, CRASH)):
        assert all(json.loads(m.read_text()).get("device", "cpu (slot 0)") == "cpu (slot 0)"
                   for m in ws.glob("run_*/meta.json") if "cached_from" not in m.read_text())


def test_a_batch_runs_ideas_at_once_and_records_the_failing_one(local_batch):
    check_outcome(local_batch)
    out = local_batch.result.stdout
    # the closing table: one line per idea, the failed one with its reason
    rows = {line.split("│")[1].strip(): line for line in out.splitlines() if line.startswith("│")}
    assert set(rows) >= {*GOOD, CRASH}
    assert "failed" in rows[CRASH] and "run_1 failed 4 times" in rows[CRASH]
    assert all("done" in rows[n] and "3/10" in rows[n] for n in GOOD)
    assert "report: " in out and (local_batch.folder / "index.html").is_file()


def _table_rows(text: str, title: str) -> list[list[str]]:
    """The body rows of the rich table printed under `title`, cells stripped."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if title in ln)
    rows = []
    for ln in lines[start + 1:]:
        if ln.startswith("└"):
            break
        if ln.startswith("│"):
            cells = [c.strip() for c in ln.split("│")[1:-1]]
            if cells[0]:
                rows.append(cells)
            else:  # a wrapped continuation of the previous row
                rows[-1] = [a + (" " + b if b else "") for a, b in zip(rows[-1], cells)]
    return rows


@pytest.mark.parametrize("name, better", [("l0", "lower"), ("explained_variance", "higher")])
def test_leaderboard_ranks_against_each_ideas_baseline(local_batch, name, better):
    b = local_batch
    r = cli(b.tmp, "leaderboard", "--workspace-root", str(b.root), "--metric", name)
    assert r.returncode == 0, r.stderr
    path = next(m["path"] for m in toy_metrics() if m["name"] == name)
    expected = {}
    for idea in GOOD:
        ws = b.workspace(idea)
        values = {i: metric(json.loads((ws / f"run_{i}" / "final_info.json").read_text()), path) for i in range(4)}
        best = (min if better == "lower" else max)(range(1, 4), key=values.get)
        base = values[0]
        g = (base - values[best]) if better == "lower" else (values[best] - base)
        expected[idea] = (f"run_{best}", f"{values[best]:.4g}", f"{base:.4g}", f"{g / abs(base) * 100:+.1f}%")
    rows = _table_rows(r.stdout, "Ideas ranked by")
    assert [row[1] for row in rows] == sorted(GOOD) + [CRASH]  # equal gains: by name; the failure last
    for row in rows[:2]:
        assert tuple(row[3:7]) == expected[row[1]], row
    assert rows[2][2] == "failed" and "run_1 failed 4 times" in rows[2][-1]
    runs = _table_rows(r.stdout, "Runs ranked by")
    assert len(runs) == 6 and runs[0][2] == expected[runs[0][1]][0]
    gains = [float(row[5].rstrip("%")) for row in runs]
    assert gains == sorted(gains, reverse=True)


def test_results_store_has_one_row_per_run_and_rebuilds_from_the_workspaces(local_batch):
    from harness.results.store import Store

    b = local_batch
    store = Store.for_root(b.root)
    before = sorted((r.workspace, r.folder, r.status, json.dumps(r.metrics), r.tokens, r.batch) for r in store.runs())
    ideas = {i.idea: i for i in store.ideas()}
    store.close()
    by_idea = {}
    for row in before:
        by_idea.setdefault(Path(row[0]).name.split("_", 2)[2], []).append(row)
    assert [(f, s) for _, f, s, *_ in by_idea[CRASH]] == [("run_0", "done")] + [
        (f"run_1_failed_{n}", "failed") for n in range(1, 5)]
    for name in GOOD:
        rows = by_idea[name]
        assert [(f, s) for _, f, s, *_ in rows] == [(f"run_{i}", "done") for i in range(4)]
        assert all(tokens > 0 for _, f, _, _, tokens, _ in rows if f != "run_0")
        assert sum(t for *_, t, _ in rows) < ideas[name].tokens  # the plots and the paper cost tokens too
        assert ideas[name].paper == "paper.pdf" and ideas[name].status == "done"
    assert {row[5] for row in before} == {b.folder.name}
    assert ideas[CRASH].status == "stopped" and "failed 4 times" in ideas[CRASH].error

    for suffix in ("", "-wal", "-shm"):
        Path(f"{b.root / 'results.sqlite'}{suffix}").unlink(missing_ok=True)
    r = cli(b.tmp, "leaderboard", "--workspace-root", str(b.root), "--rebuild")
    assert r.returncode == 0, r.stderr
    store = Store.for_root(b.root)
    after = sorted((r.workspace, r.folder, r.status, json.dumps(r.metrics), r.tokens, r.batch) for r in store.runs())
    store.close()
    assert after == before


def test_a_state_replaced_while_the_store_reads_it_is_read_again(local_batch, tmp_path, monkeypatch):
    """The race a batch under load hit: the store read a workspace's state.json, the idea then
    wrote its final state, and the store kept the old status for good."""
    import shutil

    from harness.results import store as store_module
    from harness.results.store import Store

    ws = tmp_path / "ws"
    shutil.copytree(local_batch.workspace(CRASH), ws)
    final = json.loads((ws / "state.json").read_text())
    (ws / "state.json").write_text(json.dumps({**final, "status": "running", "error": ""}))
    load_state = store_module.load_state

    def read_then_finish(path):
        state = load_state(path)
        (ws / "state.json.new").write_text(json.dumps(final))  # the idea's own atomic write
        (ws / "state.json.new").replace(ws / "state.json")
        return state

    store = Store(tmp_path / "results.sqlite")
    monkeypatch.setattr(store_module, "load_state", read_then_finish)
    store.sync_workspace(ws)
    assert store.ideas()[0].status == "running"  # what it read
    monkeypatch.setattr(store_module, "load_state", load_state)
    assert store.sync_workspace(ws)  # the state changed after the read: read again
    assert store.ideas()[0].status == "stopped"
    store.close()


def test_the_same_batch_under_ray(tmp_path):
    b = run_batch(tmp_path, "--executor", "ray")
    check_outcome(b)
    # each worker ran as a Ray task: the record names the Ray node it ran on
    assert all(re.search(r"\(ray node [0-9a-f]{8}\)", e["node"]) for e in b.record()["ideas"].values())
    # the local Ray instance this batch started is gone again (other tests may run their own)
    nodes = {re.search(r"ray node ([0-9a-f]{8})", e["node"]).group(1) for e in b.record()["ideas"].values()}

    def raylets() -> list[str]:
        found = []
        for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
            try:
                args = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "/raylet " in args and any(n in args for n in nodes):
                found.append(args[:120])
        return found

    deadline = time.monotonic() + 20
    while raylets() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not raylets()
