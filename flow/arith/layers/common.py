"""Building blocks shared by the layer descriptions, written once against :class:`flow.arith.ops.Ops`."""

from __future__ import annotations

import math
from typing import Any, Callable, Sequence

import numpy as np

from flow.arith.hls_layer import Weights, where
from flow.arith.ops import Ops, Tensor
from flow.arith.types import FixedType
from flow.core.errors import FlowError


def zero(ops: Ops) -> Tensor:
    return ops.const(np.zeros((), dtype=np.int64), 0)


def scalar(ops: Ops, code: int, frac: int) -> Tensor:
    return ops.const(np.array(code, dtype=object if abs(code) >= 1 << 62 else np.int64), frac)


def relu(ops: Ops, x: Tensor) -> Tensor:
    """``x > 0 ? x : 0`` (nnet_activation.h ``relu``), exact: ``max(x, 0)``."""
    return ops.maximum(x, zero(ops))


def tree_reduce(parts: Sequence[Tensor], op: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """nnet_common.h ``reduce``: a balanced tree whose left part holds ``pow2(floorlog2(N-1))`` elements."""
    n = len(parts)
    if n == 1:
        return parts[0]
    if n == 2:
        return op(parts[0], parts[1])
    left = 1 << ((n - 1).bit_length() - 1)
    return op(tree_reduce(parts[:left], op), tree_reduce(parts[left:], op))


def add_cast(ops: Ops, t: FixedType, role: str) -> Callable[[Tensor, Tensor], Tensor]:
    """``(a, b) -> (t)(a + b)``: the exact sum cast to ``t``."""
    return lambda a, b: ops.cast(ops.add(a, b), t, role)


MAX_DIVISION_BITS = 52  # width of the products a division by a reciprocal may form (da4ml's interpreter: 64)


def div_trunc(ops: Ops, x: Tensor, n: int | np.ndarray) -> Tensor:
    """``x / n`` for positive integer divisor(s) ``n``, as ``ap_fixed / unsigned`` computes it: an integer
    division of the mantissa that truncates toward zero, at x's fractional bits (nnet_pooling.h). The magnitude
    is divided by :func:`floor_div` and the sign restored (truncation toward zero)."""
    n_arr = np.asarray(n, dtype=np.int64)
    if np.any(n_arr < 1):
        raise FlowError("internal: division by a non-positive count")
    negative = ops.greater(zero(ops), x)
    magnitude = ops.select(negative, ops.neg(x), x)
    q = floor_div(ops, magnitude, n_arr, ops.magnitude_bits(x))
    return ops.select(negative, ops.neg(q), q)


def floor_div(ops: Ops, a: Tensor, n: np.ndarray, bits: int) -> Tensor:
    """``floor(a / n)`` of non-negative mantissas ``a`` (``a < 2**bits``) at a's fractional bits, exactly, with
    multiplications by constants only.

    With ``L = ceil(log2(max n))`` and ``M = ceil(2**(bits+L) / n)``, ``floor(a * M / 2**(bits+L)) = floor(a / n)``
    (the error term ``a * (M*n - 2**(bits+L)) / (n * 2**(bits+L))`` is below ``1/n``); a power-of-two n gives a
    plain shift. When that product would exceed :data:`MAX_DIVISION_BITS`, the dividend is split at bit h:
    with ``a = ah * 2**h + al`` and ``2**h = Q*n + R``, ``floor(a/n) = ah*Q + floor((ah*R + al) / n)``, and the
    second dividend has about half the bits.
    """
    frac = a.frac
    big_l = max(0, math.ceil(math.log2(int(n.max()))))
    if 2 * bits + big_l <= MAX_DIVISION_BITS:
        shift = bits + big_l
        m = np.array([-(-(1 << shift) // int(v)) for v in n.ravel()], dtype=np.int64).reshape(n.shape)
        q_type = FixedType(bits + 1, bits + 1 - frac, True)  # a / n at a's fractional bits
        return ops.cast(ops.scale(ops.mul(a, ops.const(m, 0)), -shift), q_type, "division")
    h = (bits + big_l + 1) // 2
    high = ops.cast(ops.scale(a, -h), FixedType(bits - h + 1, bits - h + 1 - frac, True), "division")
    low = ops.sub(a, ops.scale(high, h))  # in [0, 2**h) mantissas
    q_const = ops.const((np.int64(1) << h) // n, 0)
    r_const = ops.const((np.int64(1) << h) % n, 0)
    rest = ops.add(ops.mul(high, r_const), low)  # < 2**(bits - h + L) + 2**h
    rest_bits = max(bits - h + big_l, h) + 1
    return ops.add(ops.mul(high, q_const), floor_div(ops, rest, n, rest_bits))


def weight_const(ops: Ops, w: Weights) -> Tensor:
    return ops.const(w.codes, w.frac)


def bias_const(ops: Ops, b: Weights) -> Tensor:
    """The bias as a constant vector (n_out,)."""
    return ops.const(b.codes.reshape(-1), b.frac)


def plus_minus_one(ops: Ops, x: Tensor) -> Tensor:
    """The value a binary (xnor) code stands for: ``2 * code - 1`` (code 0 -> -1, code 1 -> +1), exact."""
    return ops.sub(ops.scale(x, 1), scalar(ops, 1, 0))


def both_binary_sum(ops: Ops, x: Tensor, w: Weights, bias: Tensor, acc_t: FixedType, in_order: bool) -> Tensor:
    """``nnet_mult.h`` ``both_binary``: each product is ``a == w`` (1 when the 1-bit codes agree, i.e. the +-1
    values multiply to +1; else 0), of the data type ``ap_uint<1>``, cast to ``accum_t`` and accumulated from
    ``(accum_t) bias``. ``a == w`` is ``a`` where ``w`` is 1 and ``1 - a`` where it is 0: ``a * (2w - 1) + (1 - w)``."""
    lead = ops.shape(x)[:-1]
    column = ops.reshape(x, (*lead, ops.shape(x)[-1], 1))
    equal = ops.add(ops.mul(column, ops.const(w.codes, 0)), ops.const(1 - w.bits, 0))
    products = ops.cast(equal, acc_t, "product")
    return ops.accumulate(products, bias, acc_t, in_order)


def product_sum(layer: Any, ops: Ops, x: Tensor, w: Weights, b: Weights, acc_t: FixedType,
                in_order: bool) -> Tensor:
    """``acc = (accum_t) b; acc += (accum_t)(x_i * w_ij)`` over the last axis of ``x`` (hls4ml's dense
    product, ``nnet_dense_latency.h`` / ``nnet_mult.h``), for fixed, ternary, binary and power-of-two weights and
    for binary (xnor) data.

    Binary (xnor, ``ap_uint<1>``, code 0 means -1, code 1 means +1): ``weight_binary`` is ``w == 0 ? -x : x``,
    the product with the factor +-1 (``Weights.codes``); ``data_binary`` is ``a == 0 ? -w : w``, the weight times
    the +-1 of a's code (:func:`plus_minus_one`); ``both_binary`` is ``a == w`` as ``ap_uint<1>``
    (:func:`both_binary_sum`). Power-of-two weights take precedence over binary data, as in hls4ml's
    ``product_type`` (the ``ap_uint<1>`` code 0 / 1 is then shifted as it is).

    Power-of-two (``weight_exponential``): with ``r_T = ap_fixed<2*(We+Wx), We+Wx>`` (We = exponent width, Wx =
    data width), ``y = (r_T)x << e`` (a negative ``e`` shifts right, truncating; bits shifted out on the left
    wrap), ``product = sign ? y : (r_T)(-y)``, each then cast to ``accum_t``.
    """
    bias = bias_const(ops, b)
    x_binary = x.t is not None and x.t.xnor
    if x_binary and w.kind == "binary":
        return both_binary_sum(ops, x, w, bias, acc_t, in_order)
    if x_binary and w.kind != "po2":  # data_binary: a == 0 ? -w : w, i.e. w times the +-1 that a's code means
        return ops.dot(plus_minus_one(ops, x), weight_const(ops, w), bias, acc_t, in_order)
    if w.kind != "po2":  # fixed (mult), ternary (weight_ternary), binary (weight_binary: w == 0 ? -a : a)
        return ops.dot(x, weight_const(ops, w), bias, acc_t, in_order)
    if x.t is None:
        raise FlowError(f"{where(layer)}: power-of-two product of an untyped input")
    r_t = FixedType(2 * (w.exp_width + x.t.width), w.exp_width + x.t.width, True)
    xr = ops.cast(x, r_t, "po2 shift type")
    e = np.asarray(w.exponent, dtype=np.int64)
    f = max(0, -int(e.min(initial=0)))
    powers = ops.const(np.array([1 << int(v + f) for v in e.ravel()], dtype=object).reshape(e.shape)
                       if int(e.max(initial=0)) + f >= 62 else (np.int64(1) << (e + f)), f)
    lead = ops.shape(xr)[:-1]
    shifted = ops.cast(ops.mul(ops.reshape(xr, (*lead, ops.shape(xr)[-1], 1)), powers), r_t, "po2 shift type")
    negated = ops.cast(ops.neg(shifted), r_t, "po2 shift type")
    positive = ops.const(np.asarray(w.sign == 1), 0)
    products = ops.cast(ops.select(positive, shifted, negated), acc_t, "product")
    return ops.accumulate(products, bias, acc_t, in_order)
