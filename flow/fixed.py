"""Fixed-point types as hls4ml names them, and float quantization to them.

``ap_fixed<W,I>`` means W total bits and I integer bits *including* the sign bit, so the step is
``2**-(W-I)`` and the range is ``[-2**(I-1), 2**(I-1) - 2**-(W-I)]``; ``ap_ufixed<W,I>`` has range
``[0, 2**I - 2**-(W-I)]``. Type strings are parsed by hls4ml itself
(:meth:`FPGABackend.convert_precision_string`), so a type means here what it means in the HLS project.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FixedType:
    """A fixed-point type: ``width`` W total bits, ``integer`` I integer bits incl. sign (if signed)."""

    width: int
    integer: int
    signed: bool
    rounding: str = "TRN"
    overflow: str = "WRAP"

    @property
    def fractional(self) -> int:
        return self.width - self.integer

    @property
    def step(self) -> float:
        return 2.0 ** -self.fractional

    @property
    def min_value(self) -> float:
        return -(2.0 ** (self.integer - 1)) if self.signed else 0.0

    @property
    def max_value(self) -> float:
        return (2.0 ** (self.integer - 1) if self.signed else 2.0 ** self.integer) - self.step

    def __str__(self) -> str:
        base = f"ap_{'' if self.signed else 'u'}fixed<{self.width},{self.integer}"
        if (self.rounding, self.overflow) != ("TRN", "WRAP"):
            base += f",AP_{self.rounding},AP_{self.overflow}"
        return base + ">"


def parse_type(text: str) -> FixedType:
    """Parse ``ap_fixed<W,I[,Q,O]>``, ``ap_ufixed``, ``ap_int<W>``, ``ap_uint<W>`` (or hls4ml's ``fixed<...>``).

    Raises ValueError for anything hls4ml does not read as a fixed-point or integer type.
    """
    from hls4ml.backends.fpga.fpga_backend import FPGABackend
    from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

    try:
        t = FPGABackend.convert_precision_string(text)
    except Exception as exc:  # hls4ml raises assorted errors for junk
        raise ValueError(f"cannot parse fixed-point type {text!r}: {exc}") from None
    if isinstance(t, IntegerPrecisionType) and not isinstance(t, FixedPrecisionType):
        return FixedType(t.width, t.width, t.signed)
    if not isinstance(t, FixedPrecisionType):
        raise ValueError(f"{text!r} is not a fixed-point type")
    if t.width <= 0:
        raise ValueError(f"{text!r}: total bits must be > 0")
    if t.integer > t.width:
        raise ValueError(f"{text!r}: integer bits ({t.integer}) must be <= total bits ({t.width})")
    rounding = t.rounding_mode.name if t.rounding_mode is not None else "TRN"
    overflow = t.saturation_mode.name if t.saturation_mode is not None else "WRAP"
    return FixedType(t.width, t.integer, t.signed, rounding, overflow)


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
