"""Fixed-point types as hls4ml names them, and float quantization to them.

``ap_fixed<W,I>`` means W total bits and I integer bits *including* the sign bit, so the step is
``2**-(W-I)`` and the range is ``[-2**(I-1), 2**(I-1) - 2**-(W-I)]``; ``ap_ufixed<W,I>`` has range
``[0, 2**I - 2**-(W-I)]``. hls4ml's 1-bit binary type (``XnorPrecisionType``, held as ``ap_uint<1>``) is the
``FixedType`` of ``ap_ufixed<1,1>`` with ``xnor=True``: its code 0 stands for -1 and its code 1 for +1 in
hls4ml's binary products (``nnet_mult.h`` ``both_binary``/``weight_binary``/``data_binary``); everywhere
else (assignments, comparisons, C simulation outputs) it is the unsigned integer 0 or 1. Type strings are
parsed by hls4ml itself (:meth:`FPGABackend.convert_precision_string`), so a type means here what it means in the HLS project.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class FixedType:
    """A fixed-point type: ``width`` W total bits, ``integer`` I integer bits incl. sign (if signed).

    ``xnor``: hls4ml's binary type (``XnorPrecisionType``): ``ap_uint<1>`` storage (W=1, I=1, unsigned, TRN,
    WRAP) whose code 0 means -1 and code 1 means +1 in a binary product; see the module docstring.
    """

    width: int
    integer: int
    signed: bool
    rounding: str = "TRN"
    overflow: str = "WRAP"
    xnor: bool = False

    @classmethod
    def binary(cls) -> "FixedType":
        """hls4ml's ``XnorPrecisionType``: ``ap_uint<1>``, code 0 <-> -1, code 1 <-> +1."""
        return cls(1, 1, False, xnor=True)

    @property
    def fractional(self) -> int:
        return self.width - self.integer

    @property
    def step(self) -> float:
        return 2.0 ** -self.fractional

    @property
    def min_code(self) -> int:
        """Smallest integer mantissa (code): ``-2**(W-1)`` signed, 0 unsigned. The one place for a type's range."""
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def max_code(self) -> int:
        """Largest integer mantissa (code): ``2**(W-1) - 1`` signed, ``2**W - 1`` unsigned."""
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def min_value(self) -> float:
        return float(np.ldexp(float(self.min_code), -self.fractional))

    @property
    def max_value(self) -> float:
        return float(np.ldexp(float(self.max_code), -self.fractional))

    def __str__(self) -> str:
        if self.xnor:  # the C++ type hls4ml declares (a valid type string wherever it is written back)
            return "ap_uint<1>"
        base = f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.integer}"
        if (self.rounding, self.overflow) != ("TRN", "WRAP"):
            base += f",AP_{self.rounding},AP_{self.overflow}"
        return base + ">"


def from_hls_precision(precision: Any) -> FixedType:
    """The :class:`FixedType` of an hls4ml precision object; the one place that maps hls4ml types.

    ``FixedPrecisionType`` keeps its width, integer bits, sign and modes. ``IntegerPrecisionType``
    (``ap_int<W>`` / ``ap_uint<W>``, hls4ml's ``int<W>`` / ``uint<W>``; also the backend's wrapped
    ``APIntegerPrecisionType`` / ``ACIntegerPrecisionType``, which hls4ml gives e.g. a
    ``quantized_relu(N, N)`` activation) is the fixed type with no fractional bits:
    ``ap_fixed<W,W>`` / ``ap_ufixed<W,W>``, TRN, WRAP (an ``ap_int`` assignment truncates and wraps).
    ``XnorPrecisionType`` (binary activations and weights, ``ap_uint<1>``) is :meth:`FixedType.binary`.
    Raises ValueError for other kinds (exponent, float) and for the ``saturation_bits`` (N)
    parameter, which is not emulated.
    """
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

    if is_xnor(precision):
        return FixedType.binary()

    if isinstance(precision, FixedPrecisionType):
        if precision.saturation_bits not in (None, 0):
            raise ValueError(f"{precision}: saturation bits (N={precision.saturation_bits}) are not supported")
        rounding = precision.rounding_mode.name if precision.rounding_mode is not None else "TRN"
        overflow = precision.saturation_mode.name if precision.saturation_mode is not None else "WRAP"
        return FixedType(int(precision.width), int(precision.integer), bool(precision.signed), rounding, overflow)
    if isinstance(precision, IntegerPrecisionType):  # not Exponent/Xnor: those are not subclasses
        return FixedType(int(precision.width), int(precision.width), bool(precision.signed))
    raise ValueError(f"unsupported hls4ml precision {precision} ({type(precision).__name__}): "
                     "not a fixed-point or integer type")


