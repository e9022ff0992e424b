"""Symbolic trace of an hls4ml ModelGraph into da4ml combinational logic (the RTL's arithmetic).

The same fixed-point graph the emulator executes (:mod:`flow.arith.emulate`) is executed here on
da4ml's ``FixedVariableArray``: a numpy-like array whose elements are symbolic fixed-point
variables; constant-matrix products go through da4ml's CMVM optimizer (shift-and-add adder
trees, no DSP multipliers). Every type comes from the graph (``flow.arith.emulate``'s readers), never
re-derived, and each step mirrors the emulator's order of operations:

* Dense/Conv2D: ``acc = (accum_t)(x @ W + (accum_t)b)`` then ``(result_t)acc``. Only the case the
  emulator shows is exact with one final wrap is traced: ``accum_t`` keeps every product bit
  (its fractional bits >= input + weight fractional bits) and wraps. Other accumulators raise.
* ReLU ``x > 0 ? x : 0``, linear, MaxPooling (max, then ``accum_t``, then ``result_t``),
  Flatten/Reshape, ZeroPadding2D, BatchNormalization (``x*scale + bias`` exact, cast once).

Casts (:func:`cast`) implement every ``ap_fixed`` rounding mode (TRN, TRN_ZERO, RND, RND_ZERO,
RND_MIN_INF, RND_INF, RND_CONV) and overflow mode (WRAP, SAT, SAT_ZERO, SAT_SYM) from da4ml's
primitives (add a constant, truncate, wrap/saturate, sign bit, multiplexer): da4ml itself offers
only TRN/RND and WRAP/SAT/SAT_SYM. All modes drop bits with ``floor(x + offset)``, where the offset
is ``half an LSB``, minus one source LSB, plus one source LSB times a selector bit:

=============  =====================================  =======================
mode           offset                                 selector bit
=============  =====================================  =======================
TRN            0                                      -
RND            h                                      -
RND_MIN_INF    h - d                                  -
RND_CONV       h - d + d*b                            b = target LSB of x
RND_ZERO       h - d + d*n                            n = x < 0
RND_INF        h - d*n                                n = x < 0
TRN_ZERO       (2h - d)*n                             n = x < 0
=============  =====================================  =======================

(``h`` = half the target LSB, ``d`` = the source LSB.)
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np

from flow.arith import fxp
from flow.arith.types import FixedType
from flow.errors import FlowError


@dataclass
class Sym:
    """A symbolic tensor (no batch dimension) and its declared fixed type from the graph."""

    v: Any  # da4ml FixedVariableArray
    t: FixedType


def _da4ml():
    from da4ml.trace import FixedVariableArray
    from da4ml.trace.fixed_variable import FixedVariable

    return FixedVariableArray, FixedVariable


def kif(t: FixedType) -> tuple[int, int, int]:
    """da4ml's (sign bit, integer bits excluding sign, fractional bits) of ``ap_[u]fixed<W,I>``."""
    k = int(t.signed)
    return k, t.integer - k, t.width - t.integer


# da4ml's CMVM solver: skipping the exhaustive search over decomposition delay constraints
# made a 784x20 power-of-two layer trace 18x faster (20 s vs 362 s) at the same adder cost with a
# hard delay constraint of 2 (measured 2026-11-23 with a scratch script on a random +-2**-k 784x20 matrix).
SOLVER_OPTIONS = {"search_all_decompose_dc": False, "method0": "wmc-dc", "hard_dc": 2}


def input_array(t: FixedType, shape: tuple[int, ...]) -> Any:
    """A symbolic input of declared type ``t`` and ``shape``."""
    FVA, _ = _da4ml()
    k, i, f = kif(t)
    return FVA.from_kif(np.full(shape, k), np.full(shape, i), np.full(shape, f), solver_options=dict(SOLVER_OPTIONS))


