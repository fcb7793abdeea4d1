"""One idea of a batch, in a process of its own: `python -m harness.batch.worker BATCH IDEA`.

It does what `run_harness.py --idea` does for one idea (or `--resume` once the idea has a
workspace), except that its experiment and plot processes wait for a device slot shared
with the batch. Its stdout and stderr go to the batch's logs/<idea>.log.

Exit status, read by the scheduler: 0 done, 1 stopped (state.json says why), 2 user error
(the last line of the log says which), 3 harness error (traceback in the log), 130 told
to stop.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import signal
import sys
import threading
import time
import traceback
from dataclasses import replace
from pathlib import Path

from rich.console import Console

from harness.batch.slots import FileSlotPool
from harness.config import HarnessConfig, apply_values
from harness.errors import UserError
from harness.execution.process import live_groups
from harness.execution.slots import HOLDS_LOG, SlotPool
from harness.ideas import load_idea
from harness.records.batch import load_batch, read_worker_note, write_worker_note

EXIT_DONE, EXIT_STOPPED, EXIT_USER_ERROR, EXIT_CRASH, EXIT_INTERRUPTED = 0, 1, 2, 3, 130
PARENT_ENV = "HARNESS_BATCH_PARENT"
_PR_SET_PDEATHSIG = 1


STOP_WAIT_S = 15.0
"""Longest a stop waits for the idea to record a model reply it has already received."""
_stop_signal: int | None = None
_workspace: Path | None = None


def _reply_unrecorded() -> bool:
    """True between the moment a model reply is saved to the stage's conversation file and
    the moment state.json records the turn. Dying there would make resume ask that turn
    again with the reply already in the conversation, so a stop waits it out."""
    if _workspace is None:
        return False
    try:
        state = (_workspace / "state.json").stat().st_mtime_ns
        chats = [p.stat().st_mtime_ns for p in (_workspace / ".harness").glob("chat_*.json")]
    except OSError:
        return False
    return bool(chats) and max(chats) > state


def _exit_now(signum: int) -> None:
    # SIGKILL without a grace period: a run given time to die would be seen ending by the
    # main thread, recorded as a failed run, and answered with another model call.
    for pgid in live_groups():
        try:
            os.killpg(pgid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
    # fd 1 itself: while aider streams a reply, sys.stdout points at the workspace's harness.log
    os.write(1, f"worker: stopped by signal {signum}\n".encode())
    os._exit(EXIT_INTERRUPTED)


def _stop(signum, frame) -> None:
    # The pipeline survives SIGKILL at almost any instant (state.json is written before and
    # after every step; resume stashes a half-done turn and reruns an unfinished run), so
    # the cleanest stop is the quickest: kill the run or plot in progress and exit, except
    # in the short window after a model reply that the state does not record yet. This
    # handler runs in the main thread, which is paused meanwhile: deciding and exiting here
    # cannot race the idea's own progress.
    global _stop_signal
    if _stop_signal is None and signum == signal.SIGUSR1:
        return  # rechecks only mean something once a stop was asked for
    if _stop_signal is None:
        _stop_signal = signum
        if _reply_unrecorded():
            threading.Thread(target=_recheck, daemon=True).start()
            return
    elif _reply_unrecorded():
        return  # a recheck (SIGUSR1): still inside the window
    _exit_now(_stop_signal)


def _recheck() -> None:
    """Wake the main thread's handler until the window has closed; past the deadline, stop anyway."""
    deadline = time.monotonic() + STOP_WAIT_S
    while time.monotonic() < deadline:
        time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGUSR1)
    _exit_now(_stop_signal or signal.SIGTERM)


def _install_handlers() -> None:
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1):
        signal.signal(sig, _stop)


