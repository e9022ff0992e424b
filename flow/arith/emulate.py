"""A pure-numpy emulator of an hls4ml ModelGraph, bit-exact to hls4ml's C simulation.

Every type is read from the converted graph (after hls4ml's optimizer passes, which all run inside
the conversion, so the types are final before ``write()``/``compile()``): a layer's output type is
``layer.get_output_variable().type.precision``, weights use their ``WeightVariable`` types and the
accumulator is the layer's ``accum_t``. Nothing is re-derived from the Keras model.

Fixed-point conventions (see :mod:`flow.arith.fxp`): ``ap_fixed<W,I>`` has W total bits and I integer bits
including the sign; values are carried as integer mantissas with ``W-I`` fractional bits. Layer
arithmetic follows hls4ml's Vivado/Vitis ``nnet_utils`` templates:

* Dense / Conv2D (``nnet_dense_latency.h``, ``nnet_dense_resource.h``, ``nnet_conv2d_latency.h``,
  ``nnet_conv_stream.h``): every product ``x*w`` is computed at full precision and cast to
  ``accum_t``; the accumulator starts at ``(accum_t)bias`` and each product is added in ``accum_t``
  (so with a non-WRAP ``accum_t`` the order of additions matters, and only the Latency order is
  emulated when an intermediate sum can overflow); the sum is cast to the output type.
* Weights are what the C simulation loads: hls4ml writes each value as decimal text with as many
  decimals as the type has fractional bits, and ``ap_fixed(double)`` converts it with the weight
  type's rounding and overflow modes.
* ReLU: ``x > 0 ? x : 0`` cast to the output type; linear: a cast; Flatten/Reshape (and io_stream's
  Clone/Repack): a cast (normally the identity); ZeroPadding1D/2D: zeros; BatchNormalization:
  ``x*scale + bias`` at full precision, cast once; LeakyReLU/ThresholdedReLU/hard_sigmoid/hard_tanh: with
  their constants as ``param_t``/``slope_t``/``shift_t`` hold them (:func:`_const`); merges: the exact sum,
  difference, product, half-sum or comparison, cast once; pooling and global pooling: see :func:`_pool`
  and :func:`_global_pooling` (io_parallel and io_stream differ in when values are cast to ``accum_t``).

Checked against hls4ml 1.3's C simulation on every output bit (tests/test_emulate.py,
test_emulate_softmax.py, test_emulate_layers.py, the last comparing every layer's traced output):

* Vitis/Vivado, io_parallel and io_stream: Dense (Latency; Resource io_parallel), Conv1D, Conv2D,
  MaxPooling1D/2D, AveragePooling1D/2D, GlobalMax/AveragePooling1D/2D, Flatten, Reshape, ZeroPadding1D/2D,
  standalone BatchNormalization (Keras and QKeras), ReLU (``max_value`` is dropped by hls4ml's parser),
  linear, LeakyReLU (Keras layer and QKeras ``quantized_relu(negative_slope=...)``), ThresholdedReLU,
  hard_sigmoid, hard_tanh (QKeras ``quantized_tanh``), sigmoid/tanh tables, Softmax (stable, latency),
  Add/Subtract/Multiply/Average/Maximum/Minimum, Concatenate (channels of 3-D tensors; vectors);
  io_parallel only: padded (``'same'``) Max/Average pooling with stride != pool size, 1x1
  (PointwiseConv2D) convolution. Inputs to pooling/accumulators with hls4ml's inferred types and with
  narrow rounding, saturating and wrapping ``accum_t`` set in the config.
* Catapult (``ac_fixed``), io_parallel and io_stream: Dense and Conv2D (Latency), ReLU/linear,
  MaxPooling2D, Flatten, including AC_RND_INF/AC_SAT_SYM, AC_TRN_ZERO/AC_SAT and AC_RND_ZERO/AC_SAT_ZERO
  types. Other Catapult layers raise :class:`FlowError` (its sigmoid/tanh/softmax use ac_math
  piecewise-linear functions and its average pooling has its own ac_fixed accumulator).

Other layers (e.g. PReLU, ELU, DepthwiseConv, SeparableConv, Dot, Cropping, recurrent layers) raise
:class:`FlowError` naming the layer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flow.arith import fxp
from flow.arith.types import FixedType
from flow.errors import FlowError

MAX_PRODUCT_ELEMENTS = 1 << 22  # bound on temporaries: per-product (rows * n_in * n_out) and im2col


@dataclass
class LayerTrace:
    """One layer's output over all emulated samples.

    ``type`` is the fixed-point output type string; ``n_overflow`` counts values that wrapped or
    saturated when cast to that type; ``type_min``/``type_max`` are the type's representable range.
    """

    name: str
    type: str
    values: np.ndarray
    n_overflow: int
    observed_min: float
    observed_max: float
    type_min: float
    type_max: float


@dataclass
class Emulation:
    """Emulator result. ``outputs`` has the layout of :func:`flow.hls.convert.csim_predict` (N, n_out)."""

    outputs: np.ndarray
    traces: list[LayerTrace] = field(default_factory=list)
    overflows: dict[str, int] = field(default_factory=dict)  # layer name -> values wrapped/saturated


@dataclass
class _Tensor:
    """Integer mantissas (batch first) of fixed type ``t``."""

    v: np.ndarray
    t: FixedType


def _ftype(layer: Any, precision: Any, what: str) -> FixedType:
    try:
        return fxp.type_from_hls(precision)
    except ValueError as exc:
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): {what} type not supported by the emulator: {exc}"
        ) from None


def _out_type(layer: Any) -> FixedType:
    return _ftype(layer, layer.get_output_variable().type.precision, "output")


def _attr_type(layer: Any, name: str) -> FixedType:
    t = layer.get_attr(name)
    if t is None:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}) has no {name}")
    return _ftype(layer, t.precision, name)


@dataclass
class _Po2:
    """Power-of-two weights as hls4ml writes them: ``{sign, exponent}`` pairs (sign 1 = non-negative)."""

    sign: np.ndarray
    exponent: np.ndarray
    exp_width: int


def _po2_weights(layer: Any, var: Any) -> _Po2:
    """Replicates ``ExponentWeightVariable._format``: exponent = int(log2|w|) (toward zero), wrapped to ap_int<W>."""
    precision = var.type.precision
    y = np.asarray(var.data, dtype=np.float64)
    if np.any(y == 0):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): zero power-of-two weights are not supported")
    sign = np.where(y < 0, 0, 1)
    e = (np.log2(np.abs(y)) / np.log2(2.0)).astype(np.int64)
    e, _ = fxp.from_float(e.astype(np.float64), FixedType(precision.width, precision.width, bool(precision.signed)))
    return _Po2(sign, e, int(precision.width))


def _weight_values(layer: Any, key: str) -> tuple[Any, FixedType | None, Any]:
    """Mantissas of weight ``key`` exactly as the C simulation loads them from the .txt file."""
    var = layer.weights[key]
    precision = var.type.precision
    if type(precision).__name__.endswith("ExponentPrecisionType"):
        return _po2_weights(layer, var), None, precision
    t = _ftype(layer, precision, f"{key}")
    fmt = getattr(var, "precision_fmt", None) or "{:.16f}"
    data = np.asarray(var.data)
    text_values = np.array([float(fmt.format(v)) for v in data.ravel()], dtype=np.float64).reshape(data.shape)
    q, _ = fxp.from_float(text_values, t)
    return q, t, precision


def _is_ternary(precision: Any) -> bool:
    """hls4ml picks its ``weight_ternary`` product for signed ``ap_int<2>`` weights (``isinstance``, as
    hls4ml's ``product_type`` does, so the backend's wrapped ``APIntegerPrecisionType`` counts too)."""
    from hls4ml.model.types import IntegerPrecisionType

    return isinstance(precision, IntegerPrecisionType) and precision.width == 2 and bool(precision.signed)


class _Ctx:
    """Per-graph cache of converted weights, reused across chunks."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], Any] = {}
        self.backend = "Vivado"  # hls4ml backend name; emulate() sets it from the graph (Catapult differs)

    def weights(self, layer: Any, key: str) -> tuple[np.ndarray, FixedType, Any]:
        k = (layer.name, key)
        if k not in self.cache:
            self.cache[k] = _weight_values(layer, key)
        return self.cache[k]


