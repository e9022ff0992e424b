"""What hlsflow may replace: the one ownership rule of every command that writes.

A command's target (``run``: ``OUT/<name>``, ``convert``/``ip``: ``--out``, ``rtl``: ``PROJECT/rtl``, ``sweep``:
``OUT/<name>``, ``emulate``: ``--output`` and its ``.trace.npz``/``.layers.png``) is written only when it

* does not exist yet (its parent folders are created), or is an empty folder, or
* carries the record hlsflow writes into what it makes (:data:`PROJECT`: ``project.json``, :data:`IP`:
  ``hlsflow-ip.json``, :data:`RTL`: ``port_map.json``, :data:`SWEEP`: ``sweep.db`` or ``hlsflow-sweep.json``), or
* the user gave ``--force``.

Otherwise the command stops with one line naming the target (exit 2) **before any work** (:func:`claim_output`),
and the same test is made again under the target's lock just before the staged folder replaces it
(:func:`flow.core.staging.staged_dir`), so a folder that appeared meanwhile is not lost either. Even with
``--force`` a target is refused when it is a file, the working directory or one of its parents, or a folder
holding one of the command's inputs (the model, spec, data set, ...), and when its parent cannot be written.
Single files (:func:`claim_file`): ``emulate`` cannot tell its own ``.npy`` from a user's, so it replaces an
existing file only with ``--force`` (never its own ``--input``); ``sweep --export-best`` and ``verify
--write-exact-config`` replace a file that starts with the header line they write, any other only with
``--force``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from flow.core.errors import FlowError


def _json_record(path: Path) -> bool:
    """Whether ``path`` is a file holding a JSON object (hlsflow's records are)."""
    try:
        return path.is_file() and isinstance(json.loads(path.read_text()), dict)
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class OutputKind:
    """A kind of folder hlsflow makes: ``noun`` for messages, ``records`` the files naming it as ours (any one);
    ``owned`` (default: one of ``records`` inside the folder is a JSON object or, for ``.db``, a file)."""

    noun: str
    records: tuple[str, ...]
    owned_by: Callable[[Path], bool] | None = None

    def owned(self, folder: Path) -> bool:
        """Whether ``folder`` (existing) is one hlsflow made of this kind."""
        if self.owned_by is not None:
            return self.owned_by(folder)
        return any((folder / r).is_file() if r.endswith(".db") else _json_record(folder / r) for r in self.records)


SWEEP_RECORD = "hlsflow-sweep.json"

PROJECT = OutputKind("an hlsflow project", ("project.json",))
IP = OutputKind("an hlsflow IP folder", ("hlsflow-ip.json",))
RTL = OutputKind("an hlsflow RTL folder", ("port_map.json",))
SWEEP = OutputKind("an hlsflow sweep folder", ("sweep.db", SWEEP_RECORD))
PHYSICAL = OutputKind("a folder inside an hlsflow RTL folder", ("port_map.json",),  # rtl/physical: port_map beside it
                      owned_by=lambda folder: _json_record(folder.parent / "port_map.json"))


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _first_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_writable_parent(target: Path, shown: str) -> None:
    """FlowError unless the folder that will hold ``target`` exists or can be made, and can be written."""
    base = _first_existing(target.parent)
    if not base.is_dir():
        raise FlowError(f"{shown}: {base} is a file, not a folder; nothing was written")
    if not os.access(base, os.W_OK | os.X_OK):
        raise FlowError(f"{shown}: cannot write into {base} (permission denied); nothing was written")


def check_replaceable(target: Path, kind: OutputKind, force: bool, shown: str | None = None) -> None:
    """FlowError unless the existing ``target`` may be replaced: absent, an empty folder, ``kind``'s own, or
    ``force`` (a file is never replaced by a folder)."""
    shown = shown or str(target)
    if not target.exists() and not target.is_symlink():
        return
    if not target.is_dir():
        raise FlowError(f"{shown}: exists and is a file, not {kind.noun}; it was left as it is: choose another path")
    if force:
        return
    try:
        empty = not any(target.iterdir())
    except OSError as exc:
        raise FlowError(f"{shown}: cannot read the existing folder ({exc.strerror}); it was left as it is") from None
    if not empty and not kind.owned(target):
        raise FlowError(f"{shown}: exists and is not {kind.noun} (no {kind.records[0]}); it was left as it is: "
                        "choose another path, or give --force to replace it")


def protected_by(target: Path, inputs: Iterable[str | Path | None]) -> str | None:
    """Why ``target`` must never be replaced, even with --force (None if it may): it is the working directory or
    one of its parents, or it holds one of ``inputs``."""
    cwd = Path.cwd().resolve()
    if _is_within(cwd, target):
        return f"it is the working directory {cwd}" if cwd == target else f"it holds the working directory {cwd}"
    for item in inputs:
        if item is None:
            continue
        path = Path(item).resolve()
        if _is_within(path, target):
            return f"it is the input {path}" if path == target else f"it holds the input {path}"
    return None


def claim_output(target: str | Path, kind: OutputKind, force: bool = False,
                 inputs: Iterable[str | Path | None] = (), shown: str | None = None) -> Path:
    """Check up front, before any work, that the command may write ``target`` (a folder of ``kind``); returns
    its resolved path. FlowError (one line naming ``shown``, default the path) otherwise: see the module doc."""
    shown = shown or str(target)
    path = Path(target).expanduser().resolve()
    why = protected_by(path, inputs)
    if why is not None:
        raise FlowError(f"{shown}: {why}; hlsflow never replaces it (not even with --force): choose another path")
    check_replaceable(path, kind, force, shown)
    check_writable_parent(path, shown)
    return path


def first_line_starts(path: Path, prefix: str) -> bool:
    """Whether the text file ``path`` starts with ``prefix`` (how hlsflow's own YAML outputs name their maker)."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read(len(prefix)) == prefix
    except (OSError, UnicodeDecodeError):
        return False


def claim_file(target: str | Path, force: bool = False, inputs: Iterable[str | Path | None] = (),
               shown: str | None = None, ours: Callable[[Path], bool] | None = None) -> Path:
    """Check up front that a command may write the file ``target``: absent, hlsflow's own (``ours``, e.g. a
    header line it writes) or, with ``force``, any existing file that is none of ``inputs``; returns its
    resolved path. FlowError (one line) otherwise."""
    shown = shown or str(target)
    path = Path(target).expanduser().resolve()
    for item in inputs:
        if item is not None and Path(item).resolve() == path:
            raise FlowError(f"{shown}: it is the input {item}; hlsflow never overwrites an input: choose another path")
    if path.is_dir():
        raise FlowError(f"{shown}: exists and is a folder; it was left as it is: choose a file name")
    if path.exists() and not force and not (ours is not None and ours(path)):
        raise FlowError(f"{shown}: exists; it was left as it is: choose another path, or give --force to replace it")
    check_writable_parent(path, shown)
    return path
