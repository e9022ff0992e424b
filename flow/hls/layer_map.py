"""Which hls4ml graph layer holds which Keras layer's output, after hls4ml's optimizers fused or removed layers.

hls4ml's Keras-2 frontend (``keras_v2_to_hls``) and its optimizer passes change the layer list:

* a layer with an ``activation`` argument (``Dense(..., activation='relu')``, ``QDense(...,
  activation=quantized_relu(6))``) is split into the layer (pre-activation, same name) and an
  activation layer named ``<name>_<activation>``; a ``linear`` one is removed again;
* Dropout is skipped by the parser; BatchNormalization after Dense/Conv is folded into their weights
  (``fuse_batchnorm``); linear activations and QKeras ``quantized_bits`` activations are merged into the
  layer before them (the layer takes their output type); Flatten may be removed in ``io_stream``;
* a Sequential model's input is a layer ``<first layer>_input`` that ``model.layers`` does not list;
* a BatchNormalization followed by a binary or ternary activation (QKeras ``binary``/``ternary``) becomes one
  ``BatchNormalizationQuantizedTanh`` layer (``bnbt_<name>``) that consumes the layer before the
  BatchNormalization and holds the activation's output (the BatchNormalization's own output exists nowhere).

A removed or fused Keras layer's output is held by the graph layer that holds its input; when several
Keras layers end up in one graph layer, that layer holds the *last* one's output (``fc4`` then
``bn4`` fused: the graph's ``fc4`` holds ``bn4``'s values, Keras ``fc4``'s own output exists nowhere).
:func:`layer_map` records this once; every stage comparison (C simulation vs model, emulator vs
C simulation, the layer-by-layer doctor, RTL simulation, ``hlsflow rtl --upto``) goes through it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flow.core.errors import FlowError


@dataclass(frozen=True)
class LayerMap:
    """Keras layers <-> hls4ml graph layers of one converted model.

    ``keras_to_graph``: Keras layer (and input) name -> graph layer holding that layer's output (None:
    it cannot be placed, e.g. a removed layer with several inputs). ``graph_to_keras``: graph layer ->
    Keras layer whose output it holds (the last of the Keras layers it absorbed). ``fused``: graph layer ->
    Keras layers hls4ml removed or folded into it. ``pre_activation``: graph layer -> Keras layer whose
    pre-activation value it holds (the linear part hls4ml split off a layer with an ``activation``).
    ``graph_layers``: graph layer names in graph order. ``output``: the graph's output layer. ``logits``:
    the graph layer whose output feeds a final softmax (None when the model has none).
    """

    keras_to_graph: dict[str, str | None]
    graph_to_keras: dict[str, str]
    fused: dict[str, list[str]]
    pre_activation: dict[str, str]
    graph_layers: list[str]
    output: str
    logits: str | None

    @property
    def compare_layer(self) -> str:
        """Where outputs are compared with the model: the logits of a softmax model, else the output layer."""
        return self.logits or self.output

    def describe(self, graph_layer: str) -> str:
        """``fc4 (logits, before softmax)``-style label of a comparison point."""
        return f"{graph_layer} (logits, before softmax)" if graph_layer == self.logits else graph_layer

    def graph_layer(self, name: str) -> str:
        """The graph layer for ``name``, a graph layer or a Keras layer name; FlowError if neither."""
        if name in self.graph_layers:
            return name
        mapped = self.keras_to_graph.get(name)
        if mapped is not None:
            return mapped
        known = ", ".join(self.graph_layers)
        if name in self.keras_to_graph:
            raise FlowError(f"Keras layer {name!r} has no counterpart in the hls4ml graph (layers: {known})")
        raise FlowError(f"no layer named {name!r} in the model or its hls4ml graph (graph layers: {known})")

    def reference(self, graph_layer: str) -> tuple[str, bool] | None:
        """The Keras layer whose values ``graph_layer`` holds and whether it is that layer's
        pre-activation; None for graph layers with no Keras counterpart (e.g. io_stream clones)."""
        if graph_layer in self.pre_activation:
            return self.pre_activation[graph_layer], True
        if graph_layer in self.graph_to_keras:
            return self.graph_to_keras[graph_layer], False
        return None


# Keras layers hls4ml folds into a BatchNormalizationQuantizedTanh (the BatchNormalization and the activation)
THRESHOLD_PARTS = ("BatchNormalization", "QBatchNormalization", "Activation", "QActivation")


def _inbound_names(layer: Any) -> list[str]:
    names = []
    for node in layer.inbound_nodes[:1]:
        inbound = node.inbound_layers
        for lay in inbound if isinstance(inbound, (list, tuple)) else [inbound]:
            names.append(lay.name)
    return names


def is_softmax(layer: Any) -> bool:
    """An hls4ml graph layer computing softmax (a Softmax layer or an Activation with ``softmax``)."""
    return "Softmax" in type(layer).__name__ or layer.get_attr("activation") == "softmax"


def softmax_input(graph: Any) -> str | None:
    """The graph layer feeding the graph's final softmax (the logits), or None when it ends otherwise."""
    layers = {layer.name: layer for layer in graph.get_layers()}
    producer = {out: layer.name for layer in layers.values() for out in layer.outputs}
    outputs = list(graph.outputs)
    out = layers.get(producer.get(outputs[0], outputs[0])) if len(outputs) == 1 else None
    if out is None or not is_softmax(out):
        return None
    srcs = [t for t in out.inputs if t]
    return producer.get(srcs[0]) if srcs else None


