"""Command line: `python run_harness.py --idea ideas/x.json --model MODEL`.

User errors (bad idea file, bad config value, missing key or tool) print one line and
exit with status 2; an idea that stops (budget, API down, failing runs) exits 1 with
everything done so far kept in its workspace for `--resume`.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness.agent import models
from harness.arguments import (
    BATCH_KEYS,
    Parser,
    add_batch_options,
    add_idea_options,
    option_values,
)
from harness.config import HarnessConfig, apply_values, build_config
from harness.errors import UserError
from harness.execution.sandbox import make_sandbox
from harness.ideas import check_declared_metric, load_idea
from harness.progress import run_table
from harness.records.state import load_state
from harness.template import load_template

EXIT_OK, EXIT_STOPPED, EXIT_USER_ERROR = 0, 1, 2


def build_parser() -> argparse.ArgumentParser:
    p = Parser(
        prog="run_harness.py",
        description="Have a coding agent implement a sparse-autoencoder research idea in a fresh git "
                    "workspace, run its experiments against a baseline, and record everything in git.",
        epilog="Settings not given here come from --config, then from the defaults shown.",
    )
    p.add_argument("--idea", action="append", type=Path, metavar="PATH",
                   help="idea JSON file (repeat for several: they run at once, as a batch)")
    p.add_argument("--resume", type=Path, metavar="WORKSPACE",
                   help="continue an interrupted or stopped idea (a workspace folder) or batch (a batch folder)")
    add_idea_options(p)
    add_batch_options(p, "batches (several --idea, `batch FOLDER`, or --resume of a batch folder)")
    p.epilog += (" Sub-commands: `history WORKSPACE` lists the agent's edits, `batch FOLDER|FILES` runs ideas at once, `leaderboard` ranks them, "
                 "`report WORKSPACE|BATCH` writes HTML, `review WORKSPACE` reviews a finished paper, "
                 "`ideas --template T --n N` generates novelty-checked idea files; each has its own --help.")
    return p


def _wants_batch(args: argparse.Namespace) -> bool:
    """Several ideas, a batch folder to resume, or a batch option on the command line
    (`--idea x.json --executor ray` means: run it on Ray)."""
    from harness.records.batch import is_batch_dir

    return bool(len(args.idea or []) > 1 or (args.resume and is_batch_dir(args.resume))
                or (args.idea and any(getattr(args, k) is not None for k in BATCH_KEYS)))


def _summary(console: Console, rows: list[tuple]) -> None:
    table = Table(title="Ideas")
    for col in ("idea", "status", "runs", "note"):
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(x) for x in row[:4]])
    console.print(table)


SUBCOMMANDS = {"history": "harness.history", "batch": "harness.batch.cli", "leaderboard": "harness.results.leaderboard",
               "report": "harness.report", "review": "harness.review_cli", "ideas": "harness.ideation.cli"}
"""`run_harness.py NAME ...`: sub-commands, each a module with main(argv) imported only when named."""


def run(argv: list[str]) -> int:
    if argv and argv[0] in SUBCOMMANDS:
        import importlib

        return importlib.import_module(SUBCOMMANDS[argv[0]]).main(argv[1:])
    args = build_parser().parse_args(argv)
    if not args.idea and not args.resume:
        raise UserError("nothing to do: pass --idea PATH (or --resume WORKSPACE)")
    if args.idea and args.resume:
        raise UserError("--idea and --resume cannot be combined; resume one workspace at a time")
    cli_values = option_values(args)
    cfg = build_config(args.config, cli_values)
    console = Console(stderr=False, highlight=False, soft_wrap=True)  # long paths stay on one line
    if _wants_batch(args):
        from harness.batch.cli import run_batch

        return run_batch(args.idea, args.resume, args.retry_failed, cfg, cli_values, console)

    if args.resume:
        saved = load_state(args.resume.resolve()).config
        # the workspace's own settings, then whatever this command line changes
        cfg = apply_values(HarnessConfig(), {k: v for k, v in saved.items()}, f"{args.resume}/state.json")
        cfg = apply_values(cfg, {k: v for k, v in cli_values.items() if v is not None}, "command line")
        jobs = [(args.resume.resolve(), load_idea(args.resume.resolve() / "idea.json"))]
    else:
        jobs = [(path, load_idea(path)) for path in args.idea]  # every idea is checked before any work
        spec = load_template(cfg.template)
        spec.merged_settings(cfg.template_settings)  # a bad setting fails now
        for path, idea in jobs:
            check_declared_metric(idea, [m.name for m in spec.metrics], str(path))
        make_sandbox(cfg.sandbox, cfg.run_memory_gb, None)  # 'namespace' where bubblewrap cannot run
    choices = [models.resolve(cfg, idea, console) for _, idea in jobs]  # a missing key fails here

    # imported only now: aider and litellm take seconds to load, and bad input should not wait
    from harness.pipeline import new_idea, resume_idea, run_stages
    from harness.preflight import preflight

    for choice in choices:
        preflight(cfg, choice.settings)

    rows, status = [], EXIT_OK
    for (path, _), choice in zip(jobs, choices):
        console.print(f"[yellow]{choice.note}[/]")
        if args.resume:
            ctx = resume_idea(cfg, path, choice.settings, console)
        else:
            ctx = new_idea(cfg, path, choice.settings, console)
        if choice.server is not None:
            choice.server.persist(ctx.path / ".harness" / "model_server.json")
        state = run_stages(ctx)
        if choice.server is not None and choice.server.beyond:
            console.print(f"[yellow]{choice.server.beyond} request(s) came after the recording's last reply "
                          "and were answered with no change[/]")
        runs = len([r for r in state.done_runs() if r.index > 0])
        if state.done_runs():
            console.print(run_table(ctx.spec, ctx.path, state))
        paper = ctx.path / "paper.pdf"
        note = state.error or ("paper.pdf written" if paper.exists() else state.experiments.stop_reason)
        rows.append((state.idea, state.status, runs, note, ctx.path))
        if state.status != "done":
            status = EXIT_STOPPED
    _summary(console, rows)
    for row in rows:  # whole paths, unwrapped, for copying
        paper = Path(row[4]) / "paper.pdf"
        console.print(f"{row[0]}: {'paper ' + str(paper) if paper.exists() else 'workspace ' + str(row[4])}",
                      soft_wrap=True)
    return status


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    # A shell script that starts the harness with `&` hands it SIGINT ignored, and Python then
    # never raises KeyboardInterrupt: `kill -INT` (what Ctrl-C sends) would be lost. The stop
    # below is the clean one, so take the signal back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return run(argv)
    except UserError as exc:
        print(f"run_harness: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("run_harness: interrupted; continue with --resume WORKSPACE", file=sys.stderr)
        return 130
