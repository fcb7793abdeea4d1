"""Static HTML reports: one page per idea (report.html in its workspace) and an index per
batch (index.html in the batch folder). `run_harness.py report WORKSPACE|BATCH`.

The pages link to the files next to them (figures, paper.pdf, logs) with relative links,
so a workspace or batch folder can be copied elsewhere and still be read in a browser.
"""

from __future__ import annotations

from pathlib import Path

from harness.report.render import write_batch_report, write_idea_report

__all__ = ["main", "write_batch_report", "write_idea_report"]


def main(argv: list[str]) -> int:
    from harness.arguments import subparser
    from harness.errors import UserError
    from harness.records.batch import is_batch_dir, load_batch
    from harness.results.store import Store

    p = subparser("report", "Write the HTML report of a workspace (report.html) or of a batch "
                            "(index.html and every idea's report.html).")
    p.add_argument("path", type=Path, metavar="WORKSPACE|BATCH")
    p.add_argument("--workspace-root", dest="workspace_root", type=Path, metavar="DIR",
                   help="where results.sqlite lives (default: the workspace's parent, or the batch's workspace root)")
    args = p.parse_args(argv)
    path = args.path.resolve()
    if is_batch_dir(path):
        root = args.workspace_root or Path(load_batch(path).config.get("workspace_root", path.parent.parent))
    elif (path / "state.json").is_file():
        root = args.workspace_root or path.parent
    else:
        raise UserError(f"{args.path} is neither a workspace (no state.json) nor a batch folder (no batch.json); "
                        f"pass one of those")
    store = Store.for_root(root)
    try:
        out = write_batch_report(path, store) if is_batch_dir(path) else write_idea_report(path, store)
    finally:
        store.close()
    print(out)
    return 0
