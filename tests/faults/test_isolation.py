"""Agent-written code runs fenced in: no credentials, no network, nothing written outside."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest

from harness.execution.process import scrubbed_env
from harness.execution.sandbox import bwrap_works
from tests.support import REPO, edit

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
        print("write outside: blocked")
    try:
        open(".git/hooks/post-commit", "w").write("#!/bin/sh\\ntouch /tmp/hooked")
        print("git hook: planted")
    except OSError:
        print("git hook: blocked")"""


@pytest.mark.fault("run reads API keys from os.environ")
def test_experiment_sees_no_api_key(harness, intact):
    spy = edit("experiment.py", "    cfg = Config()",
               "    cfg = Config()\n    print('KEYS', sorted(k for k in os.environ if 'KEY' in k or 'OPENAI' in k))")
    harness.serve([spy, {"expect": "Run 1 finished", "reply": "ALL_COMPLETED"}])
    r = harness.run("--idea", str(harness.idea_path))
    assert r.returncode == 0, r.stderr
    out = (r.workspace / "run_1" / "stdout.log").read_text()
    # the harness process itself had OPENAI_API_KEY set (see Harness.env)
    assert "KEYS []" in out and "sk-test-secret" not in out
    intact(r.workspace)


@pytest.mark.fault("run reads API keys from os.environ")
def test_scrubbed_env_drops_credentials(monkeypatch):
    for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "MY_SECRET", "AWS_ACCESS_KEY_ID",
              "HF_TOKEN", "DB_PASSWORD", "OPENAI_API_BASE"):
        monkeypatch.setenv(k, "x")
    monkeypatch.setenv("SAE_HARNESS_CACHE", "/tmp/c")
    env = scrubbed_env()
    assert not {k for k in env if "KEY" in k or "TOKEN" in k or "SECRET" in k or "PASSWORD" in k}
    assert "OPENAI_API_BASE" not in env
    assert env["SAE_HARNESS_CACHE"] == "/tmp/c" and env["PATH"]


@pytest.mark.fault("run writes outside the workspace")
@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot make namespaces here (setup.sh installs it)")
def test_namespace_sandbox_blocks_network_and_writes_outside(harness, intact):
    # a place beside the repository: read-only for the run, or (for a clone under /tmp) in the
    # run's private /tmp
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
    assert "net: blocked" in out
    # Outside /tmp the run's root is read-only. Under /tmp (a clone in /tmp, as a new user's
    # may be) the run has a private, empty /tmp of its own: the write succeeds there and is
    # gone with the run. Either way nothing reached the real file (`escaped` above).
    private_tmp = Path(tempfile.gettempdir()) in outside.parents
    assert "write outside: blocked" in out or (private_tmp and "write outside: allowed" in out), out
    # the harness runs git outside the sandbox: a hook planted in .git would run there
    assert "git hook: blocked" in out and not (r.workspace / ".git/hooks/post-commit").exists()
    meta = json.loads((r.workspace / "run_1" / "meta.json").read_text())
    assert meta["isolation"].startswith("namespace")
    assert "isolation of agent-written code: namespace" in r.stdout
    intact(r.workspace)


@pytest.mark.skipif(not bwrap_works(), reason="bubblewrap cannot make namespaces here (setup.sh installs it)")
@pytest.mark.fault("run writes outside the workspace")
def test_namespace_sandbox_cache_folder_is_read_only_except_while_the_harness_builds_it(tmp_path):
    """The template's shared cache: read-only to runs, writable only for the baseline's build;
    folders beside it stay absent."""
    import subprocess

    from harness.execution.sandbox import make_sandbox

    ws, cache, other = tmp_path / "ws", tmp_path / "cache", tmp_path / "other"
    ws.mkdir()
    other.mkdir()
    (other / "secret").write_text("s")
    script = (f"import os; print(os.path.exists('{other}/secret'));"
              f"open('{cache}/a', 'w').write('x')")
    sandbox = make_sandbox("namespace", None, 60, caches=(cache,))
    run = subprocess.run(sandbox.wrap(["python3", "-c", script], ws), cwd=ws, capture_output=True, text=True)
    assert run.returncode != 0 and "Read-only file system" in run.stderr and not (cache / "a").exists()
    assert run.stdout.strip() == "False"
    build = subprocess.run(sandbox.wrap(["python3", "-c", script], ws, cache_writable=True), cwd=ws,
                           capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    assert (cache / "a").read_text() == "x"
