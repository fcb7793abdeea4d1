"""How tightly agent-written code is fenced in when the harness runs it.

Two levels, the better one chosen when it works on this machine:
  namespace  bubblewrap, built from an allow-list: the run starts from an empty root and
             sees only what it needs (system libraries under /usr, a few /etc files, the
             interpreter's own tree and its environment, the workspace, the template's
             cache folder, a private HOME and TMPDIR). The user's home, other workspaces,
             the project's own checkout and every other file are absent, not merely
             read-only. The workspace is writable except its .git and .harness/ (the saved
             chats); the template's cache is read-only except while the harness builds it
             (the baseline's run_0). No network, its own PID namespace, no capabilities:
             root or not, the same view. Plus the process level.
  process    own process group and the harness as child subreaper (so a run's descendants
             are found and killed even after setsid() or a double fork), rlimits on memory
             and CPU time, an environment without credentials. It does NOT isolate files or
             network: the run can read whatever the user can and write wherever the user can.
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

SCRATCH = Path(".harness") / "sandbox"
"""Per-workspace folder holding a run's private HOME and TMPDIR (emptied before each run)
and its scratch cache (kept for the idea's later runs; no other idea sees it)."""

HARNESS_PRIVATE = (".git", ".harness")
"""Workspace folders a run may read but never change: git runs outside the sandbox (a hook
or config entry written by a run would execute there), and .harness holds the saved chats
the agent is sent next (a run rewriting them could inject prompts). Files of the workspace
root (state.json, chat.jsonl) cannot be bound this way: the harness replaces them by rename
while a run starts, and bubblewrap then fails to find its mount point."""

# What programs need from /etc: the loader's cache, certificates, fonts, TeX's settings, the
# alternatives many /usr/bin names point to, and user names (never /etc/shadow).
ETC_ALLOW = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "ssl", "ca-certificates",
             "fonts", "texmf", "chktexrc", "localtime", "timezone", "passwd", "group", "nsswitch.conf",
             "mime.types", "magic", "papersize", "perl")
ETC_TEX = ("ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "texmf", "chktexrc", "perl",
           "papersize", "fonts")
