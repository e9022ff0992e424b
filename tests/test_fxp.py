"""flow.arith.fxp (integer fixed-point arithmetic) against a third-party implementation.

The reference is ``quantizers.fixed_point.get_fixed_quantizer_np`` (by da4ml's author, described as
bit-accurate to HLS ap_fixed). It has no AP_SAT_ZERO, so SAT_ZERO is checked against its rounding
(with WRAP-free, unbounded range) followed by the definition "out of range -> 0".
ap_fixed<W,I>: W total bits, I integer bits including the sign.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from quantizers.fixed_point import get_fixed_quantizer_np
from quantizers.fixed_point.fixed_point_ops_np import round_mode_registry_scaled_np

from flow.arith import fxp
from flow.arith.types import FixedType

REF_OVERFLOWS = ("WRAP", "SAT", "SAT_SYM")


def reference(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Third-party quantization of float ``x`` to ``t`` (float64 result)."""
    k = int(t.signed)
    if t.overflow == "SAT_ZERO":
        # rounding alone from `quantizers` (no range limit), then zero what is out of range
        wide = round_mode_registry_scaled_np[t.rounding](x, t.fractional)
        return np.where((wide < t.min_value) | (wide > t.max_value), 0.0, wide)
    return get_fixed_quantizer_np(t.rounding, t.overflow)(x, k, t.integer - k, t.fractional)


def ref_overflow_count(x: np.ndarray, t: FixedType) -> int:
    """Values whose rounded (unbounded) value lies outside t's range (SAT_SYM: outside +-max)."""
    wide = round_mode_registry_scaled_np[t.rounding](x, t.fractional)  # third-party rounding, no range
    lo = -t.max_value if (t.overflow == "SAT_SYM" and t.signed) else t.min_value
    return int(np.count_nonzero((wide < lo) | (wide > t.max_value)))


def sample_values(rng: np.random.Generator, t: FixedType, n: int = 3000) -> np.ndarray:
    """Random values around and beyond t's range, plus exact ties (half an LSB) and grid points."""
    span = 2.0 ** t.integer
    x = rng.uniform(-2 * span, 2 * span, n)
    fine = np.round(x * 2.0 ** (t.fractional + 1)) / 2.0 ** (t.fractional + 1)  # many exact ties
    finer = np.round(x * 2.0 ** (t.fractional + 3)) / 2.0 ** (t.fractional + 3)
    edges = np.array([t.min_value, t.max_value, 0.0, -t.step / 2, t.step / 2, t.max_value + t.step / 2,
                      t.min_value - t.step / 2, -t.max_value, -t.max_value - t.step])
    return np.concatenate([x, fine, finer, edges])


CASES = [(8, 3), (5, 0), (6, -2), (10, 12), (2, 1), (18, 5), (16, 6), (3, 3)]


@pytest.mark.parametrize("rounding", fxp.ROUNDING_MODES)
@pytest.mark.parametrize("overflow", fxp.OVERFLOW_MODES)
@pytest.mark.parametrize("signed", [True, False])
def test_from_float_matches_reference(rounding: str, overflow: str, signed: bool) -> None:
    rng = np.random.default_rng(hash((rounding, overflow, signed)) % 2**32)
    for width, integer in CASES:
        t = FixedType(width, integer, signed, rounding, overflow)
        x = sample_values(rng, t)
        q, n = fxp.from_float(x, t)
        assert q.dtype == np.int64
        got = fxp.to_float(q, t.fractional)
        np.testing.assert_array_equal(got, reference(x, t), err_msg=str(t))
        assert n == ref_overflow_count(x, t), str(t)
        lo, hi = fxp.type_range(t)
        assert q.min() >= lo and q.max() <= hi


@pytest.mark.parametrize("rounding", fxp.ROUNDING_MODES)
@pytest.mark.parametrize("overflow", fxp.OVERFLOW_MODES)
def test_requantize_matches_reference(rounding: str, overflow: str) -> None:
    """Integer path: mantissas with 7 extra fractional bits cast down (and 3 fewer, cast up)."""
    rng = np.random.default_rng(7)
    for width, integer in CASES:
        for signed in (True, False):
            t = FixedType(width, integer, signed, rounding, overflow)
            for extra in (7, 1, 0, -3):
                frac = t.fractional + extra
                v = rng.integers(-(2 ** (width + max(extra, 0) + 1)), 2 ** (width + max(extra, 0) + 1), 5000)  # >= KERNEL_MIN_SIZE: the compiled pass
                q, n = fxp.requantize(v, frac, t)
                x = np.ldexp(v.astype(np.float64), -frac)
                np.testing.assert_array_equal(fxp.to_float(q, t.fractional), reference(x, t), err_msg=f"{t} {extra}")
                assert n == ref_overflow_count(x, t)