def _matmul_accumulate(
    layer: Any, x: _Tensor, w: np.ndarray, wt: FixedType, w_precision: Any,
    b: np.ndarray, bt: FixedType, acc_t: FixedType, latency_order: bool,
) -> np.ndarray:
    """``acc = (accum_t)b; acc += (accum_t)(x_i * w_ij)`` for 2-D ``x`` (rows, n_in); returns accum mantissas."""
    xv = x.v
    if isinstance(w, _Po2):
        return _po2_accumulate(layer, x, w, b, bt, acc_t, latency_order)
    if _is_ternary(w_precision):  # product = w==0 ? 0 : (w==-1 ? -x : x), at x's precision
        w = np.where(w == 0, 0, np.where(w == -1, -1, 1)).astype(np.int64)
        w_frac = 0
    else:
        w_frac = wt.fractional
    n_in, n_out = w.shape
    p_frac = x.t.fractional + w_frac
    bias_acc, _ = fxp.requantize(b, bt.fractional, acc_t)
    prod_bits = fxp.bit_length(xv) + fxp.bit_length(w)

    if acc_t.fractional >= p_frac and acc_t.overflow == "WRAP":
        # Products cast to accum_t exactly (up to wrapping); wrapping is modular, so wrap once at the end.
        shift = acc_t.fractional - p_frac
        need = prod_bits + shift + max(1, math.ceil(math.log2(n_in + 1))) + 1
        if need > fxp.INT64_SAFE_BITS or fxp.bit_length(bias_acc) + 1 > fxp.INT64_SAFE_BITS:
            xv, w, bias_acc = fxp.as_object(xv), fxp.as_object(w), fxp.as_object(bias_acc)
        acc = np.matmul(xv, w)
        if shift:
            acc = acc << shift
        acc = acc + bias_acc
        acc, _ = fxp.apply_overflow(acc, acc_t)
        return acc

    # General case: each product is rounded/overflowed into accum_t on its own.
    if prod_bits > fxp.INT64_SAFE_BITS:
        xv, w = fxp.as_object(xv), fxp.as_object(w)

    def products(xs: np.ndarray) -> np.ndarray:
        return fxp.requantize(xs[:, :, None] * w[None, :, :], p_frac, acc_t)[0]

    return _accumulate_products(layer, xv, products, (n_in, n_out), bias_acc, acc_t, latency_order)


def _po2_accumulate(
    layer: Any, x: _Tensor, w: _Po2, b: np.ndarray, bt: FixedType, acc_t: FixedType, latency_order: bool,
) -> np.ndarray:
    """hls4ml ``weight_exponential`` product: with ``r_T = ap_fixed<2*(We+Wx), We+Wx>`` (We = exponent
    width, Wx = data width), ``y = (r_T)a << e`` (a negative ``e`` shifts right, truncating; bits shifted out
    on the left wrap), ``product = sign ? y : (r_T)(-y)``; each product is then cast to ``accum_t``."""
    wx = x.t.width
    r_t = FixedType(2 * (w.exp_width + wx), w.exp_width + wx, True)
    xr, _ = fxp.requantize(x.v, x.t.fractional, r_t)
    e = w.exponent
    left = np.where(e > 0, e, 0)
    right = np.where(e < 0, -e, 0)
    if r_t.width + int(left.max(initial=0)) > fxp.INT64_SAFE_BITS:
        xr = fxp.as_object(xr)
    positive = w.sign == 1
    n_in, n_out = e.shape
    bias_acc, _ = fxp.requantize(b.reshape(-1), bt.fractional, acc_t)

    def products(xs: np.ndarray) -> np.ndarray:
        a = xs[:, :, None]
        y, _ = fxp.apply_overflow((a << left) >> right, r_t)
        neg, _ = fxp.apply_overflow(-y, r_t)
        p = np.where(positive, y, neg)
        return fxp.requantize(p, r_t.fractional, acc_t)[0]

    return _accumulate_products(layer, xr, products, (n_in, n_out), bias_acc, acc_t, latency_order)


def _accumulate_products(
    layer: Any, xv: np.ndarray, products: Any, dims: tuple[int, int], bias_acc: np.ndarray,
    acc_t: FixedType, latency_order: bool,
) -> np.ndarray:
    """``acc = bias; acc += mult[i]`` in ``accum_t`` where ``products(rows)`` gives mult (rows, n_in, n_out)."""
    n_in, n_out = dims
    rows = xv.shape[0]
    step = max(1, MAX_PRODUCT_ELEMENTS // max(1, n_in * n_out))
    out = []
    for r0 in range(0, rows, step):
        xs = xv[r0:r0 + step]
        mult = products(xs)
        if mult.dtype != object and acc_t.width + math.ceil(math.log2(n_in + 2)) + 1 > fxp.INT64_SAFE_BITS:
            mult, bias_acc = fxp.as_object(mult), fxp.as_object(bias_acc)
        if acc_t.overflow == "WRAP":
            total = np.sum(mult, axis=1) + bias_acc
            total, _ = fxp.apply_overflow(total, acc_t)
            out.append(total)
            continue
        # Saturating accumulator: the order of additions matters once a partial sum leaves the range.
        lo, hi = fxp.type_range(acc_t)
        if acc_t.overflow == "SAT_SYM" and acc_t.signed:
            lo = -hi
        # every partial sum lies in [bias + sum(negative terms), bias + sum(positive terms)]
        upper = bias_acc + np.sum(np.where(mult > 0, mult, 0), axis=1)
        lower = bias_acc + np.sum(np.where(mult < 0, mult, 0), axis=1)
        if not latency_order and (np.any(upper > hi) or np.any(lower < lo)):
            raise FlowError(
                f"layer {layer.name!r} ({layer.class_name}): accum_t {acc_t} saturates and a partial sum can "
                "overflow; the emulator reproduces only the Latency strategy's io_parallel addition order"
            )
        acc = np.broadcast_to(bias_acc, (xs.shape[0], n_out)).copy()
        for i in range(n_in):
            acc, _ = fxp.apply_overflow(acc + mult[:, i, :], acc_t)
        out.append(acc)
    return np.concatenate(out, axis=0) if out else np.zeros((0, n_out), dtype=np.int64)


def _dense_like_weights(layer: Any, ctx: _Ctx) -> tuple[np.ndarray, FixedType, Any, np.ndarray, FixedType]:
    w, wt, wp = ctx.weights(layer, "weight")
    b, bt, _ = ctx.weights(layer, "bias")
    return w, wt, wp, b, bt


def _check_weight_kind(layer: Any, precision: Any) -> None:
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

    if type(precision).__name__.endswith("ExponentPrecisionType"):
        return
    if not isinstance(precision, (FixedPrecisionType, IntegerPrecisionType)) or (
        type(precision).__name__.endswith("XnorPrecisionType")
    ):
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): weight type {precision} "
            f"({type(precision).__name__}) is not supported by the emulator"
        )


def _strategy_is_latency(layer: Any) -> bool:
    return str(layer.get_attr("strategy", "latency")).lower() == "latency"


def _dense(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    w, wt, wp, b, bt = _dense_like_weights(layer, ctx)
    _check_weight_kind(layer, wp)
    if layer.get_attr("_weights_transposed", False):
        w = _Po2(w.sign.T, w.exponent.T, w.exp_width) if isinstance(w, _Po2) else w.T
    n_in, n_out = int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))
    if (w.exponent if isinstance(w, _Po2) else w).shape != (n_in, n_out):
        raise FlowError(f"layer {layer.name!r} (Dense): weight shape {w.shape} != ({n_in}, {n_out})")
    lead = x.v.shape[:-1]
    x2 = _Tensor(x.v.reshape(-1, n_in), x.t)
    acc_t = _attr_type(layer, "accum_t")
    acc = _matmul_accumulate(layer, x2, w, wt, wp, b.reshape(-1), bt, acc_t, _strategy_is_latency(layer))
    out_t = _out_type(layer)
    y, n = fxp.requantize(acc, acc_t.fractional, out_t)
    return _Tensor(y.reshape(*lead, n_out), out_t), n


