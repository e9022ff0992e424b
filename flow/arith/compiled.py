"""Compiled loops of the numpy executor (numba): hls4ml's dense accumulation without storing every product,
and the cast of int64 mantissas in one pass.

:func:`accumulate_products` is the definition of :meth:`flow.arith.ops.Ops.dot` for integer mantissas that fit
int64: ``acc = bias; for i: acc = cast(acc + cast(x_i * w_ij))`` where ``cast`` is the ``accum_t`` cast (rounding
on the ``s`` dropped bits of each product, then overflow). A WRAP accumulator is modular, so its wrap is applied
once afterwards by the caller; SAT, SAT_SYM and SAT_ZERO accumulators saturate every product and every partial sum
in index order, as the Latency templates do. :func:`conv_round_wrap` is the same sum for every window of a
stride-1 convolution without forming the windows; :func:`requantize_branchless` the cast of
:func:`flow.arith.fxp.requantize` without branches. The loops are compiled at first use and cached on disk
(numba's cache beside this file), so a new process loads them instead of compiling. Each runs on one thread
(with OpenMP threads, a cast of 200,000 values took 42 ns a value instead of 0.4 while another job held the
second core) and releases the GIL, so the emulator runs batches side by side instead.
"""

from __future__ import annotations

import numpy as np
from numba import njit

ROUNDING_CODES = {"TRN": 0, "TRN_ZERO": 1, "RND": 2, "RND_ZERO": 3, "RND_MIN_INF": 4, "RND_INF": 5, "RND_CONV": 6}
OVERFLOW_CODES = {"WRAP": 0, "SAT": 1, "SAT_SYM": 1, "SAT_ZERO": 2}

@njit(cache=True, inline="always")
def round_shift(p, s, mode):  # pragma: no cover - compiled
    if s <= 0:
        return p << (-s)
    q = p >> s
    if mode == 0:
        return q
    rem = p - (q << s)
    if mode == 1:
        return q + (1 if (p < 0 and rem != 0) else 0)
    half = np.int64(1) << (s - 1)
    if mode == 2:
        return q + (1 if rem >= half else 0)
    if mode == 3:
        return q + (1 if (rem > half or (rem == half and p < 0)) else 0)
    if mode == 4:
        return q + (1 if rem > half else 0)
    if mode == 5:
        return q + (1 if (rem > half or (rem == half and p >= 0)) else 0)
    return q + (1 if (rem > half or (rem == half and (q & 1) == 1)) else 0)

@njit(cache=True, inline="always")
def overflow(v, lo, hi, mode):  # pragma: no cover - compiled
    if mode == 0 or (lo <= v <= hi):
        return v, 0
    if mode == 1:
        return (lo if v < lo else hi), 1
    return np.int64(0), 1

@njit(cache=True, nogil=True)
def kernel(x, w, bias, s, rmode, omode, lo, hi, count):  # pragma: no cover - compiled
    rows, n_in = x.shape
    n_out = w.shape[1]
    out = np.empty((rows, n_out), dtype=np.int64)
    rounded = np.zeros(rows, dtype=np.int64)
    over = np.zeros(rows, dtype=np.int64)
    unordered = np.zeros(rows, dtype=np.int64)  # rows whose partial sums could leave [lo, hi]
    mask = (np.int64(1) << s) - 1 if s > 0 else np.int64(0)
    for r in range(rows):
        acc = np.empty(n_out, dtype=np.int64)
        up = np.empty(n_out, dtype=np.int64)
        down = np.empty(n_out, dtype=np.int64)
        for j in range(n_out):
            acc[j] = bias[j]
            up[j] = bias[j]
            down[j] = bias[j]
        nr = 0
        no = 0
        for i in range(n_in):
            xi = np.int64(x[r, i])
            for j in range(n_out):
                p = xi * np.int64(w[i, j])
                if count and s > 0 and (p & mask) != 0:
                    nr += 1
                q = round_shift(p, s, rmode)
                if omode == 0:
                    acc[j] += q
                else:
                    q, o = overflow(q, lo, hi, omode)
                    no += o
                    if q > 0:
                        up[j] += q
                    else:
                        down[j] += q
                    acc[j], o = overflow(acc[j] + q, lo, hi, omode)
                    no += o
        for j in range(n_out):
            out[r, j] = acc[j]
            if omode != 0 and (up[j] > hi or down[j] < lo):
                unordered[r] = 1
        rounded[r] = nr
        over[r] = no
    return out, rounded.sum(), over.sum(), unordered.sum()

