"""Binary and ternary activations as hls4ml computes them: ``BatchNormalizationQuantizedTanh`` (a BatchNormalization
followed by a binary/ternary tanh, folded by hls4ml into thresholds: ``nnet_batchnorm.h`` /
``nnet_batchnorm_stream.h`` ``normalize_binary_tanh`` / ``normalize_ternary_tanh``) and the ``binary_tanh`` /
``ternary_tanh`` activations (``nnet_activation.h`` / ``nnet_activation_stream.h``).

Binary results are hls4ml's xnor type (``XnorPrecisionType``, ``ap_uint<1>``; :meth:`FixedType.binary`): code 1
stands for +1 and code 0 for -1 in the binary products that read them (:func:`flow.arith.layers.common.product_sum`).
Ternary results are ``ap_int<2>`` codes -1, 0, +1. Every comparison is exact (``ap_fixed`` comparison of the input
with a threshold of the input's type).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith.hls_layer import int_attr, out_type, weights, where
from flow.arith.layers.common import scalar, zero
from flow.arith.ops import Ops, Tensor
from flow.arith.target import Target
from flow.arith.types import is_uint1
from flow.core.errors import FlowError

ACTIVATIONS = ("binary_tanh", "ternary_tanh")


def _thresholds(layer: Any, ops: Ops, key: str, n: int) -> Tensor:
    """Threshold ``key`` per element of the flattened input (``n`` values): ``threshold[n_filt == -1 ? i : i %
    n_filt]`` (hls4ml's ``norm_index``), as constants of their declared type (the input's type in hls4ml)."""
    t = weights(layer, key)
    if t.kind != "fixed":
        raise FlowError(f"{where(layer)}: {t.kind} {key} is not supported by the emulator")
    codes = t.codes.reshape(-1)
    n_filt = int_attr(layer, "n_filt", -1)
    if n_filt == -1:
        if codes.size != n:
            raise FlowError(f"{where(layer)}: {codes.size} {key} values for {n} inputs")
    elif n_filt < 1 or n % n_filt or codes.size < n_filt:
        raise FlowError(f"{where(layer)}: n_filt {n_filt} does not divide {n} inputs")
    else:
        codes = np.tile(codes[:n_filt], n // n_filt)
    return ops.const(codes, t.frac)


def batchnorm_quantized_tanh(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    """``quantize == 2`` (binary): ``x >= threshold ? 1 : 0`` (xnor code: 1 = +1, 0 = -1);
    ``quantize == 3`` (ternary): ``x > threshold_hi ? 1 : x <= threshold_lo ? -1 : 0`` (``ap_int<2>``).
    Each result is then the output type's code (hls4ml declares ``ap_uint<1>`` / ``ap_int<2>``)."""
    x = xs[0]
    shape = ops.shape(x)
    n = int(np.prod(shape))
    flat = ops.reshape(x, (n,))
    quantize = int_attr(layer, "quantize")
    one = scalar(ops, 1, 0)
    if quantize == 2:
        y = ops.select(ops.greater(_thresholds(layer, ops, "threshold", n), flat), zero(ops), one)
    elif quantize == 3:
        hi, lo = _thresholds(layer, ops, "threshold_hi", n), _thresholds(layer, ops, "threshold_lo", n)
        y = ops.select(ops.greater(flat, hi), one, ops.select(ops.greater(flat, lo), zero(ops), scalar(ops, -1, 0)))
    else:
        raise FlowError(f"{where(layer)}: quantize={quantize} is neither binary (2) nor ternary (3)")
    return ops.reshape(ops.cast(y, out_type(layer)), shape)


def binary_activation(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    """``binary_tanh``: ``cache = x >= 0 ? 1 : -1`` (``ap_int<2>``), then ``binary_cast``: into an ``ap_uint<1>``
    result (hls4ml's xnor type) ``cache > 0 ? 1 : 0``, into any other result type ``(res_T) cache``.

    ``ternary_tanh``, io_parallel: ``d = (data_T)(2 * x)`` (the doubled input in the input type, which may wrap or
    saturate), then ``d > 1 ? 1 : d > -1 ? 0 : -1``; io_stream: ``x > 1 ? 1 : x <= -1 ? -1 : 0`` (no doubling, as
    ``nnet_activation_stream.h`` has it). The result is cast to the output type. hls4ml's ``TernaryTanh`` layer class
    (QKeras ``ternary`` without a BatchNormalization before it) is refused: hls4ml writes no C++ call for it."""
    x = xs[0]
    act = str(layer.get_attr("activation", "")).lower()
    if layer.class_name == "TernaryTanh":
        raise FlowError(f"{where(layer)}: hls4ml 1.3 writes no C++ call for a TernaryTanh layer (a QKeras ternary "
                        "activation with no BatchNormalization before it), so its C simulation reads an uninitialized "
                        "array; put a BatchNormalization before the activation (hls4ml then makes thresholds of both)")
    out_t = out_type(layer)
    one, minus_one = scalar(ops, 1, 0), scalar(ops, -1, 0)
    if act == "binary_tanh":
        negative = ops.greater(zero(ops), x)
        if is_uint1(layer.get_output_variable().type.precision):
            return ops.cast(ops.select(negative, zero(ops), one), out_t)
        return ops.cast(ops.select(negative, minus_one, one), out_t)
    if act == "ternary_tanh":
        if x.t is None:
            raise FlowError(f"{where(layer)}: ternary_tanh of an untyped input")
        d = x if target.stream else ops.cast(ops.scale(x, 1), x.t, "ternary doubling")
        y = ops.select(ops.greater(d, one), one, ops.select(ops.greater(d, minus_one), zero(ops), minus_one))
        return ops.cast(y, out_t)
    raise FlowError(f"{where(layer)}: activation {act!r} is not supported by the emulator "
                    f"(binary/ternary activations: {', '.join(ACTIVATIONS)})")