def _conv2d(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"layer {layer.name!r} (Conv2D): only channels_last is supported")
    w, wt, wp, b, bt = _dense_like_weights(layer, ctx)
    _check_weight_kind(layer, wp)
    if isinstance(w, _Po2):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): power-of-two conv weights are not supported")
    if layer.get_attr("_weights_transposed", False):  # (F,H,W,C) -> (H,W,C,F)
        w = np.transpose(w, (1, 2, 3, 0))
    fh, fw = int(layer.get_attr("filt_height")), int(layer.get_attr("filt_width"))
    sh, sw = int(layer.get_attr("stride_height")), int(layer.get_attr("stride_width"))
    oh, ow = int(layer.get_attr("out_height")), int(layer.get_attr("out_width"))
    pads = [int(layer.get_attr(k, 0) or 0) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
    v = x.v
    if any(pads):
        v = np.pad(v, ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    # Catapult's io_parallel conv adds the products in (channel, fh, fw) order, not im2col's (fh, fw, channel)
    latency = _strategy_is_latency(layer) and io_type == "io_parallel" and ctx.backend != "Catapult"
    return _conv_core(layer, _Tensor(v, x.t), w, wt, wp, b, bt, (fh, fw), (sh, sw), (oh, ow), latency)


def _conv_core(
    layer: Any, x: _Tensor, w: np.ndarray, wt: FixedType, wp: Any, b: np.ndarray, bt: FixedType,
    kernel: tuple[int, int], stride: tuple[int, int], out_hw: tuple[int, int], latency: bool,
) -> tuple[_Tensor, int]:
    """Conv (already padded, channels_last ``x`` of shape (n, H, W, C)): im2col in (fh, fw, c) order, then
    the Dense accumulation of :func:`_matmul_accumulate` per output pixel, then the cast to the output type."""
    (fh, fw), (sh, sw), (oh, ow) = kernel, stride, out_hw
    cin, cout = int(layer.get_attr("n_chan")), int(layer.get_attr("n_filt"))
    if w.shape != (fh, fw, cin, cout):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): weight shape {w.shape} != {(fh, fw, cin, cout)}")
    v = x.v
    acc_t = _attr_type(layer, "accum_t")
    out_t = _out_type(layer)
    per_sample = oh * ow * fh * fw * cin
    step = max(1, MAX_PRODUCT_ELEMENTS // max(1, per_sample))  # bound the im2col temporary
    ys, n = [], 0
    for s0 in range(0, v.shape[0], step):
        windows = np.lib.stride_tricks.sliding_window_view(v[s0:s0 + step], (fh, fw), axis=(1, 2))
        windows = windows[:, ::sh, ::sw][:, :oh, :ow]  # (n, oh, ow, C, fh, fw)
        cols = np.transpose(windows, (0, 1, 2, 4, 5, 3)).reshape(-1, fh * fw * cin)  # im2col, (fh, fw, c) order
        acc = _matmul_accumulate(
            layer, _Tensor(cols, x.t), w.reshape(fh * fw * cin, cout), wt, wp, b.reshape(-1), bt, acc_t, latency
        )
        y, n_s = fxp.requantize(acc, acc_t.fractional, out_t)
        ys.append(y.reshape(-1, oh, ow, cout))
        n += n_s
    y = np.concatenate(ys, axis=0) if ys else np.zeros((0, oh, ow, cout), dtype=np.int64)
    return _Tensor(y, out_t), n


def _activation(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    act = str(layer.get_attr("activation", "")).lower()
    out_t = _out_type(layer)
    if act == "linear":
        v = x.v
    elif act == "relu":
        v = np.where(x.v > 0, x.v, 0)
    elif act in _LUT_ACTIVATIONS:
        return _lut_activation(layer, x, act, out_t)
    else:
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): activation {act!r} is not supported by the emulator "
            "(supported: relu, linear, sigmoid, tanh)"
        )
    y, n = fxp.requantize(v, x.t.fractional, out_t)
    return _Tensor(y, out_t), n


def _pooling2d(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """MaxPooling2D / AveragePooling2D; see :func:`_pool`."""
    return _pool(layer, x, ctx, io_type, two_d=True)


def _pooling1d(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """MaxPooling1D / AveragePooling1D; see :func:`_pool`."""
    return _pool(layer, x, ctx, io_type, two_d=False)


def _div_trunc(v: np.ndarray, n: Any) -> np.ndarray:
    """``ap_fixed / unsigned``: an integer division of the mantissa truncating toward zero (``sdiv``), at the
    dividend's fractional bits; ``n`` (a positive int or int array) is the divisor."""
    q = np.abs(v) // n
    return np.where(v < 0, -q, q)


def _add_cast(a: np.ndarray, fa: int, b: np.ndarray, fb: int, t: FixedType) -> np.ndarray:
    """``(t)(a + b)``: the exact ap_fixed sum of two mantissas (``fa``/``fb`` fractional bits) cast to ``t``."""
    f = max(fa, fb)
    if fxp.bit_length(a) + f - fa + 1 > fxp.INT64_SAFE_BITS or fxp.bit_length(b) + f - fb + 1 > fxp.INT64_SAFE_BITS:
        a, b = fxp.as_object(a), fxp.as_object(b)
    return fxp.requantize((a << (f - fa)) + (b << (f - fb)), f, t)[0]


def _pad_value(t: FixedType, op: str) -> int:
    """nnet_pooling.h ``pad_val``: 0 for Average; for Max a word with only its top bit set, which is the most
    negative value of a signed type but ``+2**(W-1)`` LSBs for an unsigned one (hls4ml's code, reproduced)."""
    if op != "Max":
        return 0
    return -(1 << (t.width - 1)) if t.signed else 1 << (t.width - 1)


def _pool(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str, two_d: bool) -> tuple[_Tensor, int]:
    """nnet_pooling.h (io_parallel) / nnet_pooling_stream.h (io_stream), Max and Average, 1D and 2D.

    io_parallel: a window of input values (padding cells hold :func:`_pad_value`); Max takes the maximum in
    the input type and casts it to ``accum_t``; Average starts ``accum_t y = 0``, does ``y += x_k`` in window
    order (each sum cast to ``accum_t``), then ``y /= n`` with n the number of non-padding cells (or the window
    size with ``count_pad``), an integer division truncating toward zero. io_stream (no padding, pool ==
    stride): every value is cast to ``accum_t`` first; Max is their maximum, Average their balanced-tree sum
    (each partial sum cast to ``accum_t``) divided by the window size the same way. The result is cast to the
    output type.
    """
    op = layer.get_attr("pool_op")
    if op not in ("Max", "Average"):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {op} pooling is not supported by the emulator")
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): only channels_last is supported")
    if two_d:
        ph, pw = int(layer.get_attr("pool_height")), int(layer.get_attr("pool_width"))
        sh, sw = int(layer.get_attr("stride_height")), int(layer.get_attr("stride_width"))
        oh, ow = int(layer.get_attr("out_height")), int(layer.get_attr("out_width"))
        pads = [int(layer.get_attr(k, 0) or 0) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
        v = x.v
    else:
        ph = sh = oh = 1
        pw, sw = int(layer.get_attr("pool_width")), int(layer.get_attr("stride_width"))
        ow = int(layer.get_attr("n_out"))
        pads = [0, 0, int(layer.get_attr("pad_left", 0) or 0), int(layer.get_attr("pad_right", 0) or 0)]
        v = x.v[:, None]
    acc_t = _attr_type(layer, "accum_t")
    out_t = _out_type(layer)
    if ctx.backend == "Catapult" and (op != "Max" or acc_t != x.t):
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): on the Catapult backend the emulator supports only max "
            f"pooling with accum_t equal to the input type (here {op}, accum_t {acc_t}, input {x.t})"
        )
    if io_type == "io_stream" and (any(pads) or (ph, pw) != (sh, sw)):
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): hls4ml's io_stream pooling requires no padding and "
            f"pool size == stride (pool {(ph, pw)}, stride {(sh, sw)}, padding {pads})"
        )
    count = np.ones(v.shape[1:3], dtype=np.int64)
    if any(pads):
        widths = ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0))
        v = np.pad(v, widths, constant_values=_pad_value(x.t, op))
        count = np.pad(count, widths[1:3])
    win = np.lib.stride_tricks.sliding_window_view(v, (ph, pw), axis=(1, 2))[:, ::sh, ::sw][:, :oh, :ow]
    win = win.reshape(*win.shape[:4], ph * pw)  # (n, oh, ow, C, k), k in (row, column) order
    if io_type == "io_stream":
        cells, _ = fxp.requantize(win, x.t.fractional, acc_t)
        if op == "Max":
            y = np.max(cells, axis=-1)
        else:
            total = _tree_reduce([cells[..., k] for k in range(ph * pw)],
                                 lambda a, b: _add_cast(a, acc_t.fractional, b, acc_t.fractional, acc_t))
            y = _div_trunc(total, ph * pw)
    elif op == "Max":
        y, _ = fxp.requantize(np.max(win, axis=-1), x.t.fractional, acc_t)
    else:
        y = np.zeros(win.shape[:4], dtype=np.int64)
        for k in range(ph * pw):
            y = _add_cast(y, acc_t.fractional, win[..., k], x.t.fractional, acc_t)
        if layer.get_attr("count_pad", False):
            n_cells = np.full((oh, ow), ph * pw, dtype=np.int64)
        else:
            cw = np.lib.stride_tricks.sliding_window_view(count, (ph, pw))[::sh, ::sw][:oh, :ow]
            n_cells = cw.sum(axis=(-2, -1))
        y = _div_trunc(y, n_cells[None, :, :, None])
    y, n = fxp.requantize(y, acc_t.fractional, out_t)
    if not two_d:
        y = y[:, 0]
    return _Tensor(y, out_t), n


