"""The two executors of the operation interface (flow/arith/ops.py) proven equal over the type space.

Hypothesis draws fixed-point types -- width 1 to 64 bits, integer bits from -8 to width + 8 (negative: every
value below one LSB of 2**-8 ...; above the width: LSBs coarser than 1), signed and unsigned, every rounding
mode hls4ml's ``RoundingMode`` has (TRN, TRN_ZERO, RND, RND_ZERO, RND_MIN_INF, RND_INF, RND_CONV) and every
overflow mode of its ``SaturationMode`` (WRAP, SAT, SAT_ZERO, SAT_SYM; ``ap_fixed``'s WRAP_SM and the
saturation-bits parameter N are not hls4ml types and are refused by flow.arith.types) -- and runs one operation on
both executors: the numpy executor on integer mantissas, the symbolic one traced into a da4ml netlist that the
exact interpreter (flow/arith/netlist_eval.py, equal to the emitted Verilog: tests/test_rtl_emit.py) runs on the
same codes. Every output must be equal bit for bit (tests/equivalence.py ``both_executors``: Python integers at
one LSB, exact at any width).

Inputs are full range: when all input codes together have at most :data:`EXHAUSTIVE_BITS` bits the test runs
**every** input code combination (exhaustive: casts from every type of up to 12 bits, binary operations on two
types of up to 6 bits each); otherwise :data:`N_RANDOM` codes drawn uniformly from each type's whole range plus
its extremes (min, max, 0, +-1, min+1, max-1).

Default run: ``max_examples`` per property below (derandomized, so CI draws the same examples every run); the
``heavy`` twins draw :data:`HEAVY_EXAMPLES` per property (``pytest -m heavy tests/test_typespace.py``).
"""

from __future__ import annotations

import random
import re

import numpy as np
import pytest
from equivalence import both_executors
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.errors import InvalidArgument

from flow.arith import fxp
from flow.arith.layers.common import relu
from flow.arith.layers.softmax import top_bits
from flow.arith.ops import OpsError
from flow.arith.symbolic_ops import SYMBOLIC_MAX_BITS
from flow.arith.types import FixedType

EXHAUSTIVE_BITS = 12
N_RANDOM = 400
HEAVY_EXAMPLES = 1500
BASE = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), print_blob=True,
                report_multiple_bugs=False)


@st.composite
def fixed_types(draw, min_width: int = 1, max_width: int = 64, modes: bool = True) -> FixedType:
    """``ap_[u]fixed<W, I, Q, O>`` with W in [min_width, max_width], I in [-8, W + 8]."""
    w = draw(st.one_of(st.integers(min_width, min(max_width, 20)), st.integers(min_width, max_width)))
    i = draw(st.integers(-8, w + 8))
    signed = draw(st.booleans())
    if not modes:
        return FixedType(w, i, signed)
    return FixedType(w, i, signed, draw(st.sampled_from(fxp.ROUNDING_MODES)), draw(st.sampled_from(fxp.OVERFLOW_MODES)))


def edge_codes(t: FixedType) -> list[int]:
    lo, hi = t.min_code, t.max_code
    return sorted({c for c in (lo, hi, 0, 1, -1, lo + 1, hi - 1) if lo <= c <= hi})


def input_codes(types: list[FixedType], shapes: list[tuple[int, ...]], seed: int) -> list[np.ndarray]:
    """Every combination of codes when they have at most EXHAUSTIVE_BITS bits together, else N_RANDOM uniform
    draws per input element after the extremes; one (N, *shape) array per input (int64 or Python ints)."""
    sizes = [int(np.prod(s)) for s in shapes]
    bits = sum(t.width * k for t, k in zip(types, sizes))
    if bits <= EXHAUSTIVE_BITS:
        axes = [np.arange(t.min_code, t.max_code + 1) for t, k in zip(types, sizes) for _ in range(k)]
        grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, sum(sizes))
        cols = np.split(grid, np.cumsum(sizes)[:-1], axis=1)
        return [c.reshape(len(grid), *s) for c, s in zip(cols, shapes)]
    rnd = random.Random(seed)
    n_edges = max(len(edge_codes(t)) for t in types)
    out = []
    for t, k, s in zip(types, sizes, shapes):
        edges = edge_codes(t)
        rows = [[edges[(r + 3 * j) % len(edges)] for j in range(k)] for r in range(n_edges)]
        rows += [[rnd.randint(t.min_code, t.max_code) for _ in range(k)] for _ in range(N_RANDOM)]
        out.append(fxp.as_int64(np.array(rows, dtype=object)).reshape(len(rows), *s))
    return out


