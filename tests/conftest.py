"""Shared test helpers."""

from __future__ import annotations

import re

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
