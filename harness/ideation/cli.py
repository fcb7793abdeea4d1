"""`run_harness.py ideas`: generate N idea files for a template, each novelty-checked.

    run_harness.py ideas --template sae_variants --n 5 --model claude-sonnet-4-5
    run_harness.py ideas --template toy --n 3 --model scripted:demo/x.yaml --sources offline

Exit status: 0 when the folder holds N ideas, 1 when ideation stopped early (API down,
budget spent, too many dropped drafts: run the same command to continue), 2 on bad input.
"""

from __future__ import annotations

import argparse
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
)

from harness.arguments import subparser
from harness.config import build_config, field_docs
from harness.errors import IdeaStopped, UserError
from harness.ideation.literature.chain import SOURCES

EXIT_OK, EXIT_STOPPED = 0, 1


def build_parser() -> argparse.ArgumentParser:
    docs = field_docs()
    p = subparser("ideas", "Have a model propose research ideas for a template, refine them, check each against "
                  "the literature, and write them as idea files that `batch` can run.",
                  epilog="Literature: Semantic Scholar (key: S2_API_KEY), then OpenAlex (OPENALEX_EMAIL or "
                         "OPENALEX_API_KEY), then the offline index (latex_template/references.bib). "
                         "SAE_HARNESS_S2_URL / SAE_HARNESS_OPENALEX_URL change their base URLs; answers are "
                         "cached under ~/.cache/sae_harness/literature (SAE_HARNESS_LITERATURE_CACHE).")
    p.add_argument("--template", help=f"{docs['template']} (default: sae_variants)")
    p.add_argument("--n", type=int, default=5, metavar="N", help="ideas the output folder should hold (default: 5)")
    p.add_argument("--model", help=docs["model"])
    p.add_argument("--api-base", dest="api_base", metavar="URL", help=docs["api_base"])
    p.add_argument("--config", type=Path, metavar="FILE", help="YAML file of harness settings (model, budget, ...)")
    p.add_argument("--reflections", type=int, default=3, metavar="R",
                   help="refinement rounds after the first draft; the model may stop earlier (default: 3)")
    p.add_argument("--novelty-rounds", dest="novelty_rounds", type=int, default=3, metavar="K",
                   help="literature searches per idea before it must decide (default: 3)")
    p.add_argument("--sources", metavar="LIST", default=None,
                   help=f"literature sources in the order tried (default: {','.join(SOURCES)})")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help="output folder; an existing one is continued (default: ideas/generated/<timestamp>/)")
    p.add_argument("--seed-ideas", dest="seed_ideas", type=Path, action="append", default=[], metavar="DIR",
                   help="folder of ideas the model sees and must not repeat (repeatable)")
    p.add_argument("--budget-usd", dest="budget_usd", metavar="USD", help=docs["budget_usd"])
    p.add_argument("--budget-tokens", dest="budget_tokens", metavar="N", help=docs["budget_tokens"])
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if args.n < 1:
        raise UserError(f"--n must be at least 1, got {args.n}")
    if args.reflections < 0 or args.novelty_rounds < 1:
        raise UserError("--reflections must be 0 or more and --novelty-rounds at least 1")
    for folder in args.seed_ideas:
        if not folder.is_dir():
            raise UserError(f"--seed-ideas {folder} is not a folder; pass a folder of idea JSON files")
    cfg = build_config(args.config, {"template": args.template, "model": args.model, "api_base": args.api_base,
                                     "budget_usd": args.budget_usd, "budget_tokens": args.budget_tokens})
    from harness.ideation.literature.chain import Literature, settings_from_env
    from harness.template import load_template

    spec = load_template(cfg.template)
    lit_settings = settings_from_env(args.sources)
    out = args.out or Path("ideas") / "generated" / datetime.now().strftime("%Y%m%d_%H%M%S")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; pass a folder")
    console = Console(highlight=False, soft_wrap=True)

    from harness.agent import models

    choice = models.resolve(cfg, None, console)  # a missing key fails here, in one line
    from harness.ideation.chat import ChatClient, ChatSettings
    from harness.ideation.generate import Ideation, IdeationPlan, idea_files

    s = choice.settings
    chat_settings = ChatSettings(model=s.model, api_base=s.api_base, api_key=s.api_key, timeout=s.request_timeout,
                                 attempts=s.attempts, retry_wait=s.retry_wait, budget_usd=s.budget_usd,
                                 budget_tokens=s.budget_tokens)
    out.mkdir(parents=True, exist_ok=True)
    plan = IdeationPlan(spec=spec, n=args.n, out=out, reflections=args.reflections,
                        novelty_rounds=args.novelty_rounds, seed_dirs=list(args.seed_ideas))
    console.print(f"[yellow]{choice.note}[/]")
    console.print(f"ideas for template {spec.name} -> {out} (literature: {', '.join(lit_settings.sources)})")
    chat = ChatClient(chat_settings, out)
    status = EXIT_OK
    with Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                  console=console, transient=True) as progress:
        task = progress.add_task("ideas", total=args.n, completed=len(idea_files(out)))

        def say(text: str) -> None:
            progress.console.print(text)
            progress.update(task, completed=min(len(idea_files(out)), args.n))

        try:
            ideation = Ideation(plan, chat, Literature(lit_settings, say), say,
                                step=lambda text: progress.update(task, description=text))
            tally = ideation.run()
        except IdeaStopped as exc:
            say(f"stopped: {exc}")
            from harness.ideation.generate import Tally

            tally, status = Tally.load(out), EXIT_STOPPED
        finally:
            if choice.server is not None:
                choice.server.stop()
    have = len(idea_files(out))
    if have < args.n:
        status = EXIT_STOPPED
    console.print(f"{have} of {args.n} ideas in {out}; this session: {chat.calls} model calls. So far: "
                  f"{tally.malformed_dropped} malformed drafts and {tally.refinements_dropped} refinements dropped, "
                  f"{tally.duplicates_dropped} duplicates dropped, {tally.not_novel} judged not novel, "
                  f"{tally.undecided} undecided; {chat.tokens:,} tokens, ${chat.cost:.4f} (chat log: "
                  f"{out / 'chat.jsonl'})")
    if status == EXIT_STOPPED:
        console.print(f"continue: python run_harness.py ideas {' '.join(argv)}"
                      + ("" if args.out else f" --out {out}"))
    else:
        console.print(f"run them: python run_harness.py batch {out}" + (f" --template {cfg.template}"))
    return status
