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


def trained_rtl_project(tmp: Path, name: str, epochs: int, first_units: int | None = None) -> Path:
    """``hlsflow run`` of the shipped spec ``models/<name>.yaml`` with ``epochs`` epochs (RTL stage off;
    ``first_units`` replaces the first layer's width), then ``rtl_project`` without Yosys; returns the
    project folder ``tmp/out/<name>``."""
    from flow.pipeline import run
    from flow.rtl.generate import rtl_project

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
