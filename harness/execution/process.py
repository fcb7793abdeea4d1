"""Runs agent-written code (experiment.py, plot.py) as a separate, bounded process.

The process gets its own process group (so a timeout kills its children too), the
workspace as working directory, the template's interpreter, and an environment with
every credential-looking variable removed: the code the agent writes never sees the
harness's API keys. The harness makes itself a child subreaper, so a descendant that left
the group (setsid(), a double fork) is re-parented to the harness instead of init, and is
found through the process tree and killed when the run ends.
"""

from __future__ import annotations

import ctypes
import functools
import os
import re
import signal
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from harness.execution.sandbox import Sandbox

if TYPE_CHECKING:
    from harness.execution.slots import SlotPool

_SECRET = re.compile(r"(KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH|COOKIE|SESSION)", re.I)
_PROVIDER = re.compile(r"^(OPENAI|ANTHROPIC|AZURE|GEMINI|GOOGLE|VERTEX|DEEPSEEK|MISTRAL|COHERE|GROQ|"
                       r"TOGETHER|OPENROUTER|FIREWORKS|XAI|HF|HUGGING_?FACE|AWS|LITELLM|AIDER|WANDB)_", re.I)
KEEP_ALWAYS = {"PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER", "SHELL", "TZ"}


def scrubbed_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k in KEEP_ALWAYS or not (_SECRET.search(k) or _PROVIDER.match(k))}
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("PYTHONPATH", None)  # the harness's import path is not the experiment's
    env.pop("VIRTUAL_ENV", None)
    env.update(extra or {})
    return env


@dataclass
class ProcessResult:
    command: list[str]
    exit_code: int | None
    duration_s: float
    timed_out: bool
    started_at: str
    pgid: int
    device: str = ""
    """The batch slot the process ran in ('' outside a batch)."""
    slot_wait_s: float = 0.0
    """Seconds spent waiting for that slot (not part of duration_s)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out


_LIVE_GROUPS: set[int] = set()
"""Process groups of runs in progress, for a worker told to stop (batch/worker.py)."""


def live_groups() -> list[int]:
    return sorted(_LIVE_GROUPS)


PR_SET_CHILD_SUBREAPER = 36


@functools.lru_cache(maxsize=1)
def become_subreaper() -> bool:
    """Orphaned descendants of our runs get re-parented to this process (Linux >= 3.4)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _process_table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time in clock ticks) of every live (non-zombie) process."""
    out = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            out[int(stat.parent.name)] = (int(fields[1]), int(fields[19]))
    return out


def _start_ticks(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return 0


def run_descendants(root: int, since_ticks: int, known: set[int]) -> set[int]:
    """Live processes below `root`, plus orphans re-parented to the harness (subreaper) that
    were started after the run began and are not the harness's own children from before."""
    table = _process_table()
    me = os.getpid()
    seeds = {root} | {p for p, (pp, start) in table.items()
                      if pp == me and p not in known and p != root and start >= since_ticks}
    found, frontier = set(), set(seeds)
    while frontier:
        found |= frontier
        frontier = {p for p, (pp, _) in table.items() if pp in frontier and p not in found}
    return {p for p in found if p in table}


def kill_tree(root: int, since_ticks: int, known: set[int]) -> int:
    """SIGKILL every descendant of a run until none is left; returns how many were killed.
    Repeated because a process may fork while we look; its children then come to us."""
    killed: set[int] = set()
    for _ in range(50):
        pids = run_descendants(root, since_ticks, known) - {root}
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
            except (ProcessLookupError, PermissionError):
                pass
        time.sleep(0.02)
    for pid in killed:  # orphans re-parented to us are our zombies now
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    return len(killed)


