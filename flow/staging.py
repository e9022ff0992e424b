"""Atomic output folders: build in a hidden temporary folder, move into place only on success.

The staging folder of ``DIR/<name>`` is ``DIR/.<name>.tmp-<pid>-<start>-<random>``: the owner's pid and
its process start time (so a reused pid is not taken for the owner). A process killed with ``kill -9`` cannot remove its
folder, so every :func:`staged_dir` first removes the stale ones of the same ``<name>``: those whose
owner is no longer running (a live run's folder is never touched). If a run died between moving the
previous project aside (``.<name>.old-<pid>-<start>-<random>``) and moving the new one in, the previous project
is moved back.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


def process_start_time(pid: int) -> str | None:
    """Start time of process ``pid`` (clock ticks since boot, field 22 of ``/proc/<pid>/stat``), None if gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[-1].split()[19]


def owner_alive(pid: int, started: str) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``started`` (not a reuse of its pid)."""
    return process_start_time(pid) == started


def remove_stale(final_dir: Path) -> list[Path]:
    """Remove the staging folders of ``final_dir`` left by dead processes; returns the folders removed."""
    final_dir = Path(final_dir)
    if not final_dir.parent.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(final_dir.name)}\.(tmp|old)-(\d+)-(\d+)-")
    removed = []
    for entry in sorted(final_dir.parent.iterdir()):
        m = pattern.match(entry.name)
        if not m or not entry.is_dir() or owner_alive(int(m.group(2)), m.group(3)):
            continue
        if m.group(1) == "old" and not final_dir.exists():
            with contextlib.suppress(OSError):
                entry.rename(final_dir)  # the owner died between the two renames: the previous project comes back
                continue
        shutil.rmtree(entry, ignore_errors=True)
        removed.append(entry)
    return removed


@contextlib.contextmanager
def staged_dir(final_dir: Path) -> Iterator[Path]:
    """Yield a temporary folder beside ``final_dir``; on success it replaces ``final_dir``.

    On any error (or Ctrl-C) the temporary folder is removed and ``final_dir`` is left as it was,
    so a failed run never leaves a half-written project. Text files that recorded the temporary
    path (hls4ml writes its OutputDir into ``hls4ml_config.yml``; RTL and simulation summaries are JSON)
    are rewritten to the final path.
    """
    final_dir = Path(final_dir).resolve()
    final_dir.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(final_dir)
    pid = os.getpid()
    prefix = f".{final_dir.name}.tmp-{pid}-{process_start_time(pid)}-"
    tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final_dir.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    for cfg in [*tmp.rglob("hls4ml_config.yml"), *tmp.rglob("*.json")]:
        text = cfg.read_text()
        if str(tmp) in text:
            cfg.write_text(text.replace(str(tmp), str(final_dir)))
    if final_dir.exists():
        old = final_dir.with_name(tmp.name.replace(".tmp-", ".old-", 1))
        final_dir.rename(old)
        tmp.rename(final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final_dir)


_SCRATCH = re.compile(r"^hlsflow-([a-z0-9-]+?)-(\d+)-(\d+)-")


@contextlib.contextmanager
def scratch_dir(kind: str) -> Iterator[Path]:
    """A private temporary folder ``<tmp>/hlsflow-<kind>-<pid>-<start>-<random>``, removed afterwards.

    Like staging folders, it carries its owner: a process killed with ``kill -9`` cannot remove its scratch
    folder (the graph rebuilt for ``verify``, ``rtl``, ``sim``), so every call first removes the scratch folders
    of dead hlsflow processes (never a live one's).
    """
    base = Path(tempfile.gettempdir())
    for entry in base.iterdir():
        m = _SCRATCH.match(entry.name)
        if m and entry.is_dir() and not owner_alive(int(m.group(2)), m.group(3)):
            shutil.rmtree(entry, ignore_errors=True)
    pid = os.getpid()
    tmp = Path(tempfile.mkdtemp(prefix=f"hlsflow-{kind}-{pid}-{process_start_time(pid)}-", dir=base))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
