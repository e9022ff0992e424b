"""Shared fixtures: corpus models (tests/corpus.py) saved with their hls4ml configs, and the CLI run in-process."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
def hlsflow(capsys) -> Callable[..., tuple[int, Any, str]]:
    """Run ``hlsflow ARGS...`` in-process; returns ``(exit code, JSON printed on stdout or None, stderr)``."""
    from flow.cli import main

    def run(*args: Any) -> tuple[int, Any, str]:
        capsys.readouterr()  # drop what earlier steps (e.g. a lazily built fixture) printed
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        start = out.find("{")
        return code, json.loads(out[start:]) if start >= 0 else None, err

    return run


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory) -> Callable[[str], tuple[Path, Path]]:
    """``corpus_files(name)``: the corpus model saved as users save it and its hls4ml config YAML (built once per module)."""
    from corpus import BY_NAME, materialize

    made: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in made:
            made[name] = materialize(BY_NAME[name], tmp_path_factory.mktemp(name))
        return made[name]

    return get
