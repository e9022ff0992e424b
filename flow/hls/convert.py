"""hls4ml conversion: a Keras / QKeras / HGQ2 model -> hls4ml ModelGraph -> HLS C++ project on disk.

Every layer precision comes from the model's quantizers, through hls4ml's own
``config_from_keras_model(granularity='name')``; the only precision this module sets is the
input type, which the flow declares and quantizes inputs to explicitly (see :mod:`flow.arith.types`).
Keras 2 models go through hls4ml's Keras-2 frontend, Keras 3 models (in a Keras-3 worker, see
:mod:`flow.keras.frontends`) through its Keras-3 frontend, with its distributed-arithmetic fallback off
(it would turn a layer hls4ml has no handler for into a ``DACombinational`` block, which neither the
emulator nor the RTL tracer reads) and hls4ml's Keras-2 handlers as the fallback.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import re
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from flow.core.errors import FlowError
from flow.hls.csim_build import CsimBuild, compile_graph, progress_interval
from flow.hls.sources import ModelSource
from flow.keras.env import KERAS_MAJOR, hls4ml_sees_keras2
from flow.spec import Hardware

PROJECT_NAME = "myproject"
PREDICT_CHUNK = 50  # samples per call of the compiled library (progress is reported between calls)
CSIM_STACK_BYTES = 1 << 30  # address space reserved for the C simulation's stack; only pages it touches take memory
_UNSUPPORTED = (re.compile(r"Unsupported layer type: (\w+)"),  # hls4ml's Keras-2 parser
                re.compile(r"Layer <class '[\w.]*?(\w+)'> not found in registry"))  # its Keras-3 parser


class UnsupportedLayer(FlowError):
    """hls4ml has no converter for a layer class of the model; the message names the layers and the class
    (the caller adds the model file)."""


def conversion_error(model: Any, exc: Exception) -> FlowError:
    """The FlowError for hls4ml's failure ``exc`` to convert ``model``: an :class:`UnsupportedLayer` naming the
    model's layers of the class hls4ml cannot convert, else hls4ml's own message."""
    import hls4ml

    for pattern in _UNSUPPORTED:
        m = pattern.search(str(exc))
        if m:
            cls = m.group(1)
            names = [layer.name for layer in getattr(model, "layers", []) if type(layer).__name__ == cls]
            which = ", ".join(f"`{n}`" for n in names) if names else "a layer"
            return UnsupportedLayer(f"layer {which} ({cls}): hls4ml {hls4ml.__version__} cannot convert this "
                                    "layer class")
    return FlowError(f"hls4ml cannot convert this model: {type(exc).__name__}: {exc}")


def input_layer_name(model: Any) -> str:
    """Name of the model's single input layer."""
    if isinstance(model, ModelSource):
        return model.input_names[0]
    if KERAS_MAJOR == 3:
        names = [t._keras_history[0].name for t in model.inputs]  # the InputLayer that made the tensor
    else:
        names = model.input_names if hasattr(model, "input_names") else [t.name for t in model.inputs]
    if len(names) != 1:
        raise FlowError(f"model has {len(names)} inputs; only single-input models are supported")
    return names[0]


def derive_hls_config(model: Any, hardware: Hardware, input_type: str | None) -> dict:
    """hls4ml HLSConfig with per-layer precisions derived from the model's QKeras quantizers.

    ``input_type`` (``ap_fixed<W,I>``) overrides the input layer's result type when given. A model converted
    without Keras (a :class:`flow.hls.sources.ModelSource`) gives its config through hls4ml's converter for its format.
    """
    if isinstance(model, ModelSource):
        cfg = model.hls4ml_config(hardware.backend)
    else:
        with hls4ml_sees_keras2() as hls4ml, _keras3_parsing(hls4ml):
            try:
                cfg = hls4ml.utils.config_from_keras_model(model, granularity="name", backend=hardware.backend)
            except Exception as exc:
                raise conversion_error(model, exc) from None
    cfg["Model"]["Strategy"] = hardware.strategy
    cfg["Model"]["ReuseFactor"] = hardware.reuse_factor
    for layer_cfg in cfg.get("LayerName", {}).values():
        if "ReuseFactor" in layer_cfg:
            layer_cfg["ReuseFactor"] = hardware.reuse_factor
    if input_type is not None:
        name = input_layer_name(model)
        cfg["LayerName"].setdefault(name, {}).setdefault("Precision", {})["result"] = input_type
    _size_po2_accumulators(model, cfg)
    return cfg


