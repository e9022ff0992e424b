"""Post-training quantization (PTQ) points of a sweep (``mode: ptq``): one float Keras model quantized to
each point's bit widths, without retraining.

A PTQ point loads the float model's weights into the QKeras model of the point's spec
(:func:`flow.keras.network.build_model`, the very quantizers a QAT point would train with), so every precision
of the hls4ml configuration (weights, biases, activation results, accumulators) is derived exactly as for
a QAT point: :func:`flow.commands.pipeline.to_hls_graph` lets hls4ml's ``config_from_keras_model`` read the
quantizers, and hls4ml quantizes the float weights with them when it builds the graph
(``quantized_bits(bits, integer, alpha=1)``: ``ap_fixed<bits, integer+1>``, round to nearest, saturate).
Activations are cut to ``quantized_relu(bits, integer)`` = ``ap_ufixed<bits, integer>``: float ReLU
outputs at or above ``2**integer`` saturate, which is part of what PTQ costs.

The float model is either a file named by the sweep (``float_model:``, ``.h5``/``.keras``, relative to
the sweep file), or the base spec's float baseline, trained once per sweep and machine by the
``hlsflow sweep`` process before it starts workers and cached as
``<out>/<name>/float_baseline/<fingerprint>.h5`` (written to a temporary file, then renamed, so a
worker never reads half a file). Either way it must be the base spec's network: the same layer names
and weight shapes (``hlsflow run`` writes such a model as ``float_model.h5``); pruning comes with it
(pruning axes need training and are refused in PTQ mode, and so is a base spec with neuron pruning).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.spec import Checker, Spec

MODES = ("qat", "ptq")
FLOAT_MODEL_SUFFIXES = (".h5", ".keras", ".hdf5")
# base spec sections that determine the float baseline (input_type: the data are quantized to it)
BASELINE_FIELDS = ("dataset", "model", "pruning", "training")


def baseline_fingerprint(base_raw: dict[str, Any]) -> str:
    """12 hex digits of the SHA-1 of what the float baseline depends on (data, input type, network, training)."""
    payload = {k: base_raw.get(k) for k in BASELINE_FIELDS}
    payload["input_type"] = (base_raw.get("quantization") or {}).get("input_type")
    return hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_digest(path: Path) -> str:
    """12 hex digits of the SHA-1 of a file's bytes (a changed float model starts a new study)."""
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()[:12]


def float_model_path(sweep: Any, out_dir: Path) -> Path:
    """Where the PTQ points of ``sweep`` (a :class:`flow.sweep.Sweep`) read their float model."""
    if sweep.float_model is not None:
        return Path(sweep.float_model)
    return Path(out_dir) / "float_baseline" / f"{baseline_fingerprint(sweep.base_raw)}.h5"


def _is_quantized_layer(layer: Any) -> bool:
    """A QKeras layer (QDense, QConv2D, QActivation, ...): it carries quantizers."""
    return type(layer).__module__.startswith("qkeras") or any(
        hasattr(layer, attr) for attr in ("kernel_quantizer", "quantizer", "activation_quantizer"))


def check_float_model(model: Any, base: Spec, chk: Checker, where: str = "float_model") -> None:
    """Raise :class:`FlowError` naming the sweep file and field unless ``model`` is a float Keras model of
    the base spec's network (no QKeras layer; every layer with weights present with the same weight shapes)."""
    from flow.keras import network

    label = getattr(model, "name", "model")
    for layer in model.layers:
        if _is_quantized_layer(layer):
            raise chk.fail(where, f"is not a float model: layer {layer.name!r} is a {type(layer).__name__} "
                                  "(QKeras); PTQ quantizes a float Keras model, e.g. `float_model.h5` of `hlsflow run`")
    reference = network.build_model(base, quantized=False)
    if tuple(model.input_shape[1:]) != tuple(reference.input_shape[1:]):
        raise chk.fail(where, f"{label}: input shape {tuple(model.input_shape[1:])} differs from the base spec's "
                              f"{tuple(reference.input_shape[1:])}")
    names = {layer.name for layer in model.layers}
    for ref in reference.layers:
        ref_shapes = [tuple(w.shape) for w in ref.get_weights()]
        if not ref_shapes:
            continue
        if ref.name not in names:
            with_weights = [r.name for r in reference.layers if r.get_weights()]
            raise chk.fail(where, f"{label} has no layer {ref.name!r}; the base spec's layers with weights are "
                                  f"{', '.join(with_weights)} and the float model must have them by name")
        shapes = [tuple(w.shape) for w in model.get_layer(ref.name).get_weights()]
        if shapes != ref_shapes:
            raise chk.fail(where, f"layer {ref.name!r} has weights of shapes {shapes}, the base spec's network "
                                  f"has {ref_shapes}")


def load_user_float_model(sweep: Any) -> Any:
    """Load and check the sweep's ``float_model`` file; errors name the sweep file and the field."""
    from flow.keras.model_io import load_model

    chk = Checker(sweep.path)
    try:
        model = load_model(sweep.float_model)
    except FlowError as exc:
        raise chk.fail("float_model", str(exc)) from None
    check_float_model(model, sweep.base, chk)
    return model


def prepare_float_model(sweep: Any, out_dir: Path) -> Path:
    """Make the float model of a PTQ sweep available to its workers; returns its path.

    A user file is returned as it is (:func:`load_user_float_model` checks it first). The baseline is
    trained from the base spec unless it is cached already: saved to a temporary file beside its final
    name and renamed into place (atomic), so processes that race here each write a whole file and
    readers never see a partial one.
    """
    path = float_model_path(sweep, out_dir)
    if sweep.float_model is not None:
        return path
    if path.is_file():
        return path
    from flow.arith.types import parse_type
    from flow.commands import pipeline
    from flow.data import load_dataset

    base = sweep.base
    t0 = time.perf_counter()
    print(f"hlsflow sweep: training the float baseline of {sweep.base_path.name} once for PTQ "
          f"({base.training.epochs} epochs) -> {path}", file=sys.stderr, flush=True)
    split = load_dataset(base.dataset, parse_type(base.input_type), base.training.seed)
    model = pipeline.build_and_train(base, split, quantized=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.tmp-", suffix=".h5", dir=path.parent)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    print(f"hlsflow sweep: float baseline trained in {time.perf_counter() - t0:.1f} s", file=sys.stderr, flush=True)
    return path


def quantize_float_model(spec: Spec, float_model: Any) -> Any:
    """The QKeras model of ``spec`` (one point) holding ``float_model``'s weights, untrained.

    Layers are matched by name; every layer of the QKeras model that has weights takes the float layer's.
    """
    from flow.keras import network

    qmodel = network.build_model(spec, quantized=True)
    for layer in qmodel.layers:
        if layer.weights:
            try:
                source = float_model.get_layer(layer.name)
            except ValueError:
                raise FlowError(f"the float model has no layer {layer.name!r}") from None
            layer.set_weights(source.get_weights())
    return qmodel


def weights_digest(model: Any) -> str:
    """12 hex digits of the SHA-1 of a model's weights (which float model a point quantized)."""
    h = hashlib.sha1()
    for w in model.get_weights():
        h.update(w.tobytes())
    return h.hexdigest()[:12]
