"""The arithmetic interface every layer is written against, and what each operation means.

A layer of the hls4ml graph is described once (:mod:`flow.arith.layers`) as a function of
``(layer, inputs, ops, target)``. ``ops`` is one of two executors of this interface:

* :class:`flow.arith.numpy_ops.NumpyOps`: integer mantissas in numpy, batch axis first (the emulator,
  bit-exact to hls4ml's C simulation; counts the values each cast rounds and overflows);
* :class:`flow.arith.symbolic_ops.SymbolicOps`: da4ml ``FixedVariable`` objects, one sample, no batch axis
  (the RTL trace: every operation becomes logic).

Values are :class:`Tensor` objects. Shapes and axes are **per sample** in both executors. A tensor's
``frac`` is the position of its least significant bit: the numpy executor holds integer mantissas ``m``
whose value is ``m * 2**-frac``; the symbolic executor holds exact values on that grid. ``t`` is the declared
fixed-point type after a :meth:`Ops.cast` (``ap_fixed<W,I>``: W total bits, I integer bits incl. sign; the
mantissa of a value of type t has ``W - I`` fractional bits), and ``None`` for an exact intermediate such
as a full-precision sum or product, which behaves like the unbounded result type of an ``ap_fixed``
operator.

The meaning of every operation is stated here, once; the two executors implement it and
``tests/test_arith_equivalence.py`` proves them equal to each other (and the numpy side equal to hls4ml's C
simulation) on full-range inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from flow.arith.types import FixedType


@dataclass
class Tensor:
    """Values of one layer-level quantity: ``data`` (executor-specific, see the module docstring), ``frac``
    (LSB position: value = mantissa * 2**-frac), ``t`` (declared type, or None for an exact intermediate),
    ``const`` (a constant shared by every sample: no batch axis in either executor)."""

    data: Any
    frac: int
    t: FixedType | None = None
    const: bool = False


@dataclass(frozen=True)
class CastRecord:
    """What one cast did to the values of one layer (numpy executor, over every emulated sample).

    ``role`` names the cast within the layer (``result``: to the layer's output type; ``accum``: to
    ``accum_t``; ``product``: each product to ``accum_t`` before it is added; ...). ``rounded`` counts values
    whose dropped fractional bits were not all zero; ``overflowed`` values outside the type's range (wrapped
    or saturated); ``values`` all values cast.
    """

    layer: str
    role: str
    type: str
    values: int
    rounded: int
    overflowed: int


class OpsError(Exception):
    """An operation the executor cannot express (the caller adds the layer's name)."""


class Ops:
    """The operations (see each method). Executors override the ``_``-free methods they implement.

    Structural operations (reshape, transpose, pad, windows, gather, concatenate, index) are written here
    once for both executors: their ``data`` are numpy arrays (integers or da4ml objects) whose first
    :attr:`batch_axes` axes are the batch.
    """

    symbolic: bool = False
    batch_axes: int = 0
    layer: str = ""  # the layer being executed (set by the graph walker; names records and errors)

    # ------------------------------------------------------------------ values
    def input(self, t: FixedType, shape: tuple[int, ...]) -> Tensor:
        """The model input, of declared type ``t`` and per-sample ``shape``."""
        raise NotImplementedError

    def const(self, codes: np.ndarray, frac: int, t: FixedType | None = None) -> Tensor:
        """A constant tensor (the same for every sample) from integer mantissas ``codes`` at ``frac``."""
        raise NotImplementedError

    # ------------------------------------------------------------------ exact arithmetic
    def add(self, a: Tensor, b: Tensor) -> Tensor:
        """``a + b`` exactly (the full-precision ``ap_fixed`` sum), at ``max(a.frac, b.frac)``; broadcasts."""
        raise NotImplementedError

    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        """``a - b`` exactly, at ``max(a.frac, b.frac)``; broadcasts."""
        raise NotImplementedError

    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        """``a * b`` exactly (the full-precision product), at ``a.frac + b.frac``; broadcasts."""
        raise NotImplementedError

    def neg(self, a: Tensor) -> Tensor:
        """``-a`` exactly."""
        raise NotImplementedError

    def scale(self, a: Tensor, k: int) -> Tensor:
        """``a * 2**k`` exactly: the same mantissas with ``frac - k``."""
        return Tensor(a.data, a.frac - k, None, a.const)

    # ------------------------------------------------------------------ casts
    def cast(self, a: Tensor, t: FixedType, role: str = "result") -> Tensor:
        """``(t) a`` for every element, as an ``ap_fixed`` assignment: first the rounding mode on the bits
        below t's LSB (TRN floor, TRN_ZERO, RND, RND_ZERO, RND_MIN_INF, RND_INF, RND_CONV), then the overflow
        mode on the rounded value (WRAP, SAT, SAT_ZERO, SAT_SYM). ``role`` names the cast in records."""
        raise NotImplementedError

    # ------------------------------------------------------------------ accumulation (hls4ml's templates)
    def dot(self, x: Tensor, w: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        """hls4ml's dense product over the last axis of ``x`` (n_in) with the constant matrix ``w``
        (n_in, n_out) and constant bias ``b`` (n_out) (the symbolic executor also takes variables for ``w`` and
        ``b``: one step of a folded layer, :mod:`flow.rtl.architecture`): ``acc = (accum_t) b; for i in 0..n_in-1:
        acc = (accum_t)(acc + (accum_t)(x_i * w_i))``. Equals :meth:`accumulate` of the products cast to
        ``acc_t``. ``in_order`` says the template adds in index order (hls4ml's Latency strategy in
        io_parallel): with a saturating ``accum_t`` whose partial sums can leave its range, another order
        cannot be reproduced and :class:`OpsError` is raised."""
        raise NotImplementedError

    def window_dot(self, x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...],
                   w: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True,
                   result_t: FixedType | None = None) -> Tensor:
        """A convolution: :meth:`dot` of every window of the channels-last sample ``x`` (*spatial, C) (the windows
        of :meth:`windows`), each window flattened in (*kernel, C) order (im2col), with ``w``
        (prod(kernel) * C, n_out); the result has shape (*out, n_out); with ``result_t``, then :meth:`cast` to
        it (role ``result``). This is the definition; an executor may compute the same bits without forming
        the windows."""
        nd = len(kernel)
        win = self.windows(x, kernel, stride, out)                       # (*out, C, *kernel)
        win = self.transpose(win, tuple(range(nd)) + tuple(range(nd + 1, 2 * nd + 1)) + (nd,))  # (*out, *kernel, C)
        k = int(np.prod(kernel)) * self.shape(x)[-1]
        cols = self.reshape(win, (*self.shape(win)[:nd], k))  # (*out, k); one window when a line buffer forms it
        acc = self.dot(cols, w, b, acc_t, in_order)
        return acc if result_t is None else self.cast(acc, result_t)

    def accumulate(self, products: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        """``acc = (accum_t) b; for i: acc = (accum_t)(acc + products[..., i, :])`` over axis -2 of
        ``products`` (already of type ``acc_t``); the result has the shape of ``products`` without axis -2."""
        raise NotImplementedError

    # ------------------------------------------------------------------ comparison and selection
    def greater(self, a: Tensor, b: Tensor) -> Tensor:
        """A condition, true where ``a > b`` (exact comparison); used only by :meth:`select`."""
        raise NotImplementedError

    def select(self, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """``cond ? a : b`` elementwise (exact; at ``max(a.frac, b.frac)``); broadcasts."""
        raise NotImplementedError

    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        """``a > b ? a : b`` elementwise, exact."""
        return self.select(self.greater(a, b), a, b)

    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        """``b > a ? a : b`` elementwise (``a < b ? a : b``), exact."""
        return self.select(self.greater(b, a), a, b)

    def reduce_max(self, x: Tensor, axis: int) -> Tensor:
        """The maximum along per-sample ``axis`` (exact)."""
        ax = axis % self.ndim(x)
        parts = [self.index(x, (slice(None),) * ax + (k,)) for k in range(self.shape(x)[ax])]
        out = parts[0]
        for p in parts[1:]:
            out = self.maximum(out, p)
        return out

    def magnitude_bits(self, x: Tensor) -> int:
        """A bit count N with ``|mantissa| < 2**N`` for every value of ``x`` (any valid bound; executors may give
        different ones, so no result may depend on which)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ tables
    def lookup(self, x: Tensor, table: Callable[[np.ndarray], np.ndarray], frac_out: int,
               t: FixedType | None = None) -> Tensor:
        """``table(codes of x)`` elementwise: ``table`` maps an int64 array of x's mantissas (at ``x.frac``)
        to the result's integer mantissas at ``frac_out`` (a ROM in hardware, addressed by x)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ structure (per-sample axes)
    def ndim(self, x: Tensor) -> int:
        return x.data.ndim - (0 if x.const else self.batch_axes)

    def shape(self, x: Tensor) -> tuple[int, ...]:
        return tuple(x.data.shape[(0 if x.const else self.batch_axes):])

    def _axis(self, axis: int, x: Tensor) -> int:
        """The data axis of per-sample ``axis`` of ``x``."""
        return (0 if x.const else self.batch_axes) + axis % self.ndim(x)

    def _lead(self, x: Tensor) -> tuple[int, ...]:
        return () if x.const else tuple(x.data.shape[:self.batch_axes])

    def reshape(self, x: Tensor, shape: Sequence[int]) -> Tensor:
        return Tensor(x.data.reshape(*self._lead(x), *shape), x.frac, x.t, x.const)

    def transpose(self, x: Tensor, axes: Sequence[int]) -> Tensor:
        b = 0 if x.const else self.batch_axes
        return Tensor(np.transpose(x.data, tuple(range(b)) + tuple(b + a for a in axes)), x.frac, x.t, x.const)

    def index(self, x: Tensor, key: tuple) -> Tensor:
        """``x[key]`` per sample (basic or integer-array indexing)."""
        b = 0 if x.const else self.batch_axes
        return Tensor(x.data[(slice(None),) * b + tuple(key)], x.frac, x.t, x.const)

    def gather(self, x: Tensor, flat_index: np.ndarray) -> Tensor:
        """Elements of the flattened sample at ``flat_index`` (any shape)."""
        flat = self.reshape(x, (-1,))
        return self.reshape(self.index(flat, (np.asarray(flat_index).ravel(),)), np.shape(flat_index))

    def concat(self, xs: Sequence[Tensor], axis: int) -> Tensor:
        """Concatenation along per-sample ``axis``; the inputs must share ``frac`` and ``t``."""
        if len({(x.frac, x.t) for x in xs}) != 1:
            raise OpsError("concatenate needs inputs of one type")
        return Tensor(np.concatenate([x.data for x in xs], axis=self._axis(axis, xs[0])), xs[0].frac, xs[0].t)

    def pad(self, x: Tensor, widths: Sequence[tuple[int, int]], code: int = 0) -> Tensor:
        """Pad per-sample axes by ``widths`` (before, after) with the mantissa ``code`` (at ``x.frac``)."""
        raise NotImplementedError

    def windows(self, x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...]) -> Tensor:
        """Sliding windows over the leading spatial axes of a channels-last sample of shape
        (*spatial, C): the result has shape (*out, C, *kernel), window ``o`` starting at ``o * stride``."""
        b = self.batch_axes
        nd = len(kernel)
        win = np.lib.stride_tricks.sliding_window_view(x.data, kernel, axis=tuple(range(b, b + nd)))
        win = win[(slice(None),) * b + tuple(slice(None, None, s) for s in stride)]
        win = win[(slice(None),) * b + tuple(slice(0, o) for o in out)]
        return Tensor(win, x.frac, x.t)