def test_rounding_mode_definitions_on_ties() -> None:
    """Spot values that pin down each rounding mode (LSB 1, ties at +-0.5, +-1.5)."""
    x = np.array([0.5, 1.5, -0.5, -1.5, 0.25, -0.25, 0.75, -0.75])
    expect = {
        "TRN": [0, 1, -1, -2, 0, -1, 0, -1],
        "TRN_ZERO": [0, 1, 0, -1, 0, 0, 0, 0],
        "RND": [1, 2, 0, -1, 0, 0, 1, -1],
        "RND_ZERO": [0, 1, 0, -1, 0, 0, 1, -1],
        "RND_MIN_INF": [0, 1, -1, -2, 0, 0, 1, -1],
        "RND_INF": [1, 2, -1, -2, 0, 0, 1, -1],
        "RND_CONV": [0, 2, 0, -2, 0, 0, 1, -1],
    }
    for mode, want in expect.items():
        got = fxp.quantize_float(x, FixedType(8, 8, True, mode, "WRAP"))
        assert got.tolist() == want, mode


def test_overflow_modes_and_counts() -> None:
    t = lambda o: FixedType(4, 4, True, "TRN", o)  # noqa: E731  range [-8, 7]
    v = np.array([-9, -8, 7, 8, 0, 23])
    assert fxp.requantize(v, 0, t("WRAP"))[0].tolist() == [7, -8, 7, -8, 0, 7]
    assert fxp.requantize(v, 0, t("SAT"))[0].tolist() == [-8, -8, 7, 7, 0, 7]
    assert fxp.requantize(v, 0, t("SAT_ZERO"))[0].tolist() == [0, -8, 7, 0, 0, 0]
    assert fxp.requantize(v, 0, t("SAT_SYM"))[0].tolist() == [-7, -7, 7, 7, 0, 7]
    assert [fxp.requantize(v, 0, t(o))[1] for o in fxp.OVERFLOW_MODES] == [3, 3, 3, 4]
    u = FixedType(3, 3, False, "TRN", "WRAP")
    assert fxp.requantize(np.array([-1, 8, 9, 7]), 0, u)[0].tolist() == [7, 0, 1, 7]


def test_wide_values_fall_back_to_python_ints() -> None:
    """Beyond ~62 bits int64 would overflow: arithmetic continues exactly on Python ints."""
    big = np.array([(1 << 70) + 3, -(1 << 70) - 5, 12345], dtype=object)
    t = FixedType(80, 80 - 4, True, "RND_CONV", "WRAP")  # 4 fractional bits, 80 bits wide
    q, n = fxp.requantize(big, 2, t)  # shift left by 2: needs > 64 bits
    assert q.dtype == object and n == 0
    assert q.tolist() == [((1 << 70) + 3) << 2, (-(1 << 70) - 5) << 2, 12345 << 2]
    t2 = FixedType(8, 2, True, "RND_CONV", "SAT")  # 6 fractional bits, range [-2, 2)
    q2, n2 = fxp.requantize(big, 70, t2)  # about +1, -1 and 1e-17: drop 64 bits with rounding
    assert q2.dtype == np.int64 and q2.tolist() == [64, -64, 0] and n2 == 0
    t3 = FixedType(8, 1, True, "RND_CONV", "SAT")  # range [-1, 1 - 2**-7]: +1 saturates
    q3, n3 = fxp.requantize(big, 70, t3)
    assert q3.tolist() == [127, -128, 0] and n3 == 1
    x = np.array([2.0 ** 70, -(2.0 ** 70)])
    q4, n4 = fxp.from_float(x, FixedType(90, 80, True))
    assert q4.tolist() == [1 << 80, -(1 << 80)] and n4 == 0


