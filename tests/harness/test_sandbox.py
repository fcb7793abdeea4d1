"""Agent-written code runs fenced in: no network, nothing written outside, bounded memory."""

from __future__ import annotations

import json

import pytest

from conftest import REPO, edit
from harness.sandbox import bwrap_works

PROBE = """\
    cfg = Config()
    import socket
    try:
        socket.create_connection(("127.0.0.1", PORT), timeout=2)
        print("net: reached the harness's model server")
    except OSError:
        print("net: blocked")
    try:
        open(OUTSIDE, "w").write("escaped")
        print("write outside: allowed")
    except OSError:
        print("write outside: blocked")"""


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot make namespaces here (setup.sh installs it)")
def test_namespace_sandbox_blocks_network_and_writes_outside(harness):
    # both a place beside the repository and the real /tmp are read-only for the run
    outside = REPO / f"escaped_{harness.tmp.name}.txt"
    llm = harness.serve([])
    port = llm.url.split(":")[-1].split("/")[0]
    probe = PROBE.replace("PORT", port).replace("OUTSIDE", repr(str(outside)))
    harness.serve([edit("experiment.py", "    cfg = Config()", probe),
                   {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    cfg = harness.write_config({"sandbox": "namespace"})
    try:
        r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
        escaped = outside.exists()
    finally:
        outside.unlink(missing_ok=True)
    assert r.returncode == 0, r.stderr
    assert not escaped
    out = (r.workspace / "run_1" / "stdout.log").read_text()
    assert "net: blocked" in out and "write outside: blocked" in out
    meta = json.loads((r.workspace / "run_1" / "meta.json").read_text())
    assert meta["isolation"].startswith("namespace")
    assert "isolation of agent-written code: namespace" in r.stdout


def test_memory_limit_stops_a_run_and_the_error_goes_back(harness):
    hog = edit("experiment.py", "    cfg = Config()", "    cfg = Config()\n    hog = np.ones(400_000_000)")
    unhog = edit("experiment.py", "    cfg = Config()\n    hog = np.ones(400_000_000)", "    cfg = Config()")
    harness.serve([hog, {"expect": "MemoryError", "reply": unhog + "\nA smaller footprint now."}, "ALL_COMPLETED"])
    cfg = harness.write_config({"run_memory_gb": 2, "sandbox": "process"})
    r = harness.run("--idea", str(harness.idea_path), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    assert "MemoryError" in (r.workspace / "run_1_failed_1" / "stderr.log").read_text()
    assert (r.workspace / "run_1" / "final_info.json").exists()
