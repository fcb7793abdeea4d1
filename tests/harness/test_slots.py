"""Device slots across real processes: never more holders than slots, a holder that dies
frees its slot, and a process run in a slot sees only that slot's device."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from harness.batch.slots import FileSlotPool, slot_devices
from harness.execution import numerics
from harness.execution.process import run_process
from harness.execution.slots import read_holds

REPO = Path(__file__).resolve().parents[2]
HOLDER = """
import sys, time
from pathlib import Path
from harness.batch.slots import FileSlotPool
folder, name, hold_s, n = Path(sys.argv[1]), sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
pool = FileSlotPool(folder / "slots", ["cuda:0", "cuda:1"], name, log=folder / "slots.jsonl")
for i in range(n):
    with pool.hold(f"run_{i}") as slot:
        print(slot.index, flush=True)
        time.sleep(hold_s)
"""


def _holder(tmp: Path, name: str, hold_s: float, n: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp), name, str(hold_s), str(n)],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)


def test_slots_bound_concurrency_across_processes(tmp_path):
    procs = [_holder(tmp_path, f"idea{i}", 0.3, 2) for i in range(4)]
    for p in procs:
        assert p.wait(timeout=60) == 0
    holds = read_holds(tmp_path / "slots.jsonl")
    assert len(holds) == 8 and {h.device for h in holds} == {"cuda:0", "cuda:1"}
    events = sorted([(h.acquired, 1) for h in holds] + [(h.released, -1) for h in holds])
    level = peak = 0
    for _, step in events:
        level += step
        peak = max(peak, level)
    assert peak == 2  # both slots were used at once, never three
    for slot in (0, 1):
        mine = sorted((h.acquired, h.released) for h in holds if h.slot == slot)
        assert all(b[0] >= a[1] for a, b in zip(mine, mine[1:]))
    waited = [h.acquired - h.requested for h in holds]
    assert max(waited) > 0.25  # four processes, two slots: some had to queue


def test_a_holder_killed_mid_hold_frees_its_slot(tmp_path):
    hog = _holder(tmp_path, "hog", 600, 1)
    assert hog.stdout.readline().strip() in ("0", "1")
    pool = FileSlotPool(tmp_path / "slots", ["cuda:0", "cuda:1"], "observer")
    assert [b["holder"] for b in pool.busy()] == ["hog"]
    other = _holder(tmp_path, "other", 600, 1)
    assert other.stdout.readline().strip() in ("0", "1")
    waiter = _holder(tmp_path, "waiter", 0.0, 1)
    time.sleep(1.0)
    assert waiter.poll() is None  # both slots taken: it waits
    hog.send_signal(signal.SIGKILL)
    hog.wait()
    assert waiter.wait(timeout=10) == 0  # the kernel dropped the dead holder's lock
    other.kill()
    other.wait()


def test_a_process_in_a_slot_sees_only_its_device(tmp_path):
    pool = FileSlotPool(tmp_path / "slots", ["cuda:3", "cpu"], "idea", log=tmp_path / "slots.jsonl")
    code = "import os, json; print(json.dumps(os.environ.get('CUDA_VISIBLE_DEVICES')))"
    with pool.hold("run_0"):  # another idea's run holds the first slot
        res = run_process([sys.executable, "-c", code], tmp_path, tmp_path / "out", tmp_path / "err", 30,
                          slots=pool, slot_label="run_1")
    assert res.ok and res.device == "cpu (slot 1)"
    assert json.loads((tmp_path / "out").read_text()) == ""  # a CPU slot hides every GPU
    res = run_process([sys.executable, "-c", code], tmp_path, tmp_path / "out", tmp_path / "err", 30,
                      slots=pool, slot_label="run_2")
    assert res.device == "cuda:3 (slot 0)" and json.loads((tmp_path / "out").read_text()) == "3"
    assert [h.label for h in read_holds(tmp_path / "slots.jsonl")] == ["run_1", "run_0", "run_2"]


def test_cpu_slots_share_the_cores_out(tmp_path, monkeypatch):
    """Two CPU slots on this machine: a run in one gets half the cores as its thread count (two
    processes that each spread over every core slow each other down)."""
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    pool = FileSlotPool(tmp_path / "slots", ["cpu", "cpu"], "idea")
    code = "import os; print(os.environ.get('OMP_NUM_THREADS'), os.environ.get('MKL_NUM_THREADS'))"
    res = run_process([sys.executable, "-c", code], tmp_path, tmp_path / "out", tmp_path / "err", 30,
                      slots=pool, slot_label="run_1")
    half = str(max(1, os.cpu_count() // 2))
    assert res.ok and (tmp_path / "out").read_text().split() == [half, half]
    assert numerics.run_threads(pool) == half
    # one CPU slot keeps the libraries' default, as a lone idea does: the two share a baseline
    lone = FileSlotPool(tmp_path / "lone", ["cpu"], "idea")
    run_process([sys.executable, "-c", code], tmp_path, tmp_path / "out", tmp_path / "err", 30,
                slots=lone, slot_label="run_1")
    assert (tmp_path / "out").read_text().split() == ["None", "None"]
    assert numerics.signature(lone) == numerics.signature(None) != numerics.signature(pool)
    monkeypatch.setenv("OMP_NUM_THREADS", "7")  # the user's own setting is left alone
    run_process([sys.executable, "-c", code], tmp_path, tmp_path / "out", tmp_path / "err", 30,
                slots=pool, slot_label="run_2")
    assert (tmp_path / "out").read_text().split() == ["7", "None"]
    assert numerics.run_threads(pool) == numerics.run_threads(None) == "7"


def test_vector_units_name_the_kernels_a_cpu_selects(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 rdrand\n\n"
                    "processor\t: 1\nflags\t\t: fpu sse2 avx avx2 fma avx512f avx512_bf16 rdrand\n")
    assert numerics.vector_units(info) == "avx avx2 fma avx512f avx512_bf16"
    info.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n")
    assert numerics.vector_units(info) == "avx avx2 fma"
    assert numerics.vector_units(tmp_path / "missing") == "unknown"


def test_slot_devices(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,5")
    assert slot_devices(None, None) == ["cuda:2", "cuda:5"]
    assert slot_devices(4, None) == ["cuda:2", "cuda:5", "cuda:2", "cuda:5"]
    assert slot_devices(3, "none") == ["cpu"] * 3
    assert slot_devices(None, "7") == ["cuda:7"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert slot_devices(2, None) == ["cpu", "cpu"]


def test_no_slot_is_handed_out_once_the_batch_is_stopping(tmp_path):
    hog = _holder(tmp_path, "hog", 600, 1)
    other = _holder(tmp_path, "other", 600, 1)
    assert {hog.stdout.readline().strip(), other.stdout.readline().strip()} == {"0", "1"}
    waiter = _holder(tmp_path, "waiter", 0.0, 1)
    time.sleep(0.5)
    FileSlotPool(tmp_path / "slots", ["cuda:0", "cuda:1"], "scheduler").set_stopping(True)
    hog.kill()  # a stopped worker frees its slot; the waiter, told to stop a moment later, must not take it
    hog.wait()
    time.sleep(1.0)
    assert waiter.poll() is None
    FileSlotPool(tmp_path / "slots", ["cuda:0", "cuda:1"], "scheduler").set_stopping(False)  # a resumed batch
    assert waiter.wait(timeout=10) == 0
    other.kill()
    other.wait()
