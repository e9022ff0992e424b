"""Atomic output folders: build in a hidden temporary folder, move into place only on success."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


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
    tmp = Path(tempfile.mkdtemp(prefix=f".{final_dir.name}.tmp-", dir=final_dir.parent))
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
        old = final_dir.with_name(f".{final_dir.name}.old-{tmp.name[-8:]}")
        final_dir.rename(old)
        tmp.rename(final_dir)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(final_dir)
