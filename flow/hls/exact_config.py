"""The fixed-point types of each graph layer, the types that make a QKeras model bit-exact, and the
hls4ml config file that sets them (``hlsflow verify --write-exact-config``).

Conventions: ``ap_fixed<W,I>``, W total bits, I integer bits including the sign; F = W - I
fractional bits. A product of ``ap_fixed<W1,I1>`` and ``ap_fixed<W2,I2>`` has F1 + F2 fractional bits
and I1 + I2 integer bits (one more when exactly one factor is unsigned); a sum of n such products and
a bias needs ``ceil(log2(n + 1))`` more integer bits to never overflow.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from flow.arith.types import FixedType, from_hls_precision
from flow.core.errors import FlowError
from flow.core.staging import scratch_dir
from flow.spec import Hardware

WEIGHTED = ("Dense", "Conv1D", "Conv2D", "PointwiseConv1D", "PointwiseConv2D")


@dataclass(frozen=True)
class LayerTypes:
    """One graph layer's types. ``weight``: a FixedType, or hls4ml's text for weights that are not
    fixed-point (power-of-two exponents); ``fan_in``: products summed per output (Dense ``n_in``, Conv
    ``channels x kernel``); ``exact_accum``: the accumulator that keeps every product bit and cannot
    overflow (None where the layer has no fixed-point weights)."""

    name: str
    class_name: str
    input: FixedType | None
    result: FixedType | None
    weight: FixedType | str | None = None
    bias: FixedType | None = None
    accum: FixedType | None = None
    fan_in: int | None = None
    exact_accum: FixedType | None = None


def _fixed(precision: Any) -> FixedType | None:
    try:
        return from_hls_precision(precision)
    except ValueError:
        return None


def fan_in(layer: Any) -> int | None:
    """Products summed per output of a Dense/Conv graph layer, from hls4ml's own attributes."""
    if layer.get_attr("n_in") is not None and layer.class_name == "Dense":
        return int(layer.get_attr("n_in"))
    if layer.get_attr("n_chan") is not None and layer.get_attr("filt_width") is not None:
        return int(layer.get_attr("n_chan")) * int(layer.get_attr("filt_height", 1) or 1) * int(layer.get_attr("filt_width"))
    return None


def exact_accum_type(x: FixedType, w: FixedType, n: int, bias: FixedType | None) -> FixedType:
    """Signed accumulator for ``bias + sum of n products x*w`` that keeps every product bit and cannot overflow."""
    frac = x.fractional + w.fractional
    integer = x.integer + w.integer + (1 if x.signed != w.signed else 0) + (1 if not (x.signed or w.signed) else 0)
    if bias is not None:
        frac = max(frac, bias.fractional)
        integer = max(integer, bias.integer + (0 if bias.signed else 1))
    integer += math.ceil(math.log2(n + 1))
    return FixedType(integer + frac, integer, True)


def layer_types(layer: Any) -> LayerTypes:
    """The types hls4ml gave one graph layer (after its precision inference)."""
    inp = layer.get_input_variable() if layer.inputs and layer.inputs[0] else None
    in_t = _fixed(inp.type.precision) if inp is not None else None
    out_t = _fixed(layer.get_output_variable().type.precision)
    if "weight" not in getattr(layer, "weights", {}) or layer.get_attr("accum_t") is None:
        return LayerTypes(layer.name, layer.class_name, in_t, out_t)
    wp = layer.weights["weight"].type.precision
    w_t = _fixed(wp)
    b_t = _fixed(layer.weights["bias"].type.precision) if "bias" in layer.weights else None
    acc = _fixed(layer.get_attr("accum_t").precision)
    n = fan_in(layer)
    exact = exact_accum_type(in_t, w_t, n, b_t) if in_t and isinstance(w_t, FixedType) and n else None
    return LayerTypes(layer.name, layer.class_name, in_t, out_t, w_t if w_t is not None else str(wp), b_t, acc, n,
                      exact)


def exact_hls_config(model: Any, hardware: Hardware, input_type: str) -> dict:
    """HLSConfig (granularity ``name``) with every precision explicit: weights, biases and activations
    from the QKeras quantizers (:func:`flow.hls.convert.derive_hls_config`), accumulators of Dense/Conv
    layers from :func:`exact_accum_type`, the result of a layer without an output quantizer = its
    accumulator, and the types hls4ml infers for everything else (pooling, flatten, tables)."""
    from flow.hls.convert import build_graph, derive_hls_config
    from flow.hls.layer_map import layer_map

    cfg = derive_hls_config(model, hardware, input_type)
    with scratch_dir("exact") as tmp:
        graph = build_graph(model, copy.deepcopy(cfg), hardware, Path(tmp) / "hls")
    lmap = layer_map(model, graph)
    names = cfg.setdefault("LayerName", {})
    for layer in graph.get_layers():
        entry = names.setdefault(layer.name, {})
        prec = entry.get("Precision")
        if not isinstance(prec, dict):
            prec = entry["Precision"] = {} if prec is None else {"result": prec}
        types = layer_types(layer)
        if types.exact_accum is not None:
            prec["accum"] = str(types.exact_accum)
            if prec.get("result", "auto") == "auto" and types.result == types.accum:
                prec["result"] = str(types.exact_accum)  # hls4ml's inferred result: no quantizer was merged in
        elif layer.get_attr("accum_t") is not None and prec.get("accum", "auto") == "auto":
            acc = _fixed(layer.get_attr("accum_t").precision)
            if acc is not None:
                prec["accum"] = str(acc)
        if prec.get("result", "auto") == "auto" and types.result is not None:
            prec["result"] = str(types.result)
    for name in [n for n in names if n not in lmap.graph_layers and n not in lmap.keras_to_graph]:
        # hls4ml's name for an activation it split off and removed again (``fc1_linear``): give it the type of
        # the layer it follows, so that hls4ml removes it again (a linear activation that casts is kept)
        base = max((k for k in lmap.keras_to_graph if name.startswith(k + "_")), key=len, default=None)
        holder = lmap.keras_to_graph.get(base) if base else None
        prec = names[name].get("Precision")
        if holder is not None and isinstance(prec, dict) and "result" in names.get(holder, {}).get("Precision", {}):
            prec["result"] = names[holder]["Precision"]["result"]
    return cfg


EXACT_CONFIG_HEADER = "# hls4ml config written by `hlsflow verify --write-exact-config`"  # what it may replace


def write_hls4ml_yaml(path: Path, hls_config: dict, hardware: Hardware) -> Path:
    """Write an hls4ml config file as users keep them (``Backend``, ``Part``, ``ClockPeriod``, ``IOType``,
    ``HLSConfig``), readable by ``hlsflow convert --config`` and by hls4ml's own YAML loader."""
    doc = {"Backend": hardware.backend, "Part": hardware.part, "ClockPeriod": hardware.clock_period,
           "IOType": hardware.io_type, "HLSConfig": hls_config}
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(EXACT_CONFIG_HEADER + "\n" + yaml.safe_dump(doc, sort_keys=False))
        tmp.replace(path)
    except OSError as exc:
        raise FlowError(f"{path}: cannot write the config: {exc}") from None
    return path
