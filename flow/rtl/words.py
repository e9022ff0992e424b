"""AXI4-Stream tdata words: fixed-point fields, packing codes into words and back (the port map that lists
the fields: :mod:`flow.rtl.port_map`).

Field k of a word holds the raw code of element k of the flattened (C-order) sample at
``tdata[lsb + width - 1 : lsb]``; ``value = code * 2**-(width - integer_bits)`` (``ap_fixed<W,I>``: W total
bits, I integer bits incl. sign). Words wider than 64 bits are Python ints or rows of little-endian bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from flow.arith.types import FixedType
from flow.core.errors import FlowError


@dataclass(frozen=True)
class Field:
    """One fixed-point element in a tdata word: bits ``[lsb + width - 1 : lsb]``."""

    name: str
    lsb: int
    width: int
    signed: bool
    integer_bits: int
    type: str = ""

    @property
    def fractional(self) -> int:
        return self.width - self.integer_bits

    @property
    def fixed_type(self) -> FixedType:
        return FixedType(self.width, self.integer_bits, self.signed)

    @property
    def lo(self) -> int:
        return self.fixed_type.min_code

    @property
    def hi(self) -> int:
        return self.fixed_type.max_code

    @property
    def fits_int64(self) -> bool:
        return self.width <= (64 if self.signed else 63)


def parse_fields(section: dict[str, Any], where: str) -> tuple[list[Field], int]:
    """Fields and tdata width of a port-map ``input``/``output`` section; FlowError names the bad field."""
    try:
        width = int(section["tdata_width"])
        raw = list(section["fields"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FlowError(f"{where}: needs 'tdata_width' and 'fields' ({exc})") from None
    fields, used = [], np.zeros(max(width, 0), dtype=bool)
    for k, f in enumerate(raw):
        try:
            fl = Field(str(f.get("name", f"[{k}]")), int(f["lsb"]), int(f["width"]), bool(f["signed"]),
                       int(f["integer_bits"]), str(f.get("type", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise FlowError(f"{where}.fields[{k}]: needs lsb, width, signed, integer_bits ({exc})") from None
        if fl.width < 1 or fl.lsb < 0 or fl.lsb + fl.width > width:
            raise FlowError(f"{where}.fields[{k}] ({fl.name}): bits [{fl.lsb + fl.width - 1}:{fl.lsb}] "
                            f"are outside tdata[{width - 1}:0]")
        if used[fl.lsb:fl.lsb + fl.width].any():
            raise FlowError(f"{where}.fields[{k}] ({fl.name}): overlaps another field")
        used[fl.lsb:fl.lsb + fl.width] = True
        fields.append(fl)
    if not fields:
        raise FlowError(f"{where}: no fields")
    return fields, width


def as_matrix(codes: Any, fields: Sequence[Field], what: str) -> np.ndarray:
    a = np.asarray(codes)
    if a.ndim == 1 and len(fields) == 1:
        a = a[:, None]
    a = a.reshape(len(a), -1) if a.ndim >= 1 else a
    if a.ndim != 2 or a.shape[1] != len(fields):
        raise FlowError(f"{what}: samples have {a.shape[1:] if a.ndim else ()} elements, the port map has "
                        f"{len(fields)} fields")
    return a


def as_beats(codes: Any, fields: Sequence[Field], n_beats: int, what: str) -> np.ndarray:
    """Codes of N samples, one row per sample (``n_beats`` beats of ``fields`` each, beat-major), as
    (N * n_beats, n_fields) rows of beats."""
    if n_beats == 1:
        return as_matrix(codes, fields, what)
    a = np.asarray(codes)
    a = a.reshape(len(a), -1) if a.ndim >= 1 else a
    if a.ndim != 2 or a.shape[1] != n_beats * len(fields):
        raise FlowError(f"{what}: samples have {a.shape[1:] if a.ndim else ()} elements, the port map has "
                        f"{n_beats} beats of {len(fields)} fields")
    return a.reshape(len(a) * n_beats, len(fields))


def _column_bits(col: np.ndarray, f: Field) -> np.ndarray:
    """(N, width) little-endian bit matrix of the codes in ``col`` (two's complement for signed fields)."""
    mask = (1 << f.width) - 1
    if col.dtype != object and f.width <= 63:
        u = (col.astype(np.int64) & np.int64(mask)).astype("<u8")
        return np.unpackbits(u.view(np.uint8).reshape(len(col), 8), axis=1, bitorder="little")[:, :f.width]
    nb = (f.width + 7) // 8
    raw = b"".join((int(v) & mask).to_bytes(nb, "little") for v in col)
    return np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(col), nb), axis=1, bitorder="little")[:, :f.width]


def _check_range(col: np.ndarray, f: Field, what: str) -> None:
    if len(col) == 0:
        return
    if col.dtype == object:
        lo, hi = min(int(v) for v in col), max(int(v) for v in col)
    elif not np.issubdtype(col.dtype, np.integer):
        raise FlowError(f"{what}: field {f.name}: codes must be integers, got {col.dtype}")
    else:
        lo, hi = int(col.min()), int(col.max())
    if lo < f.lo or hi > f.hi:
        raise FlowError(f"{what}: field {f.name} ({f.type or f.width}): codes span [{lo}, {hi}], "
                        f"the field holds [{f.lo}, {f.hi}]")


