"""What decides a run's last digits besides its code and its seed: the CPU's vector units and
the number of threads torch splits its sums over.

Measured on the SAE template's default run (2-core AVX2 machine, same cache, same seed): with 1
thread instead of 2 the CE loss score went 0.9707 -> 0.9695, dead latents 0.0365 -> 0.0352 and
absorption 0.407 -> 0.418, about one seed's worth of difference; an AVX-512 machine moves the same
digits. A baseline computed under one setting is therefore no reference for runs under another:
the baseline's cache key includes this signature, so a batch whose CPU slots get fewer threads
than a lone idea did, or a second kind of machine sharing the workspace root, computes its own.
"""

from __future__ import annotations

import os
from pathlib import Path

from harness.execution.slots import Slot, SlotPool

# The CPU features that select different matmul and reduction kernels (oneDNN / MKL / sleef).
VECTOR_FLAGS = ("avx", "avx2", "fma", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16",
                "neon", "asimd")


def vector_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The numerics-relevant CPU flags, e.g. 'avx avx2 fma' ('unknown' off Linux)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return "unknown"
    flags: set[str] = set()
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):  # x86, arm64
            flags.update(value.split())
            break
    return " ".join(f for f in VECTOR_FLAGS if f in flags) or "none"


def run_threads(pool: SlotPool | None) -> str:
    """The thread count a run will get, read from the environment a CPU slot of `pool` gives it
    (Slot.env): the user's OMP_NUM_THREADS (or the one Ray gave this worker) wins, then the
    batch's share of the cores, then torch's own default for this machine."""
    devices = getattr(pool, "devices", None) or []
    slot_env = Slot.of_pool(devices.index("cpu"), devices).env() if "cpu" in devices else {}
    return (slot_env.get("OMP_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
            or f"default of {len(os.sched_getaffinity(0))} CPUs")


def signature(pool: SlotPool | None) -> str:
    return f"threads {run_threads(pool)}; cpu {vector_units()}"
