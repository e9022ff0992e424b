"""Comparisons between the stages: C simulation vs the Keras/QKeras model, emulator vs C simulation.

Every comparison is element by element on float64 values (exact: fixed-point values are exactly
representable). A model that ends in softmax is compared on its logits (the input of its final softmax),
because hls4ml computes softmax with lookup tables and Keras in float. Graph layers and Keras layers are
matched through :func:`flow.hls.layer_map.layer_map` (hls4ml fuses and removes layers).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flow.core.errors import FlowError
from flow.hls.layer_map import LayerMap, layer_map
from flow.hls.sources import ModelSource


@dataclass
class EmulatorCheck:
    """The emulator against the C simulation: ``comparison`` (the :func:`compare_outputs` record plus
    ``overflows``, values wrapped or saturated per layer) and the emulator's ``outputs`` (N, n_out)."""

    comparison: dict[str, Any]
    outputs: np.ndarray


def compare_outputs(a: np.ndarray, b: np.ndarray, compared_at: str) -> dict[str, Any]:
    """Element-wise exact comparison of two (samples, outputs) arrays, plus how close they are."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape:
        raise FlowError(f"output shapes differ at {compared_at}: {a.shape} vs {b.shape}")
    equal = int(np.sum(a == b))
    diff = np.abs(a - b)
    return {"outputs": int(a.size), "equal_outputs": equal, "exact_fraction": equal / a.size if a.size else 1.0,
            "max_abs_diff": float(diff.max()) if a.size else 0.0,
            "mean_abs_diff": float(diff.mean()) if a.size else 0.0,
            "argmax_agreement": float(np.mean(np.argmax(a, axis=1) == np.argmax(b, axis=1))) if a.size else 1.0,
            "compared_at": compared_at}


def reference_outputs(model: Any, lmap: LayerMap, x: np.ndarray, graph_layers: list[str]) -> dict[str, np.ndarray]:
    """The Keras/QKeras model's values at each of ``graph_layers`` (hls4ml graph layer names), float64 (N, -1).

    Each graph layer is compared with the Keras layer :class:`flow.hls.layer_map.LayerMap` says it holds:
    a fused layer's last Keras layer (``fc4`` holding ``bn4``), or the pre-activation of a layer whose
    activation hls4ml split off (computed by calling that layer with a linear activation on its Keras
    input). ``model`` may be any model with the mapped layer names (e.g. the float baseline of a spec).
    FlowError for a graph layer with no Keras counterpart.
    """
    if isinstance(model, ModelSource):
        return source_outputs(model, lmap, x, graph_layers)
    from flow.keras.env import keras

    K = keras()
    refs: dict[str, tuple[str, bool]] = {}
    for g in graph_layers:
        ref = lmap.reference(g)
        if ref is None:
            raise FlowError(f"graph layer {g!r} holds no Keras layer's output (mapped: {', '.join(lmap.graph_to_keras)})")
        refs[g] = ref
    tensors: list[Any] = []
    index: dict[int, int] = {}

    def want(t: Any) -> int:
        if id(t) not in index:
            index[id(t)] = len(tensors)
            tensors.append(t)
        return index[id(t)]

    slots = {}
    input_names = list(getattr(model, "input_names", []))
    for g, (name, pre) in refs.items():
        if name in input_names and not pre:  # a Sequential model's input is no entry of model.layers
            slots[g] = want(model.inputs[input_names.index(name)])
            continue
        try:
            layer = model.get_layer(name)
        except ValueError:
            raise FlowError(f"the model has no layer {name!r} (held by graph layer {g!r})") from None
        slots[g] = want(layer.input if pre else layer.output)
    model_inputs = {id(t) for t in model.inputs}
    computed = [t for t in tensors if id(t) not in model_inputs]
    values: dict[int, np.ndarray] = {id(t): np.asarray(x) for t in tensors if id(t) in model_inputs}
    if computed:
        ys = K.Model(model.inputs, computed).predict(x, batch_size=1024, verbose=0)
        ys = ys if isinstance(ys, list) else [ys]
        values.update({id(t): np.asarray(y) for t, y in zip(computed, ys)})
    out = {}
    for g, (name, pre) in refs.items():
        v = values[id(tensors[slots[g]])]
        if pre:
            layer = model.get_layer(name)
            saved = layer.activation
            layer.activation = K.activations.linear
            try:
                v = np.asarray(layer(v.astype(np.float32), training=False))
            finally:
                layer.activation = saved
        out[g] = np.asarray(v, dtype=np.float64).reshape(len(x), -1)
    return out


def source_outputs(model: ModelSource, lmap: LayerMap, x: np.ndarray, graph_layers: list[str]) -> dict[str, np.ndarray]:
    """The outputs of a model converted without Keras (ONNX, PyTorch: its own forward pass) at the graph's
    output, the one place where its values and the graph's correspond; FlowError for any other layer, or
    with the reason when no framework runs the model (:attr:`ModelSource.reference_unavailable`)."""
    if model.reference_unavailable:
        raise FlowError(f"no model-side values: {model.reference_unavailable}")
    others = [g for g in graph_layers if g != lmap.output]
    if others:
        raise FlowError(f"graph layer {others[0]!r}: a {model.kind} model is compared at its output "
                        f"({lmap.output!r}) only")
    return {lmap.output: np.asarray(model.reference(x), dtype=np.float64).reshape(len(x), -1)}


def check_bit_exact(model: Any, graph: Any, x: np.ndarray, csim_out: np.ndarray,
                    layer_out: Any = None) -> dict[str, Any]:
    """Compare hls4ml's C simulation with the Keras/QKeras model, element by element, at the graph's
    output layer, or at the logits of a model ending in softmax (hls4ml's trace of that layer); the
    Keras side is the layer the graph layer holds after hls4ml's fusions (``keras_layer``).

    A model converted without Keras (:class:`flow.hls.sources.ModelSource`) is compared at the graph's output
    with its framework's forward pass (``bit_accurate``: whether it must match bit for bit); when no
    framework runs it, the record is ``{"unavailable": reason}``. ``layer_out(name)`` gives the compared
    execution's outputs of a graph layer other than the output (default: hls4ml's trace of the C simulation);
    :func:`check_emulator_vs_model` passes the emulator's."""
    from flow.hls.convert import csim_trace

    lmap = layer_map(model, graph)
    if isinstance(model, ModelSource):
        if model.reference_unavailable:
            return {"unavailable": model.reference_unavailable, "compared_at": lmap.output}
        ref = source_outputs(model, lmap, x, [lmap.output])[lmap.output]
        return compare_outputs(csim_out, ref, lmap.output) | {"reference": model.reference_name,
                                                              "bit_accurate": model.bit_accurate}
    at = lmap.compare_layer
    ours = csim_out if at == lmap.output else (layer_out or (lambda name: csim_trace(graph, x, name)))(at)
    ref = reference_outputs(model, lmap, x, [at])[at]
    keras_layer, pre = lmap.reference(at)
    return compare_outputs(ours, ref, lmap.describe(at)) | {
        "keras_layer": keras_layer + (" (pre-activation)" if pre else "")}