def _die_with_parent() -> None:
    """A scheduler killed outright (SIGKILL, lost terminal) takes its workers with it, so
    that no worker goes on unseen (the per-idea lock in run() keeps a second one out)."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        return  # not Linux: the per-idea lock still keeps a second worker out
    parent = os.environ.get(PARENT_ENV)
    if parent and os.getppid() != int(parent):
        _exit_now(signal.SIGTERM)  # the parent died before prctl took effect


def idea_config(cfg: HarnessConfig, name: str) -> HarnessConfig:
    """`scripted:FOLDER` gives each idea of a batch its own script, FOLDER/<idea name>.yaml."""
    if not cfg.model.startswith("scripted:"):
        return cfg
    path = Path(cfg.model.split(":", 1)[1])
    if not path.is_dir():
        return cfg
    script = path / f"{name}.yaml"
    if not script.is_file():
        raise UserError(f"{path} has no script {script.name} for idea '{name}'; add one, or pass "
                        f"scripted:FILE to use one script for every idea")
    return replace(cfg, model=f"scripted:{script}")


def slot_pool(batch_dir: Path, devices: list[str], name: str, args: argparse.Namespace) -> SlotPool:
    if args.slot_actor:
        from harness.batch.ray_slots import RaySlotPool

        pool = RaySlotPool(args.ray_address or "auto", args.slot_actor, name, devices, lease=args.slot_lease)
        # ray.init puts its own SIGTERM handler (sys.exit) in place of ours. A stop that
        # arrived meanwhile would end the worker without its own stop, so it is held back
        # until our handlers are back, then delivered to them.
        stops = {signal.SIGTERM, signal.SIGINT}
        signal.pthread_sigmask(signal.SIG_BLOCK, stops)
        try:
            pool.connect()
            _install_handlers()
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, stops)
        return pool
    return FileSlotPool(batch_dir / "slots", devices, name, log=batch_dir / HOLDS_LOG)


def _lock_idea(batch_dir: Path, name: str) -> int:
    """One worker per idea, ever: a second one would write into the same workspace."""
    path = batch_dir / "workers" / f"{name}.lock"
    path.parent.mkdir(exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"idea '{name}' of {batch_dir} is being worked on by another process; "
                        f"stop that one first") from None
    return fd  # held until this process exits


def run(batch_dir: Path, name: str, args: argparse.Namespace) -> int:
    record = load_batch(batch_dir)
    if name not in record.ideas:
        raise UserError(f"{batch_dir} has no idea named '{name}'")
    _lock_idea(batch_dir, name)
    cfg = idea_config(apply_values(HarnessConfig(), record.config, f"{batch_dir}/batch.json"), name)
    console = Console(highlight=False, width=160, force_terminal=False)
    from harness.agent import (
        models,  # the same model choice as a lone idea (live, scripted, replay, ...)
    )
    from harness.pipeline import new_idea, resume_idea, run_stages

    idea_file = batch_dir / "ideas" / f"{name}.json"
    choice = models.resolve(cfg, load_idea(idea_file), console)
    console.print(choice.note)
    entry = record.ideas[name]
    ws = entry.workspace or read_worker_note(batch_dir, name).get("workspace", "")
    global _workspace
    if ws and (Path(ws) / "state.json").is_file():
        # A worker stopped mid-commit leaves git's index.lock behind; holding the idea's
        # lock, this process is the only one that can be writing to the repository.
        Path(ws, ".git", "index.lock").unlink(missing_ok=True)
        ctx = resume_idea(cfg, Path(ws), choice.settings, console)
    else:
        ctx = new_idea(cfg, idea_file, choice.settings, console)
        write_worker_note(batch_dir, name, ctx.path)
    _workspace = ctx.path
    if choice.server is not None:  # a resumed idea goes on with its script where it stopped
        choice.server.persist(ctx.path / ".harness" / "model_server.json")
    ctx.slots = slot_pool(batch_dir, record.devices, name, args)
    state = run_stages(ctx)
    print(f"worker: idea {name} {state.status}{': ' + state.error if state.error else ''}", flush=True)
    return EXIT_DONE if state.status == "done" else EXIT_STOPPED


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m harness.batch.worker")
    ap.add_argument("batch_dir", type=Path)
    ap.add_argument("idea")
    ap.add_argument("--ray-address", default=None)
    ap.add_argument("--slot-actor", default=None, help="name of the Ray slot-pool actor (Ray backend)")
    ap.add_argument("--slot-lease", default=None, help="what the scheduler calls this worker's slot holds")
    args = ap.parse_args(argv)
    _install_handlers()
    _die_with_parent()
    try:
        return run(args.batch_dir.resolve(), args.idea, args)
    except UserError as exc:
        print(f"run_harness: error: {exc}", file=sys.stderr, flush=True)
        return EXIT_USER_ERROR
    except Exception:  # noqa: BLE001 - any bug here must end as a recorded, failed idea
        traceback.print_exc()
        sys.stderr.flush()
        return EXIT_CRASH


if __name__ == "__main__":
    from harness.quick_exit import exit_without_teardown

    exit_without_teardown(main())
