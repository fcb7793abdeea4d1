"""Slot utilisation of the batch scheduler: 20 simulated ideas x 5 runs on 4 slots.

    .venvs/harness/bin/python bench/batch_sim.py [--scale 0.01] [--seed 0]

What is real and what is simulated. Real: the scheduler (harness.batch.scheduler), the
local executor (one worker process per idea, started, waited for and reaped as in a real
batch) and the file-lock device slots (harness.batch.slots) with their hold log. Simulated:
only the inside of an idea. Each worker process (this file, --worker) does five times:
sleep for the model's latency (the agent thinking), then hold a slot for the run's
duration (the experiment), exactly where a real worker would wait for and hold a slot.

Distributions, in simulated seconds (one simulated second = --scale real seconds):
  model latency of an agent turn   lognormal, median 20 s, sigma 0.5  (mean 22.7 s)
  duration of an experiment run    lognormal, median 60 s, sigma 0.3  (mean 62.8 s)
A warm SAE run takes about a minute (DESIGN.md, notes/sae-stack-offline.md); a coding-
agent turn 10-60 s. Each idea draws from its own seeded generator, so both schedules
below see exactly the same latencies and durations.

Two schedules, same code, different settings:
  slot per process   agents = 2 x slots = 8 ideas at once; a slot is held only while a
                     run lasts (the harness's default)
  one idea per slot  agents = slots = 4: with as many ideas as slots an idea never waits
                     for a slot, so this is the same as giving each idea a GPU for its
                     whole life; the slot idles while the idea's agent thinks

Utilisation = busy slot-seconds / (slots x window). "While work remains" ends the window
at the moment fewer ideas than slots are left unfinished (from then on idle slots are
nobody's fault); it starts at the first slot acquisition (before that every agent is on
its first turn under either schedule). The whole-run figure is printed too. Target:
>= 90 % while work remains.
"""

from __future__ import annotations

import argparse
import io
import math
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console  # noqa: E402

from harness.batch.backends import LocalExecutor  # noqa: E402
from harness.batch.live import BatchView  # noqa: E402
from harness.batch.scheduler import Scheduler  # noqa: E402
from harness.batch.slots import FileSlotPool  # noqa: E402
from harness.execution.slots import HOLDS_LOG, read_holds  # noqa: E402
from harness.records.batch import BatchRecord, IdeaEntry, load_batch, save_batch  # noqa: E402

IDEAS, RUNS, SLOTS = 20, 5, 4
LATENCY = (20.0, 0.5)   # lognormal median (s), sigma
DURATION = (60.0, 0.3)


def draws(seed: int, name: str) -> list[tuple[float, float]]:
    """(model latency, run duration) of each of an idea's runs, in simulated seconds."""
    rng = random.Random(f"{seed}-{name}")
    return [(rng.lognormvariate(math.log(LATENCY[0]), LATENCY[1]),
             rng.lognormvariate(math.log(DURATION[0]), DURATION[1])) for _ in range(RUNS)]


def worker(batch_dir: Path, name: str, scale: float, seed: int) -> int:
    record = load_batch(batch_dir)
    pool = FileSlotPool(batch_dir / "slots", record.devices, name, log=batch_dir / HOLDS_LOG)
    for i, (latency, duration) in enumerate(draws(seed, name), 1):
        time.sleep(latency * scale)
        with pool.hold(f"run_{i}"):
            time.sleep(duration * scale)
    return 0


def simulate(agents: int, scale: float, seed: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="batch_sim_") as tmp:
        batch_dir = Path(tmp)
        names = [f"idea_{i:02d}" for i in range(IDEAS)]
        record = BatchRecord(id="sim", created="", config={}, devices=[f"cuda:{i}" for i in range(SLOTS)],
                             ideas={n: IdeaEntry(name=n, title=n, source="") for n in names})
        save_batch(batch_dir, record)

        def command(name: str, extra: list[str]) -> list[str]:
            return [sys.executable, __file__, "--worker", str(batch_dir), name, "--scale", str(scale),
                    "--seed", str(seed)]

        view = BatchView(Console(file=io.StringIO()), record, None)
        record = Scheduler(batch_dir, record, LocalExecutor(batch_dir, record.devices, command), agents,
                           view, None).run()
        bad = [n for n, e in record.ideas.items() if e.exit_code != 0]
        if bad:
            raise SystemExit(f"simulated workers failed: {bad}; see {batch_dir}/logs")
        holds = read_holds(batch_dir / HOLDS_LOG)
        finished = sorted(e.finished for e in record.ideas.values())
    assert len(holds) == IDEAS * RUNS
    start = min(h.acquired for h in holds)
    end_all = max(h.released for h in holds)
    end_work = finished[IDEAS - SLOTS]  # after this finish, fewer than SLOTS ideas remain

    def util(t0: float, t1: float) -> float:
        busy = sum(max(0.0, min(h.released, t1) - max(h.acquired, t0)) for h in holds)
        return busy / (SLOTS * (t1 - t0))

    return {"agents": agents, "makespan": (end_all - start) / scale, "util_work": util(start, end_work),
            "util_all": util(start, end_all), "wait": sum(h.acquired - h.requested for h in holds) / len(holds) / scale,
            "window": (end_work - start) / scale}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scale", type=float, default=0.01, help="real seconds per simulated second (default 0.01)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--worker", nargs=2, metavar=("BATCH", "IDEA"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(Path(args.worker[0]), args.worker[1], args.scale, args.seed)

    sample = [d for i in range(IDEAS) for d in draws(args.seed, f"idea_{i:02d}")]
    lat = [a for a, _ in sample]
    dur = [b for _, b in sample]
    print(f"batch_sim: {IDEAS} ideas x {RUNS} runs on {SLOTS} slots; 1 simulated s = {args.scale} real s; "
          f"seed {args.seed}")
    print(f"  model latency per turn: lognormal(median {LATENCY[0]:g} s, sigma {LATENCY[1]}); "
          f"drawn: mean {sum(lat) / len(lat):.1f} s, min {min(lat):.1f}, max {max(lat):.1f}")
    print(f"  run duration:           lognormal(median {DURATION[0]:g} s, sigma {DURATION[1]}); "
          f"drawn: mean {sum(dur) / len(dur):.1f} s, min {min(dur):.1f}, max {max(dur):.1f}")
    print(f"  lower bound on the makespan: {sum(dur) / SLOTS:.0f} s of runs per slot")
    rows = [("slot per process", simulate(2 * SLOTS, args.scale, args.seed)),
            ("one idea per slot", simulate(SLOTS, args.scale, args.seed))]
    print(f"{'schedule':<18} {'agents':>6} {'makespan':>9} {'util while work remains':>23} "
          f"{'util whole run':>15} {'mean slot wait':>15}")
    for label, r in rows:
        print(f"{label:<18} {r['agents']:>6} {r['makespan']:>8.0f}s {r['util_work'] * 100:>22.1f}% "
              f"{r['util_all'] * 100:>14.1f}% {r['wait']:>14.1f}s")
    ok = rows[0][1]["util_work"] >= 0.90
    print(f"target >= 90% while work remains: {'met' if ok else 'NOT met'} "
          f"({rows[0][1]['util_work'] * 100:.1f}% over the first {rows[0][1]['window']:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
