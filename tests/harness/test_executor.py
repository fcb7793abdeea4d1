"""Agent-written code runs bounded: own process group, timeout, no credentials."""

from __future__ import annotations

import sys
import time

from harness.executor import run_process, scrubbed_env, tail


def test_scrubbed_env_drops_credentials(monkeypatch):
    for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GITHUB_TOKEN", "MY_SECRET", "AWS_ACCESS_KEY_ID",
              "HF_TOKEN", "DB_PASSWORD", "OPENAI_API_BASE"):
        monkeypatch.setenv(k, "x")
    monkeypatch.setenv("SAE_HARNESS_CACHE", "/tmp/c")
    env = scrubbed_env()
    assert not {k for k in env if "KEY" in k or "TOKEN" in k or "SECRET" in k or "PASSWORD" in k}
    assert "OPENAI_API_BASE" not in env
    assert env["SAE_HARNESS_CACHE"] == "/tmp/c" and env["PATH"]


def test_timeout_kills_the_whole_group(tmp_path):
    code = ("import os, time\n"
            "pid = os.fork()\n"
            "if pid == 0:\n    time.sleep(120); os._exit(0)\n"
            "open('child', 'w').write(str(pid)); time.sleep(120)\n")
    t0 = time.monotonic()
    res = run_process([sys.executable, "-c", code], tmp_path, tmp_path / "o", tmp_path / "e", timeout_s=1.5)
    assert res.timed_out and res.exit_code is None and time.monotonic() - t0 < 10
    child = int((tmp_path / "child").read_text())
    time.sleep(0.2)
    try:
        stat = open(f"/proc/{child}/stat").read()
        assert stat.rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        pass
    assert "timeout" in (tmp_path / "e").read_text()


def test_tail_is_bounded(tmp_path):
    p = tmp_path / "log"
    p.write_text("".join(f"line {i}\n" for i in range(5000)))
    t = tail(p, 1500)
    assert len(t) <= 1500 and t.endswith("line 4999\n") and t.startswith("line ")