def record(what: str) -> None:
    """A hypothesis statistics event (``--hypothesis-show-statistics``), outside a property a no-op."""
    try:
        event(what)
    except InvalidArgument:
        pass


def assert_equal(fn, types: list[FixedType], shapes: list[tuple[int, ...]], seed: int) -> None:
    """Equal outputs on every input, or the symbolic executor refuses a value too wide for da4ml (OpsError naming
    the operation; flow.arith.symbolic_ops.SYMBOLIC_MAX_BITS), never a differing bit."""
    codes = input_codes(types, shapes, seed)
    try:
        a, b = both_executors(fn, types, codes)
    except OpsError as exc:
        bits = re.match(r"^\w+: .*?(\d+) (magnitude|significant) bits", str(exc))
        assert bits and int(bits.group(1)) > SYMBOLIC_MAX_BITS, exc
        record("refused: wider than da4ml's exact widths")
        return
    record("compared")
    bad = np.nonzero(np.any(a != b, axis=1))[0]
    assert len(bad) == 0, (f"{len(bad)} of {len(a)} inputs differ; first: inputs "
                           f"{[c[bad[0]].tolist() for c in codes]}: numpy {a[bad[0]].tolist()}, "
                           f"symbolic {b[bad[0]].tolist()} (codes at a common LSB)")


def twins(strategies: dict, default: int):
    """A property as two tests: ``default`` examples in every run, HEAVY_EXAMPLES under the heavy marker."""
    def wrap(check):
        fast = settings(BASE, max_examples=default)(given(**strategies)(check))
        heavy = pytest.mark.heavy(settings(BASE, max_examples=HEAVY_EXAMPLES)(given(**strategies)(check)))
        return fast, heavy
    return wrap


SEEDS = st.integers(0, 2**32 - 1)


# ---------------------------------------------------------------------------------------------- casts
def check_cast(src: FixedType, dst: FixedType, seed: int) -> None:
    """``(dst) a`` for ``a`` of any type: every rounding and overflow mode of ``dst``. Exhaustive over every
    code of ``src`` up to 12 bits."""
    assert_equal(lambda ops, a: ops.cast(a, dst), [src], [(1,)], seed)


test_cast, test_cast_heavy = twins({"src": fixed_types(), "dst": fixed_types(), "seed": SEEDS}, 60)(check_cast)


# ---------------------------------------------------------------------------------------------- exact arithmetic
BINARY = {"add": lambda ops, a, b: ops.add(a, b), "sub": lambda ops, a, b: ops.sub(a, b),
          "mul": lambda ops, a, b: ops.mul(a, b), "neg_a_plus_b": lambda ops, a, b: ops.add(ops.neg(a), b)}


def check_binary_then_cast(op: str, ta: FixedType, tb: FixedType, dst: FixedType, seed: int) -> None:
    """The exact sum/difference/product of two values of any types, then cast to any type. Exhaustive over
    every pair of codes of two types of up to 6 bits."""
    fn = BINARY[op]
    assert_equal(lambda ops, a, b: ops.cast(fn(ops, a, b), dst), [ta, tb], [(1,), (1,)], seed)


test_binary_then_cast, test_binary_then_cast_heavy = twins(
    {"op": st.sampled_from(sorted(BINARY)), "ta": fixed_types(), "tb": fixed_types(), "dst": fixed_types(),
     "seed": SEEDS}, 40)(check_binary_then_cast)


def check_scale(t: FixedType, k: int, dst: FixedType, seed: int) -> None:
    """``a * 2**k`` (a shift), then cast."""
    assert_equal(lambda ops, a: ops.cast(ops.scale(a, k), dst), [t], [(1,)], seed)


test_scale, test_scale_heavy = twins({"t": fixed_types(), "k": st.integers(-70, 70), "dst": fixed_types(),
                                      "seed": SEEDS}, 25)(check_scale)


# ---------------------------------------------------------------------------------------------- comparison
SELECTS = {
    "maximum": lambda ops, a, b: ops.maximum(a, b),
    "minimum": lambda ops, a, b: ops.minimum(a, b),
    "select_greater": lambda ops, a, b: ops.select(ops.greater(a, b), a, b),
    "select_not_greater": lambda ops, a, b: ops.select(ops.greater(a, b), b, a),
    "relu_of_a": lambda ops, a, b: relu(ops, a),
}


