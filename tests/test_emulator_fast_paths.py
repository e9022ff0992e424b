"""The numpy executor's fast paths give the bits of the definitions they replace.

A convolution (:meth:`flow.arith.ops.Ops.window_dot`) with exact or TRN/RND products into a WRAP ``accum_t`` takes a
direct compiled loop (no im2col; int32 when the bound allows); casts that cannot change a value are skipped.
Each is compared with the definition on small integer inputs that include the extreme codes of their types.
``ap_fixed<W,I>``: W total bits, I integer bits incl. sign.
"""

from __future__ import annotations

import numpy as np
import pytest

from flow.arith import compiled, fxp
from flow.arith.numpy_ops import NumpyOps, conv_bound_dtype
from flow.arith.ops import Ops, Tensor
from flow.arith.types import FixedType


def codes(rng: np.random.Generator, t: FixedType, shape: tuple[int, ...]) -> np.ndarray:
    """Random mantissas of ``t`` with its minimum, maximum and zero planted in the first cells."""
    v = rng.integers(t.min_code, t.max_code, size=shape, endpoint=True, dtype=np.int64)
    flat = v.reshape(-1)
    flat[:3] = [t.min_code, t.max_code, 0]
    return v


def conv_both_ways(x_t: FixedType, w_t: FixedType, acc_t: FixedType, spatial: tuple[int, ...], kernel: tuple[int, ...],
                   stride: tuple[int, ...], cin: int, cout: int, seed: int, pad: int = 0,
                   result_t: FixedType | None = None):
    """``window_dot`` by the executor (fast path when it applies) and by the definition (``Ops.window_dot``: im2col
    windows, then the counting accumulation loop, then the cast to ``result_t``), with the records of both."""
    rng = np.random.default_rng(seed)
    x = codes(rng, x_t, (5, *spatial, cin))
    if pad:
        x = np.pad(x, [(0, 0)] + [(pad, pad)] * len(spatial) + [(0, 0)])  # zero borders, as ZeroPadding/'same'
    k = int(np.prod(kernel)) * cin
    w = codes(rng, w_t, (k, cout))
    b = codes(rng, acc_t, (cout,))
    out = tuple((d + 2 * pad - kk) // s + 1 for d, kk, s in zip(spatial, kernel, stride))
    results = []
    for ops, method in ((NumpyOps(), NumpyOps.window_dot), (NumpyOps(count_rounding=True), Ops.window_dot)):
        ops.layer = "conv"
        xt = Tensor(x, x_t.fractional, x_t)
        y = method(ops, xt, kernel, stride, out, ops.const(w, w_t.fractional), ops.const(b, acc_t.fractional), acc_t,
                   True, result_t)
        results.append((y, {(r.role, r.values, r.overflowed) for r in ops.records}))
    return results


ACC = FixedType(16, 6, True, "RND", "WRAP")
RELU_T = FixedType(8, 2, False, "RND_CONV", "SAT")
CONV_CASES = [  # x type, w type, accum_t, spatial, kernel, stride, cin, cout, padding, result type
    (FixedType(8, 0, False), FixedType(8, 1, True), ACC, (9, 9), (3, 3), (1, 1), 1, 8, 0, FixedType(21, 6, True)),
    (FixedType(8, 2, False), FixedType(8, 1, True), FixedType(16, 6, True, "TRN", "WRAP"), (7, 6), (3, 2), (1, 1),
     3, 5, 1, None),
    (FixedType(6, 3, True), FixedType(5, 1, True), FixedType(9, 4, True, "RND", "WRAP"), (8, 5), (2, 3), (1, 1),
     2, 3, 0, RELU_T),                                                                           # a cast that rounds
    (FixedType(8, 0, False), FixedType(8, 1, True), ACC, (11,), (4,), (1,), 3, 7, 2, ACC),      # Conv1D
    (FixedType(8, 0, False), FixedType(8, 1, True), ACC, (9, 9), (3, 3), (2, 2), 2, 4, 0,
     FixedType(24, 11, True)),                                                                   # stride: definition
    (FixedType(20, 4, True), FixedType(14, 2, True), FixedType(40, 20, True, "RND", "WRAP"), (6, 6), (3, 3), (1, 1),
     4, 3, 0, FixedType(44, 20, True)),                                                          # int64 loop
    (FixedType(8, 0, False), FixedType(8, 1, True), FixedType(16, 6, True, "RND_CONV", "WRAP"), (6, 6), (3, 3), (1, 1),
     2, 3, 0, None),                                                                             # other rounding
    (FixedType(8, 1, False), FixedType(6, 2, True), FixedType(13, 2, True, "RND_CONV", "WRAP"), (6, 7), (3, 3), (1, 1),
     2, 4, 1, FixedType(13, 2, True)),                                                           # exact products
]


@pytest.mark.parametrize("case", CONV_CASES, ids=lambda c: f"{c[3]}k{c[4]}s{c[5]}c{c[6]}f{c[7]}p{c[8]}-{c[2]}-{c[9]}")
@pytest.mark.parametrize("seed", [0, 1])
def test_the_direct_convolution_equals_im2col_and_the_accumulation_loop(case, seed, monkeypatch) -> None:
    calls = []
    direct = compiled.conv_round_wrap
    monkeypatch.setattr(compiled, "conv_round_wrap", lambda *a: calls.append(a[0].dtype) or direct(*a))
    wide = case[0].width + case[1].width > 30
    (fast, fast_records), (ref, ref_records) = conv_both_ways(*case[:8], seed=seed, pad=case[8], result_t=case[9])
    exact = case[0].fractional + case[1].fractional == case[2].fractional  # no product bit dropped
    stride_one, trn_rnd = all(v == 1 for v in case[5]), case[2].rounding in ("TRN", "RND") or exact
    assert len(calls) == (1 if stride_one and trn_rnd else 0)  # the direct loop ran where it applies
    assert all(dt == (np.int64 if wide else np.int32) for dt in calls)
    assert fast.frac == ref.frac and fast.t == ref.t
    assert fast.data.shape == ref.data.shape
    assert np.array_equal(fast.data, ref.data)
    kept = {r for r in ref_records if r[0] in ("accum", "result")}
    assert kept <= fast_records  # as many accumulator and result values, wrapped or saturated as often


def test_the_full_range_case_wraps_sums_and_still_agrees() -> None:
    """Extreme codes make sums leave ap_fixed<9,4>: the direct loop must wrap them as the definition does."""
    (fast, fast_records), (ref, ref_records) = conv_both_ways(
        FixedType(6, 3, True), FixedType(5, 1, True), FixedType(9, 4, True, "RND", "WRAP"), (8, 5), (2, 3), (1, 1),
        2, 3, 0)
    overflowed = [r[2] for r in ref_records if r[0] == "accum"]
    assert overflowed and overflowed[0] > 0
    assert np.array_equal(fast.data, ref.data) and ("accum", ref.data.size, overflowed[0]) in fast_records


@pytest.mark.parametrize("x_bits, w_bits, s, terms, expected", [
    (8, 8, 5, 72, np.int32),
    (15, 15, 1, 1, np.int32),          # |x*w + c| < 2**31
    (15, 16, 1, 1, np.int64),          # a product of 31 bits plus the offset may not fit int32
    (8, 8, 1, 1 << 15, np.int64),      # 2**15 terms of up to 2**16: the sum needs 32 bits
    (8, 8, 1, (1 << 15) - 1, np.int32),
    (30, 30, 2, 4, np.int64),
    (30, 31, 2, 4, None),              # 4 terms of up to 2**60: the bound reaches 2**62
    (31, 31, 1, 1, None),              # 63-bit products: the definition (Python ints)
    (8, 8, 0, 9, np.int32),            # no dropped bits (s = 0): exact products
    (8, 8, -1, 9, None),               # products shifted left: the definition
])
def test_the_accumulator_dtype_follows_the_stated_bound(x_bits, w_bits, s, terms, expected) -> None:
    assert conv_bound_dtype(x_bits, w_bits, 10, s, terms) == expected


def test_an_int32_loop_at_its_bound_is_exact() -> None:
    """Extreme products over as many terms as the int32 bound allows (18 terms of up to 2**26) equal the
    definition; the sums reach 2**27, so a loop that lost bits would differ."""
    x_t, w_t = FixedType(15, 15, True), FixedType(11, 11, True)  # codes of 15 and 11 bits
    acc_t = FixedType(40, 40, True, "TRN", "WRAP")
    terms = 3 * 3 * 2
    assert conv_bound_dtype(15, 11, 3, 1, terms) == np.int32
    rng = np.random.default_rng(3)
    x = np.full((2, 5, 5, 2), x_t.min_code, dtype=np.int64)
    x[1] = x_t.max_code
    w = np.full((terms, 2), w_t.min_code, dtype=np.int64)
    w[:, 1] = rng.integers(w_t.min_code, w_t.max_code, terms)
    b = np.array([3, -4], dtype=np.int64)
    out = []
    for ops, method in ((NumpyOps(), NumpyOps.window_dot), (NumpyOps(count_rounding=True), Ops.window_dot)):
        ops.layer = "conv"
        y = method(ops, Tensor(x, 0, x_t), (3, 3), (1, 1), (3, 3), ops.const(w, 1), ops.const(b, 0), acc_t)
        out.append(y.data)
    assert np.array_equal(out[0], out[1])
    assert int(np.abs(out[0]).max()) > 1 << 27


CAST_CASES = [  # source type, target type: casts that cannot change a value, and casts that can
    (FixedType(8, 2, False, "RND_CONV", "SAT"), FixedType(8, 2, False, "RND_CONV", "SAT")),
    (FixedType(16, 6, True), FixedType(21, 6, True)),
    (FixedType(16, 6, True), FixedType(16, 7, True, "RND", "SAT_SYM")),
    (FixedType(16, 6, True), FixedType(16, 6, True, "TRN", "SAT_SYM")),    # min code saturates to -max
    (FixedType(8, 3, False), FixedType(9, 4, True)),
    (FixedType(8, 3, False), FixedType(8, 4, True)),                     # max code wraps
    (FixedType(16, 6, True), FixedType(8, 2, False, "RND_CONV", "SAT")),
]


@pytest.mark.parametrize("src, dst", CAST_CASES, ids=str)
def test_a_cast_of_a_typed_tensor_equals_the_definition(src: FixedType, dst: FixedType) -> None:
    rng = np.random.default_rng(5)
    v = codes(rng, src, (fxp.KERNEL_MIN_SIZE + 7,))
    ops = NumpyOps()
    ops.layer = "l"
    got = ops.cast(Tensor(v, src.fractional, src), dst)
    want, n = fxp.requantize(v, src.fractional, dst)
    assert np.array_equal(got.data, want) and got.frac == dst.fractional
    assert ops.overflows("l") == n
