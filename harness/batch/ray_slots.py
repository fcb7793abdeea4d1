"""Device slots for the Ray backend: a Ray actor that hands out slots per node, first come
first served, and the worker-side client with the same `hold()` as the file-lock pool.

Why an actor rather than a Ray task with num_gpus per experiment: the experiment must run
in the idea's workspace, on the idea's node, as a child of the idea's worker (which
records its process group for resume and kills it on stop). The actor only decides when
and on which device; the process stays where it is. A worker that dies while holding or
waiting for a slot cannot give it back, so the scheduler releases everything held under
that worker's lease when it sees the worker end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import deque
from dataclasses import asdict
from typing import Iterator

import ray

from harness.execution.slots import Hold, Slot

NAMESPACE = "sae-harness"
NODE_ENV = "HARNESS_RAY_NODE"
"""The Ray node id of the task that started an idea's worker, handed to the worker so that
it takes the slots of that node. Its own connection cannot tell: a driver attaches to the
head when several nodes share a host, whichever node started it."""


def init_ray(address: str | None, **kwargs) -> None:
    """Connect quietly: no usage-stats ping (no network here), no log echo, errors only
    (Ray's start-up banners would land between the batch's own lines)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if not ray.is_initialized():
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, logging_level=logging.ERROR,
                 **kwargs)


class _NodeSlots:
    def __init__(self, devices: list[str]):
        self.devices = list(devices)
        self.free: deque[int] = deque(range(len(devices)))
        self.waiters: deque[asyncio.Future] = deque()

    async def take(self) -> int:
        if self.free and not self.waiters:
            return self.free.popleft()
        fut = asyncio.get_running_loop().create_future()
        self.waiters.append(fut)
        return await fut

    def give(self, index: int) -> None:
        while self.waiters:
            fut = self.waiters.popleft()
            if not fut.done():
                fut.set_result(index)
                return
        self.free.append(index)


@ray.remote(num_cpus=0, max_concurrency=1000)
class SlotPoolActor:
    def __init__(self):
        self.nodes: dict[str, _NodeSlots] = {}
        self.busy: dict[tuple[str, int], dict] = {}
        self.gone: set[str] = set()
        self.log: list[dict] = []
        self.closing = False

    async def close(self) -> None:
        """The batch is stopping: from now on nobody gets a slot, and the tasks stop their workers."""
        self.closing = True

    async def is_closing(self) -> bool:
        return self.closing

    async def acquire(self, lease: str, holder: str, node: str, devices: list[str], label: str,
                      requested: float) -> tuple[int, str]:
        pool = self.nodes.setdefault(node, _NodeSlots(devices))
        index = await pool.take()
        if lease in self.gone or self.closing:  # its worker died, or is about to be stopped
            pool.give(index)
            await asyncio.Event().wait()  # never returns: the worker is stopped meanwhile
        self.busy[(node, index)] = {"lease": lease, "holder": holder, "label": label,
                                    "requested": requested, "since": time.time()}
        return index, pool.devices[index]

    async def release(self, lease: str, node: str, index: int) -> None:
        info = self.busy.get((node, index))
        if info is None or info["lease"] != lease:
            return  # already taken back by release_lease
        self._free(node, index, info)

    async def release_lease(self, lease: str) -> int:
        """Everything a worker that ended still holds or waits for goes back to the pool."""
        self.gone.add(lease)
        mine = [(k, v) for k, v in self.busy.items() if v["lease"] == lease]
        for (node, index), info in mine:
            self._free(node, index, info)
        return len(mine)

    def _free(self, node: str, index: int, info: dict) -> None:
        del self.busy[(node, index)]
        pool = self.nodes[node]
        self.log.append(asdict(Hold(index, pool.devices[index], info["holder"], info["label"], info["requested"],
                                    info["since"], time.time(), node=node)))
        pool.give(index)

    async def holds(self) -> list[dict]:
        return list(self.log)

    async def busy_slots(self) -> list[dict]:
        return [{"slot": i, "node": n, "device": self.nodes[n].devices[i], **v} for (n, i), v in self.busy.items()]


class RaySlotPool:
    """The worker's side: hold a slot of its own node for the length of one process."""

    def __init__(self, address: str, actor: str, holder: str, devices: list[str], lease: str | None = None):
        self.address, self.actor_name, self.holder, self.devices = address, actor, holder, list(devices)
        self.lease = lease or f"{holder}@{os.getpid()}"
        self._actor = None
        self._node = ""

    def connect(self):
        if self._actor is None:
            init_ray(self.address)
            self._actor = ray.get_actor(self.actor_name, namespace=NAMESPACE)
            self._node = os.environ.get(NODE_ENV) or ray.get_runtime_context().get_node_id()
        return self._actor

    @contextlib.contextmanager
    def hold(self, label: str) -> Iterator[Slot]:
        actor = self.connect()
        index, device = ray.get(actor.acquire.remote(self.lease, self.holder, self._node, self.devices, label,
                                                     time.time()))
        try:
            yield Slot.of_pool(index, self.devices)
        finally:
            ray.get(actor.release.remote(self.lease, self._node, index))
