"""The numpy executor of :mod:`flow.arith.ops`: integer mantissas, batch axis first (the emulator).

Mantissas are int64 arrays while every value fits in :data:`flow.arith.fxp.INT64_SAFE_BITS` bits and
Python-int object arrays beyond, so no width silently overflows. Casts are :func:`flow.arith.fxp.requantize`
(bit-exact to ``ap_fixed``/``ac_fixed`` assignments) and are recorded per layer and role
(:class:`~flow.arith.ops.CastRecord`: values cast, rounded, overflowed).

:meth:`NumpyOps.dot` has fast paths that give the same bits as the definition in
:meth:`flow.arith.ops.Ops.dot` without materializing every product:

* ``accum_t`` keeps every product bit and wraps: one exact matrix product (float64 BLAS when the bound
  ``max|x| * sum_i |w_ij|`` stays below 2**52, so every partial sum is an exact integer; int64 or Python
  ints otherwise), then one wrap;
* otherwise, while every product and partial sum fits int64: a compiled loop
  (:func:`flow.arith.compiled.accumulate_products`) that casts each product and each partial sum as the
  template does, in index order, without storing the products;
* beyond int64: the definition itself, block by block, on Python ints.

:meth:`NumpyOps.window_dot` (a convolution) with exact or TRN/RND products into a WRAP ``accum_t`` and stride 1 takes
a direct compiled loop (:func:`flow.arith.compiled.conv_round_wrap`: no im2col copy, int32 when
:func:`conv_bound_dtype` proves every partial sum fits); a cast of a typed tensor into a type that holds every
one of its values (:func:`_holds`) is a shift, without a pass that could change nothing.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Callable, Sequence

import numpy as np

from flow.arith import compiled, fxp
from flow.arith.ops import CastRecord, Ops, OpsError, Tensor
from flow.arith.types import FixedType

MAX_PRODUCT_ELEMENTS = 1 << 22  # bound on materialized temporaries (rows * n_in * n_out) per block
EXACT_FLOAT_BITS = 53


def _bits(v: np.ndarray) -> int:
    return fxp.bit_length(v)


def _tensor_bits(a: Tensor) -> int:
    """A bound on the bits of ``a``'s mantissas: from its declared type when it has one (no pass over the data),
    else measured."""
    t = a.t
    if t is not None and a.frac == t.fractional and a.data.dtype == np.int64:
        return max(abs(t.min_code), abs(t.max_code)).bit_length()
    return _bits(a.data)


def _narrow(v: np.ndarray) -> np.ndarray:
    return fxp.as_int64(v) if v.dtype == object else v


def _holds(t: FixedType, src: FixedType, shift: int) -> bool:
    """Whether every mantissa of ``src``, shifted left by ``shift`` bits to t's LSB, lies in t's range (the
    SAT_SYM range when t saturates symmetrically), so that a cast to t changes no value."""
    lo, hi = _sat_range(t)
    return (src.width + shift <= fxp.INT64_SAFE_BITS and lo <= src.min_code << shift
            and src.max_code << shift <= hi)


def _sat_range(t: FixedType) -> tuple[int, int]:
    lo, hi = t.min_code, t.max_code
    if t.overflow == "SAT_SYM" and t.signed:
        lo = -hi
    return lo, hi


class NumpyOps(Ops):
    """Integer mantissas, batch first. ``records`` accumulates every cast's counts over all fed batches."""

    symbolic = False
    batch_axes = 1

    def __init__(self, count_rounding: bool = False) -> None:
        self.x: np.ndarray | None = None
        self.count_rounding = count_rounding
        self._records: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])

    def feed(self, x: np.ndarray) -> None:
        """The float input batch (N, ...) that :meth:`input` converts."""
        self.x = np.asarray(x, dtype=np.float64)

    @property
    def records(self) -> list[CastRecord]:
        return [CastRecord(layer, role, t, *counts) for (layer, role, t), counts in self._records.items()]

    def overflows(self, layer: str, role: str = "result") -> int:
        return sum(c[2] for (lay, r, _), c in self._records.items() if lay == layer and r == role)

    def absorb(self, other: NumpyOps) -> None:
        """Add the records of ``other`` (another batch) to these."""
        for key, counts in other._records.items():
            r = self._records[key]
            for k in range(3):
                r[k] += counts[k]

    def _record(self, role: str, t: FixedType, values: int, rounded: int, overflowed: int) -> None:
        r = self._records[(self.layer, role, str(t))]
        r[0] += values
        r[1] += rounded
        r[2] += overflowed

    # ------------------------------------------------------------------ values
    def input(self, t: FixedType, shape: tuple[int, ...]) -> Tensor:
        x = self.x.reshape(self.x.shape[0], *shape)
        scaled = np.ldexp(x, t.fractional)
        rounded = int(np.count_nonzero(scaled != np.floor(scaled))) if self.count_rounding else 0
        codes, n = fxp.from_float(x, t)
        self._record("result", t, int(codes.size), rounded, n)
        return Tensor(codes, t.fractional, t)

    def const(self, codes: np.ndarray, frac: int, t: FixedType | None = None) -> Tensor:
        codes = np.asarray(codes)
        if codes.dtype != object:
            codes = codes.astype(np.int64)
        return Tensor(_narrow(codes), frac, t, const=True)

    # ------------------------------------------------------------------ exact arithmetic
    def _aligned(self, a: Tensor, b: Tensor, extra: int) -> tuple[np.ndarray, np.ndarray, int]:
        f = max(a.frac, b.frac)
        sa, sb = f - a.frac, f - b.frac
        va, vb = a.data, b.data
        if (va.dtype == object or vb.dtype == object
                or max(_tensor_bits(a) + sa, _tensor_bits(b) + sb) + extra > fxp.INT64_SAFE_BITS):
            va, vb = fxp.as_object(va), fxp.as_object(vb)
        return (va << sa if sa else va), (vb << sb if sb else vb), f

    def add(self, a: Tensor, b: Tensor) -> Tensor:
        va, vb, f = self._aligned(a, b, 1)
        return Tensor(va + vb, f, None, a.const and b.const)

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        va, vb, f = self._aligned(a, b, 1)
        return Tensor(va - vb, f, None, a.const and b.const)

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        va, vb = a.data, b.data
        if va.dtype == object or vb.dtype == object or _bits(va) + _bits(vb) > fxp.INT64_SAFE_BITS:
            va, vb = fxp.as_object(va), fxp.as_object(vb)
        return Tensor(va * vb, a.frac + b.frac, None, a.const and b.const)

    def neg(self, a: Tensor) -> Tensor:
        v = a.data
        if v.dtype != object and _bits(v) + 1 > fxp.INT64_SAFE_BITS:
            v = fxp.as_object(v)
        return Tensor(-v, a.frac, None, a.const)

    # ------------------------------------------------------------------ casts
    def cast(self, a: Tensor, t: FixedType, role: str = "result") -> Tensor:
        v = np.asarray(a.data)
        shift = t.fractional - a.frac
        if (a.t is not None and a.frac == a.t.fractional and shift >= 0 and v.dtype == np.int64
                and _holds(t, a.t, shift)):
            # every value of a.t is a value of t: no bit dropped, none out of range (requantize's result)
            q, n, rounded = (v << shift if shift else v), 0, 0
        else:
            q, n, rounded = fxp.requantize_counted(v, a.frac, t, self.count_rounding and not a.const)
        if not a.const:
            self._record(role, t, int(v.size), rounded, n)
        return Tensor(q, t.fractional, t, a.const)

    # ------------------------------------------------------------------ accumulation
    def dot(self, x: Tensor, w: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        xv = x.data
        lead, n_in = xv.shape[:-1], xv.shape[-1]
        wv = w.data
        if wv.shape[0] != n_in:
            raise OpsError(f"dot: {n_in} inputs but a weight matrix of shape {wv.shape}")
        n_out = wv.shape[1]
        x2 = xv.reshape(-1, n_in)
        p_frac = x.frac + w.frac
        bias = self.cast(b, acc_t, "bias").data.reshape(-1)
        s = p_frac - acc_t.fractional
        if s <= 0 and acc_t.overflow == "WRAP":
            total = _exact_matmul(x2, wv, -s, bias)
            q, n = fxp.apply_overflow(total, acc_t)
            self._record("accum", acc_t, int(q.size), 0, n)
            return Tensor(_narrow(q).reshape(*lead, n_out), acc_t.fractional, acc_t)
        if (x2.dtype != object and wv.dtype != object and
                _bits(x2) + _bits(wv) + max(0, -s) + math.ceil(math.log2(n_in + 1)) + 2 <= fxp.INT64_SAFE_BITS
                and _bits(bias) + math.ceil(math.log2(n_in + 1)) + 2 <= fxp.INT64_SAFE_BITS):
            lo, hi = _sat_range(acc_t)
            sums, rounded, over, unordered = compiled.accumulate_products(
                x2, wv, bias, s, acc_t.rounding, acc_t.overflow, lo, hi, self.count_rounding)
            if unordered and not in_order:
                raise OpsError(f"accum_t {acc_t} saturates and a partial sum can overflow; only the Latency "
                               "strategy's io_parallel addition order is reproduced")
            self._record("product", acc_t, int(x2.shape[0]) * n_in * n_out, rounded, 0)
            if acc_t.overflow == "WRAP":
                sums, over, _ = fxp.requantize_counted(sums, acc_t.fractional, acc_t)
            self._record("accum", acc_t, int(sums.size), 0, over)
            return Tensor(sums.reshape(*lead, n_out), acc_t.fractional, acc_t)

        def products(rows: np.ndarray) -> np.ndarray:
            p = Tensor(rows[:, :, None] * wv[None, :, :] if _bits(rows) + _bits(wv) <= fxp.INT64_SAFE_BITS
                       else fxp.as_object(rows)[:, :, None] * fxp.as_object(wv)[None, :, :], p_frac)
            return self.cast(p, acc_t, "product").data

        acc = self._sum_products(x2, products, n_in, n_out, bias, acc_t, in_order)
        return Tensor(acc.reshape(*lead, n_out), acc_t.fractional, acc_t)

    def window_dot(self, x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...],
                   w: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True,
                   result_t: FixedType | None = None) -> Tensor:
        """:meth:`Ops.window_dot`; a stride-1 convolution whose products are exact in a WRAP ``accum_t`` or cast
        to it with TRN or RND takes :func:`flow.arith.compiled.conv_round_wrap` (no im2col copy; a WRAP sum does not
        depend on the order of its terms), in int32 when :func:`conv_bound_dtype` proves that every partial sum fits.
        A cast to ``result_t`` that cannot change a value (:func:`_holds`) is the same loop's final shift.
        Everything else, and counting rounded products, takes the definition."""
        nd = len(kernel)
        xv, wv = x.data, w.data
        s = x.frac + w.frac - acc_t.fractional
        bias = self.cast(b, acc_t, "bias").data.reshape(-1)
        dtype = None
        if (nd in (1, 2) and all(v == 1 for v in stride) and not self.count_rounding and acc_t.overflow == "WRAP"
                and (acc_t.rounding in ("TRN", "RND") or s == 0) and acc_t.width <= fxp.INT64_SAFE_BITS and not x.const
                and xv.dtype == np.int64 and wv.dtype == np.int64 and bias.dtype == np.int64):
            dtype = conv_bound_dtype(_bits(xv), _bits(wv), _bits(bias), s, wv.shape[0])
        if dtype is None:
            return super().window_dot(x, kernel, stride, out, w, b, acc_t, in_order, result_t)
        x4 = xv if nd == 2 else xv[:, None]                                 # (N, H, W, C)
        kernel2, out2 = ((1,) * (2 - nd) + tuple(kernel)), ((1,) * (2 - nd) + tuple(out))
        n_out = wv.shape[1]
        if any(o + k - 1 > d for o, k, d in zip(out2, kernel2, x4.shape[1:3])):
            return super().window_dot(x, kernel, stride, out, w, b, acc_t, in_order, result_t)
        c = (1 << (s - 1)) if acc_t.rounding == "RND" and s > 0 else 0
        shift = 0 if result_t is None else result_t.fractional - acc_t.fractional
        fused = result_t is not None and shift >= 0 and _holds(result_t, acc_t, shift)
        sums, over = compiled.conv_round_wrap(
            np.ascontiguousarray(x4.transpose(0, 3, 1, 2), dtype=dtype),
            np.ascontiguousarray(wv.reshape(*kernel2, x4.shape[3], n_out), dtype=dtype), bias, dtype(c), dtype(s),
            out2[0], out2[1], acc_t.min_code, (1 << acc_t.width) - 1, shift if fused else 0)
        if s > 0:  # as dot() records: products are cast only when they have bits to drop
            self._record("product", acc_t, sums.size * wv.shape[0], 0, 0)
        self._record("accum", acc_t, int(sums.size), 0, int(over))
        acc = Tensor(sums.reshape(xv.shape[0], *out, n_out), acc_t.fractional, acc_t)
        if fused:
            self._record("result", result_t, int(sums.size), 0, 0)
            return Tensor(acc.data, result_t.fractional, result_t)
        return acc if result_t is None else self.cast(acc, result_t)

    def accumulate(self, products: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        pv = products.data
        if products.frac != acc_t.fractional:
            raise OpsError("accumulate: products must already be of accum_t")
        lead, (n_in, n_out) = pv.shape[:-2], pv.shape[-2:]
        p3 = pv.reshape(-1, n_in, n_out)
        bias = self.cast(b, acc_t, "bias").data.reshape(-1)
        acc = self._sum_products(np.arange(p3.shape[0]), lambda rows: p3[rows], n_in, n_out, bias, acc_t, in_order)
        return Tensor(acc.reshape(*lead, n_out), acc_t.fractional, acc_t)

    def _sum_products(self, rows: np.ndarray, products: Callable[[np.ndarray], np.ndarray], n_in: int, n_out: int,
                      bias: np.ndarray, acc_t: FixedType, in_order: bool) -> np.ndarray:
        """``acc = bias; acc = (accum_t)(acc + p_i)`` for i in order, over blocks of rows; ``products(rows)``
        gives their products (rows, n_in, n_out) already of accum_t."""
        step = max(1, MAX_PRODUCT_ELEMENTS // max(1, n_in * n_out))
        out, n_over = [], 0
        lo, hi = _sat_range(acc_t)
        for r0 in range(0, len(rows), step):
            mult = products(rows[r0:r0 + step])
            if mult.dtype != object and acc_t.width + math.ceil(math.log2(n_in + 2)) + 1 > fxp.INT64_SAFE_BITS:
                mult, bias = fxp.as_object(mult), fxp.as_object(bias)
            if acc_t.overflow == "WRAP":
                total, n = fxp.apply_overflow(np.sum(mult, axis=1) + bias, acc_t)
                out.append(total)
                n_over += n
                continue
            upper = bias + np.sum(np.where(mult > 0, mult, 0), axis=1)  # bounds of every partial sum
            lower = bias + np.sum(np.where(mult < 0, mult, 0), axis=1)
            if not (np.any(upper > hi) or np.any(lower < lo)):
                out.append(np.sum(mult, axis=1) + bias)
                continue
            if not in_order:
                raise OpsError(f"accum_t {acc_t} saturates and a partial sum can overflow; only the Latency "
                               "strategy's io_parallel addition order is reproduced")
            acc = np.broadcast_to(bias, (mult.shape[0], n_out)).copy()
            for i in range(n_in):
                acc, n = fxp.apply_overflow(acc + mult[:, i, :], acc_t)
                n_over += n
            out.append(acc)
        self._record("accum", acc_t, len(rows) * n_out, 0, n_over)
        if not out:
            return np.zeros((0, n_out), dtype=np.int64)
        return _narrow(np.concatenate(out, axis=0))

    # ------------------------------------------------------------------ comparison and selection
    def greater(self, a: Tensor, b: Tensor) -> Tensor:
        va, vb, _ = self._aligned(a, b, 0)
        return Tensor(va > vb, 0, None, a.const and b.const)

    def select(self, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
        va, vb, f = self._aligned(a, b, 0)
        return Tensor(np.where(cond.data, va, vb), f, None, cond.const and a.const and b.const)

    def magnitude_bits(self, x: Tensor) -> int:
        return _bits(np.asarray(x.data))

    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        va, vb, f = self._aligned(a, b, 0)
        return Tensor(np.maximum(va, vb), f, None, a.const and b.const)

    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        va, vb, f = self._aligned(a, b, 0)
        return Tensor(np.minimum(va, vb), f, None, a.const and b.const)

    def reduce_max(self, x: Tensor, axis: int) -> Tensor:
        ax = self._axis(axis, x)
        v = x.data
        if v.dtype == object or v.shape[ax] > 16:
            return Tensor(np.max(v, axis=ax), x.frac, None, x.const)
        cells = [v[(slice(None),) * ax + (k,)] for k in range(v.shape[ax])]  # views: faster than a reduce over a short axis
        if len(cells) == 1:
            return Tensor(cells[0].copy(), x.frac, None, x.const)
        out = np.maximum(cells[0], cells[1])
        for c in cells[2:]:
            np.maximum(out, c, out=out)
        return Tensor(out, x.frac, None, x.const)

    # ------------------------------------------------------------------ tables
    def lookup(self, x: Tensor, table: Callable[[np.ndarray], np.ndarray], frac_out: int,
               t: FixedType | None = None) -> Tensor:
        codes = x.data.astype(np.int64) if x.data.dtype == object else x.data
        return Tensor(np.asarray(table(codes)), frac_out, t, x.const)

    # ------------------------------------------------------------------ structure
    def pad(self, x: Tensor, widths: Sequence[tuple[int, int]], code: int = 0) -> Tensor:
        lead = [(0, 0)] * (0 if x.const else self.batch_axes)
        return Tensor(np.pad(x.data, lead + [tuple(w) for w in widths], constant_values=code), x.frac, x.t, x.const)


INT32_BITS = 31  # magnitudes below 2**31 fit int32


def conv_bound_dtype(x_bits: int, w_bits: int, bias_bits: int, s: int, terms: int) -> type | None:
    """The narrowest integer dtype in which a sum of ``terms`` products ``(x*w + c) >> s`` (``|x| < 2**x_bits``,
    ``|w| < 2**w_bits``, rounding offset ``0 <= c <= 2**(s-1)``, ``s >= 0``, ``c = 0`` when ``s = 0``) is computed
    exactly, or None.

    ``|x*w + c| < 2**(x_bits + w_bits + 1)``, so each term has magnitude at most
    ``max(1, 2**(x_bits + w_bits + 1 - s))`` and every partial sum at most ``terms`` times that: int32 when the
    products and that bound stay below 2**31, int64 when they stay below 2**62 with the bias added."""
    if s < 0:
        return None
    bound = terms * max(1, 1 << max(0, x_bits + w_bits + 1 - s))
    if x_bits + w_bits + 1 <= INT32_BITS and s < INT32_BITS and bound < 1 << INT32_BITS:
        return np.int32
    if (x_bits + w_bits + 1 <= fxp.INT64_SAFE_BITS and s <= fxp.INT64_SAFE_BITS
            and bound + (1 << bias_bits) < 1 << fxp.INT64_SAFE_BITS):
        return np.int64
    return None


def _exact_matmul(x: np.ndarray, w: np.ndarray, shift: int, bias: np.ndarray) -> np.ndarray:
    """``(x @ w) * 2**shift + bias`` exactly: float64 BLAS when every partial sum is an integer below 2**53
    in magnitude, else int64 (or Python ints beyond 62 bits)."""
    x_max = max(abs(int(x.min(initial=0))), abs(int(x.max(initial=0))))
    w_abs = np.abs(w.astype(np.float64)) if w.dtype != object else np.abs(w).astype(np.float64)
    bound = x_max * float(w_abs.sum(axis=0).max(initial=0.0))
    bias_bits = _bits(bias)
    if bound < 2.0 ** (EXACT_FLOAT_BITS - 1) and x.dtype != object and w.dtype != object:
        prod = (x.astype(np.float64) @ w.astype(np.float64)).astype(np.int64)
    else:
        if bound >= 2.0 ** fxp.INT64_SAFE_BITS or x.dtype == object or w.dtype == object:
            x, w = fxp.as_object(x), fxp.as_object(w)
        prod = x @ w
    need = max(math.ceil(math.log2(bound + 1)) + shift, bias_bits) + 1
    if prod.dtype != object and need > fxp.INT64_SAFE_BITS:
        prod, bias = fxp.as_object(prod), fxp.as_object(bias)
    return (prod << shift if shift else prod) + bias


def as_values(t: Tensor) -> np.ndarray:
    """Float64 values of a numpy-executor tensor (exact up to 53 significant bits)."""
    return fxp.to_float(t.data, t.frac)
