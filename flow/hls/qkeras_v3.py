"""hls4ml 1.3 layer handlers for QKeras v3 (PyPI ``qkeras-v3``) models in hls4ml's Keras-3 frontend.

hls4ml 1.3.0 (the newest release) has no Keras-3 handlers for QKeras layers. Its Keras-3 frontend
can fall back to the Keras-2 handlers, which read QKeras quantizer configs the same way, but the
fallback then adds a separate activation layer for any layer with an ``activation`` attribute and
asserts it is a plain function: a ``QActivation`` (whose activation is a quantizer) fails with
"Activation function for layer ... is not a function", and so does a ``QDense`` with a quantized
activation. These handlers call the same Keras-2 handlers and split a quantized activation into a
``QActivation`` layer, as hls4ml's Keras-2 parser does. :func:`register` adds them to hls4ml's Keras-3
registry (keys ``qkeras.<module>.<class>``); it is called by :mod:`flow.hls.convert` in a Keras-3 worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

QKERAS_LAYERS = {
    "qkeras.qlayers.QActivation": "QActivation",
    "qkeras.qlayers.QDense": "QDense",
    "qkeras.qconvolutional.QConv1D": "QConv1D",
    "qkeras.qconvolutional.QConv2D": "QConv2D",
    "qkeras.qnormalization.QBatchNormalization": "QBatchNormalization",
}
_PLAIN_ACTIVATIONS = ("linear", "relu", "softmax", "sigmoid", "tanh", "elu", "selu", "softplus", "softsign",
                      "hard_sigmoid", "exponential", "gelu", "swish", "silu", "leaky_relu")


class _LayerWeights:
    """The ``data_reader`` hls4ml's Keras-2 handlers expect, over one Keras-3 layer's weights."""

    def __init__(self, layer: Any):
        self.layer = layer

    def get_weights_data(self, layer_name: str, var_name: str) -> np.ndarray | None:
        for w in self.layer.weights:
            if w.name.split("/")[-1].split(":")[0] == var_name:
                return np.array(w)
        return None


def _names(tensors: Sequence[Any]) -> list[str]:
    return [t.name for t in tensors]


def _quantized_activation(activation: Any) -> bool:
    if activation is None:
        return False
    if isinstance(activation, str):
        return activation not in _PLAIN_ACTIVATIONS
    return True  # a serialized quantizer (dict) or quantizer object


def handle(layer: Any, in_tensors: Sequence[Any], out_tensors: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    """hls4ml layer dicts for one QKeras v3 layer: the Keras-2 handler's, plus a QActivation for a quantized activation."""
    from hls4ml.converters.keras_v2_to_hls import layer_handlers

    class_name = QKERAS_LAYERS[f"{type(layer).__module__}.{type(layer).__name__}"]
    config = layer.get_config()
    shapes = [list(t.shape) for t in in_tensors]
    conf, out_shape = layer_handlers[class_name]({"config": config, "class_name": class_name},
                                                 _names(in_tensors), shapes, _LayerWeights(layer))
    conf["input_keras_tensor_names"] = _names(in_tensors)
    conf["output_keras_tensor_names"] = _names(out_tensors)
    activation = config.get("activation") if class_name != "QActivation" else None
    if not _quantized_activation(activation):
        return (conf,)
    between = f"{out_tensors[0].name}_activation"
    conf["output_keras_tensor_names"] = [between]
    conf.pop("activation", None)
    act, _ = layer_handlers["QActivation"](
        {"class_name": "QActivation", "config": {"name": f"{layer.name}_activation", "activation": activation}},
        [conf["name"]], [out_shape], None)
    act["input_keras_tensor_names"] = [between]
    act["output_keras_tensor_names"] = _names(out_tensors)
    return conf, act


def register() -> None:
    """Add :func:`handle` to hls4ml's Keras-3 handler registry for every QKeras v3 layer it covers (idempotent)."""
    from hls4ml.converters.keras_v3 import layer_handlers

    for key in QKERAS_LAYERS:
        layer_handlers.setdefault(key, handle)