def _const(value: float, like: Any) -> Any:
    _, FV = _da4ml()
    return FV.from_const(Decimal(value), hwconf=like.hwconf)


def _cast_var(v: Any, t: FixedType) -> Any:
    k, i, f = kif(t)
    if v.low == v.high:  # a constant: cast it in numpy exactly as the emulator does
        code, _ = fxp.from_float(np.array([float(v.low)]), t)
        return _const(float(code[0]) * 2.0 ** -f, v)
    _f = v.kif[2]
    mode = t.rounding
    if _f > f and mode != "TRN":
        h = Decimal(2) ** (-f - 1)
        d = Decimal(2) ** -_f
        if mode == "RND":
            v = v + h
        elif mode == "RND_MIN_INF":
            v = v + (h - d)
        elif mode == "RND_CONV":
            bit = v.quantize(0, -f + 1, f)  # b * 2**-f, the bit that becomes the target LSB
            v = v + (h - d) + bit * float(2.0 ** (f - _f))
        elif mode in ("RND_ZERO", "RND_INF", "TRN_ZERO"):
            neg = v.is_negative()  # 0/1
            if mode == "RND_ZERO":
                v = v + (h - d) + neg * float(d)
            elif mode == "RND_INF":
                v = v + h - neg * float(d)
            else:
                v = v + neg * float(2 * h - d)
        else:
            raise FlowError(f"rounding mode {mode!r} of {t} cannot be traced to RTL")
    if t.overflow == "WRAP" and not k and v.low < 0 and i > v.kif[1] + 1:
        # da4ml narrows an unsigned wrap of a signed value to the source's sign-extension bit (i = _i + 1),
        # which drops the higher sign copies: ap_fixed<2,0> -0.5 -> ap_ufixed<2,1> must be 1.5, not 0.5.
        # Truncate first, then add 2**i to negative values: the result lies in [0, 2**i) and wraps trivially.
        _k, _i, _ = v.kif
        r = v.quantize(_k, max(_i, -f), f, "WRAP", "TRN")  # at least the sign bit survives truncation
        return (r + r.is_negative() * float(2.0 ** i)).quantize(0, i, f, "WRAP", "TRN")
    if t.overflow in ("WRAP", "SAT", "SAT_SYM"):
        return v.quantize(k, i, f, t.overflow, "TRN")
    if t.overflow == "SAT_ZERO":
        _k, _i, _ = v.kif
        r = v.quantize(_k, _i, min(f, v.kif[2]), "WRAP", "TRN")  # rounded, not yet range-checked
        lo, hi = fxp.type_range(t)
        lo_v, hi_v = lo * 2.0 ** -f, hi * 2.0 ** -f
        if r.low >= lo_v and r.high <= hi_v:
            return r.quantize(k, i, f, "WRAP", "TRN")
        over = (r > hi_v) | (r < lo_v)  # 1 on overflow
        zero = _const(0.0, r)
        return over.msb_mux(zero, r).quantize(k, i, f, "WRAP", "TRN")
    raise FlowError(f"overflow mode {t.overflow!r} of {t} cannot be traced to RTL")


def cast(x: Any, t: FixedType) -> Any:
    """``(t)x`` for every element: ap_fixed quantization (rounding mode), then overflow handling."""
    FVA, _ = _da4ml()
    flat = [_cast_var(v, t) for v in x._vars.ravel()]
    out = np.empty(len(flat), dtype=object)
    out[:] = flat
    return FVA(out.reshape(x._vars.shape), x.solver_options, hwconf=x.hwconf)


def _values(codes: np.ndarray, t: FixedType) -> np.ndarray:
    return np.asarray(codes, dtype=np.float64) * 2.0 ** -t.fractional