def pack_bytes(codes: Any, fields: Sequence[Field], tdata_width: int, what: str = "codes") -> np.ndarray:
    """Pack (N, n_fields) integer codes into (N, ceil(tdata_width/8)) little-endian uint8 rows.

    Unused bits are 0. Codes outside a field's range raise FlowError naming the field.
    """
    a = as_matrix(codes, fields, what)
    bits = np.zeros((len(a), ((tdata_width + 7) // 8) * 8), dtype=np.uint8)
    for k, f in enumerate(fields):
        col = a[:, k]
        _check_range(col, f, what)
        bits[:, f.lsb:f.lsb + f.width] = _column_bits(col, f)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_bytes(rows: np.ndarray, fields: Sequence[Field]) -> np.ndarray:
    """Inverse of :func:`pack_bytes`: (N, n_fields) codes, int64 (object if a field does not fit int64)."""
    rows = np.asarray(rows, dtype=np.uint8)
    bits = np.unpackbits(rows, axis=1, bitorder="little")
    wide = not all(f.fits_int64 for f in fields)
    out = np.empty((len(rows), len(fields)), dtype=object if wide else np.int64)
    for k, f in enumerate(fields):
        b = bits[:, f.lsb:f.lsb + f.width]
        if f.width <= 64:
            pad = np.zeros((len(rows), 64), dtype=np.uint8)
            pad[:, :f.width] = b
            u = np.packbits(pad, axis=1, bitorder="little").view("<u8")[:, 0]
            if f.signed:  # sign-extend: move the sign bit to bit 63, shift back arithmetically
                shift = np.uint64(64 - f.width)
                v = (u << shift).view(np.int64) >> np.int64(64 - f.width)
            else:
                v = u.astype(object) if wide and f.width == 64 else u.astype(np.int64)
            out[:, k] = v if not wide else [int(x) for x in v]
        else:
            nb = (f.width + 7) // 8
            pad = np.zeros((len(rows), nb * 8), dtype=np.uint8)
            pad[:, :f.width] = b
            by = np.packbits(pad, axis=1, bitorder="little")
            vals = [int.from_bytes(r.tobytes(), "little") for r in by]
            if f.signed:
                half, full = 1 << (f.width - 1), 1 << f.width
                vals = [v - full if v >= half else v for v in vals]
            out[:, k] = vals
    return out


def rows_to_words(rows: np.ndarray) -> list[int]:
    """Little-endian byte rows to Python ints."""
    return [int.from_bytes(r.tobytes(), "little") for r in np.asarray(rows, dtype=np.uint8)]


def words_to_rows(words: Sequence[int], tdata_width: int) -> np.ndarray:
    """Python ints (each < 2**tdata_width) to little-endian byte rows."""
    nb = (tdata_width + 7) // 8
    for w in words:
        if w < 0 or w >> tdata_width:
            raise FlowError(f"word {w:#x} does not fit in {tdata_width} bits")
    return np.frombuffer(b"".join(int(w).to_bytes(nb, "little") for w in words), np.uint8).reshape(len(words), nb)


def pack(codes: Any, fields: Sequence[Field], tdata_width: int | None = None) -> list[int]:
    """(N, n_fields) codes to N tdata words (Python ints); field k at bits [lsb + width - 1 : lsb]."""
    width = tdata_width if tdata_width is not None else max(f.lsb + f.width for f in fields)
    return rows_to_words(pack_bytes(codes, fields, width))


def unpack(words: Sequence[int], fields: Sequence[Field], tdata_width: int | None = None) -> np.ndarray:
    """N tdata words to (N, n_fields) codes (signed fields sign-extended); inverse of :func:`pack`."""
    width = tdata_width if tdata_width is not None else max(f.lsb + f.width for f in fields)
    return unpack_bytes(words_to_rows(words, width), fields)


def values_to_codes(values: Any, fields: Sequence[Field], what: str = "values") -> np.ndarray:
    """Fixed-point values (N, n_fields) to integer codes: ``code = value * 2**(width - integer_bits)``.

    Every value must lie on its field's grid and inside its range (FlowError names the field otherwise).
    """
    a = np.asarray(values, dtype=np.float64)
    a = as_matrix(a, fields, what)
    wide = not all(f.fits_int64 and f.width <= 53 for f in fields)
    out = np.empty(a.shape, dtype=object if wide else np.int64)
    for k, f in enumerate(fields):
        c = a[:, k] * 2.0 ** f.fractional
        if not np.all(np.isfinite(c)) or np.any(c != np.round(c)):
            bad = int(np.argmax(~np.isfinite(c) | (c != np.round(c))))
            raise FlowError(f"{what}: field {f.name}: value {a[bad, k]!r} (sample {bad}) is not on the grid of "
                            f"{f.type or f.width} (step 2**-{f.fractional})")
        col = np.array([int(v) for v in c], dtype=object) if wide else c.astype(np.int64)
        _check_range(col, f, what)
        out[:, k] = col
    return out


def codes_to_values(codes: Any, fields: Sequence[Field]) -> np.ndarray:
    """Integer codes (N, n_fields) to float64 values (exact up to 53 significant bits)."""
    a = as_matrix(codes, fields, "codes")
    out = np.empty(a.shape, dtype=np.float64)
    for k, f in enumerate(fields):
        col = a[:, k]
        col = np.array([float(int(v)) for v in col]) if col.dtype == object else col.astype(np.float64)
        out[:, k] = col * 2.0 ** -f.fractional
    return out