def check_select(op: str, ta: FixedType, tb: FixedType, seed: int) -> None:
    """Comparison, selection, maximum/minimum and ReLU (exact, values of two types). Exhaustive up to 6+6 bits."""
    assert_equal(SELECTS[op], [ta, tb], [(1,), (1,)], seed)


test_select, test_select_heavy = twins({"op": st.sampled_from(sorted(SELECTS)), "ta": fixed_types(modes=False),
                                        "tb": fixed_types(modes=False), "seed": SEEDS}, 40)(check_select)


def check_reduce_max(t: FixedType, n: int, dst: FixedType, seed: int) -> None:
    """The maximum of a vector (a stable softmax's first step), then cast."""
    assert_equal(lambda ops, v: ops.cast(ops.reduce_max(v, -1), dst), [t], [(n,)], seed)


test_reduce_max, test_reduce_max_heavy = twins({"t": fixed_types(modes=False), "n": st.integers(1, 6),
                                                "dst": fixed_types(), "seed": SEEDS}, 25)(check_reduce_max)


# ---------------------------------------------------------------------------------------------- accumulation
@st.composite
def dot_cases(draw):
    n_in, n_out = draw(st.integers(1, 5)), draw(st.integers(1, 3))
    tw = draw(fixed_types(max_width=16, modes=False))
    rnd = random.Random(draw(SEEDS))
    w = np.array([[rnd.randint(tw.min_code, tw.max_code) for _ in range(n_out)] for _ in range(n_in)], dtype=np.int64)
    tb = draw(fixed_types(max_width=24, modes=False))
    b = np.array([rnd.randint(tb.min_code, tb.max_code) for _ in range(n_out)], dtype=np.int64)
    return w, tw, b, tb


def check_dot(tx: FixedType, case, acc: FixedType, seed: int) -> None:
    """hls4ml's dense product: ``acc = (accum_t) b; acc = (accum_t)(acc + (accum_t)(x_i * w_i))`` in index order,
    constant weights and bias of their own types, ``accum_t`` of any width and modes (exact WRAP accumulators go
    through da4ml's CMVM adder trees, the others cast every product and partial sum)."""
    w, tw, b, tb = case

    def fn(ops, x):
        return ops.dot(x, ops.const(w, tw.fractional, tw), ops.const(b, tb.fractional, tb), acc, True)

    assert_equal(fn, [tx], [(w.shape[0],)], seed)


test_dot, test_dot_heavy = twins({"tx": fixed_types(max_width=24, modes=False), "case": dot_cases(),
                                  "acc": fixed_types(), "seed": SEEDS}, 30)(check_dot)


# ---------------------------------------------------------------------------------------------- tables
@st.composite
def table_cases(draw):
    t = draw(fixed_types(max_width=40, modes=False))
    n = draw(st.integers(1, min(t.width, 10)))
    tt = draw(fixed_types(max_width=18))
    rnd = random.Random(draw(SEEDS))
    return t, n, np.array([rnd.randint(tt.min_code, tt.max_code) for _ in range(1 << n)], dtype=np.int64), tt


def check_lookup(case, seed: int) -> None:
    """A table addressed by the top ``n`` bits of a value of any type (hls4ml's ``softmax_idx_from_real_val``):
    the ROM of the RTL against the numpy lookup. Exhaustive up to 12 bits."""
    t, n, table, tt = case
    assert_equal(lambda ops, x: top_bits(ops, x, t, n, table, tt, "index"), [t], [(1,)], seed)


test_lookup, test_lookup_heavy = twins({"case": table_cases(), "seed": SEEDS}, 30)(check_lookup)


# ---------------------------------------------------------------------------------------------- what the properties found
def test_a_saturating_cast_to_an_lsb_below_2_to_the_minus_32():
    """ap_ufixed<1,0> 0.5 saturated to ap_ufixed<25,-8,AP_TRN,AP_SAT> (LSB 2**-33): da4ml took the bound's LSB as
    2**-32 and the trace gave max - 1 LSB; the cast now runs at a power-of-two scale."""
    assert_equal(lambda ops, a: ops.cast(a, FixedType(25, -8, False, "TRN", "SAT")), [FixedType(1, 0, False)],
                 [(1,)], 0)


