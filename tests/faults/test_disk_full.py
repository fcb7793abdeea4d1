"""The disk fills up while the harness writes a run's results: it stops, says why, loses nothing.

The full disk is real: the workspaces live on a tmpfs mounted for the test (root only)
and the agent's experiment fills it. tmpfs is sized just above the 1 GiB the preflight
check wants free, so the run must write about a gigabyte (into memory, freed at the end).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.faults.integrity import problems, snapshot
from tests.support import edit, l1_edit

PRINT = '    print(json.dumps(results["core evaluation results"]["eval_result_metrics"]))'
# after writing its results, the run fills the disk to the last byte (once: a retried run does not)
FILL = PRINT + '''
    if not os.path.exists("filled_the_disk"):
        open("filled_the_disk", "w").close()
        fd = os.open(os.path.join(out_dir, "filler.bin"), os.O_WRONLY | os.O_CREAT)
        for chunk in (1 << 24, 1 << 20, 1 << 12, 1):
            try:
                while True:
                    os.write(fd, bytes(chunk))
            except OSError:
                pass
        os.close(fd)'''


@pytest.fixture
def small_disk(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs root to mount the small tmpfs that fills up")
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1100m", "tmpfs", str(mnt)], capture_output=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


@pytest.mark.fault("disk full while writing results")
def test_disk_full_while_writing_results_stops_in_one_line_and_resumes(harness, intact, small_disk):
    harness.root = small_disk / "workspaces"
    harness.extra_env["COLUMNS"] = "400"  # the console would wrap the one line at 80 columns
    llm = harness.serve([l1_edit("0.02", "0.05"),
                         {"expect": "Run 1 finished", "reply": edit("experiment.py", PRINT, FILL)},
                         {"expect": "Run 2 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    ws = r.workspace
    assert r.returncode == 1, r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr and not r.stderr.strip(), r.stderr
    cause = [ln for ln in r.stdout.splitlines() if "stopped disk full" in ln]
    assert len(cause) == 1 and "no space left on device" in cause[0] and f"--resume {ws}" in cause[0], r.stdout
    assert os.statvfs(ws).f_bavail == 0  # it really was full
    # state.json and its backup are whole, and run_0 and run_1 are as they were committed
    assert json.loads((ws / "state.json").read_text())["runs"].keys() == {"0", "1"}
    json.loads((ws / "state.json.bak").read_text())
    assert problems(ws, clean=False) == []
    before = snapshot(ws)

    (ws / "run_2" / "filler.bin").unlink()  # the user frees space
    r2 = harness.run("--resume", str(ws))
    assert r2.returncode == 0, r2.stdout + r2.stderr
    assert r2.state()["status"] == "done" and llm.remaining == 0
    assert (ws / "run_2" / "final_info.json").exists() and r2.repo().tags["run_2"]
    intact(ws, before)
