"""Comparisons between the stages: C simulation vs the Keras/QKeras model, emulator vs C simulation.

Every comparison is element by element on float64 values (exact: fixed-point values are exactly
representable). A model that ends in softmax is compared on its logits (:func:`softmax_split`),
because hls4ml computes softmax with lookup tables and Keras in float.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flow.errors import FlowError


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


def accuracy(y_score: np.ndarray, y_true: np.ndarray) -> float:
    return float(np.mean(np.argmax(y_score, axis=1) == y_true))


def softmax_split(model: Any) -> tuple[str, bool] | None:
    """Where to compare a model that ends in softmax: ``(layer name, fused)``, or None if it does not.

    hls4ml computes softmax with lookup tables, QKeras/Keras in float, so outputs are compared on the
    logits: the input of a final softmax layer, or the pre-activation of a layer with a fused softmax
    (hls4ml splits that layer and keeps its name for the linear part).
    """
    last = model.layers[-1]
    cls = last.__class__.__name__
    if cls == "Softmax" or (cls == "Activation" and last.get_config().get("activation") == "softmax"):
        return model.layers[-2].name, False
    if last.get_config().get("activation") == "softmax":
        return last.name, True
    return None


def check_bit_exact(model: Any, graph: Any, x: np.ndarray, csim_out: np.ndarray) -> dict[str, Any]:
    """Compare hls4ml's C simulation with the Keras/QKeras model, element by element.

    For a model ending in softmax the comparison is on the logits (via hls4ml's trace).
    """
    from flow.hls.convert import csim_trace
    from flow.keras.env import keras
    from flow.keras.train import predict

    split = softmax_split(model)
    if split is None:
        return compare_outputs(csim_out, predict(model, x), model.layers[-1].name)
    name, fused = split
    layer = model.get_layer(name)
    if fused:
        saved = layer.activation
        layer.activation = keras().activations.linear
        try:
            reference = predict(keras().Model(model.inputs, layer.output), x)
        finally:
            layer.activation = saved
    else:
        reference = predict(keras().Model(model.inputs, layer.output), x)
    return compare_outputs(csim_trace(graph, x, name), reference, f"{name} (logits, before softmax)")


def check_emulator(model: Any, graph: Any, x: np.ndarray, csim_out: np.ndarray) -> EmulatorCheck:
    """Compare the numpy emulator (:mod:`flow.arith.emulate`) with hls4ml's C simulation on every output.

    For a softmax model both are compared on the logits. Returns the comparison plus per-layer
    overflow counts (values that wrapped or saturated), and the emulator's outputs.
    """
    from flow.arith.emulate import emulate
    from flow.hls.convert import csim_trace

    split = softmax_split(model)
    if split is None:
        emu = emulate(graph, x)
        cmp = compare_outputs(emu.outputs, csim_out, model.layers[-1].name)
    else:
        emu = emulate(graph, x, upto=split[0])
        cmp = compare_outputs(emu.outputs, csim_trace(graph, x, split[0]), f"{split[0]} (logits, before softmax)")
    cmp["overflows"] = dict(emu.overflows)
    return EmulatorCheck(comparison=cmp, outputs=emu.outputs)


def trace_logits(model: Any, hls_config: dict) -> None:
    """Ask hls4ml to trace the logits layer of a softmax model, for :func:`check_bit_exact`."""
    split = softmax_split(model)
    if split is not None:
        hls_config.setdefault("LayerName", {}).setdefault(split[0], {})["Trace"] = True


def logits_layer(model: Any) -> str | None:
    """Name of the layer whose output holds a softmax model's logits, or None if the model has no softmax."""
    split = softmax_split(model)
    return None if split is None else split[0]