def layer_map(model: Any, graph: Any) -> LayerMap:
    """Map ``model``'s layers (Keras 2 / QKeras) onto hls4ml's converted ``graph`` (see the module docstring)."""
    layers = list(graph.get_layers())
    names = [layer.name for layer in layers]
    by_name = {layer.name: layer for layer in layers}
    producer = {out: layer.name for layer in layers for out in layer.outputs}
    consumers: dict[str, list[str]] = {}
    for layer in layers:
        for tensor in layer.inputs:
            if tensor in producer:
                consumers.setdefault(producer[tensor], []).append(layer.name)
    keras_names = {layer.name for layer in model.layers} | set(getattr(model, "input_names", []))

    k2g: dict[str, str | None] = {}
    g2k: dict[str, str] = {}
    fused: dict[str, list[str]] = {}
    pre: dict[str, str] = {}
    for name in getattr(model, "input_names", []):
        if name in by_name:
            k2g[name] = g2k[name] = name
    for klayer in model.layers:
        if klayer.name in k2g:
            continue
        if klayer.name in by_name:
            target = klayer.name
            # the activation hls4ml split off this layer: a consumer named <name>_<activation>
            acts = [c for c in consumers.get(target, []) if c.startswith(target + "_") and c not in keras_names]
            if len(acts) == 1:
                pre[target] = klayer.name
                target = acts[0]
        else:
            inbound = _inbound_names(klayer)
            target = k2g.get(inbound[0]) if len(inbound) == 1 else None
            if target is not None and type(klayer).__name__ in THRESHOLD_PARTS:
                thresholds = [c for c in consumers.get(target, [])
                              if by_name[c].class_name == "BatchNormalizationQuantizedTanh"]
                target = thresholds[0] if len(thresholds) == 1 else target
            if target is not None:
                fused.setdefault(target, []).append(klayer.name)
        k2g[klayer.name] = target
        if target is not None:
            g2k[target] = klayer.name
    outputs = list(graph.outputs)
    if len(outputs) != 1:
        raise FlowError(f"only single-output models are supported; this graph has {len(outputs)} outputs")
    out = producer.get(outputs[0], outputs[0])
    logits = softmax_input(graph)
    return LayerMap(keras_to_graph=k2g, graph_to_keras=g2k, fused=fused, pre_activation=pre, graph_layers=names,
                    output=out, logits=logits)


def config_names_report(hls_config: dict, lmap: LayerMap) -> tuple[list[str], list[str]]:
    """Names in ``HLSConfig.LayerName`` that the graph lacks: ``(absorbed, unknown)``.

    ``absorbed``: Keras layers hls4ml removed or fused (Dropout, BatchNormalization folded into Dense, ...)
    and the ``<layer>_<activation>`` names hls4ml gives split-off activations that its optimizers removed
    again (``fc1_linear``); their settings have no layer to apply to. ``unknown``: names that match
    nothing in the model or the graph (typos, another model's config).
    """
    absorbed, unknown = [], []
    keras_names = set(lmap.keras_to_graph)
    for name in hls_config.get("LayerName", {}) or {}:
        if name in lmap.graph_layers:
            continue
        if name in keras_names or any(name.startswith(k + "_") for k in keras_names):
            absorbed.append(name)
        else:
            unknown.append(name)
    return sorted(absorbed), sorted(unknown)
