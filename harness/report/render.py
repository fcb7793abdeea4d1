"""Renders the report records (data.py) with the jinja2 templates next to this file."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import jinja2

from harness.records.batch import load_batch
from harness.records.files import write_atomic
from harness.report.data import batch_report, idea_report
from harness.results.store import Store

_ENV = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                          autoescape=True, trim_blocks=True, lstrip_blocks=True,
                          undefined=jinja2.StrictUndefined)


def _write(path: Path, template: str, **data) -> Path:
    html = _ENV.get_template(template).render(generated=datetime.now().isoformat(timespec="seconds"), **data)
    write_atomic(path, html)
    return path


def write_idea_report(ws: Path, store: Store) -> Path:
    return _write(ws / "report.html", "idea.html.j2", r=idea_report(ws, store))


def write_batch_report(batch_dir: Path, store: Store) -> Path:
    record = load_batch(batch_dir)
    for e in record.ideas.values():
        if e.workspace and (Path(e.workspace) / "state.json").is_file():
            store.sync_workspace(Path(e.workspace), batch=record.id)
            write_idea_report(Path(e.workspace), store)
    return _write(batch_dir / "index.html", "batch.html.j2", b=batch_report(batch_dir, record, store))
