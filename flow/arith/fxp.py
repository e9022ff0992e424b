"""Integer fixed-point arithmetic in numpy, bit-exact to Xilinx ``ap_fixed`` / ``ap_int``.

Conventions: ``ap_fixed<W,I>`` has W total bits and I integer bits *including* the sign bit; a value
is stored here as its integer mantissa ``m`` (an int64 array, or a Python-int object array when
more than :data:`INT64_SAFE_BITS` bits are needed), and means ``m * 2**-(W-I)``. ``ap_ufixed<W,I>``
is the unsigned twin (no sign bit). Intermediate results (products, sums) are plain integer
mantissas with a known number of fractional bits ``frac`` and unbounded width, exactly like the
full-precision results of ``ap_fixed`` operators; :func:`requantize` casts them to a
:class:`~flow.arith.types.FixedType` the way an ``ap_fixed`` assignment does: first quantization
(rounding mode, on the bits below the target's LSB), then overflow handling (on the rounded value).

Rounding modes (applied when fractional bits are dropped; "tie" = exactly half an LSB):

=============  ===============================================
TRN            floor (toward -inf)
TRN_ZERO       toward zero
RND            nearest, ties toward +inf
RND_ZERO       nearest, ties toward zero
RND_MIN_INF    nearest, ties toward -inf
RND_INF        nearest, ties away from zero
RND_CONV       nearest, ties to even
=============  ===============================================

Overflow modes (applied when the rounded value is outside the type's range):
WRAP (keep the low W bits, two's complement), SAT (clip to min/max), SAT_ZERO (set to 0),
SAT_SYM (clip to +-max, so a signed type never holds its most negative value -2**(I-1) after an
overflow-checked cast).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith.types import FixedType, from_hls_precision

ROUNDING_MODES = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOW_MODES = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")
INT64_SAFE_BITS = 62  # magnitudes below 2**62 leave headroom for one addition without int64 overflow
KERNEL_MIN_SIZE = 4096  # arrays at least this large are cast by the compiled pass (smaller: numpy is as fast)


def bit_length(v: np.ndarray) -> int:
    """Bits needed for the largest magnitude in ``v`` (0 for an empty or all-zero array)."""
    if v.size == 0:
        return 0
    lo, hi = int(np.min(v)), int(np.max(v))
    return max(abs(lo), abs(hi)).bit_length()


def as_object(v: np.ndarray) -> np.ndarray:
    """``v`` as an array of Python ints (unbounded width); a no-op for object arrays."""
    if v.dtype == object:
        return v
    out = np.empty(v.shape, dtype=object)
    out[...] = v.tolist() if v.ndim else int(v)
    return out


def as_int64(v: np.ndarray) -> np.ndarray:
    """``v`` as int64 if every value fits in :data:`INT64_SAFE_BITS` bits, else as Python ints."""
    if v.dtype == np.int64:
        return v
    if bit_length(v) <= INT64_SAFE_BITS:
        return np.asarray(v, dtype=np.int64)
    return as_object(v)


def type_range(t: FixedType) -> tuple[int, int]:
    """Smallest and largest integer mantissa of ``t`` (before SAT_SYM adjustment): ``t.min_code, t.max_code``."""
    return t.min_code, t.max_code


def _round_shift(v: np.ndarray, s: int, mode: str) -> np.ndarray:
    """Drop the ``s`` > 0 lowest bits of integers ``v`` with rounding ``mode``."""
    if mode not in ROUNDING_MODES:
        raise ValueError(f"unknown rounding mode {mode!r}; allowed: {', '.join(ROUNDING_MODES)}")
    if v.dtype != object and s >= 63:
        v = as_object(v)
    q = v >> s  # floor
    if mode == "TRN":
        return q
    rem = v - (q << s)  # 0 <= rem < 2**s
    if mode == "TRN_ZERO":
        return q + ((v < 0) & (rem != 0))
    half = 1 << (s - 1)
    above = rem > half
    tie = rem == half
    if mode == "RND":
        inc = above | tie
    elif mode == "RND_ZERO":
        inc = above | (tie & (v < 0))
    elif mode == "RND_MIN_INF":
        inc = above
    elif mode == "RND_INF":
        inc = above | (tie & (v >= 0))
    else:  # RND_CONV
        inc = above | (tie & ((q & 1) == 1))
    return q + inc


def apply_overflow(q: np.ndarray, t: FixedType) -> tuple[np.ndarray, int]:
    """Bring integer mantissas ``q`` (already at ``t``'s LSB) into ``t``'s range with its overflow mode.

    Returns the new mantissas and how many values were changed (wrapped or saturated).
    """
    mode = t.overflow
    if mode not in OVERFLOW_MODES:
        raise ValueError(f"unknown overflow mode {mode!r}; allowed: {', '.join(OVERFLOW_MODES)}")
    lo, hi = type_range(t)
    if mode == "SAT_SYM" and t.signed:
        lo = -hi
    if q.dtype != object and (lo < -(1 << 62) or hi > (1 << 62)):
        q = as_object(q)
    bad = (q < lo) | (q > hi)
    n = int(np.count_nonzero(bad))
    if n == 0:
        return q, 0
    if mode == "WRAP":
        lo_w = type_range(t)[0]
        out = ((q - lo_w) & ((1 << t.width) - 1)) + lo_w
    elif mode == "SAT_ZERO":
        out = np.where(bad, 0, q)
    else:  # SAT, SAT_SYM
        out = np.where(q < lo, lo, np.where(q > hi, hi, q))
    if q.dtype == object:
        out = np.asarray(out, dtype=object)
    return out, n


def requantize(v: np.ndarray, frac: int, t: FixedType) -> tuple[np.ndarray, int]:
    """Cast integers ``v`` with ``frac`` fractional bits to type ``t`` (rounding, then overflow).

    Returns ``(mantissas of t, number of values that wrapped or saturated)``; int64 when they fit.
    """
    q, n, _ = requantize_counted(v, frac, t)
    return q, n


def requantize_counted(v: np.ndarray, frac: int, t: FixedType, count_rounding: bool = False) -> tuple[np.ndarray, int, int]:
    """:func:`requantize`, also counting (with ``count_rounding``) the values whose dropped bits were not zero.

    int64 mantissas narrowed into a type of at most :data:`INT64_SAFE_BITS` bits take one compiled pass
    (:func:`flow.arith.compiled.requantize`, the same rounding and overflow rules); everything else the numpy
    path below, which is the definition.
    """
    v = np.asarray(v)
    if v.dtype != object:
        v = v.astype(np.int64, copy=False)
    s = frac - t.fractional
    if t.rounding not in ROUNDING_MODES or t.overflow not in OVERFLOW_MODES:
        raise ValueError(f"{t}: unknown rounding or overflow mode")
    if v.dtype == np.int64 and 0 <= s <= INT64_SAFE_BITS and t.width <= INT64_SAFE_BITS and v.size >= KERNEL_MIN_SIZE:
        from flow.arith import compiled

        lo, hi = type_range(t)
        if t.overflow == "SAT_SYM" and t.signed:
            lo = -hi
        return compiled.requantize(v, s, t.rounding, t.overflow, lo, hi, t.min_code, t.width, count_rounding)
    rounded = 0
    if count_rounding and s > 0:
        low = v & ((1 << s) - 1) if v.dtype != object or s < 62 else np.vectorize(lambda z: z & ((1 << s) - 1))(v)
        rounded = int(np.count_nonzero(low))
    if s > 0:
        q = _round_shift(v, s, t.rounding)
    elif s < 0:
        if v.dtype != object and bit_length(v) - s > INT64_SAFE_BITS:
            v = as_object(v)
        q = v << (-s)
    else:
        q = v
    q, n = apply_overflow(q, t)
    if q.dtype == object and t.width <= INT64_SAFE_BITS:
        q = q.astype(np.int64)
    return q, n, rounded


def from_float(x: np.ndarray, t: FixedType) -> tuple[np.ndarray, int]:
    """Convert floats to mantissas of ``t`` exactly as ``ap_fixed(double)`` does.

    ``x * 2**F`` is exact in float64 (a power-of-two scaling), so the rounding decisions below are
    exact too. Returns ``(mantissas, overflow count)``. NaN is rejected; +-inf is handled like
    ``ap_fixed(double)`` handles it (saturated by the SAT modes, 0 with WRAP).
    """
    x = np.asarray(x, dtype=np.float64)
    if np.isnan(x).any():
        raise ValueError("cannot convert NaN to a fixed-point type")
    inf = np.isinf(x)
    if inf.any():
        # ap_fixed(double) reads an infinity's bits as +-2**1024: far out of range, so it saturates
        # (SAT/SAT_SYM/SAT_ZERO) or wraps to 0 (every kept bit is zero). A finite stand-in 2**(I+2)
        # (mantissa 2**(W+2)) behaves identically under every overflow mode.
        x = np.where(inf, np.copysign(np.ldexp(1.0, t.integer + 2), x), x)
    y = np.ldexp(x, t.fractional)
    fl = np.floor(y)
    rem = y - fl  # exact, in [0, 1)
    mode = t.rounding
    if mode == "TRN":
        r = fl
    elif mode == "TRN_ZERO":
        r = np.where((x < 0) & (rem != 0), fl + 1, fl)
    else:
        above, tie = rem > 0.5, rem == 0.5
        if mode == "RND":
            inc = above | tie
        elif mode == "RND_ZERO":
            inc = above | (tie & (x < 0))
        elif mode == "RND_MIN_INF":
            inc = above
        elif mode == "RND_INF":
            inc = above | (tie & (x >= 0))
        elif mode == "RND_CONV":
            inc = above | (tie & (np.mod(fl, 2) == 1))
        else:
            raise ValueError(f"unknown rounding mode {mode!r}")
        r = fl + inc
    lo, hi = type_range(t)
    big = 2.0 ** 62
    if np.any(np.abs(r) >= big) or hi > (1 << 62):
        ints = np.empty(r.shape, dtype=object)
        ints[...] = [int(val) for val in r.ravel()] if r.ndim else int(r)
        ints = ints.reshape(r.shape)
    else:
        ints = r.astype(np.int64)
    q, n = apply_overflow(ints, t)
    if q.dtype == object and t.width <= INT64_SAFE_BITS:
        q = q.astype(np.int64)
    return q, n


def to_float(v: np.ndarray, frac: int) -> np.ndarray:
    """Float64 values of integer mantissas ``v`` with ``frac`` fractional bits (exact up to 53 bits)."""
    v = np.asarray(v)
    if v.dtype == object:
        v = v.astype(np.float64)
    return np.ldexp(v.astype(np.float64), -frac)


def quantize_float(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Float -> ``t`` -> float64: the value an ``ap_fixed`` of type ``t`` holds after ``t v = x;``."""
    q, _ = from_float(x, t)
    return to_float(q, t.fractional)


def type_from_hls(precision: Any) -> FixedType:
    """A :class:`FixedType` from an hls4ml precision object: :func:`flow.arith.types.from_hls_precision`
    (``ap_int<W>``/``ap_uint<W>`` become ``ap_fixed<W,W>``/``ap_ufixed<W,W>``, TRN, WRAP)."""
    return from_hls_precision(precision)
