"""Starting and resuming batches from the command line.

`run_harness.py --idea a.json --idea b.json ...`, `run_harness.py batch ideas/` and
`run_harness.py --resume <batch folder>` all end up in run_batch(). Everything that can
be wrong with the input is checked before the batch folder is made.
"""

from __future__ import annotations

import argparse
import fcntl
import os
import shutil
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from rich.console import Console

from harness.batch.record import BatchRecord, IdeaEntry, is_batch_dir, load_batch, new_batch_dir, save_batch
from harness.batch.slots import slot_devices
from harness.config import HarnessConfig, apply_values
from harness.errors import UserError
from harness.ideas import load_idea

BATCH_KEYS = ("executor", "ray_address", "agents", "slots", "gpus")
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def add_batch_options(p: argparse.ArgumentParser, docs: dict[str, str], d: HarnessConfig) -> None:
    g = p.add_argument_group("batches (several --idea, `batch FOLDER`, or --resume of a batch folder)")
    g.add_argument("--executor", metavar="local|ray", help=f"{docs['executor']} (default: {d.executor})")
    g.add_argument("--ray-address", dest="ray_address", metavar="ADDR", help=docs["ray_address"])
    g.add_argument("--agents", metavar="N", help=docs["agents"])
    g.add_argument("--slots", metavar="N", help=docs["slots"])
    g.add_argument("--gpus", metavar="IDS", help=docs["gpus"])
    g.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                   help="with --resume of a batch: run its failed ideas again too")
    g.add_argument("--batch", dest="batch_mode", action="store_true", help=argparse.SUPPRESS)


def wants_batch(args: argparse.Namespace) -> bool:
    """Several ideas, the batch sub-command, a batch folder to resume, or a batch option on
    the command line (`--idea x.json --executor ray` means: run it on Ray)."""
    return bool(args.batch_mode or len(args.idea or []) > 1 or (args.resume and is_batch_dir(args.resume))
                or (args.idea and any(getattr(args, k) is not None for k in BATCH_KEYS)))


def main(argv: list[str]) -> int:
    """`run_harness.py batch PATH... [options]`: PATH is an idea file or a folder of them."""
    from harness.cli import run

    paths = []
    while argv and not argv[0].startswith("-"):
        paths.append(Path(argv.pop(0)))
    if not paths and argv and argv[0] in ("-h", "--help"):
        return run(["--help"])
    if not paths:
        raise UserError("batch needs idea files or a folder of them: run_harness.py batch ideas/ --model MODEL")
    files: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise UserError(f"{p} holds no idea files (*.json); pass a folder of ideas or the files themselves")
            files += found
        else:
            files.append(p)
    return run(["--batch", *[a for f in files for a in ("--idea", str(f))], *argv])


def _absolute(cfg: HarnessConfig) -> HarnessConfig:
    """Workers may start elsewhere (another node, another cwd): no relative paths in the record."""
    model = cfg.model
    if model.startswith("scripted:"):
        model = "scripted:" + str(Path(model.split(":", 1)[1]).resolve())
    template = cfg.template
    if Path(template).exists():
        template = str(Path(template).resolve())
    return replace(cfg, workspace_root=cfg.workspace_root.resolve(), model=model, template=template,
                   recordings=Path(cfg.recordings).resolve())


def _new_record(cfg: HarnessConfig, idea_paths: list[Path]) -> tuple[BatchRecord, dict[str, Path]]:
    from harness.batch.worker import idea_config
    from harness.sandbox import make_sandbox
    from harness.template import load_template

    ideas, seen = {}, {}
    for path in idea_paths:
        idea = load_idea(path)  # every idea is checked before any work starts
        if idea.name in seen:
            raise UserError(f"{seen[idea.name]} and {path} share the Name '{idea.name}'; give each idea its own Name")
        seen[idea.name] = path
        ideas[idea.name] = IdeaEntry(name=idea.name, title=idea.title, source=str(path.resolve()))
    load_template(cfg.template).merged_settings(cfg.template_settings)  # a bad setting fails now
    make_sandbox(cfg.sandbox, cfg.run_memory_gb, None)
    for name in ideas:
        idea_config(cfg, name)  # a per-idea script folder must have every idea's script
    record = BatchRecord(id="", created=datetime.now().isoformat(timespec="seconds"), config=cfg.to_dict(),
                         devices=slot_devices(cfg.slots, cfg.gpus), ideas=ideas)
    return record, seen


