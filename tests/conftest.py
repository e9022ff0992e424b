"""Shared test helpers and fixtures: one-line error checks, the CLI run in-process, corpus models (tests/corpus.py)
saved with their hls4ml configs."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Third-party models (hls4ml's public example models; not shipped): ../shared/models beside the clone, or the
# folder named by HLSFLOW_SHARED_MODELS (point it at a missing folder to run the suite as a fresh clone would).
SHARED_MODELS = Path(os.environ.get("HLSFLOW_SHARED_MODELS", ROOT.parent / "shared" / "models"))


def shared_model(name: str) -> Path:
    """``SHARED_MODELS/name``; the calling test (or fixture, and the tests using it) is skipped, with the reason,
    when the file is not there (a fresh clone without ../shared)."""
    path = SHARED_MODELS / name
    if not path.is_file():
        pytest.skip(f"third-party test data {path} not found (see tests/conftest.py SHARED_MODELS)")
    return path


_PROGRESS = re.compile(r"^(\[\d+/\d+\] |  )")  # stage banners and indented progress lines of flow.pipeline


def error_lines(stderr: str) -> list[str]:
    """The lines of a command's stderr that are not progress (stage banners, indented progress)."""
    return [line for line in stderr.splitlines() if line.strip() and not _PROGRESS.match(line)]


def assert_one_error_line(stderr: str, command: str) -> str:
    """The single `hlsflow COMMAND: error: ...` line of ``stderr`` (no traceback, nothing else)."""
    lines = error_lines(stderr)
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1 and lines[0].startswith(f"hlsflow {command}: "), stderr
    return lines[0]


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