def _weights(layer: Any, ctx: Any, x_t: FixedType) -> tuple[np.ndarray, int, np.ndarray, FixedType]:
    """Weight values (float, exact) and their fractional bits, bias mantissas and type.

    Ternary weights (``ap_int<2>``) are the values -1/0/1 (hls4ml's ``weight_ternary`` product is
    exact). Power-of-two weights (``{sign, exponent}``) are ``+-2**e``; hls4ml's ``weight_exponential``
    product shifts inside ``ap_fixed<2*(We+Wx), We+Wx>``, which is exact unless a shift leaves that
    type; such layers raise.
    """
    from flow.arith import emulate as E

    w, wt, wp, b, bt = E._dense_like_weights(layer, ctx)
    E._check_weight_kind(layer, wp)
    if isinstance(w, E._Po2):
        e = np.asarray(w.exponent, dtype=np.int64)
        r_int = w.exp_width + x_t.width  # r_T integer bits (incl. sign) = fractional bits
        if x_t.fractional - int(e.min(initial=0)) > r_int or x_t.integer + int(e.max(initial=0)) + 1 > r_int:
            raise FlowError(f"layer {layer.name!r} ({layer.class_name}): a power-of-two product leaves "
                            f"hls4ml's shift type ap_fixed<{2 * r_int},{r_int}>; cannot be traced exactly")
        values = np.where(w.sign == 1, 1.0, -1.0) * np.ldexp(1.0, e)
        return values, max(0, -int(e.min(initial=0))), b, bt
    if E._is_ternary(wp):
        return np.where(w == 0, 0.0, np.where(w == -1, -1.0, 1.0)), 0, b, bt
    return _values(w, wt), wt.fractional, b, bt


def _affine(layer: Any, x: Any, x_t: FixedType, w: np.ndarray, w_frac: int, b: np.ndarray,
            bt: FixedType) -> tuple[Any, FixedType]:
    """``(accum_t)(x @ W + (accum_t)b)`` for ``x`` of shape (rows, n_in) or (n_in,); ``w`` float values."""
    from flow.arith import emulate as E

    acc_t = E._attr_type(layer, "accum_t")
    if acc_t.fractional < x_t.fractional + w_frac or acc_t.overflow != "WRAP":
        raise FlowError(
            f"layer {layer.name!r} ({layer.class_name}): accum_t {acc_t} rounds or saturates products "
            f"(inputs {x_t}, weights with {w_frac} fractional bits); only exact, wrapping accumulators can "
            "be traced to RTL")
    bias_acc, _ = fxp.requantize(np.asarray(b).reshape(-1), bt.fractional, acc_t)
    acc = x @ w + _values(bias_acc, acc_t)
    return cast(acc, acc_t), acc_t


def _dense(layer: Any, x: Sym, ctx: Any) -> Sym:
    from flow.arith import emulate as E

    w, w_frac, b, bt = _weights(layer, ctx, x.t)
    if layer.get_attr("_weights_transposed", False):
        w = w.T
    n_in, n_out = int(layer.get_attr("n_in")), int(layer.get_attr("n_out"))
    shape = x.v.shape
    acc, _ = _affine(layer, x.v.reshape(-1, n_in) if len(shape) > 1 else x.v, x.t, w, w_frac, b, bt)
    out_t = E._out_type(layer)
    y = cast(acc, out_t)
    return Sym(y.reshape(*shape[:-1], n_out) if len(shape) > 1 else y, out_t)


def _pad_hw(x: Any, pads: list[int]) -> np.ndarray:
    """Raw variable array (H, W, C) padded with constant zeros: top, bottom, left, right."""
    v = x._vars
    if not any(pads):
        return v
    h, w, c = v.shape
    zero = _const(0.0, v.ravel()[0])
    out = np.empty((h + pads[0] + pads[1], w + pads[2] + pads[3], c), dtype=object)
    out[...] = zero
    out[pads[0]:pads[0] + h, pads[2]:pads[2] + w, :] = v
    return out


