"""The symbolic executor of :mod:`flow.arith.ops`: da4ml ``FixedVariable`` objects for one sample (the RTL).

``Tensor.data`` is a numpy object array of ``FixedVariable`` (no batch axis); a constant tensor holds
integer mantissas like the numpy executor's constants, and every operation between constants is computed
by a :class:`~flow.arith.numpy_ops.NumpyOps` (so constants fold exactly as in the emulator). Products with
constant matrices go through da4ml's CMVM optimizer (shift-and-add adder trees, no multipliers).

Casts implement every ``ap_fixed`` rounding mode (TRN, TRN_ZERO, RND, RND_ZERO, RND_MIN_INF, RND_INF, RND_CONV)
and overflow mode (WRAP, SAT, SAT_ZERO, SAT_SYM) from da4ml's primitives (add a constant, truncate,
wrap/saturate, sign bit, multiplexer); da4ml itself offers only TRN/RND and WRAP/SAT/SAT_SYM. All rounding
modes drop bits with ``floor(x + offset)``, where the offset is half an LSB, minus one source LSB, plus one
source LSB times a selector bit:

=============  =====================================  =======================
mode           offset                                 selector bit
=============  =====================================  =======================
TRN            0                                      -
RND            h                                      -
RND_MIN_INF    h - d                                  -
RND_CONV       h - d + d*b                            b = target LSB of x
RND_ZERO       h - d + d*n                            n = x < 0
RND_INF        h - d*n                                n = x < 0
TRN_ZERO       (2h - d)*n                             n = x < 0
=============  =====================================  =======================

(``h`` = half the target LSB, ``d`` = the source LSB.)

Exactness over the type space (``tests/test_typespace.py``): da4ml 0.6 gives a constant an LSB of at most 2**-32,
so finer constants are made and added at a power-of-two scale (:meth:`SymbolicOps._var`, :meth:`SymbolicOps._plus`,
casts to such LSBs run scaled), every constant an operation returns is re-made exactly, a multiplexer between 0
and a variable of negative factor is built on the negated variable (:func:`_mux_zero`), and what da4ml's float64
widths cannot hold (values beyond :data:`SYMBOLIC_MAX_BITS` magnitude bits, constants beyond as many significant
bits) is refused with :class:`OpsError` naming the operation.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, Callable, Sequence

import numpy as np

from flow.arith import fxp
from flow.arith.numpy_ops import NumpyOps
from flow.arith.ops import Ops, OpsError, Tensor
from flow.arith.types import FixedType

# da4ml's CMVM solver: skipping the exhaustive search over decomposition delay constraints
# made a 784x20 power-of-two layer trace 18x faster (20 s vs 362 s) at the same adder cost with a
# hard delay constraint of 2 (measured 2026-11-23 with a scratch script on a random +-2**-k 784x20 matrix).
SOLVER_OPTIONS = {"search_all_decompose_dc": False, "method0": "wmc-dc", "hard_dc": 2}
# A constant matrix of more than CMVM_BLOCK_WEIGHTS weights is solved in tiles of CMVM_BLOCK_ROWS inputs x
# CMVM_BLOCK_COLS outputs (cmvm_blocks; the measurements are in its docstring).
CMVM_BLOCK_WEIGHTS = 4096
CMVM_BLOCK_ROWS = 32
CMVM_BLOCK_COLS = 64
MAX_TABLE_ENTRIES = 1 << 16  # a lookup addressed by more values than this is refused (a ROM too large to build)
CMVM_EXACT_BITS = 24          # da4ml's CMVM solver reads the matrix as float32
DA4ML_CONST_FRAC_BITS = 32    # da4ml's _const_f: the LSB it gives a constant it adds is at most 2**-32
# da4ml derives every op's width from its interval in float64 (``minimal_kif``: ceil(log2(2**n + 1)) rounds to n
# from n = 49 on, one bit short: the maximum of ap_ufixed<1,0> and ap_ufixed<42,-8> was traced 49 bits wide and
# wrapped 0.5 to 0; tests/test_typespace.py). Values whose codes need more magnitude bits than this are refused
# (one bit is left for the op da4ml forms inside a subtraction, maximum or rounding).
SYMBOLIC_MAX_BITS = 47


def cmvm_blocks(n_in: int, n_out: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """The input rows and the output columns, as ``[lo, hi)`` ranges, of the tiles of an ``n_in x n_out`` constant
    matrix that da4ml's CMVM solver is given one at a time. The tiles of one column range are added by a balanced
    adder tree (exact: the same sum), and the column ranges are concatenated.

    Up to :data:`CMVM_BLOCK_WEIGHTS` weights the matrix is one tile (what every model traced before this rule
    got, byte for byte). Above it, tiles of :data:`CMVM_BLOCK_ROWS` x :data:`CMVM_BLOCK_COLS`: the solver's time
    grows much faster than the weights it is given at once, so a large layer becomes linear in its weights, at
    the price of the sharing the solver would have found across tiles.

    Measured 2026-12-08 (a scratch script; a float n x n Dense at ``ap_fixed<16,6>``, glorot-uniform weights,
    :data:`SOLVER_OPTIONS`; the 2-core machine shared with other jobs; cost is da4ml's adder cost of the traced
    netlist, every netlist checked exact): n = 64 whole 2.2 s, cost 112,021, 32 x 64 tiles +10 %; n = 128 whole
    68 s, cost 384,350, in 32 x 64 tiles 3.5 s, +15 %; n = 256 in 32 x 64 tiles 14.5 CPU s (about 0.45 s per
    tile, as at n = 128), in 32 x 256 row blocks 128 s wall. docs/large-models.md has the table."""
    if n_in * n_out <= CMVM_BLOCK_WEIGHTS:
        return [(0, n_in)], [(0, n_out)]
    return _ranges(n_in, CMVM_BLOCK_ROWS), _ranges(n_out, CMVM_BLOCK_COLS)


def _ranges(n: int, size: int) -> list[tuple[int, int]]:
    return [(lo, min(lo + size, n)) for lo in range(0, n, size)]


@contextmanager
def cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a model is traced, back on afterwards (as it was).

    A trace creates millions of long-lived da4ml ``FixedVariable`` objects, and every full collection walks all
    of them, so collection time grew with the trace: an unrolled Conv1D (24x8, 64 filters, 89,093 parameters) traced
    in 51.2 CPU s with the collector on and 33.2 s with it off (measured 2026-12-08, scratch script). The trace's
    objects are freed by reference counting when it is dropped; nothing of it needs the cyclic collector."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _guarded(what: str) -> Callable[[Callable[..., Tensor]], Callable[..., Tensor]]:
    """Check the variables an operation returns against :data:`SYMBOLIC_MAX_BITS` (:meth:`SymbolicOps.guard`)."""
    def wrap(fn: Callable[..., Tensor]) -> Callable[..., Tensor]:
        def run(self: SymbolicOps, *args: Any, **kwargs: Any) -> Tensor:
            return self.guard(fn(self, *args, **kwargs), what)
        run.__doc__, run.__name__ = fn.__doc__, fn.__name__
        return run
    return wrap


def kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (sign bit, integer bits excluding sign, fractional bits) of ``ap_[u]fixed<W,I>``."""
    k = int(t.signed)
    return k, t.integer - k, t.width - t.integer


