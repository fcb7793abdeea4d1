"""Device slots: at most N experiment/plot processes at once, each with its own device.

A slot is held only around one process (executor.run_process), so a GPU is free for
another idea while this idea's agent is thinking. On one machine the slots are file locks
(fcntl) in the batch folder: they work across the worker processes and the kernel frees
a slot whose holder dies, however it dies. The Ray backend has its own pool
(ray_slots.py) with the same interface.

Every hold is appended to a JSON-lines log (requested, acquired, released), from which the
benchmark and the report compute slot utilisation.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ContextManager, Iterator, Protocol

HOLDS_LOG = "slots.jsonl"
STOP_MARKER = "STOP"
"""Written into the slots folder when the batch is being stopped: no new process starts."""
POLL_S = 0.005
"""How often the one waiting process looks for a free slot (the others queue behind it)."""


@dataclass(frozen=True)
class Slot:
    index: int
    device: str
    """'cuda:<id>' or 'cpu'."""

    def env(self) -> dict[str, str]:
        # A CPU slot hides every GPU, so that an experiment cannot use a device that
        # belongs to another slot.
        return {"CUDA_VISIBLE_DEVICES": self.device.split(":", 1)[1] if self.device.startswith("cuda:") else ""}

    def describe(self) -> str:
        return f"{self.device} (slot {self.index})"


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


def visible_gpus() -> list[str]:
    """GPU ids this process may use: CUDA_VISIBLE_DEVICES if set, else what nvidia-smi lists."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    exe = shutil.which("nvidia-smi")
    if not exe:
        return []
    try:
        out = subprocess.run([exe, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [ln.strip() for ln in out.stdout.splitlines() if ln.strip().isdigit()] if out.returncode == 0 else []


def slot_devices(slots: int | None, gpus: str | None) -> list[str]:
    """The device of each slot: GPUs round-robin, or CPU slots on a machine without any."""
    ids = [] if gpus == "none" else [g.strip() for g in gpus.split(",")] if gpus else visible_gpus()
    if ids:
        n = slots or len(ids)
        return [f"cuda:{ids[i % len(ids)]}" for i in range(n)]
    return ["cpu"] * (slots or max(1, (os.cpu_count() or 1) // 4))


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


class FileSlotPool:
    """Slots as lock files <folder>/slot_<i>.lock; one process at a time waits for one."""

    def __init__(self, folder: Path, devices: list[str], holder: str, log: Path | None = None,
                 poll_s: float = POLL_S):
        if not devices:
            raise ValueError("a slot pool needs at least one device")
        self.folder, self.devices, self.holder, self.poll_s = folder, list(devices), holder, poll_s
        self.log = log
        folder.mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def hold(self, label: str) -> Iterator[Slot]:
        requested = time.time()
        fd, index = self._acquire()
        acquired = time.time()
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({"holder": self.holder, "label": label, "pid": os.getpid(),
                                  "since": acquired}).encode(), 0)
        try:
            yield Slot(index, self.devices[index])
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if self.log is not None:
                append_hold(self.log, Hold(index, self.devices[index], self.holder, label,
                                           requested, acquired, time.time()))

    def _acquire(self) -> tuple[int, int]:
        # Waiters queue on one lock and only its holder polls the slots: no herd of
        # processes polling, and roughly first come, first served.
        queue = os.open(self.folder / "queue.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(queue, fcntl.LOCK_EX)
            while True:
                for i in range(len(self.devices)):
                    fd = os.open(self.folder / f"slot_{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
                    try:
                        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        os.close(fd)
                        continue
                    # Checked after taking the slot: a batch being stopped frees slots as its
                    # workers die, and a worker told to stop a moment later must not use one.
                    if not self.stopping():
                        return fd, i
                    os.close(fd)
                time.sleep(self.poll_s)
        finally:
            os.close(queue)  # closing the descriptor drops the queue lock

    def stopping(self) -> bool:
        return (self.folder / STOP_MARKER).exists()

    def set_stopping(self, on: bool) -> None:
        marker = self.folder / STOP_MARKER
        if on:
            marker.touch()
        else:
            marker.unlink(missing_ok=True)

    def busy(self) -> list[dict]:
        """Who holds which slot now (from the lock files; a dead holder's entry is skipped)."""
        out = []
        for i in range(len(self.devices)):
            try:
                info = json.loads((self.folder / f"slot_{i}.lock").read_text() or "null")
            except (OSError, json.JSONDecodeError):
                continue
            if info and _alive(int(info.get("pid", 0))):
                out.append({"slot": i, "device": self.devices[i], **info})
        return out


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