def _conv2d(layer: Any, x: Sym, ctx: Any) -> Sym:
    from flow.arith import emulate as E

    FVA, _ = _da4ml()
    if layer.get_attr("data_format", "channels_last") != "channels_last":
        raise FlowError(f"layer {layer.name!r} (Conv2D): only channels_last is supported")
    w, w_frac, b, bt = _weights(layer, ctx, x.t)
    if layer.get_attr("_weights_transposed", False):
        w = np.transpose(w, (1, 2, 3, 0))
    fh, fw = int(layer.get_attr("filt_height")), int(layer.get_attr("filt_width"))
    cin, cout = int(layer.get_attr("n_chan")), int(layer.get_attr("n_filt"))
    sh, sw = int(layer.get_attr("stride_height")), int(layer.get_attr("stride_width"))
    oh, ow = int(layer.get_attr("out_height")), int(layer.get_attr("out_width"))
    pads = [int(layer.get_attr(k, 0) or 0) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
    v = _pad_hw(x.v, pads)
    cols = np.empty((oh * ow, fh * fw * cin), dtype=object)
    for r in range(oh):
        for c in range(ow):
            cols[r * ow + c] = v[r * sh:r * sh + fh, c * sw:c * sw + fw, :].reshape(-1)  # (fh, fw, c) order
    acc, _ = _affine(layer, FVA(cols, x.v.solver_options, hwconf=x.v.hwconf), x.t,
                     w.reshape(fh * fw * cin, cout), w_frac, b, bt)
    out_t = E._out_type(layer)
    return Sym(cast(acc, out_t).reshape(oh, ow, cout), out_t)


def _activation(layer: Any, x: Sym, ctx: Any) -> Sym:
    from flow.arith import emulate as E

    act = str(layer.get_attr("activation", "")).lower()
    out_t = E._out_type(layer)
    if act == "linear":
        v = x.v
    elif act == "relu":
        v = x.v.relu()
    else:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): activation {act!r} cannot be traced to RTL "
                        "yet (supported: relu, linear)")
    return Sym(cast(v, out_t), out_t)


def _pooling2d(layer: Any, x: Sym, ctx: Any) -> Sym:
    from flow.arith import emulate as E

    FVA, _ = _da4ml()
    if layer.get_attr("pool_op") != "Max":
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): {layer.get_attr('pool_op')} pooling "
                        "cannot be traced to RTL yet")
    pads = [int(layer.get_attr(k, 0) or 0) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
    if any(pads):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): padded pooling cannot be traced to RTL")
    ph, pw = int(layer.get_attr("pool_height")), int(layer.get_attr("pool_width"))
    sh, sw = int(layer.get_attr("stride_height")), int(layer.get_attr("stride_width"))
    oh, ow = int(layer.get_attr("out_height")), int(layer.get_attr("out_width"))
    v = x.v._vars
    out = np.empty((oh, ow, v.shape[2]), dtype=object)
    for r in range(oh):
        for c in range(ow):
            for ch in range(v.shape[2]):
                win = v[r * sh:r * sh + ph, c * sw:c * sw + pw, ch].ravel()
                m = win[0]
                for other in win[1:]:
                    m = m.max_of(other)
                out[r, c, ch] = m
    acc_t = E._attr_type(layer, "accum_t")
    out_t = E._out_type(layer)
    m = cast(FVA(out, x.v.solver_options, hwconf=x.v.hwconf), acc_t)
    return Sym(cast(m, out_t), out_t)


def _reshape(layer: Any, x: Sym, ctx: Any) -> Sym:
    from flow.arith import emulate as E

    shape = [int(s) for s in layer.get_output_variable().shape]
    out_t = E._out_type(layer)
    return Sym(cast(x.v.reshape(*shape), out_t), out_t)


def _zeropad2d(layer: Any, x: Sym, ctx: Any) -> Sym:
    from flow.arith import emulate as E

    FVA, _ = _da4ml()
    pads = [int(layer.get_attr(k, 0) or 0) for k in ("pad_top", "pad_bottom", "pad_left", "pad_right")]
    out_t = E._out_type(layer)
    v = FVA(_pad_hw(x.v, pads), x.v.solver_options, hwconf=x.v.hwconf)
    return Sym(cast(v, out_t), out_t)


