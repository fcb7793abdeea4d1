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

from harness.arguments import (
    add_batch_options,
    add_idea_options,
    option_values,
    subparser,
)
from harness.batch.slots import slot_devices
from harness.config import HarnessConfig, apply_values, build_config
from harness.errors import UserError
from harness.ideas import check_declared_metric, load_idea
from harness.records.batch import (
    BatchRecord,
    IdeaEntry,
    load_batch,
    new_batch_dir,
    save_batch,
)

EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130


def build_parser() -> argparse.ArgumentParser:
    p = subparser("batch", "Run many ideas at once: each in its own worker, sharing device slots.",
                  epilog="Settings not given here come from --config, then from the defaults.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="idea files, or folders of them")
    p.add_argument("--include-not-novel", dest="include_not_novel", action="store_true",
                   help="also run ideas whose novelty check said \"novel\": false (skipped otherwise)")
    add_idea_options(p)
    add_batch_options(p, "batch")
    return p


def main(argv: list[str]) -> int:
    """`run_harness.py batch PATH... [options]`: PATH is an idea file or a folder of them."""
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        raise UserError("batch needs idea files or a folder of them: run_harness.py batch ideas/ --model MODEL")
    args = build_parser().parse_args(argv)
    files: list[Path] = []
    for p in args.paths:
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise UserError(f"{p} holds no idea files (*.json); pass a folder of ideas or the files themselves")
            files += found
        else:
            files.append(p)
    files = [f for f in files if f.name != "ideation.json"]  # `ideas` keeps its tallies beside the ideas
    values = option_values(args)
    cfg = build_config(args.config, values)
    console = Console(stderr=False, highlight=False, soft_wrap=True)
    if not args.include_not_novel:
        files = _skip_not_novel(files, console)
    return run_batch(files, None, args.retry_failed, cfg, values, console)


def _skip_not_novel(files: list[Path], console: Console) -> list[Path]:
    """Ideas the `ideas` novelty check judged already done are left out, and each is named. A bare
    `"novel": false` without the check's evidence (hand-written files, other generators' output,
    the demo ideas) is not acted on: nothing says what it rests on."""
    keep = []
    for path in files:
        idea = load_idea(path)
        evidence = idea.raw.get("Novelty_Evidence")
        if idea.novel is False and isinstance(evidence, dict):
            papers = ", ".join(str(p.get("id", "?")) for p in evidence.get("papers", []) if isinstance(p, dict))
            console.print(f"skipping {path.name}: judged not novel ({papers or 'no papers named'}); "
                          "--include-not-novel runs it anyway", highlight=False, soft_wrap=True)
        else:
            keep.append(path)
    if not keep:
        raise UserError("every idea given was judged not novel; pass --include-not-novel to run them anyway")
    return keep


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
    from harness.execution.sandbox import make_sandbox
    from harness.template import load_template

    ideas, seen, loaded = {}, {}, []
    for path in idea_paths:
        idea = load_idea(path)  # every idea is checked before any work starts
        loaded.append((path, idea))
        if idea.name in seen:
            raise UserError(f"{seen[idea.name]} and {path} share the Name '{idea.name}'; give each idea its own Name")
        seen[idea.name] = path
        ideas[idea.name] = IdeaEntry(name=idea.name, title=idea.title, source=str(path.resolve()))
    spec = load_template(cfg.template)
    spec.merged_settings(cfg.template_settings)  # a bad setting fails now
    for path, idea in loaded:
        check_declared_metric(idea, [m.name for m in spec.metrics], str(path))
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
    from harness.agent import models
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


def run_batch(ideas: list[Path] | None, resume: Path | None, retry_failed: bool, cfg: HarnessConfig,
              cli_values: dict, console: Console) -> int:
    """Start a batch of `ideas`, or resume the batch folder `resume`."""
    if not console.is_terminal:
        # a log file or a pipe: rich would wrap the one-line-per-idea table at 80 columns
        console = Console(highlight=False, width=160)
    if resume:
        batch_dir = resume.resolve()
        record = load_batch(batch_dir)
        cfg = apply_values(HarnessConfig(), record.config, f"{batch_dir}/batch.json")
        cfg = _absolute(apply_values(cfg, {k: v for k, v in cli_values.items() if v is not None}, "command line"))
        record.config = cfg.to_dict()
        if cli_values.get("slots") is not None or cli_values.get("gpus") is not None:
            record.devices = slot_devices(cfg.slots, cfg.gpus)
        if retry_failed:
            for e in record.ideas.values():
                if e.status == "failed":
                    e.status = "queued"
        lock = _lock(batch_dir)
        _preflight(cfg, {n: batch_dir / "ideas" / f"{n}.json" for n, e in record.ideas.items()
                         if e.status in ("queued", "interrupted", "running")}, console)
    else:
        cfg = _absolute(cfg)
        record, sources = _new_record(cfg, list(ideas or []))
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
        from harness.batch.ray_backend import RayExecutor

        return RayExecutor(batch_dir, record.devices, cfg.ray_address, record.id)
    from harness.batch.backends import LocalExecutor

    return LocalExecutor(batch_dir, record.devices)


def _run(batch_dir: Path, record: BatchRecord, cfg: HarnessConfig, console: Console) -> int:
    from harness.batch.live import BatchView
    from harness.batch.scheduler import Scheduler
    from harness.results.store import Store

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
