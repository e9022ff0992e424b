"""Atomic output folders: build in a hidden temporary folder, move into place only on success.

The staging folder of ``DIR/<name>`` is ``DIR/.<name>.tmp-<pid>-<start>-<random>``: the owner's pid and
its process start time (so a reused pid is not taken for the owner). A process killed with ``kill -9`` cannot remove its
folder, so every :func:`staged_dir` first removes the stale ones of the same ``<name>``: those whose
owner is no longer running (a live run's folder is never touched). If a run died between moving the
previous project aside (``.<name>.old-<pid>-<start>-<random>``) and moving the new one in, the previous project
is moved back. That clean-up and the final swap hold the target's lock (``.<name>.lock``, ``flock``), so
concurrent writers of one target neither fail nor leave folders behind: the last to finish wins. Staging
folders are made with the user's umask (a finished project is 0755/0644 under umask 022).
What may be replaced at all is :mod:`flow.core.outputs`'s rule.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path

from flow.core.errors import FlowError
from flow.core.outputs import OutputKind, check_replaceable


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


def _make_staging(final_dir: Path) -> Path:
    """A new empty staging folder beside ``final_dir``, with the user's umask (``os.mkdir(mode=0o777)``; not the
    private 0700 of ``tempfile.mkdtemp``: a project is meant to be read by the user's team)."""
    pid = os.getpid()
    prefix = f".{final_dir.name}.tmp-{pid}-{process_start_time(pid)}-"
    for _ in range(100):
        tmp = final_dir.parent / (prefix + secrets.token_hex(4))
        try:
            tmp.mkdir()
            return tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"{final_dir.parent}: no free staging folder name for {final_dir.name}")


@contextlib.contextmanager
def target_lock(final_dir: Path) -> Iterator[None]:
    """Hold the exclusive lock of ``final_dir`` (``flock`` on the hidden ``.<name>.lock`` beside it).

    The lock file is removed by its holder on release; a waiter that then gets the lock of the removed file
    (its inode is no longer the one at the path) tries again, so the file never outlives the swap it guards
    (one left by ``kill -9`` is empty, hidden and reused).
    """
    path = final_dir.parent / f".{final_dir.name}.lock"
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()
        os.close(fd)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold back SIGINT, SIGTERM and SIGHUP (delivered when the block ends): the swap of two folders is never cut."""
    sigs = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, sigs)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _swap_in(tmp: Path, final_dir: Path) -> None:
    """Move ``tmp`` to ``final_dir``; a previous ``final_dir`` is moved aside first and removed after.
    The caller holds the target's lock."""
    if final_dir.exists() or final_dir.is_symlink():
        old = final_dir.with_name(tmp.name.replace(".tmp-", ".old-", 1))
        final_dir.rename(old)
        tmp.rename(final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final_dir)


@contextlib.contextmanager
def staged_dir(final_dir: Path, kind: OutputKind, force: bool = False) -> Iterator[Path]:
    """Yield a temporary folder beside ``final_dir``; on success it replaces ``final_dir``.

    On any error (or Ctrl-C, SIGTERM, SIGHUP: :mod:`flow.core.signals`) the temporary folder is removed and
    ``final_dir`` is left as it was, so a failed run never leaves a half-written project. An existing
    ``final_dir`` is replaced only if it is ``kind``'s own or ``force`` (:func:`flow.core.outputs.check_replaceable`,
    checked again under the lock). The final swap holds the target's lock (:func:`target_lock`), so concurrent
    writers of one target finish one after the other (the last one's folder stays) and leave no staging folder.
    Text files that recorded the temporary path (hls4ml writes its OutputDir into ``hls4ml_config.yml``; RTL
    and simulation summaries are JSON) are rewritten to the final path.
    """
    final_dir = Path(final_dir).resolve()
    try:
        final_dir.parent.mkdir(parents=True, exist_ok=True)
        with target_lock(final_dir):
            remove_stale(final_dir)
        tmp = _make_staging(final_dir)
    except OSError as exc:
        raise FlowError(f"{final_dir}: cannot write: {exc.strerror or exc}") from None
    try:
        yield tmp
        for cfg in [*tmp.rglob("hls4ml_config.yml"), *tmp.rglob("*.json")]:
            text = cfg.read_text()
            if str(tmp) in text:
                cfg.write_text(text.replace(str(tmp), str(final_dir)))
        with signals_held(), target_lock(final_dir):
            check_replaceable(final_dir, kind, force)
            _swap_in(tmp, final_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def written_atomically(target: Path) -> Iterator[Path]:
    """Yield a hidden temporary file name beside ``target`` (same suffix); on success it replaces ``target``
    (``os.replace``), on any error it is removed: a reader never sees a half-written file. The caller has
    checked that ``target`` may be written (:func:`flow.core.outputs.claim_file`)."""
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FlowError(f"{target}: cannot write: {exc.strerror or exc}") from None
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}")
    try:
        yield tmp
        with signals_held():
            os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


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
