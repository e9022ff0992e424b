"""Keeping freed memory in the process while the emulator runs its batches (glibc only; a no-op elsewhere).

Every batch allocates and frees the same large numpy temporaries (megabytes each). glibc's malloc gives freed
memory at the top of the heap back to the system as soon as more than ``M_TRIM_THRESHOLD`` bytes are free there,
and serves large blocks with fresh ``mmap`` pages, so the next batch pays a page fault for every 4 KiB it
touches again: measured on the 28x28 CNN, 0.4 of 0.9 s. :func:`kept_heap` raises both thresholds for the
duration of a ``with`` block and then sets glibc's documented defaults again (128 KiB each, which also ends
glibc's dynamic adjustment of them); values computed are not affected.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
from typing import Iterator

M_TRIM_THRESHOLD = -1  # glibc <malloc.h>
M_MMAP_THRESHOLD = -3
DEFAULT_THRESHOLD = 128 * 1024  # glibc's default for both
KEPT_TRIM_BYTES = 1 << 30  # free memory kept at the top of the heap while batches run
KEPT_MMAP_BYTES = 32 << 20  # the largest mmap threshold glibc accepts on 64-bit systems


@functools.cache
def _mallopt():
    """glibc's ``mallopt`` or None; looked up once (``find_library`` runs ``ldconfig -p`` in a subprocess)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.mallopt
    except (OSError, AttributeError):
        return None


@contextlib.contextmanager
def kept_heap() -> Iterator[None]:
    """Within the block, freed heap memory stays mapped (no page faults when the next batch reuses it)."""
    mallopt = _mallopt()
    if mallopt is None:
        yield
        return
    mallopt(M_MMAP_THRESHOLD, KEPT_MMAP_BYTES)
    mallopt(M_TRIM_THRESHOLD, KEPT_TRIM_BYTES)
    try:
        yield
    finally:
        mallopt(M_TRIM_THRESHOLD, DEFAULT_THRESHOLD)
        mallopt(M_MMAP_THRESHOLD, DEFAULT_THRESHOLD)