def test_a_sat_zero_accumulator_over_negated_products():
    """x of ap_fixed<1,0> times weights -0.5 into ap_ufixed<2,0,AP_TRN,AP_SAT_ZERO> from a bias 0.5: da4ml's
    multiplexer between 0 and the (negative-factor) sum negated it, 0.75 came out 0.25."""
    w, b = np.array([[-1], [-1]]), np.array([1])
    acc = FixedType(2, 0, False, "TRN", "SAT_ZERO")

    def fn(ops, x):
        return ops.dot(x, ops.const(w, 1, FixedType(1, 0, True)), ops.const(b, 1, FixedType(1, 0, False)), acc)

    codes = [np.array([[-1, 0], [0, 0], [-1, -1], [0, -1]])]
    a, s = both_executors(fn, [FixedType(1, 0, True)], codes)
    assert a.ravel().tolist() == s.ravel().tolist() == [3, 2, 0, 3]


def test_a_saturation_that_da4ml_folds_to_a_constant():
    """(ap_ufixed<10,-8,AP_TRN,AP_SAT>)(p + max) with p in {0, max}: always max, which da4ml folded to a constant
    on its scale factor's grid, one LSB short; folded constants are now re-made exactly."""
    acc = FixedType(10, -8, False, "TRN", "SAT")

    def fn(ops, x):
        p = ops.cast(ops.mul(x, ops.const(np.array([98]), -8)), acc)
        return ops.cast(ops.add(p, ops.const(np.array([1023]), 18, acc)), acc)

    a, s = both_executors(fn, [FixedType(1, 0, False)], [np.array([[0], [1]])])
    assert a.ravel().tolist() == s.ravel().tolist() == [1023, 1023]


@pytest.mark.parametrize("fn,types", [
    (lambda ops, a, b: ops.maximum(a, b), [FixedType(1, 0, False), FixedType(42, -8, False)]),   # a 50-bit maximum
    (lambda ops, a, b: ops.cast(a, FixedType(54, 0, False, "TRN", "SAT")), [FixedType(1, 1, False)] * 2),
    (lambda ops, a, b: ops.cast(ops.scale(a, 43), FixedType(2, -8, True, "TRN", "SAT")), [FixedType(2, 0, True)] * 2),
], ids=["maximum_of_50_bit_interval", "saturating_to_54_bits", "saturating_2_to_the_41_against_2_to_the_minus_10"])
def test_values_beyond_da4mls_exact_widths_are_refused_naming_the_operation(fn, types):
    """da4ml sizes ops from float64 intervals (one bit short from 2**49: this maximum was traced 49 bits wide and
    wrapped 0.5 to 0) and adds constants as floats (a 54-bit bound was rounded): the trace refuses, naming the op."""
    with pytest.raises(OpsError, match=r"^(maximum|cast): .*bits"):
        both_executors(fn, types, input_codes(types, [(1,), (1,)], 0))


def test_a_saturating_accumulator_with_an_lsb_below_2_to_the_minus_32():
    """bias 0.5 + x * 0.5 into ap_ufixed<25,-8,AP_TRN,AP_SAT> (LSB 2**-33): always its maximum, a constant that da4ml
    made with an LSB of 2**-32 (one LSB short); constants are now made at a scale where they are exact."""
    acc = FixedType(25, -8, False, "TRN", "SAT")
    one = FixedType(1, 0, False)

    def fn(ops, x):
        return ops.dot(x, ops.const(np.array([[1]]), 1, one), ops.const(np.array([1]), 1, one), acc)

    a, s = both_executors(fn, [one], [np.array([[0], [1]])])
    assert a.ravel().tolist() == s.ravel().tolist() == [acc.max_code] * 2


def test_a_saturation_to_zero_of_values_that_round_to_one_value():
    """x * 2 - 3 (-3 or -1) into ap_ufixed<1,3,AP_TRN,AP_SAT_ZERO> (LSB 4): both round to -4, below the range, so 0;
    da4ml's zero multiplexer of that single rounded value kept -4 (found by tests/test_typespace_binary.py's binary
    convolution: nnet_mult.h's acc * 2 - n_in into a saturating result)."""
    t = FixedType(1, 3, False, "TRN", "SAT_ZERO")

    def fn(ops, x):
        return ops.cast(ops.sub(ops.scale(x, 1), ops.const(np.array([3]), 0)), t)

    a, s = both_executors(fn, [FixedType(1, 1, False)], [np.array([[0], [1]])])
    assert a.ravel().tolist() == s.ravel().tolist() == [0, 0]
