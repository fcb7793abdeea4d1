"""Executor helpers; its limits (timeouts, process groups, credentials) are tested in tests/faults."""

from __future__ import annotations

from harness.execution.process import tail


def test_tail_is_bounded(tmp_path):
    p = tmp_path / "log"
    p.write_text("".join(f"line {i}\n" for i in range(5000)))
    t = tail(p, 1500)
    assert len(t) <= 1500 and t.endswith("line 4999\n") and t.startswith("line ")