def _global_pooling(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """GlobalMax/AveragePooling1D/2D (nnet_pooling.h ``global_pooling*d_cl``, nnet_pooling_stream.h).

    io_parallel: over the pixels in order, Max takes the maximum in the input type and casts it to
    ``accum_t``; Average does ``y += x`` in ``accum_t`` then ``y /= n_pixels`` (truncating toward zero).
    io_stream: a per-channel ``accum_t`` register starts at the type's minimum (Max) or 0 (Average) and takes
    ``max(reg, (accum_t)x)`` or ``(accum_t)(reg + (accum_t)x)`` pixel by pixel; Average ends with
    ``reg / n_pixels``. The result is cast to the output type.
    """
    op = layer.get_attr("pool_op")
    if op not in ("Max", "Average"):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {op} pooling is not supported by the emulator")
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): only channels_last is supported")
    if ctx.backend == "Catapult":
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): global pooling is not emulated for the "
                        "Catapult backend")
    acc_t = _attr_type(layer, "accum_t")
    out_t = _out_type(layer)
    v = x.v.reshape(x.v.shape[0], -1, x.v.shape[-1])  # (n, pixels, C)
    pixels = v.shape[1]
    if io_type == "io_stream":
        cells, _ = fxp.requantize(v, x.t.fractional, acc_t)
        if op == "Max":
            y = np.max(cells, axis=1)
        else:
            y = np.zeros((v.shape[0], v.shape[2]), dtype=np.int64)
            for i in range(pixels):
                y = _add_cast(y, acc_t.fractional, cells[:, i], acc_t.fractional, acc_t)
            y = _div_trunc(y, pixels)
    elif op == "Max":
        y, _ = fxp.requantize(np.max(v, axis=1), x.t.fractional, acc_t)
    else:
        y = np.zeros((v.shape[0], v.shape[2]), dtype=np.int64)
        for i in range(pixels):
            y = _add_cast(y, acc_t.fractional, v[:, i], x.t.fractional, acc_t)
        y = _div_trunc(y, pixels)
    y, n = fxp.requantize(y, acc_t.fractional, out_t)
    return _Tensor(y, out_t), n


def _reshape(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    shape = [int(s) for s in layer.get_output_variable().shape]
    out_t = _out_type(layer)
    y, n = fxp.requantize(x.v.reshape(x.v.shape[0], *shape), x.t.fractional, out_t)
    return _Tensor(y, out_t), n


def _zeropad2d(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): only channels_last is supported")
    pads = [int(layer.get_attr(k, 0) or 0) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
    v = np.pad(x.v, ((0, 0), (pads[0], pads[1]), (pads[2], pads[3]), (0, 0)))
    out_t = _out_type(layer)
    y, n = fxp.requantize(v, x.t.fractional, out_t)
    return _Tensor(y, out_t), n


def _batchnorm(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    s, st, sp = ctx.weights(layer, "scale")
    b, bt, _ = ctx.weights(layer, "bias")
    _check_weight_kind(layer, sp)
    if _is_ternary(sp):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): ternary scale is not supported by the emulator")
    n_filt = int(layer.get_attr("n_filt", -1) or -1)
    flat = x.v.reshape(x.v.shape[0], -1)
    s, b = s.reshape(-1), b.reshape(-1)
    if n_filt != -1:
        reps = flat.shape[1] // n_filt
        s, b = np.tile(s[:n_filt], reps), np.tile(b[:n_filt], reps)
    p_frac = x.t.fractional + st.fractional
    frac = max(p_frac, bt.fractional)
    need = fxp.bit_length(flat) + fxp.bit_length(s) + abs(frac - p_frac) + fxp.bit_length(b) + abs(frac - bt.fractional) + 1
    if need > fxp.INT64_SAFE_BITS:
        flat, s, b = fxp.as_object(flat), fxp.as_object(s), fxp.as_object(b)
    total = ((flat * s) << (frac - p_frac)) + (b << (frac - bt.fractional))
    out_t = _out_type(layer)
    y, n = fxp.requantize(total, frac, out_t)
    return _Tensor(y.reshape(x.v.shape), out_t), n


def _zeropad1d(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """nnet_padding.h ``zeropad1d_cl``: zeros left and right, every value cast to the output type."""
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): only channels_last is supported")
    left, right = int(layer.get_attr("pad_left", 0) or 0), int(layer.get_attr("pad_right", 0) or 0)
    v = np.pad(x.v, ((0, 0), (left, right), (0, 0)))
    out_t = _out_type(layer)
    y, n = fxp.requantize(v, x.t.fractional, out_t)
    return _Tensor(y, out_t), n


def _conv1d(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """Conv1D (nnet_conv1d_latency.h, nnet_conv1d_stream.h): the Conv2D arithmetic with a height of 1."""
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): only channels_last is supported")
    if int(layer.get_attr("dilation", 1) or 1) != 1:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): dilated convolution is not supported")
    w, wt, wp, b, bt = _dense_like_weights(layer, ctx)
    _check_weight_kind(layer, wp)
    if isinstance(w, _Po2):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): power-of-two conv weights are not supported")
    if layer.get_attr("_weights_transposed", False):  # (F,W,C) -> (W,C,F)
        w = np.transpose(w, (1, 2, 0))
    fw, sw = int(layer.get_attr("filt_width")), int(layer.get_attr("stride_width"))
    ow = int(layer.get_attr("out_width"))
    left, right = int(layer.get_attr("pad_left", 0) or 0), int(layer.get_attr("pad_right", 0) or 0)
    v = np.pad(x.v, ((0, 0), (left, right), (0, 0)))[:, None]
    latency = _strategy_is_latency(layer) and io_type == "io_parallel" and ctx.backend != "Catapult"
    y, n = _conv_core(layer, _Tensor(v, x.t), w[None], wt, wp, b, bt, (1, fw), (1, sw), (1, ow), latency)
    return _Tensor(y.v[:, 0], y.t), n