def _batchnorm(layer: Any, x: Sym, ctx: Any) -> Sym:
    from flow.arith import emulate as E

    s, st, sp = ctx.weights(layer, "scale")
    b, bt, _ = ctx.weights(layer, "bias")
    E._check_weight_kind(layer, sp)
    if isinstance(s, E._Po2) or E._is_ternary(sp):
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): power-of-two/ternary scale cannot be traced")
    shape = x.v.shape
    flat = x.v.reshape(-1)
    s, b = np.asarray(s).reshape(-1), np.asarray(b).reshape(-1)
    n_filt = int(layer.get_attr("n_filt", -1) or -1)
    if n_filt != -1:
        reps = flat.shape[0] // n_filt
        s, b = np.tile(s[:n_filt], reps), np.tile(b[:n_filt], reps)
    total = flat * _values(s, st) + _values(b, bt)
    out_t = E._out_type(layer)
    return Sym(cast(total, out_t).reshape(*shape), out_t)


def _lookup(v: Any, fn: Any) -> Any:
    """da4ml lookup table over every value ``v`` can take: entry = ``fn(values)`` (float array -> float array)."""
    if v.low == v.high:
        return _const(float(fn(np.array([float(v.low)]))[0]), v)
    n = int(round((v.high - v.low) / v.step)) + 1
    values = float(v.low) + np.arange(n, dtype=np.float64) * float(v.step)
    return v.lookup(np.asarray(fn(values), dtype=np.float64))


def _top_bits_lookup(v: Any, t: FixedType, n_bits: int, table: np.ndarray, table_t: FixedType) -> Any:
    """``table[top n_bits of v's word in type t]`` (``softmax_idx_from_real_val``), as a ROM on those bits.

    ``v`` already holds a value of type ``t``; truncating it to its top ``n_bits`` first keeps the ROM at
    ``2**n_bits`` entries at most.
    """
    k, i, _ = kif(t)
    drop = t.width - n_bits
    top = v.quantize(k, i, t.fractional - drop, "WRAP", "TRN")

    def entries(vals: np.ndarray) -> np.ndarray:
        codes = np.round(vals * 2.0 ** (t.fractional - drop)).astype(np.int64) & ((1 << n_bits) - 1)
        return table[codes] * 2.0 ** -table_t.fractional

    return _lookup(top, entries)