def _lock(batch_dir: Path) -> int:
    fd = os.open(batch_dir / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        raise UserError(f"batch {batch_dir} is already running in another process; "
                        f"stop it (Ctrl-C) before resuming it") from None
    return fd


def _preflight(cfg: HarnessConfig, idea_files: dict[str, Path], console: Console) -> None:
    """Every idea's model resolves (a missing key or recording fails now, in one line) and
    answers; the disk and TeX checks run once."""
    from harness import models
    from harness.batch.worker import idea_config
    from harness.preflight import check_model, preflight

    pinged: set[tuple[str, str | None]] = set()
    for name, path in idea_files.items():
        choice = models.resolve(idea_config(cfg, name), load_idea(path), console)
        key = (choice.settings.model, choice.settings.api_base)
        if not pinged:
            preflight(cfg, choice.settings)
        elif key not in pinged:
            check_model(choice.settings)
        pinged.add(key)
        if choice.server is not None:
            choice.server.stop()


def run_batch(args: argparse.Namespace, cfg: HarnessConfig, cli_values: dict, console: Console) -> int:
    if not console.is_terminal:
        # a log file or a pipe: rich would wrap the one-line-per-idea table at 80 columns
        console = Console(highlight=False, width=160)
    if args.resume:
        batch_dir = args.resume.resolve()
        record = load_batch(batch_dir)
        cfg = apply_values(HarnessConfig(), record.config, f"{batch_dir}/batch.json")
        cfg = _absolute(apply_values(cfg, {k: v for k, v in cli_values.items() if v is not None}, "command line"))
        record.config = cfg.to_dict()
        if cli_values.get("slots") is not None or cli_values.get("gpus") is not None:
            record.devices = slot_devices(cfg.slots, cfg.gpus)
        if args.retry_failed:
            for e in record.ideas.values():
                if e.status == "failed":
                    e.status = "queued"
        lock = _lock(batch_dir)
        _preflight(cfg, {n: batch_dir / "ideas" / f"{n}.json" for n, e in record.ideas.items()
                         if e.status in ("queued", "interrupted", "running")}, console)
    else:
        cfg = _absolute(cfg)
        record, sources = _new_record(cfg, list(args.idea))
        _preflight(cfg, sources, console)
        batch_dir = new_batch_dir(cfg.workspace_root)
        record.id = batch_dir.name
        (batch_dir / "ideas").mkdir()
        for name, path in sources.items():
            shutil.copyfile(path, batch_dir / "ideas" / f"{name}.json")
        lock = _lock(batch_dir)
    save_batch(batch_dir, record)
    try:
        return _run(batch_dir, record, cfg, console)
    finally:
        os.close(lock)


def _executor(cfg: HarnessConfig, batch_dir: Path, record: BatchRecord):
    if cfg.executor == "ray":
        from harness.batch.ray_executor import RayExecutor

        return RayExecutor(batch_dir, record.devices, cfg.ray_address, record.id)
    from harness.batch.executors import LocalExecutor

    return LocalExecutor(batch_dir, record.devices)


def _run(batch_dir: Path, record: BatchRecord, cfg: HarnessConfig, console: Console) -> int:
    from harness.batch.live import BatchView
    from harness.batch.scheduler import Scheduler
    from harness.store import Store

    agents = cfg.agents or 2 * len(record.devices)
    devices = ", ".join(f"{d}" for d in record.devices)
    console.print(f"batch {batch_dir}: {len(record.ideas)} ideas, {agents} at once, "
                  f"{len(record.devices)} slots ({devices}), executor {cfg.executor}", highlight=False, soft_wrap=True)
    store = Store.for_root(cfg.workspace_root)
    try:
        record = Scheduler(batch_dir, record, _executor(cfg, batch_dir, record), agents,
                           BatchView(console, record, store), store).run()
        _reports(batch_dir, record, store, console)
    finally:
        store.close()
    counts = record.counts()
    say = lambda text: console.print(text, highlight=False, soft_wrap=True)  # noqa: E731
    say(f"batch {record.status}: {counts['done']} done, {counts['failed']} failed, "
        f"{counts['interrupted']} interrupted, {counts['queued']} not started")
    say(f"leaderboard: python run_harness.py leaderboard --batch {batch_dir} --workspace-root {cfg.workspace_root}")
    if record.status == "interrupted":
        say(f"resume: python run_harness.py --resume {batch_dir}")
        return EXIT_INTERRUPTED
    return EXIT_OK if counts["done"] == len(record.ideas) else EXIT_FAILED


def _reports(batch_dir: Path, record: BatchRecord, store, console: Console) -> None:
    from harness.report import write_batch_report

    try:
        index = write_batch_report(batch_dir, store)
    except Exception as exc:  # noqa: BLE001 - a report bug must not hide the batch's outcome
        console.print(f"report: could not be written ({type(exc).__name__}: {exc})", highlight=False, soft_wrap=True)
        return
    console.print(f"report: {index}", highlight=False, soft_wrap=True)
