"""The Ray backend: one Ray task per idea, which runs the same worker process as the local
backend on whichever node Ray chooses; device slots come from a Ray actor.

The task starts the worker as a child process rather than running the pipeline inside
the Ray worker: Ray reuses its worker processes, and an idea leaves state behind
(aider and litellm globals, logging handlers, a scripted server); a fresh process per
idea is also what makes a stop clean (the worker takes down its experiment, then exits).

Across several nodes, the workspace root must be on a file system every node sees, as
must this repository (the workers import the harness from it).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import ray

from harness.batch.backends import (
    IdeaExecutor,
    JobResult,
    WorkerCommand,
    default_command,
    worker_env,
)
from harness.batch.ray_slots import NAMESPACE, NODE_ENV, SlotPoolActor, init_ray
from harness.config import REPO_ROOT
from harness.execution.process import _PROVIDER as PROVIDER_VAR
from harness.execution.process import kill_group
from harness.execution.slots import HOLDS_LOG, Hold, append_hold

STOP_GRACE_S = 25.0
"""How long the task waits for its worker to stop (the worker itself waits at most 15 s)."""


@ray.remote(num_cpus=0, max_retries=0)
def run_worker(argv: list[str], log_path: str, env: dict[str, str], actor_name: str) -> dict:
    """The Ray task of one idea: its worker process, from start to exit.

    A stop comes through the slot actor (closed by the scheduler), not through
    ray.cancel(): a cancelled task is reported finished at once, and the scheduler would
    then shut Ray down, and with it the worker, before the worker had stopped in order."""
    node = ray.get_runtime_context().get_node_id()  # the node running this task, hence the worker
    env = {**os.environ, **env, "HARNESS_BATCH_PARENT": str(os.getpid()), NODE_ENV: node}
    actor = ray.get_actor(actor_name, namespace=NAMESPACE)
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env)
    try:
        checked = time.monotonic()
        while (code := proc.poll()) is None:
            time.sleep(0.1)
            if time.monotonic() - checked > 1.0:
                checked = time.monotonic()
                if ray.get(actor.is_closing.remote()):
                    code = _stop_worker(proc)
                    break
    except BaseException:  # a forced cancel, or Ray going away: still stop the worker in order
        _stop_worker(proc)
        raise
    finally:
        kill_group(proc.pid, grace_s=1.0)
    return {"exit_code": code,
            "node": f"{socket.gethostname()} (ray node {node[:8]})"}


def _stop_worker(proc: subprocess.Popen) -> int:
    try:
        os.kill(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=STOP_GRACE_S)
    except subprocess.TimeoutExpired:
        kill_group(proc.pid, grace_s=0.5)
        return proc.wait()


class RayExecutor(IdeaExecutor):
    name = "ray"

    def __init__(self, batch_dir: Path, devices: list[str], address: str | None, batch_id: str,
                 command: WorkerCommand | None = None):
        self.batch_dir, self.devices, self.address = batch_dir, devices, address
        self.command = command or default_command(batch_dir)
        self.actor_name = f"slots-{batch_id}-{os.getpid()}"
        self.refs: dict[ray.ObjectRef, tuple[str, str]] = {}
        self.actor = None
        self._connected = False
        (batch_dir / "logs").mkdir(exist_ok=True)

    def start(self) -> None:
        self._connected = not ray.is_initialized()
        # A local instance needs almost no object store (tasks pass a few strings); the
        # default takes a third of the memory and falls back to /tmp in small containers.
        local = {"include_dashboard": False, "object_store_memory": 128 * 1024 ** 2} if self.address is None else {}
        # the Ray workers import this package: same path on every node (see the module docstring)
        init_ray(self.address, runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}}, **local)
        self.actor = SlotPoolActor.options(name=self.actor_name, namespace=NAMESPACE).remote()
        self.gcs = ray.get_runtime_context().gcs_address

    def submit(self, name: str, attempt: int) -> None:
        lease = f"{name}#{attempt}"
        argv = self.command(name, ["--ray-address", self.gcs, "--slot-actor", self.actor_name,
                                   "--slot-lease", lease])
        # on a cluster the workers do not inherit this shell: hand them the model's API keys
        env = {k: v for k, v in worker_env().items()
               if k in ("PYTHONPATH", "PYTHONUNBUFFERED") or PROVIDER_VAR.match(k)}
        # SPREAD: the task asks for no CPU, so the default policy, which keeps work on the node
        # that got the request until that node is half busy, would put every idea on one node
        ref = run_worker.options(scheduling_strategy="SPREAD").remote(
            argv, str(self.batch_dir / "logs" / f"{name}.log"), env, self.actor_name)
        self.refs[ref] = (name, lease)

    def wait(self, timeout: float) -> list[JobResult]:
        if not self.refs:
            return []
        first, rest = ray.wait(list(self.refs), num_returns=1, timeout=timeout)
        if first and rest:
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            first += more
        return [self._result(ref) for ref in first]

    def _result(self, ref) -> JobResult:
        name, lease = self.refs.pop(ref)
        try:
            out = ray.get(ref)
            result = JobResult(name, out["exit_code"], node=out["node"])
        except ray.exceptions.TaskCancelledError:
            result = JobResult(name, 130, error="stopped")
        except ray.exceptions.RayError as exc:  # the node or the Ray worker was lost
            result = JobResult(name, None, error=f"Ray lost the worker: {type(exc).__name__}: "
                                                 f"{' '.join(str(exc).split())[:200]}")
        ray.get(self.actor.release_lease.remote(lease))
        return result

    def stop(self, grace_s: float) -> list[JobResult]:
        # no slot for anyone from now on, and every task stops its worker within a second
        ray.get(self.actor.close.remote())
        out: list[JobResult] = []
        deadline = time.monotonic() + grace_s
        while self.refs and time.monotonic() < deadline:
            ready, _ = ray.wait(list(self.refs), num_returns=1, timeout=max(0.0, deadline - time.monotonic()))
            out += [self._result(ref) for ref in ready]
        for ref in list(self.refs):
            ray.cancel(ref, force=True)
            out.append(self._result(ref))
        return out

    def busy_slots(self) -> list[dict]:
        try:
            return ray.get(self.actor.busy_slots.remote(), timeout=2)
        except ray.exceptions.GetTimeoutError:
            return []

    def close(self) -> None:
        if self.actor is not None:
            # the actor dies with this driver: keep its record of slot holds with the batch
            for h in ray.get(self.actor.holds.remote()):
                append_hold(self.batch_dir / HOLDS_LOG, Hold(**h))
        if self._connected:
            ray.shutdown()  # a local instance ends; from a cluster, this driver just disconnects
