"""What a layer of the hls4ml ModelGraph holds, read as the C simulation sees it: types, weights, constants.

Every type is read from the converted graph (after hls4ml's optimizer passes, which all run inside the
conversion, so the types are final before ``write()``/``compile()``): a layer's output type is
``layer.get_output_variable().type.precision``, weights use their ``WeightVariable`` types and the
accumulator is the layer's ``accum_t``. Nothing is re-derived from the Keras model.

Weights are what the C simulation loads: hls4ml writes each value as decimal text with as many decimals as
the type has fractional bits, and ``ap_fixed(double)`` converts it with the weight type's rounding and
overflow modes. Ternary weights (signed ``ap_int<2>``) select hls4ml's ``weight_ternary`` product
(``w == 0 ? 0 : w == -1 ? -x : x``); power-of-two weights (``{sign, exponent}`` pairs) its
``weight_exponential`` product; binary weights (``XnorPrecisionType``, ``ap_uint<1>``: code 0 means -1, code 1
means +1) its ``weight_binary`` (``w == 0 ? -x : x``) or, with binary data, ``both_binary`` product.
"""

from __future__ import annotations

import contextlib
import contextvars
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from flow.arith import fxp
from flow.arith.types import FixedType, from_hls_precision, is_uint1, is_xnor
from flow.core.errors import FlowError


def where(layer: Any) -> str:
    """``layer 'name' (Class)``: how errors name a layer."""
    return f"layer {layer.name!r} ({layer.class_name})"


def ftype(layer: Any, precision: Any, what: str) -> FixedType:
    try:
        return from_hls_precision(precision)
    except ValueError as exc:
        raise FlowError(f"{where(layer)}: {what} type not supported by the emulator: {exc}") from None


def out_type(layer: Any) -> FixedType:
    """The layer's result type (``result_t``)."""
    return ftype(layer, layer.get_output_variable().type.precision, "output")


def attr_type(layer: Any, name: str) -> FixedType:
    """A named type attribute of the layer (``accum_t``, ``param_t``, ``table_t``, ...)."""
    t = layer.get_attr(name)
    if t is None:
        raise FlowError(f"{where(layer)} has no {name}")
    return ftype(layer, t.precision, name)


def out_shape(layer: Any) -> list[int]:
    return [int(s) for s in layer.get_output_variable().shape]


def int_attr(layer: Any, name: str, default: int = 0) -> int:
    return int(layer.get_attr(name, default) or default)


def is_latency_strategy(layer: Any) -> bool:
    return str(layer.get_attr("strategy", "latency")).lower() == "latency"


def channels_last(layer: Any) -> None:
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"{where(layer)}: only channels_last is supported")


@dataclass(frozen=True)
class Weights:
    """One weight array of a layer as the C simulation holds it.

    ``kind`` is ``fixed`` (``codes`` are mantissas of ``type``, ``frac`` fractional bits), ``ternary``
    (``codes`` in {-1, 0, 1}, the factor hls4ml's ternary product applies, ``frac`` 0), ``binary`` (an
    ``XnorPrecisionType`` product weight: ``codes`` in {-1, +1}, the factor its 1-bit code 0 / 1 stands for,
    ``frac`` 0; :attr:`bits` gives the codes back) or ``po2``
    (``sign`` 1 = non-negative, ``exponent`` = int(log2|w|) toward zero, wrapped to ``ap_int<exp_width>``).
    """

    kind: str
    codes: np.ndarray
    frac: int
    type: FixedType | None
    sign: np.ndarray | None = None
    exponent: np.ndarray | None = None
    exp_width: int = 0

    @property
    def bits(self) -> np.ndarray:
        """The 1-bit codes of ``binary`` weights as the HLS project stores them (0 for -1, 1 for +1)."""
        return (self.codes + 1) // 2

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple((self.exponent if self.kind == "po2" else self.codes).shape)

    def transposed(self, axes: tuple[int, ...]) -> Weights:
        if self.kind == "po2":
            return Weights("po2", self.codes, 0, None, np.transpose(self.sign, axes), np.transpose(self.exponent, axes),
                           self.exp_width)
        return Weights(self.kind, np.transpose(self.codes, axes), self.frac, self.type)

    def reshaped(self, shape: tuple[int, ...]) -> Weights:
        if self.kind == "po2":
            return Weights("po2", self.codes, 0, None, self.sign.reshape(shape), self.exponent.reshape(shape),
                           self.exp_width)
        return Weights(self.kind, self.codes.reshape(shape), self.frac, self.type)


