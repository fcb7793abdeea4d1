"""Bad batch input gets one line naming the problem and the fix, exit 2, nothing started."""

from __future__ import annotations

import fcntl
import json
import os

import pytest
from batchkit import cli
from conftest import IDEA

from tests.support import one_line_error as _one_line_error


def _ideas(harness, *names, same_name=False):
    folder = harness.tmp / "ideas"
    folder.mkdir()
    for n in names:
        (folder / f"{n}.json").write_text(json.dumps(dict(IDEA, Name="dup" if same_name else n)))
    return folder


@pytest.mark.parametrize("args, words", [
    (["--executor", "slurm"], ["'executor'", "local, ray"]),
    (["--gpus", "0,x"], ["'gpus'", "none"]),
    (["--agents", "0"], ["'agents'", "greater than 0"]),
    (["--slots", "-1"], ["'slots'", "greater than 0"]),
])
def test_bad_batch_settings(harness, args, words):
    harness.serve([])
    folder = _ideas(harness, "a", "b")
    _one_line_error(harness.run("batch", str(folder), *args), *words)
    assert not (harness.root / "batches").exists()


def test_two_ideas_with_one_name(harness):
    harness.serve([])
    folder = _ideas(harness, "a", "b", same_name=True)
    _one_line_error(harness.run("batch", str(folder)), "share the Name 'dup'", "its own Name")
    assert not (harness.root / "batches").exists()


def test_script_folder_without_a_script_for_every_idea(harness):
    folder = _ideas(harness, "a", "b")
    scripts = harness.tmp / "scripts"
    scripts.mkdir()
    (scripts / "a.yaml").write_text("- ALL_COMPLETED\n")
    _one_line_error(harness.run("batch", str(folder), "--model", f"scripted:{scripts}"), "no script b.yaml", "'b'")


def test_batch_of_an_empty_folder(harness):
    (harness.tmp / "empty").mkdir()
    _one_line_error(harness.run("batch", str(harness.tmp / "empty")), "holds no idea files")


def test_resuming_a_batch_that_is_running(harness):
    harness.serve([])
    batch = harness.root / "batches" / "20260101_000000"
    batch.mkdir(parents=True)
    (batch / "batch.json").write_text(json.dumps({
        "id": batch.name, "created": "2026-01-01T00:00:00", "config": {"template": "toy"}, "devices": ["cpu"],
        "ideas": {"a": {"name": "a", "title": "A", "source": "a.json"}}}))
    fd = os.open(batch / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a scheduler running this batch holds it
    try:
        _one_line_error(harness.run("--resume", str(batch)), "already running", "stop it")
    finally:
        os.close(fd)


def test_report_and_leaderboard_of_the_wrong_folder(tmp_path):
    _one_line_error(cli(tmp_path, "report", str(tmp_path)), "neither a workspace", "batch folder")
    _one_line_error(cli(tmp_path, "leaderboard", "--workspace-root", str(tmp_path / "nope")), "does not exist")
    (tmp_path / "ws").mkdir()
    _one_line_error(cli(tmp_path, "leaderboard", "--workspace-root", str(tmp_path / "ws")), "no runs")
    _one_line_error(cli(tmp_path, "leaderboard", "--frobnicate"), "unrecognized arguments")
