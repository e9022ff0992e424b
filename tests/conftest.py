"""Shared test helpers and fixtures: one-line error checks, the CLI run in-process, corpus models (tests/corpus.py)
saved with their hls4ml configs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

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


def tree_digest(folder: Path) -> str:
    """sha256 over every entry under ``folder`` (hidden ones too): relative path, type, mode bits, file bytes and
    symlink target; ``folder``'s own mode too. Equal digests: nothing was created, removed, changed or chmod-ed."""
    h = hashlib.sha256(f"{stat.S_IMODE(folder.stat().st_mode):o}".encode())
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(root) / name
            st = path.lstat()
            h.update(f"\0{path.relative_to(folder)}\0{st.st_mode:o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                h.update(path.read_bytes())
    return h.hexdigest()


def fake_project(folder: Path, rtl: bool = False) -> Path:
    """A folder with a well-formed ``project.json`` (and ``rtl/port_map.json`` with ``rtl``): what hlsflow's
    ownership checks accept as its own, without the cost of a real project (commands refused up front never
    read further)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.json").write_text(json.dumps({"model": "qkeras_model.h5", "hls_config": {"Model": {}},
                                                     "hardware": {}, "input_type": "ap_fixed<8,3>"}))
    if rtl:
        (folder / "rtl").mkdir(exist_ok=True)
        (folder / "rtl" / "port_map.json").write_text(json.dumps({"top": "net_axis"}))
    return folder


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