@njit(cache=True, nogil=True)
def dot_round_wrap(x, w, bias, s, c):  # pragma: no cover - compiled
    """The common case of :func:`kernel` without branches in the inner loop: TRN (``c = 0``) or RND
    (``c = 2**(s-1)``) products into a WRAP accumulator (wrapped afterwards by the caller), ``s > 0``."""
    rows, n_in = x.shape
    n_out = w.shape[1]
    out = np.empty((rows, n_out), dtype=np.int64)
    for r in range(rows):
        acc = np.zeros(n_out, dtype=np.int64)
        for i in range(n_in):
            xi = x[r, i]
            if xi == 0:  # floor((0 + c) / 2**s) = 0: inputs that are zero (ReLU outputs) add nothing
                continue
            for j in range(n_out):
                acc[j] += (xi * w[i, j] + c) >> s
        for j in range(n_out):
            out[r, j] = acc[j] + bias[j]
    return out


@njit(cache=True, nogil=True)
def conv_round_wrap(x, w, bias, c, s, oh, ow, wrap_lo, mask, shift):  # pragma: no cover - compiled
    """A stride-1 convolution without im2col: ``x`` (N, C, H, W) channels first and ``w`` (KH, KW, C, F) of one
    integer dtype (int32 or int64; ``c``, ``s`` scalars of it), ``bias`` (F,) int64. Each output
    ``acc[n, oy, ox, f] = bias[f] + sum over (ky, kx, ci) of (x[n, ci, oy+ky, ox+kx] * w[ky, kx, ci, f] + c) >> s``
    (TRN: ``c = 0``, RND: ``c = 2**(s-1)``), wrapped to ``[wrap_lo, wrap_lo + mask]`` (two's complement of
    ``mask + 1`` codes) and shifted left by ``shift`` bits (a cast that cannot change a value); returns it as int64
    (N, oh, ow, F) and how many sums wrapped. Requires
    ``oh + KH - 1 <= H``, ``ow + KW - 1 <= W`` and that no partial sum leaves the dtype (the caller checks).

    The sample is flattened to rows of ``H*W``: for tap (ky, kx) the output at flat position ``p = oy*W + ox``
    reads input ``p + ky*W + kx``, so every (tap, channel, filter) is one contiguous loop over ``p`` that the
    compiler vectorizes (positions with ``ox >= ow`` are computed and dropped)."""
    n, cin, h, wd = x.shape
    kh, kw, _, f = w.shape
    m = (oh - 1) * wd + ow
    out = np.empty((n, oh, ow, f), dtype=np.int64)
    acc = np.empty((f, m), dtype=x.dtype)
    over = 0
    for r in range(n):
        xs = x[r].reshape(cin, h * wd)
        acc[:] = 0
        for ci in range(cin):
            for ky in range(kh):
                for kx in range(kw):
                    base = ky * wd + kx
                    xrow = xs[ci, base:base + m]
                    for j in range(f):
                        wv = w[ky, kx, ci, j]
                        arow = acc[j]
                        for p in range(m):
                            arow[p] += (xrow[p] * wv + c) >> s
        outr = out[r].reshape(oh * ow * f)
        for oy in range(oh):
            for ox in range(ow):
                pp = oy * wd + ox
                o = (oy * ow + ox) * f
                for j in range(f):
                    v = np.int64(acc[j, pp]) + bias[j]
                    q = ((v - wrap_lo) & mask) + wrap_lo
                    over += np.int64(q != v)
                    outr[o + j] = q << shift
    return out, over