def kill_group(pgid: int, grace_s: float = 3.0) -> None:
    """SIGTERM the whole group, then SIGKILL whatever is left."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline:
            if not group_alive(pgid):
                return
            time.sleep(0.05)


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # zombies still count for killpg(0); look for a live member
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def kill_stale_group(pgid: int | None, cwd: Path) -> bool:
    """After a harness crash, kill a run it left behind, but only if that group still
    runs in this workspace (the pgid may have been reused by an unrelated process)."""
    if not pgid or not group_alive(pgid):
        return False
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            if Path(os.readlink(stat.parent / "cwd")).resolve() == cwd.resolve():
                kill_group(pgid)
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False


def run_process(command: list[str], cwd: Path, stdout_path: Path, stderr_path: Path,
                timeout_s: float, env: dict[str, str] | None = None,
                on_start=None, sandbox: Sandbox | None = None,
                slots: SlotPool | None = None, slot_label: str = "",
                cache_writable: bool = False, readable: tuple[Path, ...] = ()) -> ProcessResult:
    """Run `command` in `cwd`, output to files, killed with its whole group on timeout.

    `on_start(pgid)` is called once the process exists, so the caller can record the
    group before waiting (a harness killed meanwhile can then clean up on resume).
    With `slots` (a batch), a device slot is held for exactly the life of the process,
    and the process sees only that slot's device. `cache_writable`: the template's shared
    cache may be written (only for run_0, which builds it from unmodified template code).
    `readable`: further folders the sandboxed command may read (the evaluation: the run folder).
    """
    env = dict(env if env is not None else scrubbed_env())
    if sandbox:
        env.update(sandbox.env(cwd))
    become_subreaper()
    known = {p for p, (pp, _) in _process_table().items() if pp == os.getpid()}
    waited = time.monotonic()
    with slots.hold(slot_label or command[-1]) if slots else nullcontext() as slot:
        waited = time.monotonic() - waited
        if slot is not None:
            env.update(slot.env())
        started = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        t0 = time.monotonic()
        with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
            argv = sandbox.wrap(command, cwd, cache_writable=cache_writable, readable=readable) if sandbox else command
            proc = subprocess.Popen(argv, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                    env=env, start_new_session=True,
                                    preexec_fn=sandbox.limit if sandbox else None)
            pgid = proc.pid  # start_new_session makes the child its own group leader
            since = _start_ticks(proc.pid)
            _LIVE_GROUPS.add(pgid)
            try:
                if on_start:
                    on_start(pgid)
                timed_out = False
                try:
                    proc.wait(timeout=timeout_s)
                except subprocess.TimeoutExpired:
                    timed_out = True
            finally:
                # also reaps children a finished run left behind (daemons, forked workers),
                # and on an exception (Ctrl-C) takes the run down instead of orphaning it
                kill_group(pgid)
                # whatever left the group (setsid, double fork) but is still a descendant
                escaped = kill_tree(pgid, since, known)
                proc.wait()
                _LIVE_GROUPS.discard(pgid)
                if sandbox:
                    sandbox.clean(cwd)
            if escaped:
                err.write(f"\n[harness] killed {escaped} process(es) the run left running outside its "
                          f"process group\n".encode())
            if timed_out:
                # through the handle the run had, not the path: the run may have swapped
                # stderr.log for a link pointing outside the workspace (see links.py)
                err.write(f"\n[harness] killed after the {timeout_s:g} s timeout (process group {pgid})\n".encode())
        duration = round(time.monotonic() - t0, 3)
    return ProcessResult(command=command, exit_code=None if timed_out else proc.returncode,
                         duration_s=duration, timed_out=timed_out, started_at=started, pgid=pgid,
                         device=slot.describe() if slot is not None else "", slot_wait_s=round(waited, 3))


def tail(path: Path, limit: int = 1500) -> str:
    """The last `limit` characters of a log, cut at a line start where possible."""
    try:
        data = path.read_bytes()[-limit * 4:].decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    if len(data) <= limit:
        return data
    cut = data[-limit:]
    nl = cut.find("\n")
    return cut[nl + 1:] if 0 <= nl < 200 else cut