@contextlib.contextmanager
def _keras3_parsing(hls4ml: Any) -> Iterator[None]:
    """While hls4ml parses a Keras 3 model: QKeras v3 handlers registered, the DA fallback off.

    ``config_from_keras_model`` calls ``hls4ml.converters.parse_keras_v3_model`` with its defaults
    (DA fallback on), so that function is wrapped for the duration; a no-op for Keras 2.
    """
    if KERAS_MAJOR != 3:
        yield
        return
    from flow.hls.qkeras_v3 import register

    register()
    original = hls4ml.converters.parse_keras_v3_model
    hls4ml.converters.parse_keras_v3_model = functools.partial(original, allow_da_fallback=False,
                                                               allow_v2_fallback=True)
    try:
        yield
    finally:
        hls4ml.converters.parse_keras_v3_model = original


def _size_po2_accumulators(model: Any, cfg: dict) -> None:
    """Give layers with power-of-two (``quantized_po2``) kernels an exact accumulator type.

    hls4ml 1.3 cannot infer ``auto`` accumulator/result types for exponent-typed weights and falls
    back to the model default (``fixed<16,6>``), which overflows. The exact type follows from the
    layer's input type (from the config) and its actual quantized weights and biases: fractional bits
    = input's + the smallest weight exponent's; integer bits from the worst-case |sum|.
    """
    from flow.arith.types import parse_type

    layer_cfgs = cfg.get("LayerName", {})
    if KERAS_MAJOR != 2:
        return  # reads Keras 2's node API; QKeras v3 power-of-two layers keep hls4ml's own types
    for layer in model.layers:
        quantizer = getattr(layer, "kernel_quantizer_internal", None)
        if quantizer is None or "po2" not in type(quantizer).__name__:
            continue
        prec = layer_cfgs.get(layer.name, {}).get("Precision", {})
        if prec.get("accum") != "auto" and prec.get("result") != "auto":
            continue
        inbound = layer.inbound_nodes[0].inbound_layers
        prev = inbound[0].name if isinstance(inbound, list) else inbound.name
        prev_result = layer_cfgs.get(prev, {}).get("Precision", {}).get("result")
        try:
            x_type = parse_type(prev_result)
        except (TypeError, ValueError):
            continue  # the input type is itself inferred: leave the layer to hls4ml
        w = np.abs(np.asarray(quantizer(layer.kernel), dtype=np.float64))
        w = w.reshape(-1, w.shape[-1])  # (fan-in, outputs)
        b = np.zeros(w.shape[1])
        if getattr(layer, "bias", None) is not None and getattr(layer, "bias_quantizer_internal", None) is not None:
            b = np.abs(np.asarray(layer.bias_quantizer_internal(layer.bias), dtype=np.float64))
        x_max = max(abs(x_type.min_value), abs(x_type.max_value))
        bound = float(np.max(w.sum(axis=0) * x_max + b))
        nonzero = np.concatenate([w[w > 0], b[b > 0]])
        frac = x_type.fractional + max(0, int(-np.floor(np.log2(nonzero.min())))) if nonzero.size else 0
        integer = int(np.ceil(np.log2(bound + 2.0 ** -frac))) + 1 if bound > 0 else 1
        wide = f"fixed<{integer + frac},{integer}>"

        for key in ("accum", "result"):
            if prec.get(key) == "auto":
                prec[key] = wide
        linear = layer_cfgs.get(f"{layer.name}_linear", {}).get("Precision", {})  # hls4ml's split-off activation
        if linear.get("result") == "auto":
            linear["result"] = wide


