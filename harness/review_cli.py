"""`run_harness.py review WORKSPACE`: the review stage on a workspace that already has a paper.

The same stage the pipeline runs after the writeup, for workspaces made before it existed
or reviewed again with another model. It uses the workspace's own settings (state.json)
with this command line's changes, and leaves the idea's status as it was.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from rich.console import Console

from harness.errors import IdeaStopped, UserError
from harness.records.state import ReviewProgress, load_state

EXIT_OK, EXIT_STOPPED = 0, 1


def main(argv: list[str]) -> int:
    from harness.arguments import subparser
    from harness.config import HarnessConfig, apply_values, field_docs

    docs, d = field_docs(), HarnessConfig()
    p = subparser("review", "Review a finished workspace's paper with N reviewers and a meta-review, "
                            "giving them the harness's evidence (claims check, runs, the agent's diff); "
                            "writes review.json in the workspace.")
    p.add_argument("workspace", type=Path, metavar="WORKSPACE", help="a workspace folder that has a paper")
    p.add_argument("--model", help=docs["model"])
    p.add_argument("--api-base", dest="api_base", metavar="URL", help=docs["api_base"])
    p.add_argument("--reviewers", metavar="N", help=f"{docs['reviewers']} (default: {d.reviewers})")
    p.add_argument("--improve", action="store_const", const=True, help=docs["improve"])
    p.add_argument("--budget-usd", dest="budget_usd", metavar="USD", help=docs["budget_usd"])
    p.add_argument("--budget-tokens", dest="budget_tokens", metavar="N", help=docs["budget_tokens"])
    p.add_argument("--again", action="store_true", help="review afresh even when review.json exists")
    args = p.parse_args(argv)
    ws = args.workspace.resolve()
    if not ws.is_dir():
        raise UserError(f"review {args.workspace}: no such folder; pass a workspace folder (workspaces/<name>)")
    state = load_state(ws)
    if not (ws / "latex" / "template.tex").is_file() and not (ws / "paper.pdf").is_file():
        raise UserError(f"{ws} has no paper yet (no latex/template.tex or paper.pdf); finish the idea first "
                        f"with `run_harness.py --resume {ws}`")
    cfg = apply_values(HarnessConfig(), state.config, f"{ws}/state.json")
    given = {k: getattr(args, k) for k in ("model", "api_base", "reviewers", "improve", "budget_usd", "budget_tokens")}
    cfg = apply_values(cfg, {k: v for k, v in given.items() if v is not None}, "command line")
    cfg = replace(cfg, workspace_root=ws.parent)
    done = state.stages.get("review") == "done"
    if done and not args.again and not (cfg.improve and not state.review.revised):
        print(f"{ws / 'review.json'} exists: {state.review.outcome} (pass --again to review afresh)")
        return EXIT_OK
    console = Console(highlight=False, soft_wrap=True)
    return _review(cfg, ws, args.again, console)


def _review(cfg, ws: Path, again: bool, console: Console) -> int:
    from harness.agent import models
    from harness.ideas import load_idea

    idea = load_idea(ws / "idea.json")
    choice = models.resolve(cfg, idea, console)  # a missing key fails here, before anything

    from harness.pipeline import resume_idea
    from harness.preflight import check_model, check_tex
    from harness.stages import review

    if cfg.improve:
        check_tex()
    check_model(choice.settings)
    console.print(f"[yellow]{choice.note}[/]")
    before = load_state(ws)
    ctx = resume_idea(cfg, ws, choice.settings, console)
    if choice.server is not None:  # its own position file: the idea's script is another one
        choice.server.persist(ws / ".harness" / "model_server_review.json")
    if again:
        ctx.state.review = ReviewProgress()
    ctx.state.stages[review.STAGE] = "running"
    ctx.save()
    code = EXIT_OK
    try:
        review.run(ctx)
        if ctx.state.stages[review.STAGE] == "running":
            ctx.state.stages[review.STAGE] = "done"
        elif ctx.state.stages[review.STAGE] == "failed":
            code = EXIT_STOPPED
    except IdeaStopped as exc:
        ctx.state.stages[review.STAGE] = "stopped"
        ctx.say("stopped", f"{exc}; run `run_harness.py review {ws}` again to go on")
        code = EXIT_STOPPED
    finally:
        ctx.state.status, ctx.state.error = before.status, before.error
        ctx.save()
        ctx.ws.commit("[harness] review command", paths=["harness.log", "chat.jsonl"])
        if choice.server is not None:
            choice.server.stop()
    if (ws / review.REVIEW_FILE).is_file():
        console.print(f"{ws / review.REVIEW_FILE}", soft_wrap=True)
    return code