@njit(cache=True, nogil=True)
def requantize_flat(v, s, rmode, omode, lo, hi, wrap_lo, mask, count):  # pragma: no cover - compiled
    n = v.shape[0]
    out = np.empty(n, dtype=np.int64)
    over = 0
    rounded = 0
    low = (np.int64(1) << s) - 1 if s > 0 else np.int64(0)
    for k in range(n):
        x = v[k]
        if count and s > 0 and (x & low) != 0:
            rounded += 1
        q = round_shift(x, s, rmode)
        if q < lo or q > hi:
            over += 1
            if omode == 0:
                q = ((q - wrap_lo) & mask) + wrap_lo
            elif omode == 1:
                q = lo if q < lo else hi
            else:
                q = np.int64(0)
        out[k] = q
    return out, over, rounded


# Rounding as flags, so one branch-free loop serves every mode: with q = floor(x / 2**s), rem = x - q * 2**s and
# half = 2**(s-1), the increment is (rem > half) & gt | (rem == half) & tie | (0 < rem < half) & below, where
# gt = gt_all | gt_neg & (x < 0); tie = tie_all | tie_neg & (x < 0) | tie_pos & (x >= 0) | tie_odd & (q odd);
# below = below_neg & (x < 0). Flags per mode: (gt_all, gt_neg, tie_all, tie_neg, tie_pos, tie_odd, below_neg).
ROUNDING_FLAGS = {
    "TRN": (0, 0, 0, 0, 0, 0, 0),
    "TRN_ZERO": (0, 1, 0, 1, 0, 0, 1),
    "RND": (1, 0, 1, 0, 0, 0, 0),
    "RND_ZERO": (1, 0, 0, 1, 0, 0, 0),
    "RND_MIN_INF": (1, 0, 0, 0, 0, 0, 0),
    "RND_INF": (1, 0, 0, 0, 1, 0, 0),
    "RND_CONV": (1, 0, 0, 0, 0, 1, 0),
}


@njit(cache=True, inline="always")
def round_flags(x, s, half, g_all, g_neg, t_all, t_neg, t_pos, t_odd, b_neg):  # pragma: no cover - compiled
    q = x >> s
    rem = x - (q << s)
    neg = np.int64(x < 0)
    gt = g_all | (g_neg & neg)
    tie = t_all | (t_neg & neg) | (t_pos & (1 - neg)) | (t_odd & (q & 1))
    below = b_neg & neg
    inc = ((np.int64(rem > half) & gt) | (np.int64(rem == half) & tie)
           | (np.int64(rem != 0) & np.int64(rem < half) & below))
    return q + inc


@njit(cache=True, nogil=True)
def requantize_branchless(v, s, flags, omode, lo, hi, wrap_lo, mask, count):  # pragma: no cover - compiled
    """:func:`requantize_flat` without branches in its loops (one loop per overflow mode; rounding by
    :data:`ROUNDING_FLAGS`, ``1 <= s <= 62``), so the compiler vectorizes them."""
    n = v.shape[0]
    out = np.empty(n, dtype=np.int64)
    over = 0
    rounded = 0
    low = (np.int64(1) << s) - 1
    half = np.int64(1) << (s - 1)
    g_all, g_neg, t_all, t_neg, t_pos, t_odd = flags[0], flags[1], flags[2], flags[3], flags[4], flags[5]
    b_neg = flags[6]
    if count:
        for k in range(n):
            rounded += np.int64((v[k] & low) != 0)
    if omode == 0:
        for k in range(n):
            q = round_flags(v[k], s, half, g_all, g_neg, t_all, t_neg, t_pos, t_odd, b_neg)
            w = ((q - wrap_lo) & mask) + wrap_lo
            over += np.int64(w != q)
            out[k] = w
    elif omode == 1:
        for k in range(n):
            q = round_flags(v[k], s, half, g_all, g_neg, t_all, t_neg, t_pos, t_odd, b_neg)
            w = min(max(q, lo), hi)
            over += np.int64(w != q)
            out[k] = w
    else:
        for k in range(n):
            q = round_flags(v[k], s, half, g_all, g_neg, t_all, t_neg, t_pos, t_odd, b_neg)
            bad = np.int64((q < lo) | (q > hi))
            over += bad
            out[k] = q * (1 - bad)
    return out, over, rounded


