"""Command-line options shared by the entry point and its sub-commands.

Every parser here turns a bad argument into a one-line UserError (exit status 2), like
every other user error. The idea options (what one idea runs with) and the batch options
(how many ideas share which devices) are defined once and added to both the main command
and `batch`, so each parses its own arguments.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.config import HarnessConfig, field_docs
from harness.errors import UserError

IDEA_KEYS = ("template", "model", "api_base", "max_runs", "seeds", "workspace_root", "budget_usd", "budget_tokens",
             "run_timeout", "stop_after", "writeup_without_results", "reviewers", "improve")
BATCH_KEYS = ("executor", "ray_address", "agents", "slots", "gpus")


class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")


def subparser(name: str, description: str, **kwargs) -> Parser:
    return Parser(prog=f"run_harness.py {name}", description=description, **kwargs)


def add_idea_options(p: argparse.ArgumentParser) -> None:
    docs, d = field_docs(), HarnessConfig()
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML file with any of the settings below")
    p.add_argument("--template", help=f"{docs['template']} (default: {d.template})")
    p.add_argument("--model", help=f"{docs['model']} Keys come from the usual environment variables.")
    p.add_argument("--api-base", dest="api_base", metavar="URL", help=docs["api_base"])
    p.add_argument("--max-runs", dest="max_runs", metavar="N", help=f"{docs['max_runs']} (default: {d.max_runs})")
    p.add_argument("--seeds", metavar="N", help=f"{docs['seeds']}")
    p.add_argument("--workspace-root", dest="workspace_root", metavar="DIR",
                   help=f"{docs['workspace_root']} (default: {d.workspace_root})")
    p.add_argument("--budget-usd", dest="budget_usd", metavar="USD", help=docs["budget_usd"])
    p.add_argument("--budget-tokens", dest="budget_tokens", metavar="N", help=docs["budget_tokens"])
    p.add_argument("--stop-after", dest="stop_after", metavar="STAGE",
                   help=f"{docs['stop_after']} (default: {d.stop_after})")
    p.add_argument("--run-timeout", dest="run_timeout", metavar="SECONDS", help=docs["run_timeout"])
    p.add_argument("--writeup-without-results", dest="writeup_without_results", action="store_const", const=True,
                   help=docs["writeup_without_results"])
    p.add_argument("--reviewers", metavar="N", help=f"{docs['reviewers']} (default: {d.reviewers})")
    p.add_argument("--improve", action="store_const", const=True, help=docs["improve"])


def add_batch_options(p: argparse.ArgumentParser, title: str) -> None:
    docs, d = field_docs(), HarnessConfig()
    g = p.add_argument_group(title)
    g.add_argument("--executor", metavar="local|ray", help=f"{docs['executor']} (default: {d.executor})")
    g.add_argument("--ray-address", dest="ray_address", metavar="ADDR", help=docs["ray_address"])
    g.add_argument("--agents", metavar="N", help=docs["agents"])
    g.add_argument("--slots", metavar="N", help=docs["slots"])
    g.add_argument("--gpus", metavar="IDS", help=docs["gpus"])
    g.add_argument("--retry-failed", dest="retry_failed", action="store_true",
                   help="with --resume of a batch: run its failed ideas again too")


def option_values(args: argparse.Namespace) -> dict:
    """The config values given on the command line (None where an option was not given)."""
    return {k: getattr(args, k, None) for k in (*IDEA_KEYS, *BATCH_KEYS)}
