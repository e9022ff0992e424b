"""MkDocs hook: the CLI reference page must be what ``docs/gen_cli.py`` makes from the parser now.

A stale ``docs/cli.md`` is a warning, which ``mkdocs build --strict`` turns into a failed build.
"""

from __future__ import annotations

import importlib.util
import logging
from pathlib import Path
from typing import Any

log = logging.getLogger("mkdocs.hooks.hlsflow")
GEN = Path(__file__).resolve().parent / "gen_cli.py"


def on_pre_build(config: Any) -> None:
    spec = importlib.util.spec_from_file_location("hlsflow_gen_cli", GEN)
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    if not gen.PAGE.exists() or gen.PAGE.read_text() != gen.render():
        log.warning("docs/cli.md differs from flow.commands.cli.build_parser(): run `%s`", gen.REGENERATE)