def _da4ml() -> tuple[Any, Any]:
    from da4ml.trace import FixedVariableArray
    from da4ml.trace.fixed_variable import FixedVariable

    return FixedVariableArray, FixedVariable


def _elementwise(fn: Callable[..., Any], *arrays: Any) -> np.ndarray:
    """``fn`` over broadcast object arrays, returning an object array."""
    out = np.frompyfunc(fn, len(arrays), 1)(*arrays)
    return np.asarray(out, dtype=object) if isinstance(out, np.ndarray) else np.array(out, dtype=object)


def _decimal_values(codes: np.ndarray, frac: int) -> np.ndarray:
    """Exact values of integer mantissas, as an object array of Decimal."""
    scale = Decimal(2) ** -frac
    return _elementwise(lambda c: Decimal(int(c)) * scale, np.asarray(codes, dtype=object))


class SymbolicOps(Ops):
    """One sample of da4ml symbolic fixed-point variables."""

    symbolic = True
    batch_axes = 0

    def __init__(self) -> None:
        self.hwconf: Any = None
        self.solver_options = dict(SOLVER_OPTIONS)
        self.consts = NumpyOps()
        self.inputs: list[Any] = []

    # ------------------------------------------------------------------ values
    @_guarded("input")
    def input(self, t: FixedType, shape: tuple[int, ...]) -> Tensor:
        fva, _ = _da4ml()
        k, i, f = kif(t)
        arr = fva.from_kif(np.full(shape, k), np.full(shape, i), np.full(shape, f),
                           solver_options=dict(self.solver_options))
        self.hwconf = arr.hwconf
        self.inputs.append(arr)
        # the port carries any code of the word; the C simulation's input is a value of the type, so its
        # overflow mode applies (SAT_SYM: the most negative code reads as -max), as in the numpy executor
        return self.cast(Tensor(arr._vars, t.fractional, t), t, "result")

    def const(self, codes: np.ndarray, frac: int, t: FixedType | None = None) -> Tensor:
        return self.consts.const(codes, frac, t)

    @_guarded("input")
    def variables(self, t: FixedType, shape: tuple[int, ...]) -> Tensor:
        """Fresh variables holding any code of type ``t`` (no cast applied): an input port of a kernel traced
        on its own, e.g. a register or a ROM word of a sequential architecture (:mod:`flow.rtl.architecture`)."""
        fva, _ = _da4ml()
        k, i, f = kif(t)
        arr = fva.from_kif(np.full(shape, k), np.full(shape, i), np.full(shape, f),
                           solver_options=dict(self.solver_options))
        if self.hwconf is None:
            self.hwconf = arr.hwconf
        return Tensor(arr._vars, t.fractional, t)

    def guard(self, x: Tensor, what: str) -> Tensor:
        """``x``, or :class:`OpsError` naming the operation ``what`` when one of its variables needs more than
        :data:`SYMBOLIC_MAX_BITS` magnitude bits (da4ml's float64 widths are not exact beyond)."""
        if x.const:
            return x
        limit = Decimal(2) ** SYMBOLIC_MAX_BITS
        data = np.asarray(x.data, dtype=object)
        folded = [j for j, v in enumerate(data.flat)
                  if getattr(v, "low", None) is not None and v.low == v.high]
        if folded:
            # a variable da4ml folded to a constant encodes the value on its scale factor's grid or from floats
            # with an LSB of at most 2**-32, dropping bits (0.5 + 0 saturated to ap_ufixed<10,-8> came out one LSB
            # short): the exact value as a constant of :meth:`_var` (in a copy: data may be a view of another's)
            data = data.copy()
            for j in folded:
                data.flat[j] = self._var(data.flat[j].low)
        for v in data.flat:
            low, high = getattr(v, "low", None), getattr(v, "high", None)
            if low is not None and low != high and max(-low, high + v.step) / v.step > limit:
                bits = int(max(-low, high + v.step) / v.step - 1).bit_length()
                raise OpsError(f"{what}: a value of {bits} magnitude bits cannot be traced to RTL exactly (da4ml "
                               f"computes widths in float64; at most {SYMBOLIC_MAX_BITS})")
        return Tensor(data, x.frac, x.t, x.const)

    def array(self, x: Tensor) -> Any:
        """``x`` as a flat da4ml ``FixedVariableArray`` (what ``da4ml.trace.comb_trace`` takes)."""
        fva, _ = _da4ml()
        return fva(np.asarray(self._vars(x), dtype=object).reshape(-1), self.solver_options, hwconf=self.hwconf)

    def _var(self, value: Decimal | float) -> Any:
        """A da4ml constant of exactly ``value``: one whose LSB is below 2**-32 (where da4ml's ``_const_f`` stops) is
        made at a power-of-two scale and scaled back (a factor, no logic)."""
        _, fv = _da4ml()
        value = Decimal(value)
        excess = exact_code(value)[1] - DA4ML_CONST_FRAC_BITS if value != 0 else 0
        if excess <= 0:
            return fv.from_const(value, hwconf=self.hwconf)
        return fv.from_const(value, hwconf=self.hwconf, _factor=Decimal(2) ** -excess)

    def _vars(self, x: Tensor) -> np.ndarray:
        """An object array of FixedVariable (constants become da4ml constants)."""
        if not x.const:
            return x.data
        return _elementwise(self._var, _decimal_values(x.data, x.frac))

    def _operand(self, x: Tensor) -> np.ndarray:
        """What to combine with variables: the variables, or a constant's exact values (Decimal)."""
        return _decimal_values(x.data, x.frac) if x.const else x.data

    # ------------------------------------------------------------------ exact arithmetic
    def _binary(self, name: str, a: Tensor, b: Tensor, frac: int) -> Tensor:
        if a.const and b.const:
            return getattr(self.consts, name)(a, b)
        va, vb = self._operand(a), self._operand(b)
        if name == "mul" and (a.const or b.const):
            var, const = (vb, va) if a.const else (va, vb)
            return Tensor(_elementwise(self._const_mul, var, const), frac)
        if name == "mul":
            return Tensor(_elementwise(lambda u, v: u * v, va, vb), frac)
        if name == "add":
            return Tensor(_elementwise(self._sum, va, vb), frac)
        return Tensor(_elementwise(lambda u, v: self._sum(u, -v), va, vb), frac)

    def _sum(self, u: Any, v: Any) -> Any:
        """``u + v`` exactly, for variables and constants (Decimal or a da4ml constant): the variable on the left,
        so da4ml sees variable + constant (:meth:`_plus`)."""
        def value(x: Any) -> Decimal | None:
            return x if isinstance(x, Decimal) else (x.low if x.low == x.high else None)

        cu, cv = value(u), value(v)
        if cu is not None and cv is not None:
            return self._var(cu + cv)
        if cu is not None:
            return self._plus(v, cu)
        if cv is not None:
            return self._plus(u, cv)
        return u + v

    def _plus(self, v: Any, c: Decimal) -> Any:
        """``v + c`` for a variable ``v`` and a constant ``c``, exactly: da4ml gives an added constant an LSB of at
        most 2**-32 (``_const_f``), so a finer one is added at a power-of-two scale (no logic: a factor)."""
        if c == 0:
            return v
        excess = exact_code(c)[1] - DA4ML_CONST_FRAC_BITS
        if excess <= 0:
            return v + c
        scale = Decimal(2) ** excess
        return (v * scale + c * scale) * (1 / scale)

    def _const_mul(self, v: Any, c: Decimal) -> Any:
        """``v * c`` for a constant ``c``: the sum of ``v * (+-2**k)`` over the non-adjacent form of c (exact
        shifts and additions). da4ml 0.6's own constant multiplication wraps its partial sums into too narrow
        intervals for signed variables and constants with several non-zero digits (x of kif (1,1,18) times
        932068 is wrong for every x), so it is not used."""
        c = Decimal(c)
        if c == 0 or v.low == v.high:
            return self._var(v.low * c)
        m, e = exact_code(c)
        terms = []
        k = 0
        while m:
            if m & 1:
                d = 2 - (m & 3)  # +1 or -1: the non-adjacent form
                terms.append(v * (Decimal(d) * Decimal(2) ** (k - e)))
                m -= d
            m >>= 1
            k += 1
        return _tree_sum(terms[::-1])  # the largest term first: the sum keeps its scale (see clip)

    @_guarded("add")
    def add(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary("add", a, b, max(a.frac, b.frac))

    @_guarded("sub")
    def sub(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary("sub", a, b, max(a.frac, b.frac))

    @_guarded("mul")
    def mul(self, a: Tensor, b: Tensor) -> Tensor:
        return self._binary("mul", a, b, a.frac + b.frac)

    @_guarded("neg")
    def neg(self, a: Tensor) -> Tensor:
        if a.const:
            return self.consts.neg(a)
        return Tensor(_elementwise(lambda u: -u, a.data), a.frac)

    def scale(self, a: Tensor, k: int) -> Tensor:
        if a.const:
            return Tensor(a.data, a.frac - k, None, True)
        factor = Decimal(2) ** k
        return Tensor(_elementwise(lambda u: u * factor, a.data), a.frac - k)

    # ------------------------------------------------------------------ casts
    @_guarded("cast")
    def cast(self, a: Tensor, t: FixedType, role: str = "result") -> Tensor:
        if a.const:
            return self.consts.cast(a, t, role)
        return Tensor(_elementwise(lambda v: self._cast_var(v, t), a.data), t.fractional, t)

    def _cast_var(self, v: Any, t: FixedType) -> Any:
        k, i, f = kif(t)
        if v.low == v.high:  # a constant: cast it exactly as the emulator does
            code, frac = exact_code(v.low)
            q, _ = fxp.requantize(np.array([code], dtype=object), frac, t)
            return self._var(Decimal(int(q[0])) * Decimal(2) ** -f)
        _f = v.kif[2]
        lo_t, hi_t = Decimal(t.min_code) * Decimal(2) ** -f, Decimal(t.max_code) * Decimal(2) ** -f
        if t.rounding != "TRN" and _f - f + 1 > SYMBOLIC_MAX_BITS:
            raise OpsError(f"cast: rounding {_f - f} bits away to {t} adds a constant of {_f - f + 1} significant bits "
                           f"(da4ml adds constants in float64; at most {SYMBOLIC_MAX_BITS})")
        if t.overflow != "WRAP" and t.width > SYMBOLIC_MAX_BITS and (v.low < lo_t or v.high > hi_t):
            raise OpsError(f"cast: saturating to {t} compares with a bound of {t.width} significant bits (da4ml adds "
                           f"constants in float64; at most {SYMBOLIC_MAX_BITS})")
        excess = max(f, _f) - DA4ML_CONST_FRAC_BITS
        if excess > 0:
            # the cast adds constants (rounding offsets, saturation bounds) on t's and v's LSBs, and da4ml takes a
            # constant's LSB as at most 2**-32: cast v * 2**excess to t scaled alike (the same bits: a power-of-two
            # factor is no logic) and scale back
            scale = Decimal(2) ** excess
            wide = FixedType(t.width, t.integer + excess, t.signed, t.rounding, t.overflow)
            return self._cast_var(v * scale, wide) * (1 / scale)
        mode = t.rounding
        if _f > f and mode != "TRN":
            h = Decimal(2) ** (-f - 1)
            d = Decimal(2) ** -_f
            if mode == "RND":
                v = v + h
            elif mode == "RND_MIN_INF":
                v = v + (h - d)
            elif mode == "RND_CONV":
                bit = v.quantize(0, -f + 1, f)  # b * 2**-f, the bit that becomes the target LSB
                v = v + (h - d) + self._const_mul(bit, Decimal(2) ** (f - _f))
            elif mode in ("RND_ZERO", "RND_INF", "TRN_ZERO"):
                neg = v.is_negative()  # 0/1
                if mode == "RND_ZERO":
                    v = v + (h - d) + self._const_mul(neg, d)
                elif mode == "RND_INF":
                    v = v + h - self._const_mul(neg, d)
                else:
                    v = v + self._const_mul(neg, 2 * h - d)
            else:
                raise OpsError(f"rounding mode {mode!r} of {t} cannot be traced to RTL")
        if t.overflow == "WRAP" and not k and v.low < 0 and i > v.kif[1] + 1:
            # da4ml narrows an unsigned wrap of a signed value to the source's sign-extension bit (i = _i + 1),
            # which drops the higher sign copies: ap_fixed<2,0> -0.5 -> ap_ufixed<2,1> must be 1.5, not 0.5.
            # Truncate first, then add 2**i to negative values: the result lies in [0, 2**i) and wraps trivially.
            _k, _i, _ = v.kif
            r = v.quantize(_k, max(_i, -f), f, "WRAP", "TRN")  # at least the sign bit survives truncation
            return (r + self._const_mul(r.is_negative(), Decimal(2) ** i)).quantize(0, i, f, "WRAP", "TRN")
        if t.overflow == "WRAP":
            return v.quantize(k, i, f, "WRAP", "TRN")
        if t.overflow in ("SAT", "SAT_SYM"):
            _k, _i, _ = v.kif
            r = v.quantize(_k, max(_i, -f), min(f, v.kif[2]), "WRAP", "TRN")  # rounded, not yet range-checked
            hi_v = Decimal(t.max_code) * Decimal(2) ** -f
            lo_v = -hi_v if t.overflow == "SAT_SYM" and t.signed else Decimal(t.min_code) * Decimal(2) ** -f
            return self._clip(r, lo_v, hi_v).quantize(k, i, f, "WRAP", "TRN")
        if t.overflow == "SAT_ZERO":
            _k, _i, _ = v.kif
            r = v.quantize(_k, max(_i, -f), min(f, v.kif[2]), "WRAP", "TRN")  # rounded, not yet range-checked
            if r.low == r.high:  # rounding left one value: its exact cast (da4ml's zero multiplexer of a constant
                return self._cast_var(r, t)  # kept the value: ap_ufixed<1,3,AP_TRN,AP_SAT_ZERO> of -3 or -1 gave -4)
            lo_v, hi_v = Decimal(t.min_code) * Decimal(2) ** -f, Decimal(t.max_code) * Decimal(2) ** -f
            if r.low >= lo_v and r.high <= hi_v:
                return r.quantize(k, i, f, "WRAP", "TRN")
            # each bound by the sign of an exact difference (hi - r < 0: above; r - lo < 0: below), no bitwise op:
            # da4ml 0.6 selected on the wrong bit for (r > hi) | (r < lo) (ap_ufixed<2,0,AP_TRN,AP_SAT_ZERO> of
            # 0.75 + 0 gave 0.25; tests/test_typespace.py)
            out = r
            if r.high > hi_v:
                out = _mux_zero(hi_v - self._fits(r, hi_v), None, out)
            if r.low < lo_v:
                out = _mux_zero(self._fits(r, lo_v) - lo_v, None, out)
            return out.quantize(k, i, f, "WRAP", "TRN")
        raise OpsError(f"overflow mode {t.overflow!r} of {t} cannot be traced to RTL")

    # ------------------------------------------------------------------ accumulation
    @_guarded("dot")
    def dot(self, x: Tensor, w: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        """A constant ``w`` becomes da4ml's CMVM adder trees (exact WRAP accumulators) or constant products; a
        ``w`` of variables (a weight word read from a ROM by a folded layer) gives variable-by-variable
        multipliers, each product cast to ``accum_t`` as the definition says. ``b`` may be variables too (the
        running accumulator of a folded layer)."""
        fva, _ = _da4ml()
        n_in, n_out = w.data.shape
        lead = x.data.shape[:-1]
        exact = acc_t.fractional >= x.frac + w.frac and acc_t.overflow == "WRAP"
        if w.const and exact and fxp.bit_length(w.data) <= CMVM_EXACT_BITS:
            bias = self.cast(b, acc_t, "bias")
            rows = x.data.reshape(-1, n_in)
            values = np.asarray(w.data, dtype=np.float64) * 2.0 ** -w.frac  # exact: at most 24 significant bits
            out = np.empty((rows.shape[0], n_out), dtype=object)
            row_blocks, col_blocks = cmvm_blocks(n_in, n_out)
            solved: dict[Any, Any] = {}  # one solution per block and input ranges (the positions of a Conv)
            for r in range(rows.shape[0]):
                out[r] = np.concatenate([
                    _tree_sum([self._cmvm(rows[r][lo:hi], values[lo:hi, c0:c1], (lo, c0), solved)
                               for lo, hi in row_blocks])
                    for c0, c1 in col_blocks])
            total = self.add(Tensor(out.reshape(*lead, n_out), x.frac + w.frac), bias)
            return self.cast(total, acc_t, "accum")
        products = self.cast(self.mul(self.reshape(x, (*lead, n_in, 1)), w), acc_t, "product")
        if not w.const and acc_t.overflow == "WRAP":
            # the definition's chain, acc = (accum_t)(acc + product) in index order (wrapping: the bits of any
            # order): from the bias, one multiply-add per product, which synthesis packs into DSP slices
            acc = self.cast(b, acc_t, "bias")
            for q in np.moveaxis(products.data, -2, 0):
                acc = self.cast(self.add(acc, Tensor(q, acc_t.fractional)), acc_t, "accum")
            return acc
        return self.accumulate(products, b, acc_t, in_order)

    def _cmvm(self, xs: np.ndarray, values: np.ndarray, block: tuple[int, int], solved: dict[Any, Any]) -> np.ndarray:
        """``xs @ values`` through da4ml's CMVM solver (what ``FixedVariableArray.__matmul__`` does for a constant
        matrix), solved once per ``(block, input ranges, input latencies)`` in ``solved``: the solver's result
        depends on nothing else, so the positions of a convolution whose inputs share ranges reuse one adder
        graph, applied to their own variables."""
        fva, _ = _da4ml()
        arr = fva(xs, self.solver_options, hwconf=self.hwconf)
        if arr.collapsed:  # only constants: da4ml multiplies them out
            return (arr @ values)._vars
        from da4ml.cmvm import QInterval, solve

        qintervals = [QInterval(float(v.low), float(v.high), float(v.step)) for v in xs]
        latencies = [float(v.latency) for v in xs]
        key = (block, tuple(qintervals), tuple(latencies))
        if key not in solved:
            hwconf = xs[0].hwconf
            options = {k: v for k, v in self.solver_options.items() if k != "offload_fn"}
            options.setdefault("adder_size", hwconf.adder_size)
            options.setdefault("carry_size", hwconf.carry_size)
            solved[key] = solve(np.ascontiguousarray(values.astype(np.float32)), qintervals=qintervals,
                                latencies=latencies, **options)
        return np.asarray(solved[key](xs))

    @_guarded("accumulate")
    def accumulate(self, products: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        bias = self.cast(b, acc_t, "bias")
        p = np.moveaxis(products.data, -2, 0)  # (n_in, ..., n_out)
        lo, hi = acc_t.min_code * Decimal(2) ** -acc_t.fractional, acc_t.max_code * Decimal(2) ** -acc_t.fractional
        if acc_t.overflow == "SAT_SYM" and acc_t.signed:
            lo = -hi
        if acc_t.overflow == "WRAP":
            return self.cast(self.add(Tensor(_tree_sum(list(p)), acc_t.fractional), bias), acc_t, "accum")
        if bias.const:
            bias_lo = bias_hi = _decimal_values(bias.data, bias.frac)
        else:  # a variable bias (a folded layer's running accumulator): its range
            bias_lo, bias_hi = (_elementwise(lambda v: v.low, bias.data), _elementwise(lambda v: v.high, bias.data))
        upper = bias_hi + sum(_elementwise(lambda v: max(v.high, 0), q) for q in p)
        lower = bias_lo + sum(_elementwise(lambda v: min(v.low, 0), q) for q in p)
        if not (np.any(upper > hi) or np.any(lower < lo)):
            return self.cast(self.add(Tensor(_tree_sum(list(p)), acc_t.fractional), bias), acc_t, "accum")
        if not in_order:
            raise OpsError(f"accum_t {acc_t} saturates and a partial sum can overflow; only the Latency "
                           "strategy's io_parallel addition order is reproduced")
        acc = self.cast(Tensor(np.broadcast_to(self._vars(bias), p.shape[1:]).copy(), acc_t.fractional),
                        acc_t, "accum")
        for q in p:
            acc = self.cast(self.add(acc, Tensor(q, acc_t.fractional)), acc_t, "accum")
        return acc

    # ------------------------------------------------------------------ comparison and selection
    def greater(self, a: Tensor, b: Tensor) -> Tensor:
        if a.const and b.const:
            return self.consts.greater(a, b)
        d = self.sub(a, b)
        return Tensor(_elementwise(lambda v: v.is_positive(), d.data), 0)

    @_guarded("select")
    def select(self, cond: Tensor, a: Tensor, b: Tensor) -> Tensor:
        """``cond ? a : b``. A constant operand c is taken out of the multiplexer (``c + (cond ? a - c : 0)``):
        da4ml gives a constant the scale of the variable it is multiplexed with, and for variables whose scale
        has drifted far from 1 (through many layers of constant products) such a constant overflows the 64-bit
        fields of da4ml's netlist; zero is safe at any scale."""
        frac = max(a.frac, b.frac)
        if cond.const:
            return Tensor(np.where(cond.data, self._vars(a), self._vars(b)), frac)
        va, vb = self._operand(a), self._operand(b)

        def one(c: Any, u: Any, v: Any) -> Any:
            u_var, v_var = not isinstance(u, Decimal), not isinstance(v, Decimal)
            if u_var and v_var:
                return c.msb_mux(u, v)
            if not u_var and not v_var:
                return self._const_mul(c, u - v) + v if u != v else self._var(u)
            if u_var:
                return _mux_zero(c, u - v, None) + v if v != 0 else _mux_zero(c, u, None)
            return _mux_zero(c, None, v - u) + u if u != 0 else _mux_zero(c, None, v)

        return Tensor(_elementwise(one, cond.data, va, vb), frac)

    def magnitude_bits(self, x: Tensor) -> int:
        if x.const:
            return self.consts.magnitude_bits(x)
        scale = Decimal(2) ** x.frac
        return max((int(max(abs(v.low), abs(v.high)) * scale).bit_length() for v in x.data.ravel()), default=0)

    def _clip(self, v: Any, lo: Decimal | None, hi: Decimal | None) -> Any:
        """``min(max(v, lo), hi)`` with da4ml's ReLU (``max(v, c) = c + relu(v - c)``, ``min(v, c) = c - relu(c - v)``),
        so no constant enters a multiplexer (see :meth:`select`)."""
        if lo is not None and v.low < lo:
            v = (self._fits(v, lo) - lo).relu() + lo
        if hi is not None and v.high > hi:
            v = hi - (hi - self._fits(v, hi)).relu()
        return v

    def _fits(self, v: Any, c: Decimal) -> Any:
        """``v``, or :class:`OpsError` when ``v - c`` needs more than :data:`SYMBOLIC_MAX_BITS` magnitude bits (a
        value far outside a saturating type compared with its bound: 2**41 against ap_fixed<2,-8>'s 2**-10)."""
        _, frac = exact_code(c)
        step = min(v.step, Decimal(2) ** -frac)
        if max(abs(v.low - c), abs(v.high - c)) / step >= Decimal(2) ** SYMBOLIC_MAX_BITS:
            bits = int(max(abs(v.low - c), abs(v.high - c)) / step).bit_length()
            raise OpsError(f"cast: comparing with the bound {c} takes {bits} magnitude bits (da4ml computes widths "
                           f"in float64; at most {SYMBOLIC_MAX_BITS})")
        return v

    @_guarded("maximum")
    def maximum(self, a: Tensor, b: Tensor) -> Tensor:
        """da4ml's ``max_of`` between variables; against a constant, :meth:`_clip`."""
        if a.const and b.const:
            return self.consts.maximum(a, b)
        if a.const:
            a, b = b, a
        if b.const:
            fn = lambda u, c: self._clip(u, c, None)  # noqa: E731
        else:
            fn = lambda u, v: u.max_of(v)  # noqa: E731
        return Tensor(_elementwise(fn, a.data, self._operand(b)), max(a.frac, b.frac))

    @_guarded("minimum")
    def minimum(self, a: Tensor, b: Tensor) -> Tensor:
        """da4ml's ``min_of`` between variables; against a constant, :meth:`_clip`."""
        if a.const and b.const:
            return self.consts.minimum(a, b)
        if a.const:
            a, b = b, a
        if b.const:
            fn = lambda u, c: self._clip(u, None, c)  # noqa: E731
        else:
            fn = lambda u, v: u.min_of(v)  # noqa: E731
        return Tensor(_elementwise(fn, a.data, self._operand(b)), max(a.frac, b.frac))

    # ------------------------------------------------------------------ tables
    @_guarded("lookup")
    def lookup(self, x: Tensor, table: Callable[[np.ndarray], np.ndarray], frac_out: int,
               t: FixedType | None = None) -> Tensor:
        if x.const:
            return self.consts.lookup(x, table, frac_out, t)
        scale_in = Decimal(2) ** x.frac
        scale_out = Decimal(2) ** -frac_out

        def one(v: Any) -> Any:
            if v.low == v.high:
                code = int(v.low * scale_in)
                return self._var(Decimal(int(table(np.array([code], dtype=np.int64))[0])) * scale_out)
            n = int((v.high - v.low) / v.step) + 1
            if n > MAX_TABLE_ENTRIES:
                raise OpsError(f"a lookup table addressed by {n} values (more than {MAX_TABLE_ENTRIES})")
            lo = v.low * scale_in
            step = v.step * scale_in
            if lo != int(lo) or step != int(step):
                raise OpsError("a lookup table addressed by a value off its grid")
            codes = int(lo) + np.arange(n, dtype=np.int64) * int(step)
            entries = np.asarray(table(codes))
            return v.lookup(np.array([float(Decimal(int(e)) * scale_out) for e in entries], dtype=np.float64))

        return Tensor(_elementwise(one, x.data), frac_out, t)

    # ------------------------------------------------------------------ structure
    def pad(self, x: Tensor, widths: Sequence[tuple[int, int]], code: int = 0) -> Tensor:
        if x.const:
            return self.consts.pad(x, widths, code)
        v = x.data
        out = np.empty(tuple(n + a + b for n, (a, b) in zip(v.shape, widths)), dtype=object)
        out[...] = self._var(Decimal(code) * Decimal(2) ** -x.frac)
        out[tuple(slice(a, a + n) for n, (a, _) in zip(v.shape, widths))] = v
        return Tensor(out, x.frac, x.t)


def exact_code(value: Decimal) -> tuple[int, int]:
    """``(mantissa, frac)`` with ``value == mantissa * 2**-frac`` exactly (value must be a binary fraction)."""
    from fractions import Fraction

    fr = Fraction(value)
    frac = fr.denominator.bit_length() - 1
    if fr.denominator != 1 << frac:
        raise OpsError(f"constant {value} is not a binary fraction")
    return fr.numerator, frac


def _mux_zero(key: Any, a: Any | None, b: Any | None) -> Any:
    """``MSB(key) ? a : b`` where one of ``a``, ``b`` (None) is the constant 0. The variable is given a positive
    factor first (negated around the multiplexer): da4ml 0.6 traces a multiplexer between a constant and a
    variable of negative factor (a negated or subtracted value) with the variable negated once too often
    (SAT_ZERO of 0.5 - x0/2 - x1/2 to ap_ufixed<2,0> came out negated; tests/test_typespace.py)."""
    v = a if a is not None else b
    zero = v.from_const(Decimal(0), hwconf=v.hwconf)
    if v._factor < 0:
        return -key.msb_mux(zero if a is None else -a, zero if b is None else -b)
    return key.msb_mux(zero if a is None else a, zero if b is None else b)


def _tree_sum(items: list[Any]) -> Any:
    """Balanced pairwise sum (adder tree) of arrays of variables (exact; order does not change the value)."""
    while len(items) > 1:
        nxt = [items[k] + items[k + 1] for k in range(0, len(items) - 1, 2)]
        if len(items) % 2:
            nxt.append(items[-1])
        items = nxt
    return items[0]
