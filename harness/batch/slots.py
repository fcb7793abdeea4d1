"""Device slots: at most N experiment/plot processes at once, each with its own device.

A slot is held only around one process (executor.run_process), so a GPU is free for
another idea while this idea's agent is thinking. On one machine the slots are file locks
(fcntl) in the batch folder: they work across the worker processes and the kernel frees
a slot whose holder dies, however it dies. The Ray backend has its own pool
(ray_slots.py) with the same interface.

The interface (Slot, SlotPool) and the holds log are harness/execution/slots.py.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import Iterator

from harness.execution.slots import Hold, Slot, append_hold

STOP_MARKER = "STOP"
"""Written into the slots folder when the batch is being stopped: no new process starts."""
POLL_S = 0.005
"""How often the one waiting process looks for a free slot (the others queue behind it)."""


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
            yield Slot.of_pool(index, self.devices)
        finally:
            os.ftruncate(fd, 0)
            released = time.time()  # before the unlock: the next holder's "acquired" must not precede it
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if self.log is not None:
                append_hold(self.log, Hold(index, self.devices[index], self.holder, label,
                                           requested, acquired, released))

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
