"""The three-idea batch on a real two-node Ray cluster, started on this machine with the
`ray` CLI: a head and a second node that joins it with `ray start --address`, each with a
custom resource of its own so that the test can tell which node id is which.

The batch runs through `--executor ray --ray-address`; batch.json must show ideas on both
nodes, the slot log must show each experiment holding a slot of the node its idea ran on,
and every idea must end with the runs, metrics and statuses of the same batch run locally
(the session's `local_batch`). Each node is a `ray start --block` in a session of its own
with its own temp folder, so that stopping it (SIGTERM, then SIGKILL of its process group)
touches nothing of another test's Ray instance: `ray stop` would stop every Ray process
on the machine.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from batchkit import CRASH, GOOD, Batch, run_batch
from conftest import REPO
from tests.support import child_env

RAY = REPO / ".venvs" / "harness" / "bin" / "ray"
PYTHON = REPO / ".venvs" / "harness" / "bin" / "python"
NODES = ("head_node", "second_node")
"""Each node's custom resource, in the order they start."""
START_S = 120.0
"""How long a node may take to come up on a loaded 2-core machine (about 5 s when idle)."""

# Small enough for a 2-core, 24 GiB machine shared with other jobs: one CPU each (the idea
# tasks ask for none), and Ray's smallest object store (the tasks pass a few strings).
NODE_LIMITS = ("--num-cpus", "1", "--memory", str(2 * 1024 ** 3), "--object-store-memory", str(80 * 1024 ** 2))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _group_members(pgids: set[int]) -> list[str]:
    """Command lines of the live processes in these process groups."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if fields[0] == "Z" or int(fields[2]) not in pgids:
                continue
            found.append((stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:150])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return found


@dataclass
class TwoNodeCluster:
    base: Path
    """Short on purpose: Ray's socket paths under it must fit in 107 characters."""
    env: dict[str, str]
    port: int = field(default_factory=_free_port)
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        self._start(NODES[0], "--head", "--port", str(self.port), "--include-dashboard", "false")
        self._start(NODES[1], "--address", self.address)

    def _start(self, resource: str, *where: str) -> None:
        log = self.base / f"{resource}.log"
        # --block: the node lives as long as this process, which takes its Ray processes
        # down with it on SIGTERM; its own session makes it a process group to sweep after
        cmd = [str(RAY), "start", *where, "--block", "--temp-dir", str(self.base / resource),
               "--resources", json.dumps({resource: 1}),
               "--dashboard-agent-listen-port", str(_free_port()), *NODE_LIMITS]
        with log.open("wb") as out:
            self.procs[resource] = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                    env=self.env, start_new_session=True)
        deadline = time.monotonic() + START_S
        while "Ray runtime started" not in log.read_text(errors="replace"):
            code = self.procs[resource].poll()
            assert code is None, f"`ray start` of {resource} exited with {code}:\n{log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"{resource} did not start in {START_S:g} s:\n{log.read_text()[-3000:]}"
            time.sleep(0.2)

    def node_ids(self) -> dict[str, str]:
        """{custom resource: node id} of the live nodes, as the cluster itself reports them."""
        script = ("import json, sys, ray\n"
                  "ray.init(address=sys.argv[1], logging_level='ERROR', log_to_driver=False)\n"
                  "print(json.dumps({r: n['NodeID'] for n in ray.nodes() if n['Alive'] for r in n['Resources']}))\n")
        r = subprocess.run([str(PYTHON), "-c", script, self.address], env=self.env, capture_output=True, text=True,
                           timeout=120)
        assert r.returncode == 0, r.stderr
        ids = json.loads(r.stdout.strip().splitlines()[-1])
        return {k: v for k, v in ids.items() if k in NODES}

    def stop(self) -> list[str]:
        """Stop both nodes, the second first; returns what is left of them (nothing, we hope)."""
        for resource in reversed(NODES):
            proc = self.procs.get(resource)
            if proc is None:
                continue
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        groups = {p.pid for p in self.procs.values()}
        deadline = time.monotonic() + 20
        while _group_members(groups) and time.monotonic() < deadline:
            time.sleep(0.5)
        left = _group_members(groups)
        for pgid in groups:  # whatever outlived its node (a stuck worker) must not outlive the test
            try:
                os.killpg(pgid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        return left


@pytest.fixture
def ray_cluster(tmp_path):
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="rc", dir="/tmp"))
    cluster = TwoNodeCluster(base, child_env(home, RAY_USAGE_STATS_ENABLED="0"))
    try:
        cluster.start()
        yield cluster
    finally:
        left = cluster.stop()
        shutil.rmtree(base, ignore_errors=True)
    assert not left, f"processes of the test's Ray nodes outlived `ray start --block`: {left}"


def _results(b: Batch) -> dict[str, dict]:
    """What an idea produced, free of paths, times and hosts: its status and exit code, and
    per run folder the run's status and final_info.json (less the training time)."""
    out = {}
    for name, e in b.record()["ideas"].items():
        ws = Path(e["workspace"])
        state = json.loads((ws / "state.json").read_text())
        runs = {}
        for folder in sorted(ws.glob("run_*")):
            info_path = folder / "final_info.json"
            info = json.loads(info_path.read_text()) if info_path.is_file() else None
            if info is not None:
                info.get("training results", {}).pop("train_seconds", None)
            runs[folder.name] = info
        out[name] = {"status": e["status"], "exit_code": e["exit_code"], "state": state["status"],
                     "stages": state["stages"], "runs": runs}
    return out


def test_a_batch_spreads_over_two_ray_nodes_with_the_results_of_a_local_batch(ray_cluster, local_batch, tmp_path):
    ids = ray_cluster.node_ids()
    assert set(ids) == set(NODES) and len(set(ids.values())) == 2, ids
    short = {node_id[:8]: resource for resource, node_id in ids.items()}

    b = run_batch(tmp_path, "--executor", "ray", "--ray-address", ray_cluster.address)
    assert b.result.returncode == 1, b.result.stdout + b.result.stderr  # the crashing idea fails, as locally
    assert "executor ray" in b.result.stdout

    # batch.json names each idea's node; both nodes ran at least one idea
    ran_on = {}
    for name, e in b.record()["ideas"].items():
        m = re.search(r"\(ray node ([0-9a-f]{8})\)", e["node"])
        assert m and m.group(1) in short, (name, e, ids, b.result.stdout[-3000:])
        ran_on[name] = m.group(1)
    assert {short[n] for n in ran_on.values()} == set(NODES), ran_on

    # every experiment and plot held a slot of the node its idea ran on, never of the other
    holds = b.holds()
    assert len(holds) == 2 * 3 + 4 + 1 + 2, holds  # as locally: 2 sweeps, 4 crashes, run_0, 2 plots
    assert all(ids[short[ran_on[h["holder"]]]] == h["node"] for h in holds), (ran_on, holds)
    # one slot per node: on one node, no two of them at once
    for node in ids.values():
        mine = sorted((h["acquired"], h["released"]) for h in holds if h["node"] == node)
        assert all(a2 >= r1 for (_, r1), (a2, _) in zip(mine, mine[1:])), (node, mine)

    # the same outcome as the local batch, run by run
    ray_results, local_results = _results(b), _results(local_batch)
    assert {n: r["status"] for n, r in ray_results.items()} == {GOOD[0]: "done", GOOD[1]: "done", CRASH: "failed"}
    assert set(ray_results[GOOD[0]]["runs"]) == {f"run_{i}" for i in range(4)}
    assert ray_results == local_results