def _const(layer: Any, value: Any, t: FixedType) -> int:
    """A constant as the HLS project holds it: hls4ml writes the Python value as C++ text (``str.format``),
    which the C++ compiler reads as a double and ``ap_fixed(double)`` converts to ``t`` (its rounding and
    overflow modes). Returns the mantissa."""
    try:
        text_value = float(f"{value}")
    except (TypeError, ValueError):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): constant {value!r} is not a number") from None
    return int(fxp.from_float(np.array([text_value]), t)[0][0])


def _param_activation(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """nnet_activation.h ``leaky_relu``: ``x > 0 ? x : alpha * x`` (exact product, then the output cast), and
    ``thresholded_relu``: ``x > theta ? x : 0``; alpha/theta are ``param_t`` constants (see :func:`_const`)."""
    act = str(layer.get_attr("activation", "")).lower()
    fn = {"leakyrelu": "leaky_relu", "leaky_relu": "leaky_relu", "thresholdedrelu": "thresholded_relu"}.get(act)
    if fn is None:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): activation {act!r} is not supported by the "
                        "emulator (supported parametrized activations: LeakyReLU, ThresholdedReLU)")
    param_t = _attr_type(layer, "param_t")
    p = _const(layer, layer.get_attr("activ_param", 1.0), param_t)
    out_t = _out_type(layer)
    v = x.v
    frac = x.t.fractional + param_t.fractional
    if fn == "leaky_relu":
        if fxp.bit_length(v) + max(abs(p).bit_length(), param_t.fractional) + 1 > fxp.INT64_SAFE_BITS:
            v = fxp.as_object(v)
        total = np.where(v > 0, v << param_t.fractional, v * p)
    else:  # compare x > theta exactly, both at ``frac`` fractional bits
        if max(fxp.bit_length(v) + param_t.fractional, abs(p).bit_length() + x.t.fractional) + 1 > fxp.INT64_SAFE_BITS:
            v = fxp.as_object(v)
        total = np.where((v << param_t.fractional) > (p << x.t.fractional), v << param_t.fractional, 0)
    y, n = fxp.requantize(total, frac, out_t)
    return _Tensor(y, out_t), n


def _hard_activation(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """nnet_activation.h ``hard_sigmoid``: ``auto y = slope * x + shift`` in the exact ap_fixed result type P,
    then ``y > 1 ? y = 1 : y < 0 ? y = 0``, where assigning 1 or 0 converts to P (P's default TRN/WRAP, so 1
    wraps when P cannot hold it); ``hard_tanh`` returns ``2 * y - 1``. The result is cast to the output type."""
    act = str(layer.get_attr("activation", "")).lower()
    if act not in ("hard_sigmoid", "hard_tanh"):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): activation {act!r} is not supported by the "
                        "emulator (supported hard activations: hard_sigmoid, hard_tanh)")
    slope_t, shift_t = _attr_type(layer, "slope_t"), _attr_type(layer, "shift_t")
    slope = _const(layer, layer.get_attr("slope"), slope_t)
    shift = _const(layer, layer.get_attr("shift"), shift_t)
    # ap_fixed result types: mult (Ws+Wx, Is+Ix, Ss|Sx), then plus with shift
    m_s, m_i, m_f = slope_t.signed or x.t.signed, slope_t.integer + x.t.integer, slope_t.fractional + x.t.fractional
    p_s = m_s or shift_t.signed
    p_i = max(m_i + (shift_t.signed and not m_s), shift_t.integer + (m_s and not shift_t.signed)) + 1
    p_f = max(m_f, shift_t.fractional)
    p_t = FixedType(p_i + p_f, p_i, p_s)
    v = x.v
    if fxp.bit_length(v) + abs(slope).bit_length() + abs(p_f - m_f) + 2 > fxp.INT64_SAFE_BITS or p_f + 2 > 62:
        v = fxp.as_object(v)
    y = ((v * slope) << (p_f - m_f)) + (shift << (p_f - shift_t.fractional))
    one = fxp.apply_overflow(np.array([1 << p_f], dtype=object), p_t)[0][0]
    y = np.where(y > (1 << p_f), one, np.where(y < 0, 0, y))
    if act == "hard_tanh":
        y = 2 * y - (1 << p_f)
    out_t = _out_type(layer)
    r, n = fxp.requantize(y, p_f, out_t)
    return _Tensor(r, out_t), n


MERGE_OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum")


def _merge(layer: Any, xs: list[_Tensor], ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """nnet_merge.h / nnet_merge_stream.h: ``res[i] = (res_T)(a[i % n1] OP b[i % n2])`` with the exact ap_fixed
    sum, difference or product; average is ``(a + b) * 0.5``; maximum/minimum compare exactly and cast the
    chosen input. io_parallel broadcasts the smaller input by the flat index modulo its size."""
    op = str(layer.get_attr("op", "")).lower()
    if op not in MERGE_OPS:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): merge operation {op!r} is not supported by "
                        f"the emulator (supported: {', '.join(MERGE_OPS)})")
    if len(xs) != 2:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {len(xs)} inputs; hls4ml merges two")
    a, b = xs
    rows = a.v.shape[0]
    va, vb = a.v.reshape(rows, -1), b.v.reshape(rows, -1)
    n_out = max(va.shape[1], vb.shape[1])
    idx = np.arange(n_out)
    va, vb = va[:, idx % va.shape[1]], vb[:, idx % vb.shape[1]]
    fa, fb = a.t.fractional, b.t.fractional
    out_t = _out_type(layer)
    wide = max(fxp.bit_length(va), fxp.bit_length(vb)) + abs(fa - fb) + 2
    if op == "multiply":
        wide = fxp.bit_length(va) + fxp.bit_length(vb) + 1
    if wide > fxp.INT64_SAFE_BITS:
        va, vb = fxp.as_object(va), fxp.as_object(vb)
    f = max(fa, fb)
    aa, bb = va << (f - fa), vb << (f - fb)  # both at f fractional bits
    if op == "add":
        v, frac = aa + bb, f
    elif op == "subtract":
        v, frac = aa - bb, f
    elif op == "average":
        v, frac = aa + bb, f + 1  # times ap_ufixed<1,0>(0.5): one more fractional bit
    elif op == "multiply":
        v, frac = va * vb, fa + fb
    elif op == "maximum":  # (a > b) ? (res_T)a : (res_T)b
        v, frac = np.where(aa > bb, aa, bb), f
    else:  # minimum
        v, frac = np.where(aa < bb, aa, bb), f
    y, n = fxp.requantize(v, frac, out_t)
    return _Tensor(y.reshape(rows, *_out_shape(layer)), out_t), n


_merge.multi_input = True  # type: ignore[attr-defined]


def _out_shape(layer: Any) -> list[int]:
    return [int(s) for s in layer.get_output_variable().shape]


def _concatenate(layer: Any, xs: list[_Tensor], ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """nnet_merge.h ``concatenate*d`` / stream: the two inputs side by side along ``axis``, each value cast to
    the output type."""
    if len(xs) != 2:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {len(xs)} inputs; hls4ml concatenates two")
    axis = int(layer.get_attr("axis", -1))
    if axis > 0:
        axis -= 1  # hls4ml: a positive Keras axis counts the batch dimension
    out_t = _out_type(layer)
    parts, n = [], 0
    for x in xs:
        y, k = fxp.requantize(x.v, x.t.fractional, out_t)
        parts.append(y)
        n += k
    ndim = parts[0].ndim - 1
    y = np.concatenate(parts, axis=1 + (axis % ndim))
    if list(y.shape[1:]) != _out_shape(layer):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): concatenated shape {list(y.shape[1:])} "
                        f"!= output shape {_out_shape(layer)}")
    return _Tensor(y, out_t), n


