"""Device slots as the core sees them: a pool hands out one slot around one process.

The single-idea core (process.py) only needs this interface: a lone idea runs without a
pool, a batch passes one in. The pools themselves live with the batch (batch/slots.py: file
locks on one machine; batch/ray_slots.py: a Ray actor). Every hold is appended to a
JSON-lines log (requested, acquired, released), from which the benchmark and the report
compute slot utilisation; its format is defined here so the report can read it without
importing the batch package.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ContextManager, Protocol

HOLDS_LOG = "slots.jsonl"


@dataclass(frozen=True)
class Slot:
    index: int
    device: str
    """'cuda:<id>' or 'cpu'."""
    threads: int = 0
    """CPU threads the slot's process may use (0: the libraries' default, all cores)."""

    def env(self) -> dict[str, str]:
        # A CPU slot hides every GPU, so that an experiment cannot use a device that
        # belongs to another slot.
        env = {"CUDA_VISIBLE_DEVICES": self.device.split(":", 1)[1] if self.device.startswith("cuda:") else ""}
        if self.threads and "OMP_NUM_THREADS" not in os.environ:  # the user's own setting wins
            env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(self.threads)
        return env

    def describe(self) -> str:
        return f"{self.device} (slot {self.index})"

    @classmethod
    def of_pool(cls, index: int, devices: list[str]) -> "Slot":
        """Slot `index` of a pool of `devices`, with its CPU threads (what every pool hands out)."""
        device = devices[index]
        return cls(index, device, threads=cpu_threads(devices) if device == "cpu" else 0)


def cpu_threads(devices: list[str]) -> int:
    """Threads for each CPU slot: the machine's cores shared out between the CPU slots. Two
    torch trainers with 2 threads each on 2 cores made 8.0k tokens/s each; with 1 thread each,
    13-14k each (bench/slot_threads.py). A lone CPU slot, like a GPU slot, keeps the libraries'
    default (0), which is what an idea run outside a batch gets: the thread count changes a run's
    last digits (execution/numerics.py), so the two then share one baseline."""
    n_cpu = sum(1 for d in devices if d == "cpu")
    return max(1, (os.cpu_count() or 1) // n_cpu) if n_cpu > 1 else 0


@dataclass
class Hold:
    """One line of the holds log."""
    slot: int
    device: str
    holder: str
    label: str
    requested: float
    acquired: float
    released: float
    node: str = ""
    """The Ray node whose slot it was; empty for the file-lock slots of one machine."""


class SlotPool(Protocol):
    def hold(self, label: str) -> ContextManager[Slot]:
        """Wait for a free slot and keep it for the `with` block."""


def append_hold(log: Path, hold: Hold) -> None:
    # one short O_APPEND write per line: lines from several processes never interleave
    line = (json.dumps(asdict(hold)) + "\n").encode()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


def read_holds(log: Path) -> list[Hold]:
    if not log.exists():
        return []
    out = []
    for line in log.read_text(encoding="utf-8").splitlines():
        try:
            out.append(Hold(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue  # a line cut short by a kill
    return out