def build_graph(model: Any, hls_config: dict, hardware: Hardware, output_dir: Path) -> Any:
    """Convert ``model`` to an hls4ml ModelGraph that writes to ``output_dir`` (nothing written yet)."""
    with hls4ml_sees_keras2() as hls4ml, _keras3_parsing(hls4ml):
        from hls4ml.converters import keras_v2_to_hls, keras_v3_to_hls
        from hls4ml.utils.config import create_config

        config = create_config(
            output_dir=str(output_dir), project_name=PROJECT_NAME, backend=hardware.backend,
            part=hardware.part, clock_period=hardware.clock_period, io_type=hardware.io_type,
        )
        hls_config = copy.deepcopy(hls_config)
        hls_config.setdefault("Model", {}).setdefault("Precision", "fixed<16,6>")
        hls_config["Model"].setdefault("ReuseFactor", 1)
        hls_config["Model"].setdefault("BitExact", None)
        config["HLSConfig"] = hls_config
        if isinstance(model, ModelSource):
            del hls4ml
            graph = model.to_hls(config)
            _widen_exponent_storage(graph)
            _undo_binary_requantization(graph)
            return graph
        config["KerasModel"] = model
        try:
            graph = keras_v2_to_hls(config) if KERAS_MAJOR == 2 else keras_v3_to_hls(
                config, allow_da_fallback=False, allow_v2_fallback=True)
        except Exception as exc:
            raise conversion_error(model, exc) from None
        finally:
            del hls4ml
    _widen_exponent_storage(graph)
    _undo_binary_requantization(graph)
    _check_threshold_scales(model, graph)
    return graph


def _check_threshold_scales(model: Any, graph: Any) -> None:
    """FlowError naming the first Keras BatchNormalization that hls4ml folded into binary/ternary thresholds
    (``BatchNormalizationQuantizedTanh``) with a scale ``gamma / sqrt(moving_variance + epsilon)`` that is not
    positive: hls4ml's thresholds ``x >= -bias / scale`` assume a positive scale (a negative one flips the test)."""
    thresholds = [layer.name for layer in graph.get_layers() if layer.class_name == "BatchNormalizationQuantizedTanh"]
    if not thresholds:
        return
    from flow.hls.layer_map import layer_map

    fused = layer_map(model, graph).fused
    for name in thresholds:
        for part in fused.get(name, []):
            layer = model.get_layer(part)
            if "BatchNormalization" not in type(layer).__name__:
                continue
            values = {v.name.split("/")[-1].split(":")[0]: np.asarray(v) for v in layer.weights}
            var = values.get("moving_variance")
            if var is None:
                continue
            gamma = values.get("gamma", np.ones_like(var))
            scale = np.asarray(gamma, dtype=np.float64) / np.sqrt(np.asarray(var, dtype=np.float64) + layer.epsilon)
            if np.any(scale <= 0):
                k = int(np.flatnonzero(scale <= 0)[0])
                raise FlowError(f"layer {part!r} ({type(layer).__name__}): scale {scale[k]:g} of channel {k} before the "
                                f"binary/ternary activation ({name} in the hls4ml graph) is not positive; hls4ml folds "
                                "them into the threshold test x >= -bias/scale, which a negative scale turns the wrong "
                                "way")