_concatenate.multi_input = True  # type: ignore[attr-defined]


def _copy(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """io_stream helpers hls4ml inserts: ``Clone`` (nnet_stream.h ``clone_stream``: the input copied to every
    output) and ``Repack`` (``repack_stream``: same values, new packing). Values are cast to the output type."""
    out_t = _out_type(layer)
    for name in layer.outputs:
        var = layer.get_output_variable(name)
        if _ftype(layer, var.type.precision, f"output {name}") != out_t:
            raise FlowError(f"layer {layer.name!r} ({layer.class_name}): outputs of different types")
    y, n = fxp.requantize(x.v.reshape(x.v.shape[0], *_out_shape(layer)), x.t.fractional, out_t)
    return _Tensor(y, out_t), n


# --------------------------------------------------------------------------------------------
# Lookup-table activations (nnet_activation.h / nnet_activation_stream.h)
# --------------------------------------------------------------------------------------------

_LIBM: Any = None


def _libm() -> Any:
    """The C math library the C simulation links against (``std::exp(float)`` is ``expf``), or None."""
    global _LIBM
    if _LIBM is None:
        import ctypes
        import ctypes.util

        try:
            lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
            for name, ctype in (("expf", ctypes.c_float), ("exp", ctypes.c_double),
                                ("tanhf", ctypes.c_float), ("tanh", ctypes.c_double)):
                fn = getattr(lib, name)
                fn.restype, fn.argtypes = ctype, [ctype]
            _LIBM = lib
        except (OSError, AttributeError):
            _LIBM = False
    return _LIBM or None


def _expf(x: np.ndarray) -> np.ndarray:
    """``std::exp(float)`` elementwise, as float32: libm's ``expf`` when available (what the C simulation
    calls), else float64 ``exp`` rounded to float32 (correctly rounded, which libm's expf nearly always is)."""
    x = np.asarray(x, dtype=np.float32)
    lib = _libm()
    if lib is None:
        return np.exp(x.astype(np.float64)).astype(np.float32)
    return np.array([lib.expf(float(v)) for v in x.ravel()], dtype=np.float32).reshape(x.shape)


def _ceillog2(x: int) -> int:
    """nnet_helpers.h ``ceillog2``."""
    return 1 if x <= 2 else 1 + _ceillog2((x + 1) // 2)


def _index_bits(layer: Any, t: FixedType, size: int, what: str) -> int:
    n = _ceillog2(size)
    if size != 1 << n:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {what} size {size} is not a power of two")
    if n > t.width:
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): {what} of {size} entries is addressed by {n} bits "
            f"but its address type {t} has only {t.width}"
        )
    return n


def _top_bits(v: np.ndarray, t: FixedType, n: int) -> np.ndarray:
    """``softmax_idx_from_real_val``: the top ``n`` bits of ``t``'s two's-complement word, as unsigned."""
    return (np.asarray(v, dtype=np.int64) & ((1 << t.width) - 1)) >> (t.width - n)


def _idx_values_f32(t: FixedType, n: int) -> np.ndarray:
    """``softmax_real_val_from_idx``: the value of ``t`` whose top ``n`` bits are ``i`` (others 0), as float."""
    m = np.arange(1 << n, dtype=np.int64) << (t.width - n)
    if t.signed:
        m = np.where(m >= 1 << (t.width - 1), m - (1 << t.width), m)
    return np.ldexp(m.astype(np.float64), -t.fractional).astype(np.float32)


_TABLES: dict[tuple, np.ndarray] = {}


def _exp_table(idx_t: FixedType, n: int, scale: np.float32, negative: bool, table_t: FixedType) -> np.ndarray:
    """``init_exp_table``: ``table[i] = (exp_table_t) expf(+-(float)x_i * exp_scale)`` (mantissas)."""
    key = ("exp", idx_t, n, float(scale), negative, table_t)
    if key not in _TABLES:
        x = (_idx_values_f32(idx_t, n) * np.float32(scale)).astype(np.float32)  # float * float in float
        if negative:
            x = -x
        _TABLES[key] = fxp.from_float(_expf(x).astype(np.float64), table_t)[0]
    return _TABLES[key]


def _invert_table(idx_t: FixedType, n: int, table_t: FixedType) -> np.ndarray:
    """``init_invert_table``: ``table[i] = (inv_table_t)(1 / (float)x_i)`` in float (1/0 = +inf)."""
    key = ("inv", idx_t, n, table_t)
    if key not in _TABLES:
        with np.errstate(divide="ignore"):
            inv = np.float32(1.0) / _idx_values_f32(idx_t, n)
        _TABLES[key] = fxp.from_float(inv.astype(np.float64), table_t)[0]
    return _TABLES[key]


def _tree_reduce(cols: list[np.ndarray], op: Any) -> np.ndarray:
    """nnet_common.h ``reduce``: balanced tree, left part of ``pow2(floorlog2(N-1))`` elements."""
    n = len(cols)
    if n == 1:
        return cols[0]
    if n == 2:
        return op(cols[0], cols[1])
    left = 1 << ((n - 1).bit_length() - 1)
    return op(_tree_reduce(cols[:left], op), _tree_reduce(cols[left:], op))


def _tanhf(x: np.ndarray) -> np.ndarray:
    """``tanh(float)`` as ``init_tanh_table`` calls it (libm ``tanhf``), as float32."""
    x = np.asarray(x, dtype=np.float32)
    lib = _libm()
    if lib is None:
        return np.tanh(x.astype(np.float64)).astype(np.float32)
    return np.array([lib.tanhf(float(v)) for v in x.ravel()], dtype=np.float32).reshape(x.shape)


# activation -> (input range R: the table spans [-R, R), function of the float32 table inputs)
_LUT_ACTIVATIONS = {
    # sigmoid_fcn_float: 1.0 / (1 + std::exp(-x)): expf, a float sum, a double quotient returned as float
    "sigmoid": (8, lambda x: (1.0 / (np.float32(1) + _expf(-x)).astype(np.float64)).astype(np.float32)),
    "tanh": (4, _tanhf),
}


