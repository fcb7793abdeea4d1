"""saekit's shared cache: artefacts checked against their manifest whenever they are used.

A changed, missing or extra file (or no manifest) is rebuilt in place where the process may
write, in the run's scratch cache where the shared folder is read-only (the harness's namespace
sandbox mounts it so), and refused with one line when there is neither. Read-only mounts are
made with bubblewrap, as the sandbox makes them (root ignores file modes).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from saekit import cache

TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "sae_variants"
KEY = {"what": "test artefact", "n": 3}


def _builder(calls: list[int], payload: bytes = b"A" * 1000):
    def build(out: Path) -> None:
        calls.append(1)
        (out / "data.bin").write_bytes(payload)
        (out / "sub").mkdir()
        (out / "sub" / "more.txt").write_text("more")
    return build


def test_a_built_artefact_is_reused_while_it_matches_its_manifest(tmp_path):
    calls: list[int] = []
    first = cache.cached_dir("kind", KEY, _builder(calls), tmp_path)
    again = cache.cached_dir("kind", KEY, _builder(calls), tmp_path)
    assert first == again and calls == [1]
    manifest = json.loads((first / cache.MANIFEST).read_text())
    assert set(manifest) == {"data.bin", "key.json", "sub/more.txt"}


@pytest.mark.parametrize("tamper, why", [
    (lambda d: (d / "data.bin").write_bytes(b"B" * 1000), "data.bin changed"),       # same size
    (lambda d: (d / "sub" / "more.txt").unlink(), "sub/more.txt is missing"),
    (lambda d: (d / "planted.pt").write_bytes(b"x"), "planted.pt was added"),
    (lambda d: (d / cache.MANIFEST).unlink(), "no manifest"),                          # hiding a change
    (lambda d: (d / "key.json").write_text('{"what": "other"}'), "key.json"),
])
def test_a_tampered_artefact_is_rebuilt_and_named_where_it_may_be_written(tmp_path, capsys, tamper, why):
    calls: list[int] = []
    entry = cache.cached_dir("kind", KEY, _builder(calls), tmp_path)
    tamper(entry)
    again = cache.cached_dir("kind", KEY, _builder(calls), tmp_path)
    assert again == entry and calls == [1, 1]
    assert (entry / "data.bin").read_bytes() == b"A" * 1000 and cache.check(entry, KEY) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(entry) in err and why in err and "rebuilding" in err


def _bwrap_ok() -> bool:
    return shutil.which("bwrap") is not None and subprocess.run(
        ["bwrap", "--bind", "/", "/", "--dev", "/dev", "true"], capture_output=True).returncode == 0


CHILD = """
import sys
sys.path.insert(0, {template!r})
from pathlib import Path
from saekit import cache
def build(out):
    print("BUILT", flush=True)
    (out / "data.bin").write_bytes(b"A" * 1000)
print(cache.cached_dir("kind", {key!r}, build, Path({root!r})))
"""


def _run_read_only(root: Path, scratch: Path | None) -> subprocess.CompletedProcess:
    code = CHILD.format(template=str(TEMPLATE), key=KEY, root=str(root))
    env = {"PATH": "/usr/bin:/bin"} | ({"HARNESS_SCRATCH_CACHE": str(scratch)} if scratch else {})
    return subprocess.run(["bwrap", "--bind", "/", "/", "--dev", "/dev", "--ro-bind", str(root), str(root),
                           sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.skipif(not _bwrap_ok(), reason="bubblewrap cannot make namespaces here")
def test_read_only_shared_cache_tampered_entry_is_rebuilt_in_scratch_or_refused(tmp_path):
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    entry = cache.cached_dir("kind", KEY, lambda out: (out / "data.bin").write_bytes(b"A" * 1000), shared)
    (entry / "data.bin").write_bytes(b"Z" * 1000)  # poisoned (by a process-level run, say)

    fresh = _run_read_only(shared, scratch)
    assert fresh.returncode == 0, fresh.stderr
    used = Path(fresh.stdout.strip().splitlines()[-1])
    assert used.is_relative_to(scratch) and (used / "data.bin").read_bytes() == b"A" * 1000
    assert "BUILT" in fresh.stdout and str(entry) in fresh.stderr and "data.bin changed" in fresh.stderr
    assert (entry / "data.bin").read_bytes() == b"Z" * 1000  # the shared copy was not writable

    refused = _run_read_only(shared, None)  # nowhere to build a clean copy
    lines = [ln for ln in refused.stderr.splitlines() if ln.strip()]
    assert refused.returncode == 1 and len(lines) == 1 and "Traceback" not in refused.stderr
    assert str(entry) in lines[0] and "rerun the baseline" in lines[0]


@pytest.mark.skipif(not _bwrap_ok(), reason="bubblewrap cannot make namespaces here")
def test_read_only_shared_cache_missing_entry_is_built_in_scratch(tmp_path):
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    shared.mkdir()
    r = _run_read_only(shared, scratch)
    assert r.returncode == 0, r.stderr
    assert Path(r.stdout.strip().splitlines()[-1]).is_relative_to(scratch)
    assert "not in the shared cache" in r.stderr and not any(shared.iterdir())


CONCURRENT_BUILD = """
import sys, time
from pathlib import Path
from saekit import cache
root, log = Path(sys.argv[1]), Path(sys.argv[2])
def build(out):
    with log.open("a") as f:
        f.write("built\\n")
    time.sleep(1.5)  # long enough that the other process asks while this one is building
    (out / "data.bin").write_bytes(b"x" * 100)
print(cache.cached_dir("kind", {"n": 1}, build, root))
"""


def test_two_processes_needing_one_missing_artefact_build_it_once(tmp_path):
    script = tmp_path / "build.py"
    script.write_text(CONCURRENT_BUILD)
    log = tmp_path / "builds.log"
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "root"), str(log)], cwd=TEMPLATE,
                              env={**os.environ, "PYTHONPATH": str(TEMPLATE)}, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1] and Path(outs[0]).is_dir()
    assert log.read_text().count("built") == 1


@pytest.mark.parametrize("tamper, why", [
    (lambda e: (e / "data.bin").write_bytes(b"Z" * 1000), "data.bin changed after it was built"),
    (lambda e: shutil.rmtree(e), "is missing"),
])
def test_the_evaluation_refuses_a_changed_entry_even_where_it_could_rebuild_it(tmp_path, monkeypatch, tamper, why):
    """The harness's evaluation step (SAEKIT_STRICT_CACHE=1) must score every run on the data
    the baseline built: a changed or missing entry ends it with one line, and nothing is rebuilt,
    even with the shared folder and a scratch cache both writable."""
    shared, scratch = tmp_path / "shared", tmp_path / "scratch"
    calls: list[int] = []
    entry = cache.cached_dir("kind", KEY, _builder(calls), shared)
    tamper(entry)
    monkeypatch.setenv(cache.STRICT_ENV, "1")
    monkeypatch.setenv(cache.SCRATCH_ENV, str(scratch))
    with pytest.raises(SystemExit) as stop:
        cache.cached_dir("kind", KEY, _builder(calls), shared)
    message = str(stop.value.code)
    assert message.startswith("saekit: evaluation refused: cache entry kind/") and why in message
    assert "\n" not in message and "rerun the baseline" in message
    assert calls == [1] and not scratch.exists()