def _undo_binary_requantization(graph: Any) -> None:
    """Give a binary Dense after a ``BatchNormalizationQuantizedTanh`` the weights its model has.

    hls4ml 1.3's ``quantize_dense_output`` pass (``backends/vivado/passes/bn_quant.py``) applies the 1-bit
    ``BinaryQuantizer`` (``w >= 0 ? 1 : 0``) a second time to weights its ONNX (QONNX ``BipolarQuant``) path has
    already turned into the 1-bit codes 0 / 1, so every code becomes 1 (+1) and the layer computes a plain count.
    The weights are set back to the quantizer applied once to the layer's unquantized weights (hls4ml keeps them in
    ``data_unquantized``), which is what the pass means to store.
    """
    from hls4ml.model.quantizers import BinaryQuantizer

    from flow.arith.types import is_xnor

    for layer in graph.get_layers():
        var = getattr(layer, "weights", {}).get("weight")
        inp = layer.get_input_node() if layer.class_name == "Dense" else None
        quantizer = layer.get_attr("weight_quantizer")
        if (var is None or inp is None or inp.class_name != "BatchNormalizationQuantizedTanh"
                or type(quantizer) is not BinaryQuantizer or not is_xnor(var.type.precision)
                or getattr(var, "data_unquantized", None) is None):
            continue
        once = BinaryQuantizer(bits=1)(np.asarray(var.data_unquantized))
        if once.shape == np.shape(var.data):
            var.data = once
            var.nonzeros = int(np.count_nonzero(once))
            var.nzeros = var.data_length - var.nonzeros


def _widen_exponent_storage(graph: Any) -> None:
    """Make hls4ml's power-of-two weight products exact.

    ``nnet::product::weight_exponential`` shifts the input inside ``ap_fixed<2n, n>`` with
    ``n`` = exponent width + input width, so a 2-bit input times 2**-8 loses bits. Widening the
    exponent's storage type (the stored exponents are unchanged) grows ``n`` until every shifted
    input fits: ``n >= input fractional bits + largest right shift`` and
    ``n >= input integer bits + largest left shift + 1``.
    """
    from hls4ml.model.types import ExponentWeightVariable

    for layer in graph.get_layers():
        for var in layer.get_weights():
            if not isinstance(var, ExponentWeightVariable):
                continue
            x = layer.get_input_variable().type.precision
            mags = np.abs(np.asarray(var.data, dtype=np.float64))
            exps = np.log2(mags[mags > 0]) if np.any(mags > 0) else np.zeros(1)
            n_needed = max(x.width - x.integer + max(0, int(-exps.min())), x.integer + max(0, int(exps.max())) + 1)
            var.type.precision.width = max(var.type.precision.width, n_needed - x.width)


def write_and_compile(graph: Any, timeout_s: float | None = None, opt_level: str | None = None) -> CsimBuild:
    """Write the HLS project to the graph's OutputDir and build its C simulation library (g++), within
    ``timeout_s`` seconds (None: no limit) at ``opt_level`` (None: by the model's size), as
    :func:`flow.hls.csim_build.compile_graph` does; returns how the build went (``pending``: the budget ran out,
    the project is written but no library is loaded).

    A model ending in softmax gets its logits layer traced in the same build (:func:`trace_layers`), so
    the comparisons at the logits need no second build."""
    from flow.hls.layer_map import softmax_input

    logits = softmax_input(graph)
    if logits is not None and "_hlsflow_trace_build" not in graph.__dict__:
        trace_layers(graph, [logits])
    return compile_graph(graph, timeout_s, opt_level)