def _lut_activation(layer: Any, x: _Tensor, act: str, out_t: FixedType) -> tuple[_Tensor, int]:
    """nnet ``sigmoid``/``tanh`` (io_parallel and io_stream): ``table[i] = (table_t) f(float(2R(i - N/2)/N))``
    and ``index = clip(int(x * N / 2R) + R*N/2R, 0, N-1)``, where ``x * N / 2R`` is ap_fixed arithmetic (an
    exact product, then a signed division truncating toward zero at x's fractional bits) and the int
    conversion truncates toward zero."""
    size = int(layer.get_attr("table_size"))
    table_t = _attr_type(layer, "table_t")
    r, fn = _LUT_ACTIVATIONS[act]
    if size < 1 or x.t.integer + size.bit_length() > 34:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): table size {size} with input type {x.t} "
                        "overflows the C int index")
    key = ("lut", act, size, table_t)
    if key not in _TABLES:
        i = np.arange(size, dtype=np.float64)
        in_val = (2 * float(r) * (i - float(size) / 2.0) / float(size)).astype(np.float32)  # double math -> float
        _TABLES[key] = fxp.from_float(fn(in_val).astype(np.float64), table_t)[0]
    table = _TABLES[key]
    m = np.asarray(x.v)
    if m.dtype == object:
        m = m.astype(np.int64)
    num = m * size
    den = (2 * r) << x.t.fractional
    q = np.abs(num) // den
    data_round = np.where(num < 0, -q, q)  # truncation toward zero
    index = np.clip(data_round + (r * size) // (2 * r), 0, size - 1)
    y, n = fxp.requantize(table[index], table_t.fractional, out_t)
    return _Tensor(y, out_t), n


@dataclass
class _SoftmaxConfig:
    implementation: str
    n_slice: int
    n_outer: int
    n_inner: int
    exp_table_size: int
    inv_table_size: int
    exp_scale: np.float32
    exp_table_t: FixedType
    inv_table_t: FixedType
    accum_t: FixedType
    inv_inp_t: FixedType
    inp_norm_t: FixedType | None


def _softmax_config(layer: Any) -> _SoftmaxConfig:
    """The softmax config struct exactly as written to the HLS project (``config_cpp``, from hls4ml's
    ``SoftmaxConfigTemplate``); typedef names are resolved through the layer's named types."""
    import re

    text = layer.get_attr("config_cpp")
    if not text:
        from hls4ml.backends.vivado.passes.core_templates import SoftmaxConfigTemplate

        text = SoftmaxConfigTemplate().format(layer)
    ints = {k: int(v) for k, v in re.findall(r"static const unsigned (\w+) = (-?\d+);", text)}
    impl = re.search(r"softmax_implementation::(\w+);", text)
    scale = re.search(r"exp_scale = ([^;]+);", text)
    typedefs = {alias: name.strip() for name, alias in re.findall(r"typedef ([^;]+?) (\w+);", text)}
    if impl is None or scale is None:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): cannot read its softmax config:\n{text}")
    named = {}
    for value in layer.attributes.values():
        if hasattr(value, "precision") and hasattr(value, "name"):
            named.setdefault(str(value.name), value.precision)

    def resolve(alias: str) -> FixedType | None:
        name = typedefs.get(alias)
        if name is None:
            return None
        if name in named:
            return _ftype(layer, named[name], alias)
        from flow.arith.types import parse_type

        try:
            return parse_type(name.replace(" ", ""))
        except ValueError as exc:
            raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {alias} {name!r}: {exc}") from None

    types = {a: resolve(a) for a in ("exp_table_t", "inv_table_t", "accum_t", "inv_inp_t", "inp_norm_t")}
    for a in ("exp_table_t", "inv_table_t", "accum_t", "inv_inp_t"):
        if types[a] is None:
            raise FlowError(f"layer {layer.name!r} ({layer.class_name}): softmax config has no {a}")
    return _SoftmaxConfig(
        implementation=impl.group(1), n_slice=ints["n_slice"], n_outer=ints.get("n_outer", 1),
        n_inner=ints.get("n_inner", 1), exp_table_size=ints["exp_table_size"],
        inv_table_size=ints["inv_table_size"], exp_scale=np.float32(float(scale.group(1).rstrip("fF"))),
        **types,
    )


SOFTMAX_IMPLEMENTATIONS = ("stable", "latency")


def _softmax(layer: Any, x: _Tensor, ctx: _Ctx, io_type: str) -> tuple[_Tensor, int]:
    """hls4ml ``softmax_stable`` / ``softmax_latency`` (io_parallel and io_stream), table for table.

    stable: ``d_i = (inp_norm_t)(max_j x_j - x_i)``; ``e_i = (accum_t) exp_table[top bits of d_i]`` with
    ``exp_table[k] = expf(-value_k * exp_scale)``; latency indexes ``exp_table`` (``expf(+value_k * exp_scale)``)
    with the top bits of ``x_i`` itself. Then ``s = (inv_inp_t) reduce_add<accum_t>(e)`` (balanced tree, each
    sum cast to ``accum_t``), ``r = invert_table[top bits of s]`` with ``invert_table[k] = 1/value_k`` in
    float, and ``y_i = (result_t)(e_i * r)``.
    """
    cfg = _softmax_config(layer)
    if cfg.implementation not in SOFTMAX_IMPLEMENTATIONS:
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): softmax implementation {cfg.implementation!r} is not "
            f"supported by the emulator (supported: {', '.join(SOFTMAX_IMPLEMENTATIONS)})"
        )
    out_t = _out_type(layer)
    shape = x.v.shape
    rows = shape[0]
    if io_type == "io_stream":
        if cfg.n_inner != 1 or shape[-1] != cfg.n_slice:
            raise FlowError(
                f"layer {layer.name!r} ({layer.class_name}): io_stream softmax is emulated only over the last "
                f"axis (n_slice {cfg.n_slice}, n_inner {cfg.n_inner}, input shape {shape[1:]})"
            )
    v = x.v.reshape(rows, cfg.n_outer, cfg.n_slice, cfg.n_inner)
    v = np.moveaxis(v, 2, -1).reshape(-1, cfg.n_slice)  # one softmax per row
    if v.dtype == object:
        v = v.astype(np.int64)
    if cfg.implementation == "stable":
        if cfg.inp_norm_t is None:
            raise FlowError(f"layer {layer.name!r} ({layer.class_name}): softmax config has no inp_norm_t")
        idx_t = cfg.inp_norm_t
        d, _ = fxp.requantize(v.max(axis=1, keepdims=True) - v, x.t.fractional, idx_t)
    else:
        idx_t, d = x.t, v
    n_exp = _index_bits(layer, idx_t, cfg.exp_table_size, "exp table")
    n_inv = _index_bits(layer, cfg.inv_inp_t, cfg.inv_table_size, "invert table")
    exp_table = _exp_table(idx_t, n_exp, cfg.exp_scale, cfg.implementation == "stable", cfg.exp_table_t)
    inv_table = _invert_table(cfg.inv_inp_t, n_inv, cfg.inv_table_t)
    acc_t = cfg.accum_t
    e, _ = fxp.requantize(exp_table[_top_bits(d, idx_t, n_exp)], cfg.exp_table_t.fractional, acc_t)

    def add(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return fxp.requantize(a + b, acc_t.fractional, acc_t)[0]

    total = _tree_reduce([e[:, i] for i in range(cfg.n_slice)], add)
    s, _ = fxp.requantize(total, acc_t.fractional, cfg.inv_inp_t)
    r = inv_table[_top_bits(s, cfg.inv_inp_t, n_inv)]
    prod = fxp.as_object(e) * fxp.as_object(r[:, None]) if (
        acc_t.width + cfg.inv_table_t.width > fxp.INT64_SAFE_BITS) else e * r[:, None]
    y, n = fxp.requantize(prod, acc_t.fractional + cfg.inv_table_t.fractional, out_t)
    y = np.moveaxis(y.reshape(rows, cfg.n_outer, cfg.n_inner, cfg.n_slice), -1, 2).reshape(shape)
    return _Tensor(y, out_t), n


_PARAM_ACTIVATIONS = ("leakyrelu", "leaky_relu", "thresholdedrelu")
_HARD_ACTIVATIONS = ("hard_sigmoid", "hard_tanh")
SUPPORTED_LAYERS = (
    "Input, Dense, Conv1D, Conv2D, MaxPooling1D/2D, AveragePooling1D/2D, GlobalMax/AveragePooling1D/2D, "
    "Flatten/Reshape, ZeroPadding1D/2D, BatchNormalization, ReLU/linear/sigmoid/tanh Activation, LeakyReLU, "
    "ThresholdedReLU, hard_sigmoid/hard_tanh, Softmax (stable/latency), Add/Subtract/Multiply/Average/Maximum/"
    "Minimum, Concatenate, and hls4ml's io_stream Clone/Repack"
)
# Catapult (ac_fixed) backend: the layers whose nnet_utils templates were checked against its C simulation
CATAPULT_LAYERS = "Input, Dense and Conv2D (Latency strategy), ReLU/linear Activation, MaxPooling2D, Flatten/Reshape"


def _handler(layer: Any):
    from hls4ml.model import layers as L

    if isinstance(layer, L.Softmax) or type(layer).__name__.endswith("Softmax"):
        return _softmax
    if isinstance(layer, (L.Conv2DBatchnorm, L.DepthwiseConv1D, L.DepthwiseConv2D)) or (
        type(layer).__name__.endswith("DenseBatchnorm")
    ):
        return None  # subclasses of Conv1D/Conv2D with different arithmetic
    checks = [
        (L.Dense, _dense), (L.Conv2D, _conv2d), (L.Conv1D, _conv1d), (L.Pooling2D, _pooling2d),
        (L.Pooling1D, _pooling1d), (L.GlobalPooling1D, _global_pooling), (L.GlobalPooling2D, _global_pooling),
        (L.Reshape, _reshape), (L.ZeroPadding2D, _zeropad2d), (L.ZeroPadding1D, _zeropad1d),
        (L.BatchNormalization, _batchnorm), (L.Concatenate, _concatenate),
    ]
    for cls, fn in checks:
        if isinstance(layer, cls):
            return fn
    if isinstance(layer, L.Merge) and not isinstance(layer, (L.Dot, L.BiasAdd)):
        return _merge
    if type(layer).__name__.endswith(("Clone", "Repack")) and layer.class_name in ("Clone", "Repack"):
        return _copy
    act = str(layer.get_attr("activation", "")).lower() if isinstance(layer, L.Activation) else ""
    if isinstance(layer, L.HardActivation):
        return _hard_activation if act in _HARD_ACTIVATIONS else None
    if isinstance(layer, L.ParametrizedActivation):
        return _param_activation if act in _PARAM_ACTIVATIONS else None
    if type(layer).__name__.endswith("Activation") and isinstance(layer, L.Activation):
        return _activation
    return None


def _backend_name(graph: Any) -> str:
    backend = getattr(graph.config, "backend", None)
    return str(getattr(backend, "name", None) or graph.config.get_config_value("Backend", "Vivado"))


def _check_catapult(layer: Any, fn: Any) -> None:
    """FlowError unless ``layer`` is one the emulator was checked to reproduce on the Catapult backend."""
    why = None
    if fn not in (_dense, _conv2d, _pooling2d, _reshape, _activation):
        why = "this layer type"
    elif fn is _activation and str(layer.get_attr("activation", "")).lower() not in ("relu", "linear"):
        why = (f"activation {layer.get_attr('activation')!r} (Catapult computes it with ac_math "
               "piecewise-linear functions)")
    elif fn in (_dense, _conv2d) and not _strategy_is_latency(layer):
        why = f"strategy {layer.get_attr('strategy')!r}"
    elif fn in (_dense, _conv2d):
        from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

        for var in layer.get_weights():
            prec = var.type.precision
            if not isinstance(prec, (FixedPrecisionType, IntegerPrecisionType)) or type(prec).__name__.endswith(
                ("ExponentPrecisionType", "XnorPrecisionType")
            ):
                why = f"weights of type {prec}"
    if why is not None:
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): {why} is not supported by the emulator on the Catapult "
            f"backend (supported there: {CATAPULT_LAYERS})"
        )


