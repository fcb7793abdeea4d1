"""How tightly agent-written code is fenced in when the harness runs it.

Two levels, the better one chosen when it works on this machine:
  namespace  bubblewrap: no network at all, the file system read-only except the
             workspace (its .git read-only too) and ~/.cache (activation caches live
             there; TMPDIR points into the workspace's .harness/), its own PID
             namespace; plus the process level.
  process    own process group (a timeout kills the children too), rlimits on memory
             and CPU time, an environment without credentials.
The level in force is printed at the start of an idea and written into each run's
meta.json, so nobody has to guess what a run could have touched.
"""

from __future__ import annotations

import functools
import os
import resource
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from harness.errors import UserError

LEVELS = ("auto", "namespace", "process")


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """bubblewrap installed and allowed to make namespaces here (containers may forbid it)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        probe = subprocess.run([exe, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                                "--unshare-net", "--unshare-pid", "--die-with-parent", "true"],
                               capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


@dataclass(frozen=True)
class Sandbox:
    level: str
    memory_gb: float | None = None
    cpu_seconds: int | None = None
    writable: tuple[Path, ...] = ()
    """Folders outside the workspace a run may write besides ~/.cache (a template's cache
    folder moved elsewhere by an environment variable the template names)."""

    def describe(self) -> str:
        mem = f"{self.memory_gb:g} GB memory" if self.memory_gb else "no memory limit"
        if self.level == "namespace":
            return f"namespace (bubblewrap: no network, read-only outside the workspace; {mem})"
        return f"process (process group, {mem}, credential-free environment; no network or file isolation)"

    def wrap(self, command: list[str], cwd: Path) -> list[str]:
        if self.level != "namespace":
            return command
        cache = Path.home() / ".cache"
        cache.mkdir(parents=True, exist_ok=True)
        cwd = cwd.resolve()
        # A private temp dir inside the workspace rather than a tmpfs over /tmp: the
        # interpreter or the workspace itself may live under /tmp (a clone there, CI).
        tmp = cwd / ".harness" / "tmp"
        tmp.mkdir(parents=True, exist_ok=True)
        # .git read-only on top: the harness runs git outside the sandbox, and a hook or a
        # config entry (core.fsmonitor, ...) written by the run would execute there
        git_dir = ["--ro-bind", str(cwd / ".git"), str(cwd / ".git")] if (cwd / ".git").is_dir() else []
        extra = []
        for folder in self.writable:
            folder.mkdir(parents=True, exist_ok=True)
            extra += ["--bind", str(folder.resolve()), str(folder.resolve())]
        return ["bwrap", "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc",
                "--bind", str(cache), str(cache), *extra, "--bind", str(cwd), str(cwd), *git_dir,
                "--setenv", "TMPDIR", str(tmp),
                "--unshare-net", "--unshare-pid", "--unshare-ipc", "--die-with-parent",
                "--chdir", str(cwd), "--", *command]

    def limit(self) -> None:
        """Runs in the child between fork and exec: the limits apply to the run and its children."""
        if self.memory_gb:
            n = int(self.memory_gb * 1024 ** 3)
            resource.setrlimit(resource.RLIMIT_AS, (n, n))
        if self.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5))


def make_sandbox(mode: str, memory_gb: float | None, timeout_s: float | None,
                 writable: tuple[Path, ...] = ()) -> Sandbox:
    if mode not in LEVELS:
        raise UserError(f"'sandbox' must be one of {', '.join(LEVELS)}, got {mode!r}")
    # CPU time is a backstop behind the wall-clock timeout: all cores busy for the whole run
    cpu = int(timeout_s * (os.cpu_count() or 1)) + 60 if timeout_s else None
    if mode == "namespace" and not bwrap_works():
        raise UserError("sandbox 'namespace' needs bubblewrap with user namespaces; install it "
                        "(apt-get install bubblewrap) or set sandbox: process")
    level = "namespace" if mode == "namespace" or (mode == "auto" and bwrap_works()) else "process"
    return Sandbox(level=level, memory_gb=memory_gb, cpu_seconds=cpu, writable=writable)
