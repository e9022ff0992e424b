"""Dense, Conv1D, Conv2D and BatchNormalization (``nnet_dense_latency.h``, ``nnet_dense_resource.h``,
``nnet_conv1d_latency.h``, ``nnet_conv2d_latency.h``, ``nnet_conv_stream.h``, ``nnet_batchnorm.h``).

Dense/Conv: every product ``x*w`` at full precision (hls4ml's binary products: :func:`flow.arith.layers.common.
product_sum`, :func:`_binary_conv_operands`), cast to ``accum_t``; the accumulator starts at
``(accum_t)bias`` and each product is added in ``accum_t`` (:func:`flow.arith.layers.common.product_sum`);
the sum is cast to the output type, except where data and weights are both ``ap_uint<1>`` (binary, xnor:
``nnet_mult.h``'s ``cast``): there the count of agreeing codes ``acc`` becomes the +-1 dot product
``(ap_int<ceillog2(n_in) + 2>)(acc * 2 - n_in)`` first (:func:`binary_result`). A convolution is the Dense
product of every im2col window, in (fh, fw, channel) order. BatchNormalization: ``x*scale + bias`` at full precision, cast once.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith.hls_layer import (attr_type, binary_count_cast, ceillog2, channels_last, int_attr, out_type, weights,
                                  where)
from flow.arith.layers.common import bias_const, plus_minus_one, product_sum, scalar, weight_const
from flow.arith.ops import Ops, Tensor
from flow.arith.target import Target
from flow.arith.types import FixedType
from flow.core.errors import FlowError


def dense(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    x = xs[0]
    w, b = weights(layer, "weight"), weights(layer, "bias")
    if layer.get_attr("_weights_transposed", False):
        w = w.transposed((1, 0))
    n_in, n_out = int_attr(layer, "n_in"), int_attr(layer, "n_out")
    if w.shape != (n_in, n_out):
        raise FlowError(f"{where(layer)}: weight shape {w.shape} != ({n_in}, {n_out})")
    acc = product_sum(layer, ops, x, w, b, attr_type(layer, "accum_t"), target.dense_in_order(layer))
    return ops.cast(binary_result(layer, ops, acc, n_in), out_type(layer))


def binary_result(layer: Any, ops: Ops, acc: Tensor, n_in: int) -> Tensor:
    """``nnet_mult.h`` ``cast``: with ``ap_uint<1>`` data and weights, ``(ap_int<ceillog2(n_in) + 2>)(acc * 2 -
    n_in)`` (TRN, WRAP; the agreeing-code count ``acc`` as the +-1 dot product), which is then assigned to the result
    type; otherwise ``acc`` itself."""
    if not binary_count_cast(layer):
        return acc
    bits = ceillog2(n_in) + 2
    return ops.cast(ops.sub(ops.scale(acc, 1), scalar(ops, n_in, 0)), FixedType(bits, bits, True), "binary count")


def _conv(layer: Any, x: Tensor, ops: Ops, w: Any, kernel: tuple[int, ...], stride: tuple[int, ...],
          out: tuple[int, ...], pads: list[tuple[int, int]], in_order: bool) -> Tensor:
    """Pad, the Dense product of every window in (kernel..., channel) order (:meth:`Ops.window_dot`), cast to the
    output type."""
    cin, cout = int_attr(layer, "n_chan"), int_attr(layer, "n_filt")
    if w.shape != (*kernel, cin, cout):
        raise FlowError(f"{where(layer)}: weight shape {w.shape} != {(*kernel, cin, cout)}")
    if w.kind == "po2":
        raise FlowError(f"{where(layer)}: power-of-two conv weights are not supported")
    if any(a or b for a, b in pads):
        x = ops.pad(x, pads + [(0, 0)])  # code 0: a padded binary input is -1 in a binary product
    k = int(np.prod(kernel)) * cin
    w, b, acc_t = w.reshaped((k, cout)), weights(layer, "bias"), attr_type(layer, "accum_t")
    bias = bias_const(ops, b)
    if x.t is not None and x.t.xnor:
        x, w, bias = _binary_conv_operands(layer, ops, x, w, b, acc_t)
    if not binary_count_cast(layer):
        return ops.window_dot(x, kernel, stride, out, weight_const(ops, w), bias, acc_t, in_order, out_type(layer))
    acc = ops.window_dot(x, kernel, stride, out, weight_const(ops, w), bias, acc_t, in_order)
    return ops.cast(binary_result(layer, ops, acc, k), out_type(layer))


def _binary_conv_operands(layer: Any, ops: Ops, x: Tensor, w: Any, b: Any,
                          acc_t: FixedType) -> tuple[Tensor, Any, Tensor]:
    """The operands of a convolution of binary (xnor) data as a plain product of windows (:meth:`Ops.window_dot`).

    ``data_binary`` (``a == 0 ? -w : w``): the data's +-1 values times the weights. ``both_binary`` (``a == w`` as
    0 / 1, each cast to ``accum_t``): ``a == w`` is ``a * (2w - 1) + (1 - w)``, so the codes times the +-1 weights
    with ``sum(1 - w)`` added to the bias before its cast to ``accum_t``. That equals hls4ml's sum of casts where
    no cast changes a value modulo the accumulator's range and an integer added to the bias rounds with it:
    ``accum_t`` wraps and has an LSB of at most 1, which is required (FlowError otherwise)."""
    if w.kind != "binary":
        return plus_minus_one(ops, x), w, bias_const(ops, b)
    if acc_t.overflow != "WRAP" or acc_t.fractional < 0:
        raise FlowError(f"{where(layer)}: a binary convolution of binary data with accum_t {acc_t} is not supported "
                        "by the emulator (supported: a wrapping accum_t with an LSB of at most 1)")
    extra = (1 - w.bits).sum(axis=0).astype(np.int64)
    codes, frac = b.codes.reshape(-1).astype(np.int64), b.frac
    if frac < 0:
        codes, frac = codes << -frac, 0
    return x, w, ops.const(codes + (extra << frac), frac)


def conv2d(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    channels_last(layer)
    w = weights(layer, "weight")
    if layer.get_attr("_weights_transposed", False):  # (F,H,W,C) -> (H,W,C,F)
        w = w.transposed((1, 2, 3, 0))
    kernel = (int_attr(layer, "filt_height"), int_attr(layer, "filt_width"))
    stride = (int_attr(layer, "stride_height"), int_attr(layer, "stride_width"))
    out = (int_attr(layer, "out_height"), int_attr(layer, "out_width"))
    pads = [(int_attr(layer, "pad_top"), int_attr(layer, "pad_bottom")),
            (int_attr(layer, "pad_left"), int_attr(layer, "pad_right"))]
    return _conv(layer, xs[0], ops, w, kernel, stride, out, pads, target.conv_in_order(layer))


def conv1d(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    """Conv1D: the Conv2D arithmetic over one spatial axis."""
    channels_last(layer)
    if int_attr(layer, "dilation", 1) != 1:
        raise FlowError(f"{where(layer)}: dilated convolution is not supported")
    w = weights(layer, "weight")
    if layer.get_attr("_weights_transposed", False):  # (F,W,C) -> (W,C,F)
        w = w.transposed((1, 2, 0))
    pads = [(int_attr(layer, "pad_left"), int_attr(layer, "pad_right"))]
    return _conv(layer, xs[0], ops, w, (int_attr(layer, "filt_width"),), (int_attr(layer, "stride_width"),),
                 (int_attr(layer, "out_width"),), pads, target.conv_in_order(layer))


def batchnorm(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    x = xs[0]
    s, b = weights(layer, "scale"), weights(layer, "bias")
    if s.kind != "fixed":
        raise FlowError(f"{where(layer)}: {s.kind} scale is not supported by the emulator")
    shape = ops.shape(x)
    n = int(np.prod(shape))
    sc, bc = s.codes.reshape(-1), b.codes.reshape(-1)
    n_filt = int_attr(layer, "n_filt", -1)
    if n_filt != -1:
        reps = n // n_filt
        sc, bc = np.tile(sc[:n_filt], reps), np.tile(bc[:n_filt], reps)
    flat = ops.reshape(x, (n,))
    total = ops.add(ops.mul(flat, ops.const(sc, s.frac)), ops.const(bc, b.frac))
    return ops.reshape(ops.cast(total, out_type(layer)), shape)