def _softmax(layer: Any, x: Sym, ctx: Any) -> Sym:
    """hls4ml ``softmax_stable``/``softmax_latency`` over the last axis, in the emulator's order:
    tables (:func:`flow.arith.emulate._exp_table`, ``_invert_table``) become ROMs addressed by the top bits."""
    from flow.arith import emulate as E

    FVA, _ = _da4ml()
    cfg = E._softmax_config(layer)
    if cfg.implementation not in E.SOFTMAX_IMPLEMENTATIONS:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): softmax implementation "
                        f"{cfg.implementation!r} cannot be traced to RTL")
    if cfg.n_outer != 1 or cfg.n_inner != 1 or x.v.reshape(-1).shape[0] != cfg.n_slice:
        raise FlowError(f"layer {layer.name!r} ({layer.class_name}): only a softmax over a flat vector can be "
                        "traced to RTL")
    v = list(x.v.reshape(-1)._vars)
    if cfg.implementation == "stable":
        if cfg.inp_norm_t is None:
            raise FlowError(f"layer {layer.name!r} ({layer.class_name}): softmax config has no inp_norm_t")
        idx_t = cfg.inp_norm_t
        m = v[0]
        for other in v[1:]:
            m = m.max_of(other)
        d = [_cast_var(m - vi, idx_t) for vi in v]
    else:
        idx_t, d = x.t, v
    n_exp = E._index_bits(layer, idx_t, cfg.exp_table_size, "exp table")
    n_inv = E._index_bits(layer, cfg.inv_inp_t, cfg.inv_table_size, "invert table")
    exp_table = E._exp_table(idx_t, n_exp, cfg.exp_scale, cfg.implementation == "stable", cfg.exp_table_t)
    inv_table = E._invert_table(cfg.inv_inp_t, n_inv, cfg.inv_table_t)
    acc_t = cfg.accum_t
    e = [_cast_var(_top_bits_lookup(di, idx_t, n_exp, exp_table, cfg.exp_table_t), acc_t) for di in d]

    def tree(items: list[Any]) -> Any:  # nnet_common.h reduce: balanced, left part pow2(floorlog2(N-1))
        if len(items) == 1:
            return items[0]
        if len(items) == 2:
            return _cast_var(items[0] + items[1], acc_t)
        left = 1 << ((len(items) - 1).bit_length() - 1)
        return _cast_var(tree(items[:left]) + tree(items[left:]), acc_t)

    s = _cast_var(tree(e), cfg.inv_inp_t)
    r = _top_bits_lookup(s, cfg.inv_inp_t, n_inv, inv_table, cfg.inv_table_t)
    out_t = E._out_type(layer)
    y = np.empty(len(e), dtype=object)
    y[:] = [_cast_var(ei * r, out_t) for ei in e]
    return Sym(FVA(y, x.v.solver_options, hwconf=x.v.hwconf).reshape(*x.v.shape), out_t)


_TRACERS = {
    "Softmax": _softmax,
    "Dense": _dense, "Conv2D": _conv2d, "Activation": _activation, "ReLU": _activation,
    "Pooling2D": _pooling2d, "Reshape": _reshape, "Flatten": _reshape, "ZeroPadding2D": _zeropad2d,
    "BatchNormalization": _batchnorm,
}


def _tracer(layer: Any) -> Any:
    for cls in type(layer).__mro__:
        if cls.__name__ in _TRACERS:
            return _TRACERS[cls.__name__]
    return None


@dataclass
class Traced:
    """The traced graph: da4ml input/output arrays (flattened) and the declared port types."""

    inputs: Any
    outputs: Any
    input_type: FixedType
    output_type: FixedType
    input_shape: tuple[int, ...]
    n_outputs: int
    output_layer: str


def trace_graph(graph: Any, upto: str | None = None) -> Traced:
    """Trace ``graph`` (up to layer ``upto``, inclusive) for one sample.

    FlowError names the first layer that cannot be traced.
    """
    from flow.arith import emulate as E

    plan = E._plan(graph, upto)
    ctx = E._Ctx()
    tensors: dict[str, Sym] = {}
    first: Sym | None = None
    for layer, _ in plan:
        if layer.class_name in ("Input", "InputLayer") or type(layer).__name__ == "Input":
            t = E._out_type(layer)
            shape = tuple(int(s) for s in layer.get_output_variable().shape)
            res = Sym(input_array(t, shape), t)
            first = res
        else:
            fn = _tracer(layer)
            if fn is None:
                raise FlowError(f"layer {layer.name!r} ({layer.class_name}) cannot be traced to RTL yet "
                                f"(supported: Input, {', '.join(sorted(_TRACERS))})")
            src = [i for i in layer.inputs if i][0]
            res = fn(layer, tensors[src], ctx)
        tensors[layer.outputs[0]] = res
    if first is None:
        raise FlowError("the graph has no input layer")
    last_layer = plan[-1][0]
    out = tensors[last_layer.outputs[0]]
    return Traced(inputs=first.v.reshape(-1), outputs=out.v.reshape(-1), input_type=first.t, output_type=out.t,
                  input_shape=tuple(first.v.shape), n_outputs=int(np.prod(out.v.shape)),
                  output_layer=last_layer.name)