def check_emulator(model: Any, graph: Any, x: np.ndarray, csim_out: np.ndarray) -> EmulatorCheck:
    """Compare the numpy emulator (:mod:`flow.arith.emulate`) with hls4ml's C simulation on every output.

    For a softmax model both are compared on the logits. Returns the comparison plus per-layer
    overflow counts (values that wrapped or saturated), and the emulator's outputs.
    """
    from flow.arith.emulate import emulate
    from flow.hls.convert import csim_trace

    lmap = layer_map(model, graph)
    if lmap.logits is None:
        emu = emulate(graph, x)
        cmp = compare_outputs(emu.outputs, csim_out, lmap.output)
    else:
        emu = emulate(graph, x, upto=lmap.logits)
        cmp = compare_outputs(emu.outputs, csim_trace(graph, x, lmap.logits), lmap.describe(lmap.logits))
    cmp["overflows"] = dict(emu.overflows)
    return EmulatorCheck(comparison=cmp, outputs=emu.outputs)


def emulator_or_skip(model: Any, graph: Any, x: np.ndarray, csim_out: np.ndarray) -> dict[str, Any]:
    """:func:`check_emulator`'s comparison, or ``{"skipped": reason}`` when the emulator cannot run the graph
    (a layer it has no description for: the reason names the layer and its class). Callers state a skip on the
    terminal (:func:`skip_reason`) and ``hlsflow verify`` fails on it unless ``--allow-skip``."""
    try:
        return check_emulator(model, graph, x, csim_out).comparison
    except FlowError as exc:
        return {"skipped": str(exc)}


def check_emulator_vs_model(model: Any, graph: Any, x: np.ndarray, outputs: np.ndarray | None = None) -> dict[str, Any]:
    """The emulator against the Keras/QKeras model where :func:`check_bit_exact` compares the C simulation (used
    while the C simulation is pending: the emulator carries the flow); ``outputs``: the emulator's outputs on ``x``
    when the caller has them. ``{"skipped": reason}`` when the emulator cannot run a layer of the graph."""
    from flow.arith.emulate import emulate

    try:
        return check_bit_exact(model, graph, x, emulate(graph, x).outputs if outputs is None else outputs,
                               layer_out=lambda name: emulate(graph, x, upto=name).outputs)
    except FlowError as exc:
        return {"skipped": str(exc)}


def emulator_alone(graph: Any, x: np.ndarray, pending: str) -> EmulatorCheck:
    """The emulator's outputs on ``x`` with no C simulation to compare them with: the comparison record is
    ``{"pending": pending, "overflows": {...}}`` (values wrapped or saturated per layer)."""
    from flow.arith.emulate import emulate

    emu = emulate(graph, x)
    return EmulatorCheck(comparison={"pending": pending, "overflows": dict(emu.overflows)}, outputs=emu.outputs)


def skip_reason(comparison: dict[str, Any]) -> str | None:
    """The one-line reason of a skipped emulator check (without the list of supported layers), else None."""
    reason = comparison.get("skipped")
    return None if reason is None else str(reason).split(" (supported: ", 1)[0]


def logits_layer(model: Any, graph: Any) -> str | None:
    """The graph layer whose output holds a softmax model's logits, or None if the model has no softmax."""
    return layer_map(model, graph).logits