"""TeX reads a file by any name it is given (\\input{/etc/hostname}): it gets even fewer."""
SYSTEM_TREES = ("/usr", "/var/lib/texmf", "/sys/devices/system/cpu")


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """bubblewrap installed and allowed to make namespaces here (containers may forbid it)."""
    exe = shutil.which("bwrap")
    if not exe:
        return False
    try:
        probe = subprocess.run([exe, "--ro-bind", "/usr", "/usr", *_usr_links(), "--dev", "/dev",
                                "--proc", "/proc", "--unshare-all", "--cap-drop", "ALL",
                                "--die-with-parent", "true"], capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def _usr_links() -> list[str]:
    """/bin, /lib, ... as the host has them: links into /usr (merged /usr) or bound folders."""
    out = []
    for name in ("bin", "sbin", "lib", "lib32", "lib64", "libx32"):
        p = Path("/") / name
        if p.is_symlink():
            out += ["--symlink", os.readlink(p), str(p)]
        elif p.is_dir():
            out += ["--ro-bind", str(p), str(p)]
    return out


def runtime_trees(executable: Path) -> list[Path]:
    """Folders an interpreter needs besides /usr: a virtual environment (by its real path) and
    the base installation it was made from (pyenv's lives under /root/.pyenv, inside a home)."""
    exe = Path(executable)
    venv = exe.parent.parent
    out: list[Path] = []
    cfg = venv / "pyvenv.cfg"
    if cfg.is_file():
        out.append(venv.resolve())
        for line in cfg.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip() == "home" and value.strip():
                out.append(Path(value.strip()).resolve().parent)  # .../versions/3.11.7/bin -> .../3.11.7
    real = exe.resolve()
    if not str(real).startswith("/usr/"):
        out.append(real.parent.parent)
    # a folder inside another one is bound with it
    uniq = sorted(set(out), key=lambda p: len(p.parts))
    return [p for i, p in enumerate(uniq) if not any(p.is_relative_to(q) for q in uniq[:i])]


def real_argv0(executable: str) -> str:
    """The interpreter by a path that exists in the sandbox: the environment's real folder
    (a venv reached through a link, e.g. .venvs -> elsewhere) with the name kept, so that
    Python still finds its pyvenv.cfg."""
    exe = Path(executable)
    if (exe.parent.parent / "pyvenv.cfg").is_file():
        return str(exe.parent.parent.resolve() / exe.parent.name / exe.name)
    return executable


@dataclass(frozen=True)
class Sandbox:
    level: str
    memory_gb: float | None = None
    cpu_seconds: int | None = None
    caches: tuple[Path, ...] = ()
    """The template's shared cache folders: read-only to runs, writable only while the
    harness builds them (run_0 of the baseline, unmodified template code)."""
    cache_vars: tuple[tuple[str, str], ...] = ()
    """(variable, folder) telling the template where its cache is: inside the sandbox HOME
    is empty, so the default under ~ would point to the wrong place."""

    def describe(self) -> str:
        mem = f"{self.memory_gb:g} GB memory" if self.memory_gb else "no memory limit"
        if self.level == "namespace":
            return (f"namespace (bubblewrap: no network; sees only the workspace, the interpreter, system "
                    f"libraries and the template cache read-only; no home, no other files; {mem})")
        return (f"process (process group + subreaper, {mem}, credential-free environment; NOT isolated: "
                f"network, reading any file this user can read (home, keys, other workspaces), "
                f"writing anywhere this user can, shared caches)")

    def scratch(self, cwd: Path) -> dict[str, Path]:
        """Fresh HOME and TMPDIR for one run (inside the workspace's .harness, which git
        ignores), and the idea's own scratch cache, kept between its runs."""
        base = cwd.resolve() / SCRATCH
        out = {"home": base / "home", "tmp": base / "tmp", "cache": base / "cache"}
        for name in ("home", "tmp"):
            shutil.rmtree(out[name], ignore_errors=True)
        for p in out.values():
            p.mkdir(parents=True, exist_ok=True)
        return out

    def clean(self, cwd: Path) -> None:
        """After a run: its HOME and TMPDIR go (links or sockets left there would otherwise be
        reported as the run's special files, and a large temp file would linger)."""
        base = cwd.resolve() / SCRATCH
        for name in ("home", "tmp"):
            shutil.rmtree(base / name, ignore_errors=True)

    def env(self, cwd: Path) -> dict[str, str]:
        """Variables a sandboxed process gets. The process level keeps the user's HOME: it
        hides nothing anyway, and a private HOME there would only make each idea download
        again what the user's caches (Hugging Face, pip) already hold."""
        s = self.scratch(cwd)
        env = {"HARNESS_SCRATCH_CACHE": str(s["cache"]), **dict(self.cache_vars)}
        if self.level == "namespace":
            env |= {"HOME": str(s["home"]), "TMPDIR": str(s["tmp"]), "XDG_CACHE_HOME": str(s["cache"]),
                    "MPLCONFIGDIR": str(s["cache"] / "matplotlib")}
        return env

    def wrap(self, command: list[str], cwd: Path, cache_writable: bool = False,
             readable: tuple[Path, ...] = (), hide: tuple[Path, ...] = (),
             etc: tuple[str, ...] = ETC_ALLOW) -> list[str]:
        """`command` inside the sandbox's view, working in `cwd` (the workspace, writable).
        `readable`: further folders the command may read (TeX: the workspace around latex/).
        `hide`: folders replaced by an empty one. `etc`: the /etc entries it sees."""
        if self.level != "namespace":
            return command
        cwd = cwd.resolve()
        args = ["bwrap", "--tmpfs", "/", "--ro-bind", "/usr", "/usr", *_usr_links()]
        for name in etc:
            p = Path("/etc") / name
            if p.exists():
                args += ["--ro-bind", str(p), str(p)]
        for tree in SYSTEM_TREES[1:]:
            if Path(tree).exists():
                args += ["--ro-bind", tree, tree]
        args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]
        for dev in sorted(Path("/dev").glob("nvidia*")):  # GPUs, for a CUDA template
            args += ["--dev-bind", str(dev), str(dev)]
        if any(Path("/dev").glob("nvidia*")) and Path("/sys").is_dir():
            args += ["--ro-bind", "/sys", "/sys"]
        exe = shutil.which(command[0]) or command[0]
        for tree in runtime_trees(Path(exe)):
            if not str(tree).startswith("/usr/"):
                args += ["--ro-bind", str(tree), str(tree)]
        for folder in self.caches:
            folder.mkdir(parents=True, exist_ok=True)
            real = str(folder.resolve())
            args += ["--bind" if cache_writable else "--ro-bind", real, real]
        for folder in readable:
            args += ["--ro-bind", str(folder.resolve()), str(folder.resolve())]
        args += ["--bind", str(cwd), str(cwd)]
        for name in HARNESS_PRIVATE:
            p = cwd / name
            if p.is_dir() and not p.is_symlink():
                args += ["--ro-bind", str(p), str(p)]
        for folder in hide:
            if folder.is_dir() and not folder.is_symlink():
                args += ["--tmpfs", str(folder.resolve())]
        scratch = cwd / SCRATCH
        if scratch.is_dir():
            args += ["--bind", str(scratch), str(scratch)]
        args += ["--remount-ro", "/", "--unshare-all", "--cap-drop", "ALL", "--die-with-parent",
                 "--new-session", "--chdir", str(cwd), "--", real_argv0(command[0]), *command[1:]]
        return args

    def limit(self) -> None:
        """Runs in the child between fork and exec: the limits apply to the run and its children."""
        if self.memory_gb:
            n = int(self.memory_gb * 1024 ** 3)
            resource.setrlimit(resource.RLIMIT_AS, (n, n))
        if self.cpu_seconds:
            resource.setrlimit(resource.RLIMIT_CPU, (self.cpu_seconds, self.cpu_seconds + 5))


def make_sandbox(mode: str, memory_gb: float | None, timeout_s: float | None,
                 caches: tuple[Path, ...] = (), cache_vars: tuple[tuple[str, str], ...] = ()) -> Sandbox:
    if mode not in LEVELS:
        raise UserError(f"'sandbox' must be one of {', '.join(LEVELS)}, got {mode!r}")
    # CPU time is a backstop behind the wall-clock timeout: all cores busy for the whole run
    cpu = int(timeout_s * (os.cpu_count() or 1)) + 60 if timeout_s else None
    if mode == "namespace" and not bwrap_works():
        raise UserError("sandbox 'namespace' needs bubblewrap with user namespaces; install it "
                        "(apt-get install bubblewrap) or set sandbox: process")
    level = "namespace" if mode == "namespace" or (mode == "auto" and bwrap_works()) else "process"
    return Sandbox(level=level, memory_gb=memory_gb, cpu_seconds=cpu, caches=caches, cache_vars=cache_vars)