def csim_predict(graph: Any, x: np.ndarray) -> np.ndarray:
    """Run hls4ml's compiled C simulation on ``x`` (batch first); returns float64 outputs, batch first.

    The library runs on a thread with a large stack (:func:`on_large_stack`), on chunks of at most
    :data:`PREDICT_CHUNK` samples (hls4ml calls it once per sample either way); while a large model's prediction
    runs, a progress line on stderr every :data:`flow.hls.csim_build.PROGRESS_TTY_S` s on a terminal
    (:data:`~flow.hls.csim_build.PROGRESS_PIPE_S` s otherwise)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    every = progress_interval()
    t0 = last = time.monotonic()
    parts = []
    for start in range(0, len(x), PREDICT_CHUNK):
        chunk = np.ascontiguousarray(x[start:start + PREDICT_CHUNK])
        y = on_large_stack(lambda c=chunk: graph.predict(c))
        parts.append(np.asarray(y, dtype=np.float64).reshape(len(chunk), -1))
        now = time.monotonic()
        if now - last >= every and start + len(chunk) < len(x):
            last = now
            print(f"  C simulation: {start + len(chunk):,} of {len(x):,} inputs, {now - t0:.0f} s", file=sys.stderr,
                  flush=True)
    return np.concatenate(parts) if parts else np.zeros((0, 0))


def on_large_stack(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on a thread whose stack is :data:`CSIM_STACK_BYTES`; its result, or its exception raised here.

    hls4ml's io_parallel C simulation keeps every layer's arrays on the stack: a Conv1D (256, 8) model with 64
    filters takes an 8 MiB frame, more than the main thread's default stack, and the process would die of a
    segmentation fault in the middle of ``predict``."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["value"] = fn()
        except BaseException as exc:  # handed to the caller's thread
            result["error"] = exc

    previous = threading.stack_size(CSIM_STACK_BYTES)
    try:
        thread = threading.Thread(target=target, name="csim", daemon=True)
        thread.start()
    finally:
        threading.stack_size(previous)
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


def trace_layers(graph: Any, names: list[str]) -> None:
    """Mark graph layers for hls4ml's trace before the project is written and compiled, so that
    :func:`csim_trace` reads them from that build instead of rewriting and recompiling the project."""
    layers = {layer.name: layer for layer in graph.get_layers()}
    for name in names:
        if name not in layers:
            raise FlowError(f"hls4ml trace: no layer {name!r} in the graph; layers: {', '.join(layers)}")
        layers[name].set_attr("trace", True)
    graph.config.trace_output = True
    graph.__dict__["_hlsflow_trace_build"] = set(names)


def csim_trace(graph: Any, x: np.ndarray, layer_name: str) -> np.ndarray:
    """C-simulated output of one graph layer, float64, batch first.

    A layer marked by :func:`trace_layers` before compiling is read from the compiled library; any other
    layer is marked here and hls4ml's ``graph.trace`` rewrites and recompiles the project with its hooks.
    """
    import contextlib
    import hashlib
    import sys

    layers = {layer.name: layer for layer in graph.get_layers()}
    if layer_name not in layers:
        raise FlowError(f"hls4ml trace: no layer {layer_name!r} in the graph; layers: {', '.join(layers)}")
    x = np.ascontiguousarray(x, dtype=np.float64)
    key = hashlib.sha1(x.tobytes()).hexdigest() + str(x.shape)
    cache = graph.__dict__.setdefault("_hlsflow_traces", {})  # hls4ml recompiles for every trace call
    built = layer_name in graph.__dict__.get("_hlsflow_trace_build", set())
    if not layers[layer_name].get_attr("trace", False):
        layers[layer_name].set_attr("trace", True)
        cache.clear()
    if key not in cache:
        with contextlib.redirect_stdout(sys.stderr):  # hls4ml prints progress; keep stdout for results
            cache.clear()
            if built:  # the library already has the trace hooks: hls4ml's trace() without its recompile
                graph.compile = lambda: None
                try:
                    cache[key] = on_large_stack(lambda: graph.trace(x))[1]
                finally:
                    del graph.compile
            else:
                graph.__dict__.pop("_hlsflow_trace_build", None)  # trace() recompiles with the new layer
                cache[key] = on_large_stack(lambda: graph.trace(x))[1]
    traces = cache[key]
    if layer_name not in traces:
        raise FlowError(f"hls4ml trace has no output for layer {layer_name!r}; traced: {', '.join(traces)}")
    return np.asarray(traces[layer_name], dtype=np.float64).reshape(len(x), -1)
