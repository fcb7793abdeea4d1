"""Prompt texts live in prompts/*.j2 (our own words); this renders them."""

from __future__ import annotations

from functools import lru_cache

import jinja2
import yaml

from harness.config import resource_dir

PROMPTS_DIR = resource_dir("prompts")


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(PROMPTS_DIR),
        undefined=jinja2.StrictUndefined,  # a missing variable is a bug, not an empty string
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        autoescape=False,
    )


def render(name: str, **values) -> str:
    return _env().get_template(f"{name}.j2").render(**values).strip() + "\n"


def load_data(name: str):
    """A YAML file of agent-facing text that is data rather than one prompt (the paper's
    section list)."""
    return yaml.safe_load((PROMPTS_DIR / f"{name}.yaml").read_text(encoding="utf-8"))
