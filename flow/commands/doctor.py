"""The mismatch doctor of ``hlsflow verify``: where, layer by layer, the fixed-point graph leaves the
Keras/QKeras model, and why in fixed-point terms.

Every graph layer that holds a Keras layer's values (:mod:`flow.hls.layer_map`) is compared between the
model's intermediate outputs and the bit-exact emulator's trace
(:func:`flow.arith.emulate.emulate` with ``trace=True``; the emulator equals the C simulation, which
``verify`` checks separately). The first layer whose values differ is named, and its cause is stated by
:func:`explain` from the layer's types (input, weight, bias, ``accum_t``, ``result_t``; what an exact type
would need) and from what was observed (values the emulator wrapped or saturated, model values outside the
result type's range or off its grid). A final softmax is reported but never named as the first
difference: hls4ml computes it with lookup tables by design.

For a float model the doctor also states, per layer, the type its values would need for an error bound
(:func:`precision_needed`): integer bits from the largest |value| observed over the inputs, fractional
bits from the bound (truncation error < 2**-F <= bound).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from flow.arith.types import FixedType
from flow.core.errors import FlowError
from flow.hls.exact_config import LayerTypes, layer_types
from flow.hls.layer_map import LayerMap, is_softmax


@dataclass
class CastStats:
    """Per-cast counts of one role (``product``, ``accum``, ``result``) of a layer, when the emulator reports them."""

    total: int
    rounded: int
    overflowed: int


@dataclass
class Observed:
    """What was measured at one graph layer over the inputs.

    ``differing``/``values``: emulator values that differ from the model's; ``max_diff_lsb``: largest
    |difference| in LSBs of the result type; ``result_overflows``: values the emulator wrapped or
    saturated into the result type (``LayerTrace.n_overflow``); ``model_min``/``model_max``: the model's
    range there; ``model_out_of_range``/``model_off_grid``: model values outside the result type's range /
    not on its grid; ``weights_off_grid``/``weights_total``: the layer's weights (as hls4ml holds them before
    writing, e.g. BatchNormalization folded in) that are not on the weight type's grid. ``casts``: the emulator's per-cast statistics by role, where it provides them.
    """

    values: int
    differing: int
    max_diff_lsb: float
    result_overflows: int
    model_min: float
    model_max: float
    model_out_of_range: int
    model_off_grid: int
    weights_off_grid: int = 0
    weights_total: int = 0
    casts: dict[str, CastStats] = field(default_factory=dict)


def _pct(n: int, total: int) -> str:
    return f"{100.0 * n / total:.3g} %" if total else "0 %"


def _cast_note(obs: Observed, role: str, what: str) -> str:
    s = obs.casts.get(role)
    if s is None:
        return ""
    parts = []
    if s.rounded:
        parts.append(f"rounds {_pct(s.rounded, s.total)} of {what}")
    if s.overflowed:
        parts.append(f"overflows {s.overflowed:,}")
    return (" and " + " and ".join(parts)) if parts else ""


def _overflow_verb(t: FixedType) -> str:
    return "wraps" if t.overflow == "WRAP" else "saturates"


def explain(types: LayerTypes, obs: Observed, exact: LayerTypes | None = None, fused: list[str] | None = None) -> str:
    """The cause of a layer's differences in fixed-point terms, e.g. ``fc1: accum_t ap_fixed<16,6> drops
    5 fractional product bits (inputs ap_fixed<16,6>, weights ap_fixed<6,1>: products have 15 fractional
    bits); result_t ap_fixed<16,6> saturates 812 values``.

    ``types``: the layer's types in the graph; ``obs``: what was measured; ``exact``: the layer's types in
    the graph built from the quantizers' exact config (QKeras models), named where they differ;
    ``fused``: the Keras layers hls4ml folded into this one.
    """
    parts: list[str] = []
    acc, x, w, r = types.accum, types.input, types.weight, types.result
    if obs.weights_off_grid and isinstance(w, FixedType):
        parts.append(f"{obs.weights_off_grid:,} of {obs.weights_total:,} weights are not on the grid of weight_t {w} "
                     f"(step 2^-{w.fractional}) and are quantized when written")
    if acc is not None and x is not None and isinstance(w, FixedType):
        p_frac = x.fractional + w.fractional
        if acc.fractional < p_frac:
            parts.append(f"accum_t {acc} drops {p_frac - acc.fractional} fractional product bits (inputs {x}, "
                         f"weights {w}: products have {p_frac} fractional bits)" + _cast_note(obs, "product", "products"))
        if types.exact_accum is not None and acc.integer < types.exact_accum.integer:
            parts.append(f"accum_t {acc} has {acc.integer} integer bits where a sum of {types.fan_in} products "
                         f"and a bias can need {types.exact_accum.integer}" + _cast_note(obs, "accum", "sums"))
    if r is not None:
        src = acc if acc is not None else x
        res = []
        if src is not None and r.fractional < src.fractional:
            res.append(f"keeps {r.fractional} of {src.fractional} fractional bits ({r.rounding})")
        if obs.result_overflows:
            res.append(f"{_overflow_verb(r)} {obs.result_overflows:,} values")
        if obs.model_out_of_range:
            res.append(f"{obs.model_out_of_range:,} model values lie outside its range [{r.min_value:g}, "
                       f"{r.max_value:g}] (model range [{obs.model_min:.4g}, {obs.model_max:.4g}])")
        if obs.model_off_grid:
            res.append(f"{obs.model_off_grid:,} model values are not on its grid (step 2^-{r.fractional})")
        if res:
            parts.append(f"result_t {r}: " + ", ".join(res) + _cast_note(obs, "result", "results"))
    if exact is not None:
        wanted = [f"{role}_t {getattr(exact, role)}" for role in ("weight", "bias", "accum", "result")
                  if getattr(exact, role) is not None and getattr(types, role) != getattr(exact, role)]
        if wanted:
            parts.append("exact types from the quantizers: " + ", ".join(wanted))
    if fused:
        parts.append(f"hls4ml folded {', '.join(fused)} into this layer")
    if not parts:
        parts.append("the types hold every value the model computes; the model itself is not bit-accurate here "
                     "(float arithmetic, e.g. BatchNormalization folded into rounded weights, or float activations)")
    return f"{types.name}: " + "; ".join(parts)


def _observe(model_v: np.ndarray, emu_v: np.ndarray, t: FixedType | None, overflows: int) -> Observed:
    diff = np.abs(model_v - emu_v)
    step = t.step if t is not None else 1.0
    if t is not None:
        outside = int(np.sum((model_v < t.min_value) | (model_v > t.max_value)))
        scaled = model_v / t.step
        off_grid = int(np.sum(scaled != np.round(scaled)))
    else:
        outside = off_grid = 0
    return Observed(values=int(model_v.size), differing=int(np.sum(diff != 0)),
                    max_diff_lsb=float(diff.max() / step) if diff.size else 0.0, result_overflows=int(overflows),
                    model_min=float(model_v.min()) if model_v.size else math.nan,
                    model_max=float(model_v.max()) if model_v.size else math.nan,
                    model_out_of_range=outside, model_off_grid=off_grid)


def _weights_off_grid(layer: Any, types: LayerTypes) -> tuple[int, int]:
    """(weights not on ``weight_t``'s grid or outside its range, weights) of a graph layer, from the float
    values hls4ml holds before it writes them; (0, 0) for layers without fixed-point weights."""
    w_t = types.weight
    if not isinstance(w_t, FixedType) or "weight" not in getattr(layer, "weights", {}):
        return 0, 0
    w = np.asarray(layer.weights["weight"].data, dtype=np.float64).ravel()
    scaled = w / w_t.step
    bad = (scaled != np.round(scaled)) | (w < w_t.min_value) | (w > w_t.max_value)
    return int(np.sum(bad)), int(w.size)


def needed_type(max_abs: float, signed: bool, bound: float) -> FixedType:
    """The narrowest ``ap_[u]fixed<W,I>`` (TRN) that holds |values| <= ``max_abs`` with a truncation error
    below ``bound``: I from ``max_abs`` (plus the sign bit), F = ceil(-log2(bound)) (at least 0)."""
    frac = max(0, math.ceil(-math.log2(bound))) if bound > 0 else 0
    mag = math.floor(math.log2(max_abs)) + 1 if max_abs > 0 else 0
    integer = max(mag, 0) + (1 if signed else 0)
    integer = max(integer, 1)
    return FixedType(integer + frac, integer, signed)


def parse_error_bound(text: str, output_type: FixedType | None) -> tuple[float, str]:
    """``--error-bound``: ``'0.01'`` (absolute) or ``'2lsb'`` (LSBs of the output layer's result type);
    returns ``(absolute bound, description)``."""
    s = str(text).strip().lower().replace(" ", "")
    try:
        if s.endswith("lsb"):
            if output_type is None:
                raise FlowError("--error-bound in LSBs needs a fixed-point output type")
            n = float(s[:-3])
            value, what = n * output_type.step, f"{n:g} LSB of {output_type}"
        else:
            value = float(s)
            what = f"{value:g} (absolute)"
    except ValueError:
        raise FlowError(f"--error-bound: expected a number or '<n>lsb', got {text!r}") from None
    if not value > 0 or not math.isfinite(value):
        raise FlowError(f"--error-bound must be > 0, got {text!r}")
    return value, what


def diagnose(model: Any, graph: Any, lmap: LayerMap, x: np.ndarray, exact_graph: Any = None,
             error_bound: str | None = None, float_model: bool = False) -> dict[str, Any]:
    """Layer-by-layer comparison of the model with the emulator on inputs ``x``; see the module docstring.

    Returns ``first_differing_layer`` (a graph layer, or None), ``keras_layer``, ``cause`` (text, or None),
    ``layers`` (one row per compared graph layer, in graph order) and, for float models,
    ``precision_needed`` (per layer, for ``error_bound``; default 1 LSB of the output type).
    """
    from flow.arith.emulate import emulate
    from flow.hls.compare import reference_outputs

    emu = emulate(graph, x, trace=True, count_rounding=True)
    casts: dict[str, dict[str, CastStats]] = {}
    for rec in emu.casts:  # the emulator's counts per layer and role, summed over the types of that role
        s = casts.setdefault(rec.layer, {}).setdefault(rec.role, CastStats(0, 0, 0))
        s.total, s.rounded, s.overflowed = s.total + rec.values, s.rounded + rec.rounded, s.overflowed + rec.overflowed
    layers = {layer.name: layer for layer in graph.get_layers()}
    traces = [t for t in emu.traces if lmap.reference(t.name) is not None]
    refs = reference_outputs(model, lmap, x.astype(np.float32), [t.name for t in traces])
    exact_layers = {layer.name: layer for layer in exact_graph.get_layers()} if exact_graph is not None else {}
    rows, first, cause = [], None, None
    for t in traces:
        types = layer_types(layers[t.name])
        ours = np.asarray(t.values, dtype=np.float64).reshape(len(x), -1)
        if types.result is not None and types.result.xnor:  # binary codes 0 / 1 stand for -1 / +1 in the model
            ours = 2.0 * ours - 1.0
        ref = refs[t.name]
        keras_layer, pre = lmap.reference(t.name)
        row: dict[str, Any] = {"layer": t.name, "keras_layer": keras_layer + (" (pre-activation)" if pre else ""),
                               "class": layers[t.name].class_name, "result_t": str(types.result) if types.result else None,
                               "accum_t": str(types.accum) if types.accum else None}
        if ref.shape != ours.shape:
            rows.append(row | {"skipped": f"shapes differ: model {ref.shape[1:]}, graph {ours.shape[1:]}"})
            continue
        obs = _observe(ref, ours, types.result, t.n_overflow)
        obs.casts = casts.get(t.name, {})
        obs.weights_off_grid, obs.weights_total = _weights_off_grid(layers[t.name], types)
        softmax_tables = is_softmax(layers[t.name])
        row |= {"values": obs.values, "differing": obs.differing,
                "differing_fraction": obs.differing / obs.values if obs.values else 0.0,
                "max_abs_diff": float(np.max(np.abs(ref - ours))) if ref.size else 0.0,
                "max_diff_lsb": obs.max_diff_lsb, "overflows": obs.result_overflows,
                "model_range": [obs.model_min, obs.model_max]}
        if softmax_tables:
            row["note"] = "softmax: lookup tables in hls4ml, float in Keras (never bit-exact)"
        rows.append(row)
        if first is None and obs.differing and not softmax_tables:
            first = t.name
            exact = layer_types(exact_layers[t.name]) if t.name in exact_layers else None
            cause = explain(types, obs, exact, lmap.fused.get(t.name))
    out: dict[str, Any] = {"first_differing_layer": first,
                           "keras_layer": next((r["keras_layer"] for r in rows if r["layer"] == first), None),
                           "cause": cause, "layers": rows}
    if float_model:
        out["precision_needed"] = precision_needed(rows, refs, layers, lmap, error_bound)
    return out


def precision_needed(rows: list[dict[str, Any]], refs: dict[str, np.ndarray], layers: dict[str, Any],
                     lmap: LayerMap, error_bound: str | None) -> dict[str, Any]:
    """Per compared layer, the type its observed values need for the error bound (float models)."""
    out_t = layer_types(layers[lmap.compare_layer]).result
    bound, what = parse_error_bound(error_bound or "1lsb", out_t)
    per_layer = []
    for row in rows:
        ref = refs.get(row["layer"])
        if ref is None or "skipped" in row or row.get("note"):
            continue
        max_abs = float(np.max(np.abs(ref))) if ref.size else 0.0
        need = needed_type(max_abs, bool(np.any(ref < 0)), bound)
        have = layer_types(layers[row["layer"]]).result
        enough = have is not None and have.integer >= need.integer and have.fractional >= need.fractional and (
            have.signed or not need.signed)
        per_layer.append({"layer": row["layer"], "keras_layer": row["keras_layer"], "max_abs": max_abs,
                          "needed": str(need), "current": str(have) if have else None, "enough": bool(enough)})
    return {"error_bound": what, "absolute": bound,
            "rule": "integer bits from the largest |value| over the inputs (+ sign), fractional bits F with "
                    "2^-F <= bound (truncation); per layer, errors of earlier layers not included",
            "layers": per_layer}
