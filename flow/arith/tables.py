"""hls4ml's lookup tables, entry for entry (``nnet_activation.h``, ``nnet_activation_stream.h``).

Tables are computed the way the C simulation computes them: in float (``std::exp(float)`` is libm's
``expf``), then converted to the table type by ``ap_fixed(double)``. Entries are integer mantissas of the
table type. The same entries become ROMs in the RTL.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith import fxp
from flow.arith.types import FixedType
from flow.core.errors import FlowError

_LIBM: Any = None
_TABLES: dict[tuple, np.ndarray] = {}


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


def expf(x: np.ndarray) -> np.ndarray:
    """``std::exp(float)`` elementwise, as float32: libm's ``expf`` when available (what the C simulation
    calls), else float64 ``exp`` rounded to float32 (correctly rounded, which libm's expf nearly always is)."""
    x = np.asarray(x, dtype=np.float32)
    lib = _libm()
    if lib is None:
        return np.exp(x.astype(np.float64)).astype(np.float32)
    return np.array([lib.expf(float(v)) for v in x.ravel()], dtype=np.float32).reshape(x.shape)


def tanhf(x: np.ndarray) -> np.ndarray:
    """``tanh(float)`` as ``init_tanh_table`` calls it (libm ``tanhf``), as float32."""
    x = np.asarray(x, dtype=np.float32)
    lib = _libm()
    if lib is None:
        return np.tanh(x.astype(np.float64)).astype(np.float32)
    return np.array([lib.tanhf(float(v)) for v in x.ravel()], dtype=np.float32).reshape(x.shape)


def ceillog2(x: int) -> int:
    """nnet_helpers.h ``ceillog2``."""
    return 1 if x <= 2 else 1 + ceillog2((x + 1) // 2)


def index_bits(where: str, t: FixedType, size: int, what: str) -> int:
    """Address bits of a table of ``size`` entries indexed by the top bits of type ``t``."""
    n = ceillog2(size)
    if size != 1 << n:
        raise FlowError(f"{where}: {what} size {size} is not a power of two")
    if n > t.width:
        raise FlowError(f"{where}: {what} of {size} entries is addressed by {n} bits but its address type {t} "
                        f"has only {t.width}")
    return n


def _idx_values_f32(t: FixedType, n: int) -> np.ndarray:
    """``softmax_real_val_from_idx``: the value of ``t`` whose top ``n`` bits are ``i`` (others 0), as float."""
    m = np.arange(1 << n, dtype=np.int64) << (t.width - n)
    if t.signed:
        m = np.where(m >= 1 << (t.width - 1), m - (1 << t.width), m)
    return np.ldexp(m.astype(np.float64), -t.fractional).astype(np.float32)


def exp_table(idx_t: FixedType, n: int, scale: np.float32, negative: bool, table_t: FixedType) -> np.ndarray:
    """``init_exp_table``: ``table[i] = (exp_table_t) expf(+-(float)x_i * exp_scale)`` (mantissas)."""
    key = ("exp", idx_t, n, float(scale), negative, table_t)
    if key not in _TABLES:
        x = (_idx_values_f32(idx_t, n) * np.float32(scale)).astype(np.float32)  # float * float in float
        if negative:
            x = -x
        _TABLES[key] = fxp.from_float(expf(x).astype(np.float64), table_t)[0]
    return _TABLES[key]


def invert_table(idx_t: FixedType, n: int, table_t: FixedType) -> np.ndarray:
    """``init_invert_table``: ``table[i] = (inv_table_t)(1 / (float)x_i)`` in float (1/0 = +inf)."""
    key = ("inv", idx_t, n, table_t)
    if key not in _TABLES:
        with np.errstate(divide="ignore"):
            inv = np.float32(1.0) / _idx_values_f32(idx_t, n)
        _TABLES[key] = fxp.from_float(inv.astype(np.float64), table_t)[0]
    return _TABLES[key]


# activation -> (input range R: the table spans [-R, R), function of the float32 table inputs)
LUT_ACTIVATIONS = {
    # sigmoid_fcn_float: 1.0 / (1 + std::exp(-x)): expf, a float sum, a double quotient returned as float
    "sigmoid": (8, lambda x: (1.0 / (np.float32(1) + expf(-x)).astype(np.float64)).astype(np.float32)),
    "tanh": (4, tanhf),
}


def activation_table(act: str, size: int, table_t: FixedType) -> np.ndarray:
    """``init_sigmoid_table``/``init_tanh_table``: ``table[i] = (table_t) f(float(2R(i - N/2)/N))`` (mantissas)."""
    key = ("lut", act, size, table_t)
    if key not in _TABLES:
        r, fn = LUT_ACTIVATIONS[act]
        i = np.arange(size, dtype=np.float64)
        in_val = (2 * float(r) * (i - float(size) / 2.0) / float(size)).astype(np.float32)  # double math -> float
        _TABLES[key] = fxp.from_float(fn(in_val).astype(np.float64), table_t)[0]
    return _TABLES[key]
