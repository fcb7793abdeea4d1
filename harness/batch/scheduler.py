"""The batch scheduler: keeps up to `agents` idea workers going, records how each ends.

It is backend-agnostic (an IdeaExecutor starts and stops the workers) and never looks
inside an idea beyond its state.json: a worker that ends is recorded as done, failed
(with the reason, in one line) or interrupted, and the next idea in the queue starts. A
failing or crashing idea never stops the others.

Ctrl-C (or SIGTERM) stops the batch in order: every worker takes down its experiment and
exits, the ideas are recorded as interrupted, and `--resume BATCH` starts them again from
where their workspaces say they were.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from pathlib import Path

from harness.batch.backends import IdeaExecutor, JobResult
from harness.batch.live import BatchView
from harness.batch.worker import (
    EXIT_CRASH,
    EXIT_INTERRUPTED,
    EXIT_STOPPED,
    EXIT_USER_ERROR,
)
from harness.errors import UserError
from harness.records.batch import BatchRecord, read_worker_note, save_batch
from harness.records.state import load_state
from harness.results.store import Store

POLL_S = 0.5
STOP_GRACE_S = 30.0


def _last_line(path: Path, prefix: str = "") -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(encoding="utf-8", errors="replace").splitlines() if ln.strip()]
    except FileNotFoundError:
        return ""
    if prefix:
        lines = [ln for ln in lines if ln.startswith(prefix)] or lines
    return lines[-1] if lines else ""


class Scheduler:
    def __init__(self, batch_dir: Path, record: BatchRecord, executor: IdeaExecutor, agents: int,
                 view: BatchView, store: Store | None):
        self.batch_dir, self.record, self.executor, self.agents = batch_dir, record, executor, agents
        self.view, self.store = view, store
        self.stopping = False
        self.stop_requested = False

    # --- bookkeeping ----------------------------------------------------------------
    def save(self) -> None:
        save_batch(self.batch_dir, self.record)

    def _state(self, name: str):
        e = self.record.ideas[name]
        if not e.workspace:
            e.workspace = read_worker_note(self.batch_dir, name).get("workspace", "")
        if not e.workspace:
            return None
        try:
            return load_state(Path(e.workspace))
        except UserError:
            return None

    def _sync(self, name: str) -> None:
        e = self.record.ideas[name]
        if self.store is not None and e.workspace and Path(e.workspace, "state.json").is_file():
            self.store.sync_workspace(Path(e.workspace), batch=self.record.id)

    def recover(self) -> None:
        """After a scheduler that died: ideas it had running are interrupted, unless their
        workspace says they finished (the worker got there, the record did not)."""
        for name, e in self.record.ideas.items():
            if e.status != "running":
                continue
            state = self._state(name)
            e.status = "done" if state is not None and state.status == "done" else "interrupted"
            e.reason = "" if e.status == "done" else "the scheduler stopped before this idea finished"
        self.save()

    # --- the loop -------------------------------------------------------------------
    def run(self) -> BatchRecord:
        self.recover()
        queue = deque(n for n, e in self.record.ideas.items() if e.status in ("queued", "interrupted"))
        self.record.status = "running"
        self.save()
        # Ctrl-C and SIGTERM only set a flag, which the loop reads between steps: a
        # KeyboardInterrupt raised at an arbitrary point could land in code that swallows it,
        # and a process started with SIGINT ignored (as some launchers do) would never see one.
        previous = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        self.executor.start()
        try:
            with self.view:
                try:
                    while (queue or self._running()) and not self.stop_requested:
                        while queue and len(self._running()) < self.agents and not self.stop_requested:
                            self._launch(queue.popleft())
                        for result in self.executor.wait(POLL_S):
                            self._finish(result)
                        self._refresh()
                    if self.stop_requested:
                        self._stop()
                    else:
                        self.record.status = "done"
                except KeyboardInterrupt:
                    self._stop()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.executor.close()
            for name in self.record.ideas:
                self._sync(name)
            self.save()
        self.view.final()
        return self.record

    def _running(self) -> list[str]:
        return [n for n, e in self.record.ideas.items() if e.status == "running"]

    def _launch(self, name: str) -> None:
        e = self.record.ideas[name]
        e.status, e.attempts, e.started, e.finished = "running", e.attempts + 1, time.time(), None
        e.reason, e.exit_code = "", None
        self.save()
        self.executor.submit(name, e.attempts)
        self.view.event(f"{name}: started" + (f" (attempt {e.attempts})" if e.attempts > 1 else ""))

    def _finish(self, r: JobResult) -> None:
        e = self.record.ideas[r.name]
        state = self._state(r.name)
        e.exit_code, e.finished, e.node = r.exit_code, time.time(), r.node
        if r.exit_code == 0 and state is not None and state.status == "done":
            e.status, e.reason = "done", ""
        elif r.exit_code == EXIT_INTERRUPTED or (self.stopping and r.exit_code is not None and r.exit_code < 0):
            e.status, e.reason = "interrupted", "stopped; continue with --resume " + str(self.batch_dir)
        else:
            e.status, e.reason = "failed", self._reason(r, state)
        self._sync(r.name)
        self.save()
        paper = Path(e.workspace, "paper.pdf") if e.workspace else None
        tail = e.reason or (f"paper: {paper}" if paper and paper.is_file() else "")
        self.view.event(f"{r.name}: {e.status}" + (f": {tail}" if tail else ""))

    def _reason(self, r: JobResult, state) -> str:
        log = self.batch_dir / "logs" / f"{r.name}.log"
        where = f"see {log}"
        if r.exit_code == EXIT_STOPPED and state is not None and state.error:
            return " ".join(state.error.split())
        if r.exit_code == EXIT_USER_ERROR:
            return _last_line(log, "run_harness: error:").removeprefix("run_harness: error:").strip()
        if r.exit_code == EXIT_CRASH:
            return f"harness error in the worker: {_last_line(log)[:300]}; {where}"
        if r.exit_code is None:
            return f"{r.error}; {where}"
        if r.exit_code < 0:
            return f"the worker was killed by signal {-r.exit_code} (out of memory?); {where}"
        if r.exit_code == 0:
            return f"the worker ended without finishing the idea; {where}"
        return f"the worker exited with status {r.exit_code}{': ' + r.error if r.error else ''}; {where}"

    def _refresh(self) -> None:
        changed = False
        for name in self._running():
            e = self.record.ideas[name]
            if not e.workspace and self._state(name) is not None:
                changed = True
            self._sync(name)
        if changed:
            self.save()
        self.view.update(self.executor.busy_slots())

    def _on_signal(self, signum, frame) -> None:
        if self.stopping:
            raise KeyboardInterrupt  # a second Ctrl-C while stopping: kill the workers at once
        self.stop_requested = True

    def _stop(self) -> None:
        self.stopping = True
        self.view.event("stopping: each running idea stops its experiment and exits "
                        "(Ctrl-C again to kill them at once)")
        try:
            results = self.executor.stop(STOP_GRACE_S)
        except KeyboardInterrupt:
            results = self.executor.stop(0.0)
        for r in results:
            self._finish(r)
        self.record.status = "interrupted"
