"""Activations (``nnet_activation.h``, ``nnet_activation_stream.h``): ReLU, linear, sigmoid/tanh tables,
LeakyReLU, ThresholdedReLU, hard_sigmoid, hard_tanh. Each result is cast to the output type."""

from __future__ import annotations

from typing import Any

from flow.arith.hls_layer import attr_type, const_code, out_type, where
from flow.arith.layers.common import relu, scalar, zero
from flow.arith.ops import Ops, Tensor
from flow.arith.tables import LUT_ACTIVATIONS, activation_table
from flow.arith.target import Target
from flow.arith.types import FixedType
from flow.core.errors import FlowError

PARAM_ACTIVATIONS = {"leakyrelu": "leaky_relu", "leaky_relu": "leaky_relu", "thresholdedrelu": "thresholded_relu"}
HARD_ACTIVATIONS = ("hard_sigmoid", "hard_tanh")


def activation_name(layer: Any) -> str:
    return str(layer.get_attr("activation", "")).lower()


def activation(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    """ReLU ``x > 0 ? x : 0``, linear (a cast), sigmoid/tanh (:func:`lut_activation`)."""
    x = xs[0]
    act = activation_name(layer)
    out_t = out_type(layer)
    if act == "linear":
        return ops.cast(x, out_t)
    if act == "relu":
        return ops.cast(relu(ops, x), out_t)
    if act in LUT_ACTIVATIONS:
        return lut_activation(layer, x, ops, act, out_t)
    raise FlowError(f"{where(layer)}: activation {act!r} is not supported by the emulator "
                    "(supported: relu, linear, sigmoid, tanh)")


def lut_activation(layer: Any, x: Tensor, ops: Ops, act: str, out_t: FixedType) -> Tensor:
    """nnet ``sigmoid``/``tanh`` (io_parallel and io_stream): ``table[i] = (table_t) f(float(2R(i - N/2)/N))``
    and ``index = clip(int(x * N / 2R) + R*N/2R, 0, N-1)``, where ``x * N / 2R`` is ap_fixed arithmetic (an
    exact product, then a signed division truncating toward zero at x's fractional bits) and the int
    conversion truncates toward zero. 2R (16 or 8) is a power of two, so the division and the int conversion
    together truncate ``x * N / 2R`` toward zero to an integer."""
    size = int(layer.get_attr("table_size"))
    table_t = attr_type(layer, "table_t")
    r, _ = LUT_ACTIVATIONS[act]
    if size < 1 or x.t is None or x.t.integer + size.bit_length() > 34:
        raise FlowError(f"{where(layer)}: table size {size} with input type {x.t} overflows the C int index")
    table = activation_table(act, size, table_t)
    k = (2 * r).bit_length() - 1                       # 2R = 2**k
    n_bits = x.t.integer + size.bit_length() + 2        # |x * N / 2R| < 2**(I + bits(N)), plus sign and margin
    index_t = FixedType(n_bits, n_bits, True, "TRN_ZERO", "WRAP")
    scaled = ops.scale(ops.mul(x, scalar(ops, size, 0)), -k)
    index = ops.add(ops.cast(scaled, index_t, "table index"), scalar(ops, (r * size) // (2 * r), 0))
    index = ops.minimum(ops.maximum(index, zero(ops)), scalar(ops, size - 1, 0))
    values = ops.lookup(index, lambda codes: table[codes], table_t.fractional, table_t)
    return ops.cast(values, out_t)


def param_activation(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    """``leaky_relu``: ``x > 0 ? x : alpha * x`` (exact product, then the output cast), and
    ``thresholded_relu``: ``x > theta ? x : 0``; alpha/theta are ``param_t`` constants (:func:`const_code`)."""
    x = xs[0]
    fn = PARAM_ACTIVATIONS.get(activation_name(layer))
    if fn is None:
        raise FlowError(f"{where(layer)}: activation {activation_name(layer)!r} is not supported by the emulator "
                        "(supported parametrized activations: LeakyReLU, ThresholdedReLU)")
    param_t = attr_type(layer, "param_t")
    p = scalar(ops, const_code(layer, layer.get_attr("activ_param", 1.0), param_t), param_t.fractional)
    if fn == "leaky_relu":
        y = ops.select(ops.greater(x, zero(ops)), x, ops.mul(x, p))
    else:
        y = ops.select(ops.greater(x, p), x, zero(ops))
    return ops.cast(y, out_type(layer))


def hard_activation(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    """``hard_sigmoid``: ``auto y = slope * x + shift`` in the exact ap_fixed result type P, then
    ``y > 1 ? y = 1 : y < 0 ? y = 0``, where assigning 1 or 0 converts to P (P's default TRN/WRAP, so 1 wraps
    when P cannot hold it); ``hard_tanh`` returns ``2 * y - 1``. The result is cast to the output type."""
    x = xs[0]
    act = activation_name(layer)
    if act not in HARD_ACTIVATIONS or x.t is None:
        raise FlowError(f"{where(layer)}: activation {act!r} is not supported by the emulator "
                        "(supported hard activations: hard_sigmoid, hard_tanh)")
    slope_t, shift_t = attr_type(layer, "slope_t"), attr_type(layer, "shift_t")
    slope = scalar(ops, const_code(layer, layer.get_attr("slope"), slope_t), slope_t.fractional)
    shift = scalar(ops, const_code(layer, layer.get_attr("shift"), shift_t), shift_t.fractional)
    # ap_fixed result types: mult (Ws+Wx, Is+Ix, Ss|Sx), then plus with shift
    m_s, m_i, m_f = slope_t.signed or x.t.signed, slope_t.integer + x.t.integer, slope_t.fractional + x.t.fractional
    p_s = m_s or shift_t.signed
    p_i = max(m_i + (shift_t.signed and not m_s), shift_t.integer + (m_s and not shift_t.signed)) + 1
    p_f = max(m_f, shift_t.fractional)
    p_t = FixedType(p_i + p_f, p_i, p_s)
    y = ops.add(ops.mul(x, slope), shift)
    one_code = int(ops.cast(scalar(ops, 1 << p_f, p_f), p_t, "constant").data)  # 1 converted to P
    one = scalar(ops, one_code, p_f)
    y = ops.select(ops.greater(y, scalar(ops, 1 << p_f, p_f)), one,
                   ops.select(ops.greater(zero(ops), y), zero(ops), y))
    if act == "hard_tanh":
        y = ops.sub(ops.scale(y, 1), scalar(ops, 1, 0))
    return ops.cast(y, out_type(layer))