@settings(max_examples=300, deadline=None)
@given(
    width=st.integers(2, 18),
    integer_offset=st.integers(-4, 4),
    signed=st.booleans(),
    rounding=st.sampled_from(fxp.ROUNDING_MODES),
    overflow=st.sampled_from(fxp.OVERFLOW_MODES),
    extra=st.integers(-4, 12),
    seed=st.integers(0, 2**31 - 1),
)
def test_property_requantize_and_from_float(width, integer_offset, signed, rounding, overflow, extra, seed) -> None:
    integer = int(np.clip(np.random.default_rng(seed).integers(-3, width + 4) + integer_offset, -6, width + 6))
    t = FixedType(width, integer, signed, rounding, overflow)
    rng = np.random.default_rng(seed)
    frac = t.fractional + extra
    span = 1 << (width + max(extra, 0) + 2)
    v = rng.integers(-span, span, 200)
    x = np.ldexp(v.astype(np.float64), -frac)
    want = reference(x, t)
    q, n = fxp.requantize(v, frac, t)
    np.testing.assert_array_equal(fxp.to_float(q, t.fractional), want)
    assert n == ref_overflow_count(x, t)
    q2, n2 = fxp.from_float(x, t)
    np.testing.assert_array_equal(q2, q)
    assert n2 == n


@settings(max_examples=120, deadline=None)
@given(
    width=st.integers(1, 40), integer_offset=st.integers(-8, 8), signed=st.booleans(),
    rounding=st.sampled_from(fxp.ROUNDING_MODES), overflow=st.sampled_from(fxp.OVERFLOW_MODES),
    extra=st.integers(0, 20), source_bits=st.integers(1, 60), seed=st.integers(0, 2**31),
)
def test_compiled_cast_equals_the_numpy_definition(width, integer_offset, signed, rounding, overflow, extra,
                                                   source_bits, seed) -> None:
    """Large int64 arrays take the compiled pass; small ones the numpy path (the definition): same mantissas,
    same overflow and rounded counts, for every mode."""
    t = FixedType(width, width + integer_offset if signed else width + integer_offset, signed, rounding, overflow)
    rng = np.random.default_rng(seed)
    n = fxp.KERNEL_MIN_SIZE
    v = rng.integers(-(1 << source_bits), 1 << source_bits, size=n, dtype=np.int64)
    v[:4] = [0, (1 << extra) >> 1 if extra else 0, -((1 << extra) >> 1) if extra else 0, (1 << source_bits) - 1]
    frac = t.fractional + extra
    compiled = fxp.requantize_counted(v, frac, t, count_rounding=True)
    pieces = [fxp.requantize_counted(v[k:k + 64], frac, t, count_rounding=True) for k in range(0, n, 64)]
    assert all(p[0].size < fxp.KERNEL_MIN_SIZE for p in pieces)  # the numpy path
    assert np.array_equal(compiled[0], np.concatenate([p[0] for p in pieces]))
    assert compiled[1] == sum(p[1] for p in pieces) and compiled[2] == sum(p[2] for p in pieces)


@settings(max_examples=40, deadline=None)
@given(s=st.integers(1, 12), rounding=st.sampled_from(["TRN", "RND"]), x_bits=st.integers(1, 16),
       w_bits=st.integers(1, 12), seed=st.integers(0, 2**31))
def test_the_fast_accumulation_loop_equals_the_general_one(s, rounding, x_bits, w_bits, seed) -> None:
    """TRN/RND products into a WRAP accumulator take a branch-free loop; counting rounded products takes the
    general one: both give the same sums (zeros included, which the fast loop skips)."""
    from flow.arith import compiled

    rng = np.random.default_rng(seed)
    x = rng.integers(-(1 << x_bits), 1 << x_bits, size=(37, 23), dtype=np.int64)
    x[rng.random(x.shape) < 0.3] = 0
    w = rng.integers(-(1 << w_bits), 1 << w_bits, size=(23, 5), dtype=np.int64)
    bias = rng.integers(-1000, 1000, size=5, dtype=np.int64)
    fast = compiled.accumulate_products(x, w, bias, s, rounding, "WRAP", -(1 << 40), 1 << 40, False)
    general = compiled.accumulate_products(x, w, bias, s, rounding, "WRAP", -(1 << 40), 1 << 40, True)
    assert np.array_equal(fast[0], general[0])
    offset = (1 << (s - 1)) if rounding == "RND" else 0
    assert np.array_equal(fast[0], ((x[:, :, None] * w[None] + offset) >> s).sum(axis=1) + bias)
