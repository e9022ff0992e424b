"""Shared test helpers: small QKeras models (test_emulate.py, test_emulate_layers.py, test_prune_neurons.py) and a trained
project with generated RTL (test_rtl_sim.py, test_ip.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from flow.keras.env import keras

ROOT = Path(__file__).resolve().parents[1]


def qb(bits: int, integer: int = 0):
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


def dense_model():
    from qkeras import QActivation, QDense, quantized_relu

    K = keras()
    inp = K.Input((6,), name="x_in")
    h = QDense(7, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d1")(inp)
    h = QActivation(quantized_relu(4, 1), name="a1")(h)
    h = QDense(5, kernel_quantizer=qb(5), bias_quantizer=qb(5), name="d2")(h)
    h = QActivation(quantized_relu(6, 2), name="a2")(h)
    h = QDense(3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h)
    return K.Model(inp, h)


def conv_model():
    from qkeras import QActivation, QConv2D, QDense, quantized_relu

    K = keras()
    inp = K.Input((8, 8, 2), name="x_in")
    h = QConv2D(3, (3, 3), kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c1")(inp)
    h = QActivation(quantized_relu(5, 2), name="a1")(h)
    h = K.layers.MaxPooling2D((2, 2), name="p1")(h)
    h = QConv2D(4, (2, 2), kernel_quantizer=qb(5), bias_quantizer=qb(5), name="c2")(h)
    h = QActivation(quantized_relu(6, 2), name="a2")(h)
    h = K.layers.Flatten(name="f1")(h)
    h = QDense(4, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h)
    return K.Model(inp, h)


def binary_model(negative_scale: bool = False):
    """A QKeras binary network: Dense (binary weights) -> BatchNormalization -> binary activation -> Dense (binary
    weights) -> BatchNormalization -> ternary activation -> Dense (ternary weights). hls4ml folds each
    BatchNormalization and activation into a BatchNormalizationQuantizedTanh (binary ``bnbt_bn1``, ternary
    ``bnbt_a2_scale``) and picks its weight_binary, both_binary and weight_ternary products. Seeded BatchNorm
    statistics (positive scales) stand in for training; ``negative_scale``: bn1's channel 0 gets gamma -1."""
    import numpy as np
    from qkeras import QActivation, QDense, binary, ternary

    K = keras()
    inp = K.Input((8,), name="x_in")
    h = QDense(8, kernel_quantizer=binary(alpha=1), use_bias=False, name="d1")(inp)
    h = K.layers.BatchNormalization(name="bn1")(h)
    h = QActivation(binary(alpha=1), name="a1")(h)
    h = QDense(6, kernel_quantizer=binary(alpha=1), use_bias=False, name="d2")(h)
    h = K.layers.BatchNormalization(name="bn2")(h)
    h = QActivation(ternary(alpha=1), name="a2")(h)
    model = K.Model(inp, QDense(3, kernel_quantizer=ternary(alpha=1), use_bias=False, name="d3")(h))
    rng = np.random.default_rng(0)
    for name in ("bn1", "bn2"):
        n = model.get_layer(name).get_weights()[0].size
        gamma = rng.uniform(0.5, 1.5, n)
        if negative_scale and name == "bn1":
            gamma[0] = -1.0
        model.get_layer(name).set_weights([gamma, rng.uniform(-0.5, 0.5, n), rng.uniform(-1, 1, n),
                                           rng.uniform(0.5, 2, n)])
    return model


def binary_cnn_model():
    """A QKeras binary CNN: Conv2D (binary weights) -> BatchNormalization -> binary activation -> Conv2D (binary
    weights, binary data: both_binary) -> BatchNormalization -> binary activation -> Flatten -> Dense (binary)."""
    import numpy as np
    from qkeras import QActivation, QConv2D, QDense, binary

    K = keras()
    inp = K.Input((6, 6, 1), name="x_in")
    h = QConv2D(3, (3, 3), kernel_quantizer=binary(alpha=1), use_bias=False, name="c1")(inp)
    h = K.layers.BatchNormalization(name="bn1")(h)
    h = QActivation(binary(alpha=1), name="a1")(h)
    h = QConv2D(4, (2, 2), kernel_quantizer=binary(alpha=1), use_bias=False, name="c2")(h)
    h = K.layers.BatchNormalization(name="bn2")(h)
    h = QActivation(binary(alpha=1), name="a2")(h)
    h = K.layers.Flatten(name="f")(h)
    model = K.Model(inp, QDense(3, kernel_quantizer=binary(alpha=1), use_bias=False, name="d3")(h))
    rng = np.random.default_rng(0)
    for name in ("bn1", "bn2"):
        n = model.get_layer(name).get_weights()[0].size
        model.get_layer(name).set_weights([rng.uniform(0.5, 1.5, n), rng.uniform(-0.5, 0.5, n),
                                           rng.uniform(-1, 1, n), rng.uniform(0.5, 2, n)])
    return model


def binary_activation_model(ternary_first: bool = False):
    """QKeras binary activations with no BatchNormalization before them: Dense (4-bit weights) -> ``binary`` ->
    Dense (binary weights). hls4ml keeps the activation (``binary_tanh`` into ``ap_int<2>``: -1 / +1) and picks
    ``weight_binary``. ``ternary_first``: a ``ternary(threshold=0.5)`` activation first (hls4ml's TernaryTanh layer,
    for which it writes no C++ call)."""
    from qkeras import QActivation, QDense, binary, ternary

    K = keras()
    inp = K.Input((8,), name="x_in")
    h = QDense(6, kernel_quantizer=qb(4), bias_quantizer=qb(4), name="d1")(inp)
    if ternary_first:
        h = QActivation(ternary(alpha=1, threshold=0.5), name="t1")(h)
        h = QDense(6, kernel_quantizer=qb(4), bias_quantizer=qb(4), name="d2")(h)
    h = QActivation(binary(alpha=1), name="a1")(h)
    return K.Model(inp, QDense(3, kernel_quantizer=binary(alpha=1), use_bias=False, name="d3")(h))


def trained_rtl_project(tmp: Path, name: str, epochs: int, first_units: int | None = None) -> Path:
    """``hlsflow run`` of the shipped spec ``models/<name>.yaml`` with ``epochs`` epochs (RTL stage off;
    ``first_units`` replaces the first layer's width), then ``rtl_project`` without Yosys; returns the
    project folder ``tmp/out/<name>``."""
    from flow.commands.pipeline import run
    from flow.commands.rtl_command import rtl_project

    spec = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text())
    spec["training"]["epochs"] = epochs
    spec["rtl"] = {"enabled": False}
    if first_units is not None:
        spec["model"]["layers"][0]["units"] = first_units
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    run(path, tmp / "out")
    project = tmp / "out" / name
    rtl_project(project, latency_cutoff=5.0, yosys=False)
    return project
