"""The typed config: defaults < config file < command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.config import HarnessConfig, build_config
from harness.errors import UserError


def test_precedence_defaults_file_cli(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text("max_runs: 3\nmodel: openai/gpt-4o\nworkspace-root: out\n")
    cfg = build_config(f, {"max_runs": "5", "template": None})
    assert cfg.max_runs == 5                   # command line wins
    assert cfg.model == "openai/gpt-4o"        # file beats default
    assert cfg.workspace_root == Path("out")   # dashes accepted as in the CLI
    assert cfg.template == HarnessConfig().template


def test_unknown_key_names_the_key(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text("budget: 3\n")
    with pytest.raises(UserError, match="unknown key 'budget'"):
        build_config(f, {})


def test_empty_config_file_is_fine(tmp_path):
    f = tmp_path / "h.yaml"
    f.write_text("")
    assert build_config(f, {}) == HarnessConfig()
