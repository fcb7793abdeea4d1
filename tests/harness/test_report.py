"""The HTML report, rendered by headless Chromium: the screenshot must show the runs table
coloured by direction of better exactly as the run files say, and the figure; the
printed page must carry the claims check and cost totals of the workspace."""

from __future__ import annotations

import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from batchkit import CRASH, GOOD, cli, metric, toy_metrics
from PIL import Image
from scipy import ndimage

BETTER, WORSE = (182, 227, 193), (244, 180, 174)  # td.better / td.worse in report/templates/base.html.j2
PLOT_BLUE = (31, 119, 180)  # matplotlib's tab:blue, the bars of the toy template's plot.py
CHROMIUM = shutil.which("chromium")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium missing (bash setup.sh installs it)")


def chromium(*args: str) -> None:
    subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    "--force-device-scale-factor=1", *args], check=True, capture_output=True, timeout=120)


def colour_rows(png: Path) -> list[list[str]]:
    """Solid better/worse-coloured boxes in the screenshot, as rows (top to bottom) of
    'better'/'worse' tags (left to right)."""
    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    boxes = []
    for tag, rgb in (("better", BETTER), ("worse", WORSE)):
        labels, _ = ndimage.label(np.all(img == rgb, axis=-1))
        for sl in ndimage.find_objects(labels):
            if (sl[0].stop - sl[0].start) * (sl[1].stop - sl[1].start) >= 150:  # boxes, not stray pixels
                boxes.append((sl[0].start, sl[1].start, tag))
    rows: dict[int, list[tuple[int, str]]] = {}
    for top, left, tag in boxes:
        rows.setdefault(top, []).append((left, tag))
    return [[tag for _, tag in sorted(rows[top])] for top in sorted(rows)]


def expected_rows(ws: Path) -> list[list[str]]:
    """The legend, then per run the colour of each metric cell that differs from run_0."""
    metrics = toy_metrics()
    info = {i: json.loads((ws / f"run_{i}" / "final_info.json").read_text()) for i in range(4)}
    rows = [["better", "worse"]]
    for i in range(1, 4):
        row = []
        for m in metrics:
            v, base = metric(info[i], m["path"]), metric(info[0], m["path"])
            if v != base:
                row.append("better" if (v > base) == (m["better"] == "higher") else "worse")
        if row:
            rows.append(row)
    return rows


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.targets: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"):
            self.targets.append(a["href"])
        if tag == "img":
            self.targets.append(a["src"])


def test_report_links_resolve(local_batch):
    b = local_batch
    index = b.folder / "index.html"
    parser = _Links()
    parser.feed(index.read_text())
    assert sum(t.endswith("report.html") for t in parser.targets) == 3
    assert sum(t.endswith("paper.pdf") for t in parser.targets) == 2
    for target in parser.targets:
        assert (b.folder / target).is_file(), target
    ws = b.workspace(GOOD[0])
    page = _Links()
    page.feed((ws / "report.html").read_text())
    for needed in ("paper.pdf", "harness.log", "chat.jsonl", "claims.json", "review.json", "metrics_by_run.png",
                   "run_3/stderr.log", "run_0/final_info.json"):
        assert needed in page.targets, needed
    for target in page.targets:
        assert (ws / target).is_file(), target
    # the failed idea's page lists every failed attempt with its error
    crash = (b.workspace(CRASH) / "report.html").read_text()
    assert crash.count('<tr class="run-failed">') == 4 and "run_1 failed 4 times" in crash


@needs_chromium
def test_report_in_headless_chromium(local_batch, tmp_path):
    b = local_batch
    ws = b.workspace(GOOD[0])
    r = cli(b.tmp, "report", str(ws))  # regenerated on demand, from the store
    assert r.returncode == 0 and r.stdout.strip() == str(ws / "report.html"), r.stderr
    shot = tmp_path / "report.png"
    chromium("--window-size=1400,2600", f"--screenshot={shot}", (ws / "report.html").as_uri())
    rows = colour_rows(shot)
    want = expected_rows(ws)
    assert len(want) == 4 and rows[:len(want)] == want, (rows, want)
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert np.all(img == PLOT_BLUE, axis=-1).sum() > 3000, "the figure is not on the page"

    pdf = tmp_path / "report.pdf"
    chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer", (ws / "report.html").as_uri())
    text = " ".join(subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True,
                                   text=True).stdout.split())
    claims = json.loads((ws / "claims.json").read_text())
    assert (f"{claims['claims']} numbers and run mentions in the paper; {claims['unmatched']} do not trace"
            in text)
    tokens = sum(json.loads(x)["prompt_tokens"] + json.loads(x)["completion_tokens"]
                 for x in (ws / "chat.jsonl").read_text().splitlines())
    assert f"total {len((ws / 'chat.jsonl').read_text().splitlines())} {tokens}" in text
    assert "[writeup] title and abstract" in text  # the agent's commits, by stage and turn
    review = json.loads((ws / "review.json").read_text())  # the review stage's meta-review and forms
    meta = review["meta_review"]
    assert f"Meta-review: overall {meta['overall']:g}/10, {meta['decision']}" in text
    assert " ".join(review["reviewers"][0]["review"]["soundness_evidence"].split()[:8]) in text


@needs_chromium
def test_batch_index_in_headless_chromium(local_batch, tmp_path):
    b = local_batch
    shot = tmp_path / "index.png"
    chromium("--window-size=1400,900", f"--screenshot={shot}", (b.folder / "index.html").as_uri())
    # one 'vs run_0' cell per finished idea, coloured by the sign of its best run's change
    ev = next(m for m in toy_metrics() if m["name"] == "explained_variance")
    signs = []
    for name in sorted([*GOOD, CRASH]):
        if name == CRASH:
            continue
        ws = b.workspace(name)
        vals = [metric(json.loads((ws / f"run_{i}" / "final_info.json").read_text()), ev["path"]) for i in range(4)]
        signs.append("better" if max(vals[1:]) > vals[0] else "worse")
    assert [tag for row in colour_rows(shot) for tag in row] == signs