def is_xnor(precision: Any) -> bool:
    """True for hls4ml's binary type ``XnorPrecisionType`` (also the backend's wrapped ``APXnorPrecisionType``)."""
    from hls4ml.model.types import XnorPrecisionType

    return isinstance(precision, XnorPrecisionType)


def is_uint1(precision: Any) -> bool:
    """True when hls4ml declares ``precision`` as the C++ type ``ap_uint<1>``: its xnor type or ``uint<1>``
    (what ``nnet_mult.h``'s ``cast`` tests for its binary-dense result, not ``ap_ufixed<1,1>``)."""
    from hls4ml.model.types import IntegerPrecisionType

    return is_xnor(precision) or (isinstance(precision, IntegerPrecisionType) and int(precision.width) == 1
                                  and not precision.signed)


_TYPE_FORM = re.compile(r"\s*\w+\s*<[^<>]+>\s*")  # NAME<...>: the shape every hls4ml type string has


def parse_type(text: str) -> FixedType:
    """Parse ``ap_fixed<W,I[,Q,O]>``, ``ap_ufixed``, ``ap_int<W>``, ``ap_uint<W>`` (or hls4ml's ``fixed<...>``,
    ``int<W>``, ``uint<W>``) with hls4ml's own parser, then map it with :func:`from_hls_precision`.

    Raises ValueError for anything hls4ml does not read as a fixed-point or integer type, for W <= 0
    and for I > W (types written by hand; hls4ml's own inferred types may have I > W).
    """
    from hls4ml.backends.fpga.fpga_backend import FPGABackend

    form = "expected ap_fixed<W,I[,Q,O]>, ap_ufixed<W,I[,Q,O]>, ap_int<W> or ap_uint<W>"
    if not isinstance(text, str) or not _TYPE_FORM.fullmatch(text):
        raise ValueError(f"cannot parse fixed-point type {text!r}: {form}")  # hls4ml's parser leaks regex errors
    try:
        t = FPGABackend.convert_precision_string(text)
    except Exception:  # hls4ml raises assorted errors (IndexError, AttributeError) for junk
        raise ValueError(f"cannot parse fixed-point type {text!r}: {form}") from None
    try:
        out = from_hls_precision(t)
    except ValueError as exc:
        raise ValueError(f"{text!r}: {exc}") from None
    if out.width <= 0:
        raise ValueError(f"{text!r}: total bits must be > 0")
    if out.integer > out.width:
        raise ValueError(f"{text!r}: integer bits ({out.integer}) must be <= total bits ({out.width})")
    return out


def quantize(x: np.ndarray, t: FixedType) -> np.ndarray:
    """Quantize float values to ``t`` with its rounding and overflow modes; returns float64 on t's grid."""
    from quantizers.fixed_point import get_fixed_quantizer_np

    q = get_fixed_quantizer_np(t.rounding, t.overflow)
    k = 1 if t.signed else 0
    return np.asarray(q(np.asarray(x, dtype=np.float64), k, t.integer - k, t.fractional), dtype=np.float64)


def is_representable(x: np.ndarray, t: FixedType) -> bool:
    """True when every value of ``x`` lies exactly on ``t``'s grid and inside its range."""
    x = np.asarray(x, dtype=np.float64)
    scaled = x / t.step
    return bool(np.all(scaled == np.round(scaled)) and np.all(x >= t.min_value) and np.all(x <= t.max_value))


def full_range_inputs(t: FixedType, shape: tuple[int, ...], n: int, seed: int) -> np.ndarray:
    """``n`` samples of ``shape`` drawn uniformly from every code of ``t``; exactly representable (float64)."""
    rng = np.random.default_rng(seed)
    codes = rng.integers(t.min_code, t.max_code, size=(n, *shape), endpoint=True)
    return codes.astype(np.float64) * t.step
