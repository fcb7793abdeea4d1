"""Where a batch's idea workers run: the interface, and the local process-pool backend.

An executor starts one worker process per idea (worker.py), tells the scheduler when one
ends and with what exit status, and stops them all on request. It knows nothing about
stages, queues or results: that is the scheduler's business. Two backends:

  local  a child process per idea on this machine; slots are lock files (slots.py)
  ray    a Ray task per idea, which starts the same worker process on whichever node
         Ray picks; slots come from a Ray actor (ray_backend.py, ray_slots.py)
"""

from __future__ import annotations

import os
import select
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.batch.slots import FileSlotPool
from harness.batch.worker import PARENT_ENV
from harness.config import REPO_ROOT
from harness.execution.process import kill_group

WorkerCommand = Callable[[str, list[str]], list[str]]
"""(idea name, extra worker arguments) -> the command line of its worker process."""


@dataclass
class JobResult:
    name: str
    exit_code: int | None
    """The worker's exit status; negative: killed by that signal; None: it never reported."""
    node: str = ""
    error: str = ""
    """What the backend knows beyond the exit status (a lost node, a worker killed on stop)."""


def default_command(batch_dir: Path) -> WorkerCommand:
    def command(name: str, extra: list[str]) -> list[str]:
        return [sys.executable, "-m", "harness.batch.worker", str(batch_dir), name, *extra]
    return command


def worker_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env[PARENT_ENV] = str(os.getpid())
    env["PYTHONUNBUFFERED"] = "1"
    return env


class IdeaExecutor(ABC):
    name = ""

    def start(self) -> None:
        """Connect to (or start) whatever runs the workers."""

    @abstractmethod
    def submit(self, name: str, attempt: int) -> None:
        """Start the worker of one idea."""

    @abstractmethod
    def wait(self, timeout: float) -> list[JobResult]:
        """Workers that ended since the last call; returns as soon as one ends, or after timeout."""

    @abstractmethod
    def stop(self, grace_s: float) -> list[JobResult]:
        """Tell every running worker to stop, wait up to grace_s, kill what is left."""

    def busy_slots(self) -> list[dict]:
        """Who holds which device slot now (for the live view)."""
        return []

    def close(self) -> None:
        """Release what start() acquired."""


class LocalExecutor(IdeaExecutor):
    name = "local"

    def __init__(self, batch_dir: Path, devices: list[str], command: WorkerCommand | None = None):
        self.batch_dir = batch_dir
        self.command = command or default_command(batch_dir)
        self.procs: dict[str, subprocess.Popen] = {}
        self._slots = FileSlotPool(batch_dir / "slots", devices, holder="scheduler")
        self._slots.set_stopping(False)  # left by a stopped run of this batch
        (batch_dir / "logs").mkdir(exist_ok=True)

    def submit(self, name: str, attempt: int) -> None:
        with (self.batch_dir / "logs" / f"{name}.log").open("ab") as log:
            # own session: a Ctrl-C at the terminal reaches the scheduler only, which then
            # stops the workers in order instead of all of them dying mid-write at once
            self.procs[name] = subprocess.Popen(self.command(name, []), stdout=log, stderr=subprocess.STDOUT,
                                                stdin=subprocess.DEVNULL, start_new_session=True, env=worker_env())

    def wait(self, timeout: float) -> list[JobResult]:
        done = self._reap()
        if done or not self.procs:
            return done
        fds = []
        try:
            for proc in self.procs.values():
                try:
                    fds.append(os.pidfd_open(proc.pid))
                except (OSError, AttributeError):
                    pass  # already gone, or no pidfd here: the timeout bounds the wait
            if fds:
                select.select(fds, [], [], timeout)
            else:
                time.sleep(min(timeout, 0.05))
        finally:
            for fd in fds:
                os.close(fd)
        return self._reap()

    def _reap(self) -> list[JobResult]:
        out = []
        for name, proc in list(self.procs.items()):
            if proc.poll() is None:
                continue
            kill_group(proc.pid, grace_s=1.0)  # whatever the worker left in its group (latexmk, ...)
            del self.procs[name]
            out.append(JobResult(name, proc.returncode, node=socket.gethostname()))
        return out

    def stop(self, grace_s: float) -> list[JobResult]:
        # before any worker dies and frees its slot, so that no other one starts a run in it
        self._slots.set_stopping(True)
        for proc in self.procs.values():
            try:
                os.kill(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        out: list[JobResult] = []
        deadline = time.monotonic() + grace_s
        while self.procs and time.monotonic() < deadline:
            out += self.wait(min(0.2, max(0.0, deadline - time.monotonic())))
        for name, proc in list(self.procs.items()):
            kill_group(proc.pid, grace_s=0.5)
            proc.wait()
            out.append(JobResult(name, proc.returncode, node=socket.gethostname(),
                                 error=f"killed: it did not stop within {grace_s:g} s"))
            del self.procs[name]
        return out

    def busy_slots(self) -> list[dict]:
        return self._slots.busy()