def _plan(graph: Any, upto: str | None = None) -> list[tuple[Any, Any]]:
    """(layer, handler) in graph order (up to layer ``upto``); FlowError for the first unsupported layer.

    A handler takes ``(layer, x, ctx, io_type)``; for handlers with ``multi_input`` set, ``x`` is the list of
    the layer's input tensors."""
    from hls4ml.model import layers as L

    plan: list[tuple[Any, Any]] = []
    layers = list(graph.get_layers())
    catapult = _backend_name(graph) == "Catapult"
    if upto is not None and upto not in [layer.name for layer in layers]:
        raise FlowError(f"no layer named {upto!r} in the graph; layers: {', '.join(layer.name for layer in layers)}")
    for layer in layers:
        if plan and plan[-1][0].name == upto:
            break
        if isinstance(layer, L.Input):
            plan.append((layer, None))
            continue
        fn = _handler(layer)
        if fn is None:
            act = layer.get_attr("activation") if isinstance(layer, L.Activation) else None
            what = f"{layer.class_name}, activation {act!r}" if act else layer.class_name
            raise FlowError(
                f"layer {layer.name!r} of class {what} ({type(layer).__name__}) is not supported "
                f"by the emulator (supported: {SUPPORTED_LAYERS})"
            )
        if catapult:
            _check_catapult(layer, fn)
        n_inputs = len([i for i in layer.inputs if i])
        if getattr(fn, "multi_input", False):
            if n_inputs != 2:
                raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {n_inputs} inputs, expected 2")
        elif n_inputs != 1:
            raise FlowError(f"layer {layer.name!r} ({layer.class_name}): only single-input layers are supported")
        plan.append((layer, fn))
    return plan


def emulate(
    graph: Any, x: np.ndarray, trace: bool = False, chunk: int = 8192, upto: str | None = None
) -> Emulation:
    """Run the hls4ml ``graph`` on float inputs ``x`` (batch first) in integer fixed-point arithmetic.

    Inputs are converted to the input layer's type exactly as the C simulation's bridge does
    (``ap_fixed(double)`` with that type's rounding/overflow). ``outputs`` are float64 values of the
    output type, shape ``(N, n_out)``, the layout of :func:`flow.hls.convert.csim_predict`. With
    ``trace=True`` every layer's output values are kept; overflow counts are always computed.
    Samples are processed ``chunk`` at a time to bound memory. ``upto`` names a layer to stop at:
    ``outputs`` are then that layer's output (for comparing a prefix of a model, e.g. before a softmax).
    """
    plan = _plan(graph, upto)
    io_type = str(graph.config.get_config_value("IOType", "io_parallel"))
    if upto is not None:
        out_names = [plan[-1][0].outputs[0]]
    else:
        out_names = list(graph.outputs)
    if len(out_names) != 1:
        raise FlowError(f"the emulator supports single-output models; this graph has {len(out_names)} outputs")
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    ctx = _Ctx()
    ctx.backend = _backend_name(graph)
    overflows = {layer.name: 0 for layer, _ in plan}
    trace_vals: dict[str, list[np.ndarray]] = {layer.name: [] for layer, _ in plan}
    out_types: dict[str, FixedType] = {}
    outputs: list[np.ndarray] = []
    for start in range(0, max(n, 1), max(1, chunk)):
        xb = x[start:start + chunk]
        tensors: dict[str, _Tensor] = {}
        for layer, fn in plan:
            if fn is None:  # Input
                t = _out_type(layer)
                shape = [int(s) for s in layer.get_output_variable().shape]
                v, n_ov = fxp.from_float(xb.reshape(xb.shape[0], *shape), t)
                res = _Tensor(v, t)
            else:
                srcs = [i for i in layer.inputs if i]
                if getattr(fn, "multi_input", False):
                    res, n_ov = fn(layer, [tensors[s] for s in srcs], ctx, io_type)
                else:
                    res, n_ov = fn(layer, tensors[srcs[0]], ctx, io_type)
            for name in layer.outputs:  # Clone: the same values on every output
                tensors[name] = res
            overflows[layer.name] += int(n_ov)
            out_types[layer.name] = res.t
            if trace:
                trace_vals[layer.name].append(fxp.to_float(res.v, res.t.fractional))
        if out_names[0] not in tensors:
            raise FlowError(f"graph output {out_names[0]!r} is not produced by any emulated layer")
        y = tensors[out_names[0]]
        outputs.append(fxp.to_float(y.v, y.t.fractional).reshape(xb.shape[0], -1))
        if n == 0:
            break
    traces = []
    if trace:
        for layer, _ in plan:
            vals = np.concatenate(trace_vals[layer.name], axis=0)
            t = out_types[layer.name]
            traces.append(LayerTrace(
                name=layer.name, type=str(t), values=vals, n_overflow=overflows[layer.name],
                observed_min=float(vals.min()) if vals.size else math.nan,
                observed_max=float(vals.max()) if vals.size else math.nan,
                type_min=_type_min(t), type_max=_type_max(t),
            ))
    return Emulation(outputs=np.concatenate(outputs, axis=0), traces=traces, overflows=overflows)


def _type_min(t: FixedType) -> float:
    lo, hi = fxp.type_range(t)
    if t.overflow == "SAT_SYM" and t.signed:
        lo = -hi
    return math.ldexp(lo, -t.fractional)


def _type_max(t: FixedType) -> float:
    return math.ldexp(fxp.type_range(t)[1], -t.fractional)
