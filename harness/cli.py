"""Command line: `python run_harness.py --idea ideas/x.json --model MODEL`.

User errors (bad idea file, bad config value, missing key or tool) print one line and
exit with status 2; an idea that stops (budget, API down, failing runs) exits 1 with
everything done so far kept in its workspace for `--resume`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from harness import models
from harness.config import HarnessConfig, apply_values, build_config, field_docs
from harness.errors import UserError
from harness.ideas import load_idea
from harness.progress import run_table
from harness.sandbox import make_sandbox
from harness.state import load_state
from harness.template import load_template

EXIT_OK, EXIT_STOPPED, EXIT_USER_ERROR = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and status 2, like every other user error
        raise UserError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    docs = field_docs()
    d = HarnessConfig()
    p = _Parser(
        prog="run_harness.py",
        description="Have a coding agent implement a sparse-autoencoder research idea in a fresh git "
                    "workspace, run its experiments against a baseline, and record everything in git.",
        epilog="Settings not given here come from --config, then from the defaults shown.",
    )
    p.add_argument("--idea", action="append", type=Path, metavar="PATH",
                   help="idea JSON file (repeat for several: they run at once, as a batch)")
    p.add_argument("--resume", type=Path, metavar="WORKSPACE",
                   help="continue an interrupted or stopped idea (a workspace folder) or batch (a batch folder)")
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML file with any of the settings below")
    p.add_argument("--template", help=f"{docs['template']} (default: {d.template})")
    p.add_argument("--model", help=f"{docs['model']} Keys come from the usual environment variables.")
    p.add_argument("--api-base", dest="api_base", metavar="URL", help=docs["api_base"])
    p.add_argument("--max-runs", dest="max_runs", metavar="N", help=f"{docs['max_runs']} (default: {d.max_runs})")
    p.add_argument("--workspace-root", dest="workspace_root", metavar="DIR",
                   help=f"{docs['workspace_root']} (default: {d.workspace_root})")
    p.add_argument("--budget-usd", dest="budget_usd", metavar="USD", help=docs["budget_usd"])
    p.add_argument("--budget-tokens", dest="budget_tokens", metavar="N", help=docs["budget_tokens"])
    p.add_argument("--stop-after", dest="stop_after", metavar="STAGE",
                   help=f"{docs['stop_after']} (default: {d.stop_after})")
    p.add_argument("--run-timeout", dest="run_timeout", metavar="SECONDS", help=docs["run_timeout"])
    from harness.batch.cli import add_batch_options

    add_batch_options(p, docs, d)
    p.epilog += (" Sub-commands: `history WORKSPACE` lists the agent's edits, `batch FOLDER|FILES` runs ideas at once, `leaderboard` ranks them, "
                 "`report WORKSPACE|BATCH` writes HTML; each has its own --help.")
    return p


def _summary(console: Console, rows: list[tuple]) -> None:
    table = Table(title="Ideas")
    for col in ("idea", "status", "runs", "note"):
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(x) for x in row[:4]])
    console.print(table)


SUBCOMMANDS = {"history": "harness.history", "batch": "harness.batch.cli", "leaderboard": "harness.leaderboard",
               "report": "harness.report"}
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
    from harness.batch.cli import BATCH_KEYS, run_batch, wants_batch

    cli_values = {k: getattr(args, k) for k in ("template", "model", "api_base", "max_runs", "workspace_root",
                                                "budget_usd", "budget_tokens", "run_timeout", "stop_after",
                                                *BATCH_KEYS)}
    cfg = build_config(args.config, cli_values)
    console = Console(stderr=False, highlight=False, soft_wrap=True)  # long paths stay on one line
    if wants_batch(args):
        return run_batch(args, cfg, cli_values, console)

    if args.resume:
        saved = load_state(args.resume.resolve()).config
        # the workspace's own settings, then whatever this command line changes
        cfg = apply_values(HarnessConfig(), {k: v for k, v in saved.items()}, f"{args.resume}/state.json")
        cfg = apply_values(cfg, {k: v for k, v in cli_values.items() if v is not None}, "command line")
        jobs = [(args.resume.resolve(), load_idea(args.resume.resolve() / "idea.json"))]
    else:
        jobs = [(path, load_idea(path)) for path in args.idea]  # every idea is checked before any work
        load_template(cfg.template).merged_settings(cfg.template_settings)  # a bad setting fails now
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
    try:
        return run(argv)
    except UserError as exc:
        print(f"run_harness: error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        print("run_harness: interrupted; continue with --resume WORKSPACE", file=sys.stderr)
        return 130
