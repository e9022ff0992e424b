"""Small QKeras models shared by the emulator tests (test_emulate.py, test_emulate_layers.py)."""

from __future__ import annotations

from flow.keras_env import keras


def qb(bits: int, integer: int = 0):
    from qkeras import quantized_bits

    return quantized_bits(bits, integer, alpha=1)


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
