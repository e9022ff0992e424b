"""Build the float baseline and the QKeras (quantization-aware) model from a spec's layer list.

QKeras conventions: ``quantized_bits(bits, integer, alpha=1)`` is signed with ``integer`` bits
excluding the sign, i.e. ``ap_fixed<bits, integer+1>``; ``quantized_relu(bits, integer)`` is
``ap_ufixed<bits, integer>``. ``alpha=1`` (no learned scale) keeps the hardware bit-exact.
"""

from __future__ import annotations

import re
from typing import Any

from flow.core.errors import FlowError
from flow.keras.env import keras, qkeras_objects
from flow.spec import QUANTIZER_NAMES, Layer, Quant, Spec

INPUT_NAME = "inputs"


def _quantizer(expr: str | None, default: str) -> Any:
    """Instantiate a QKeras quantizer from a validated expression such as ``quantized_po2(4, 1)``."""
    objects = qkeras_objects()
    namespace = {name: objects[name] for name in QUANTIZER_NAMES}
    text = expr or default
    if not re.match(r"^[a-z_0-9]+\([^()]*\)$", text.replace(" ", "")):
        raise FlowError(f"invalid quantizer expression {text!r}")
    try:
        return eval(text, {"__builtins__": {}}, namespace)  # noqa: S307 - restricted to QKeras quantizers
    except Exception as exc:
        raise FlowError(f"invalid quantizer {text!r}: {exc}") from None


def weight_quantizers(q: Quant) -> dict[str, Any]:
    return {
        "kernel_quantizer": _quantizer(q.weight_quantizer, f"quantized_bits({q.weight_bits},{q.weight_integer},alpha=1)"),
        "bias_quantizer": _quantizer(q.bias_quantizer, f"quantized_bits({q.bias_bits},{q.bias_integer},alpha=1)"),
    }


def activation_quantizer(q: Quant) -> Any:
    return _quantizer(q.activation_quantizer, f"quantized_relu({q.activation_bits},{q.activation_integer})")


def _activation(x: Any, layer: Layer, quantized: bool, name: str) -> Any:
    k = keras()
    act = layer.params.get("activation", "linear")
    if act == "linear":
        return x
    if act == "softmax":
        return k.layers.Activation("softmax", name=name)(x)
    if quantized:
        from qkeras import QActivation

        return QActivation(activation_quantizer(layer.quant), name=name)(x)
    return k.layers.Activation("relu", name=name)(x)


def build_model(spec: Spec, quantized: bool) -> Any:
    """The spec's network as a tf_keras Model: QKeras layers when ``quantized``, plain Keras otherwise.

    Layer names are the spec's names (activations get ``<name>_act``) in both models.
    """
    k = keras()
    from qkeras import QConv2D, QDense

    x = inputs = k.Input(shape=spec.dataset.input_shape, name=INPUT_NAME)
    for layer in spec.layers:
        p = layer.params
        try:
            if layer.type == "dense":
                if len(x.shape) != 2:
                    raise FlowError(f"layer {layer.name!r} (dense) needs a flat input, got shape {tuple(x.shape[1:])}; "
                                    "add a flatten layer before it")
                if quantized:
                    x = QDense(p["units"], use_bias=p["use_bias"], name=layer.name, **weight_quantizers(layer.quant))(x)
                else:
                    x = k.layers.Dense(p["units"], use_bias=p["use_bias"], name=layer.name)(x)
                x = _activation(x, layer, quantized, f"{layer.name}_act")
            elif layer.type == "conv2d":
                if len(x.shape) != 4:
                    raise FlowError(f"layer {layer.name!r} (conv2d) needs an input of shape (H, W, C), "
                                    f"got {tuple(x.shape[1:])}; set dataset.input_shape to e.g. [8, 8, 1]")
                kwargs = dict(kernel_size=p["kernel_size"], strides=p["strides"], padding=p["padding"],
                              use_bias=p["use_bias"], name=layer.name)
                if quantized:
                    x = QConv2D(p["filters"], **kwargs, **weight_quantizers(layer.quant))(x)
                else:
                    x = k.layers.Conv2D(p["filters"], **kwargs)(x)
                x = _activation(x, layer, quantized, f"{layer.name}_act")
            elif layer.type in ("maxpool2d", "avgpool2d"):
                cls = k.layers.MaxPooling2D if layer.type == "maxpool2d" else k.layers.AveragePooling2D
                x = cls(pool_size=p["pool_size"], strides=p["strides"], name=layer.name)(x)
            elif layer.type == "batchnorm":
                x = k.layers.BatchNormalization(name=layer.name)(x)
            elif layer.type == "flatten":
                x = k.layers.Flatten(name=layer.name)(x)
            elif layer.type == "dropout":
                x = k.layers.Dropout(p["rate"], name=layer.name)(x)
            elif layer.type == "activation":
                x = _activation(x, layer, quantized, layer.name)
        except ValueError as exc:  # Keras shape errors, e.g. a kernel larger than its input
            raise FlowError(f"layer {layer.name!r} ({layer.type}): {exc}") from None
    if len(x.shape) != 2:
        raise FlowError(f"the last layer must output a flat vector of class scores, got shape {tuple(x.shape[1:])}")
    return k.Model(inputs, x, name=spec.name + ("_qkeras" if quantized else "_float"))


def ends_in_softmax(spec: Spec) -> bool:
    return spec.layers[-1].params.get("activation") == "softmax"