def _kernels():
    return kernel, requantize_flat


def requantize(v: np.ndarray, s: int, rounding: str, overflow: str, lo: int, hi: int, wrap_lo: int,
               width: int, count: bool) -> tuple[np.ndarray, int, int]:
    """One pass over int64 mantissas ``v``: drop ``s`` (0..62) bits with ``rounding``, then bring the result into
    [``lo``, ``hi``] with ``overflow`` (WRAP keeps the low ``width`` bits above ``wrap_lo``: two's complement for
    a signed type). The definition is :func:`flow.arith.fxp.requantize`'s; returns the mantissas, how many
    overflowed and (with ``count``) how many had non-zero dropped bits."""
    if 1 <= s <= 62:
        q, over, rounded = requantize_branchless(
            np.ascontiguousarray(v, dtype=np.int64).reshape(-1), int(s),
            np.array(ROUNDING_FLAGS[rounding], dtype=np.int64), OVERFLOW_CODES[overflow], int(lo), int(hi),
            int(wrap_lo), (1 << width) - 1, bool(count))
        return q.reshape(np.shape(v)), int(over), int(rounded)
    kernel, flat = _kernels()
    q, over, rounded = flat(np.ascontiguousarray(v, dtype=np.int64).reshape(-1), int(s), ROUNDING_CODES[rounding],
                            OVERFLOW_CODES[overflow], int(lo), int(hi), int(wrap_lo), (1 << width) - 1, bool(count))
    return q.reshape(np.shape(v)), int(over), int(rounded)




def accumulate_products(x: np.ndarray, w: np.ndarray, bias: np.ndarray, s: int, rounding: str, overflow: str,
                        lo: int, hi: int, count: bool) -> tuple[np.ndarray, int, int, int]:
    """For int64 x (rows, n_in), w (n_in, n_out), bias (n_out,) already in accum_t: every product ``x_ri*w_ij``
    (``s`` bits above accum_t's LSB; ``s <= 0`` shifts left) cast to accum_t [``lo``, ``hi``] with ``rounding`` and
    ``overflow`` and accumulated from ``bias`` in index order (WRAP: not wrapped, the caller wraps the sums).

    Returns ``(sums, rounded products, overflowed products and partial sums, rows whose partial sums could leave
    the range)``; the counts of rounding are measured only with ``count``. The caller guarantees that no
    intermediate exceeds int64 (``bits(x) + bits(w) + log2(n_in) + 2 <= 62``).
    """
    if overflow == "WRAP" and rounding in ("TRN", "RND") and s > 0 and not count:
        c = (1 << (s - 1)) if rounding == "RND" else 0
        out = dot_round_wrap(np.ascontiguousarray(x, dtype=np.int64), np.ascontiguousarray(w, dtype=np.int64),
                             np.ascontiguousarray(bias, dtype=np.int64), int(s), int(c))
        return out, 0, 0, 0
    kernel, _ = _kernels()
    out, rounded, over, unordered = kernel(
        np.ascontiguousarray(x, dtype=np.int64), np.ascontiguousarray(w, dtype=np.int64),
        np.ascontiguousarray(bias, dtype=np.int64), int(s), ROUNDING_CODES[rounding], OVERFLOW_CODES[overflow],
        int(lo), int(hi), bool(count))
    return out, int(rounded), int(over), int(unordered)

