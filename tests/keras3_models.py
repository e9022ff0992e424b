"""Third-party-style Keras 3 models for the tests, built as their users build them.

Run in a Keras-3 worker environment (``flow.keras.frontends.worker_env``), never imported by pytest
(QKeras v3 and HGQ2 cannot be imported next to QKeras 0.9):

    python tests/keras3_models.py OUT_DIR NAME [NAME ...]

writes ``OUT_DIR/NAME.keras`` for each model. QKeras v3 quantizers use ``alpha=1`` (no learned
scale), so hls4ml derives every precision and the C simulation equals the model; the HGQ2 models
train for one epoch on random data so their learned bit widths are not the initial ones, with
per-tensor activation quantizers (hls4ml folds those into the layers' result types), and one with HGQ2's
default per-element activation quantizers.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np


def qkeras_v3_mlp(keras):
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    w, b = quantized_bits(6, 0, alpha=1), quantized_bits(8, 3, alpha=1)
    inp = keras.Input((16,), name="inputs")
    x = QDense(12, kernel_quantizer=w, bias_quantizer=b, activation=quantized_relu(6, 2), name="fc1")(inp)
    x = QDense(8, kernel_quantizer=w, bias_quantizer=b, name="fc2")(x)
    x = QActivation(quantized_relu(8, 3), name="relu2")(x)
    x = QDense(4, kernel_quantizer=w, bias_quantizer=b, name="fc3")(x)
    return keras.Model(inp, x, name="qkeras_v3_mlp")


def qkeras_v3_cnn(keras):
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    w, b = quantized_bits(6, 0, alpha=1), quantized_bits(8, 3, alpha=1)
    return keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        QConv2D(4, (3, 3), kernel_quantizer=w, bias_quantizer=b, name="conv1"),
        QActivation(quantized_relu(6, 2), name="relu1"),
        keras.layers.MaxPooling2D((2, 2), name="pool1"),
        keras.layers.Flatten(name="flat"),
        QDense(5, kernel_quantizer=w, bias_quantizer=b, name="fc1"),
    ], name="qkeras_v3_cnn")


def keras3_float_softmax(keras):
    return keras.Sequential([
        keras.Input((10,), name="features"),
        keras.layers.Dense(8, activation="relu", name="fc1"),
        keras.layers.Dense(3, activation="softmax", name="fc2"),
    ], name="keras3_float_softmax")


def _hgq2_scopes():
    from hgq.config import LayerConfigScope, QuantizerConfigScope

    return (QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"),
            QuantizerConfigScope(place="datalane", default_q_type="kif", overflow_mode="SAT",
                                 heterogeneous_axis=(), homogeneous_axis=None),
            LayerConfigScope(enable_ebops=True, beta0=1e-5))


def _fit_briefly(model, in_shape, n_out):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((256, *in_shape)).astype(np.float32)
    model.compile("adam", "mse")
    model.fit(x, rng.standard_normal((256, n_out)).astype(np.float32), epochs=1, batch_size=32, verbose=0)
    return model


def hgq2_mlp(keras):
    from hgq.layers import QDense

    a, b, c = _hgq2_scopes()
    with a, b, c:
        model = keras.Sequential([keras.Input((16,), name="inputs"), QDense(8, activation="relu", name="fc1"),
                                  QDense(4, name="fc2")], name="hgq2_mlp")
    return _fit_briefly(model, (16,), 4)


def hgq2_cnn(keras):
    from hgq.layers import QConv2D, QDense

    a, b, c = _hgq2_scopes()
    with a, b, c:
        model = keras.Sequential([keras.Input((8, 8, 1), name="image"),
                                  QConv2D(3, (3, 3), activation="relu", name="conv1"),
                                  keras.layers.Flatten(name="flat"), QDense(4, name="fc1")], name="hgq2_cnn")
    return _fit_briefly(model, (8, 8, 1), 4)


def hgq2_mlp_heterogeneous(keras):
    """HGQ2's default activation quantizers: one bit width per element (hls4ml keeps them as a
    FixedPointQuantizer layer: every element cast to its own type)."""
    from hgq.config import LayerConfigScope, QuantizerConfigScope
    from hgq.layers import QDense

    with QuantizerConfigScope(place="all", default_q_type="kbi", overflow_mode="SAT_SYM"), \
            LayerConfigScope(enable_ebops=True, beta0=1e-5):
        model = keras.Sequential([keras.Input((16,), name="inputs"), QDense(8, activation="relu", name="fc1"),
                                  QDense(4, name="fc2")], name="hgq2_mlp_heterogeneous")
    model = _fit_briefly(model, (16,), 4)
    rng = np.random.default_rng(2)  # one epoch barely moves the bit widths: give every element its own
    for w in model.weights:
        if "_iq/" in w.path and w.path.endswith("/b"):
            w.assign(rng.integers(3, 9, tuple(w.shape)).astype(w.dtype))
    return model


MODELS = {f.__name__: f for f in (qkeras_v3_mlp, qkeras_v3_cnn, keras3_float_softmax, hgq2_mlp, hgq2_cnn,
                                  hgq2_mlp_heterogeneous)}


def main(argv: list[str]) -> None:
    import keras

    out = Path(argv[0])
    out.mkdir(parents=True, exist_ok=True)
    for name in argv[1:]:
        keras.utils.set_random_seed(0)
        MODELS[name](keras).save(out / f"{name}.keras")


if __name__ == "__main__":
    main(sys.argv[1:])