def _is_ternary(precision: Any) -> bool:
    """hls4ml picks its ``weight_ternary`` product for signed ``ap_int<2>`` weights (``isinstance``, as
    hls4ml's ``product_type`` does, so the backend's wrapped ``APIntegerPrecisionType`` counts too)."""
    from hls4ml.model.types import IntegerPrecisionType

    return isinstance(precision, IntegerPrecisionType) and precision.width == 2 and bool(precision.signed)


def _is_po2(precision: Any) -> bool:
    return type(precision).__name__.endswith("ExponentPrecisionType")


def _read(layer: Any, key: str) -> Weights:
    var = layer.weights[key]
    precision = var.type.precision
    if _is_po2(precision):
        y = np.asarray(var.data, dtype=np.float64)
        if np.any(y == 0):
            raise FlowError(f"{where(layer)}: zero power-of-two weights are not supported")
        sign = np.where(y < 0, 0, 1)
        e = (np.log2(np.abs(y)) / np.log2(2.0)).astype(np.int64)  # ExponentWeightVariable._format: toward zero
        e, _ = fxp.from_float(e.astype(np.float64), FixedType(precision.width, precision.width, bool(precision.signed)))
        return Weights("po2", np.zeros(0, dtype=np.int64), 0, None, sign, e, int(precision.width))
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

    if not isinstance(precision, (FixedPrecisionType, IntegerPrecisionType)) and not is_xnor(precision):
        raise FlowError(f"{where(layer)}: weight type {precision} ({type(precision).__name__}) is not supported "
                        "by the emulator")
    t = ftype(layer, precision, key)
    fmt = getattr(var, "precision_fmt", None) or "{:.16f}"
    data = np.asarray(var.data)
    text_values = np.array([float(fmt.format(v)) for v in data.ravel()], dtype=np.float64).reshape(data.shape)
    q, _ = fxp.from_float(text_values, t)
    if is_xnor(precision) and key == "weight":  # the product's factor: code 0 -> -1, code 1 -> +1
        return Weights("binary", 2 * q.astype(np.int64) - 1, 0, t)
    if _is_ternary(precision):
        return Weights("ternary", np.where(q == 0, 0, np.where(q == -1, -1, 1)).astype(np.int64), 0, t)
    return Weights("fixed", q, t.fractional, t)


_CACHE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("hlsflow_weights", default=None)


@contextlib.contextmanager
def weights_read_once() -> Iterator[None]:
    """Within this block every layer's weights are read from the graph once (the emulator's batches share
    them); outside it they are read on every call, so a changed graph is always seen."""
    token = _CACHE.set({})
    try:
        yield
    finally:
        _CACHE.reset(token)


def weights(layer: Any, key: str) -> Weights:
    """Weight ``key`` of ``layer`` as the C simulation loads it."""
    cache = _CACHE.get()
    if cache is None:
        return _read(layer, key)
    k = (id(layer), key)
    if k not in cache:
        cache[k] = _read(layer, key)
    return cache[k]


def binary_count_cast(layer: Any) -> bool:
    """Whether the layer's result goes through ``nnet_mult.h``'s binary ``cast``: data and weights both declared
    ``ap_uint<1>`` (xnor or ``uint<1>``), so ``res = (res_T)(ap_int<ceillog2(n_in) + 2>)(acc * 2 - n_in)``."""
    w = layer.weights.get("weight") if hasattr(layer, "weights") else None
    return (w is not None and is_uint1(w.type.precision)
            and is_uint1(layer.get_input_variable().type.precision))


def ceillog2(n: int) -> int:
    """``nnet::ceillog2`` (nnet_helpers.h): ``n <= 2 ? 1 : 1 + ceillog2((n + 1) / 2)``."""
    return 1 if n <= 2 else 1 + ceillog2((n + 1) // 2)


def const_code(layer: Any, value: Any, t: FixedType) -> int:
    """A constant as the HLS project holds it: hls4ml writes the Python value as C++ text (``str.format``),
    which the C++ compiler reads as a double and ``ap_fixed(double)`` converts to ``t`` (its rounding and
    overflow modes). Returns the mantissa."""
    try:
        text_value = float(f"{value}")
    except (TypeError, ValueError):
        raise FlowError(f"{where(layer)}: constant {value!r} is not a number") from None
    return int(fxp.from_float(np.array([text_value]), t)[0][0])
