"""A corpus of third-party-style models, built here (never copied from elsewhere), saved the way users
save them (Keras JSON + weights, ``.h5``), each with an hls4ml config made by hls4ml's own
``config_from_keras_model`` at one granularity, written to YAML and read back as users do.

Each entry states what the flow must do with it: ``hlsflow convert`` -> ``hlsflow verify`` (emulator
vs C simulation 0 differences always; C simulation vs model 0 differences where ``exact``), then
``hlsflow rtl`` -> ``hlsflow sim``, or the one-line reason ``hlsflow rtl`` gives (``rtl_reason``), which
the tests assert: when the tracer learns the layer, the test fails and the entry must be updated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from qmodels import qb

from flow.keras.env import hls4ml_sees_keras2, keras, set_seed

DEFAULT_PRECISION = "ap_fixed<16,6>"


def _q():
    import qkeras

    return qkeras


def _randomize_batchnorm(model: Any, seed: int) -> Any:
    """Give BatchNormalization layers non-trivial statistics (as after training), so that folding matters."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if type(layer).__name__ in ("BatchNormalization", "QBatchNormalization"):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.normal(0, 0.3, beta.shape),
                               rng.normal(0, 0.5, mean.shape), rng.uniform(0.5, 2.0, var.shape)])
    return model


def qkeras_jet_mlp() -> Any:
    """Sequential QKeras jet-tagging MLP 16-32-16-5 (no explicit InputLayer), Dropout, softmax."""
    q, L = _q(), keras().layers
    return keras().Sequential([
        q.QDense(32, input_shape=(16,), kernel_quantizer=qb(6), bias_quantizer=qb(6), name="fc1"),
        q.QActivation(q.quantized_relu(6, 2), name="relu1"),
        L.Dropout(0.25, name="drop1"),
        q.QDense(16, kernel_quantizer=qb(6), bias_quantizer=qb(6), activation=q.quantized_relu(6, 2), name="fc2"),
        q.QDense(5, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="fc3"),
        L.Activation("softmax", name="softmax"),
    ])


def qkeras_mnist_cnn() -> Any:
    """Functional QKeras CNN (8x8x1): Conv2D, ReLU, MaxPooling2D, Flatten, Dropout, Dense, softmax."""
    q, K = _q(), keras()
    inp = K.Input((8, 8, 1), name="input_1")
    h = q.QConv2D(4, (3, 3), kernel_quantizer=qb(6), bias_quantizer=qb(6), name="conv1")(inp)
    h = q.QActivation(q.quantized_relu(6, 2), name="relu1")(h)
    h = K.layers.MaxPooling2D((2, 2), name="pool1")(h)
    h = K.layers.Flatten(name="flatten")(h)
    h = K.layers.Dropout(0.2, name="drop")(h)
    h = q.QDense(10, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="dense_out")(h)
    out = K.layers.Activation("softmax", name="softmax")(h)
    return K.Model(inp, out)


def qkeras_conv1d() -> Any:
    """Functional QKeras Conv1D model (32 samples x 2 channels): Conv1D, ReLU, MaxPooling1D, Flatten, Dense."""
    q, K = _q(), keras()
    inp = K.Input((32, 2), name="wave")
    h = q.QConv1D(4, 3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c1")(inp)
    h = q.QActivation(q.quantized_relu(6, 2), name="r1")(h)
    h = K.layers.MaxPooling1D(2, name="p1")(h)
    h = K.layers.Flatten(name="flat")(h)
    out = q.QDense(3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="head")(h)
    return K.Model(inp, out)


def float_bn_mlp() -> Any:
    """Sequential float MLP of Dense + BatchNormalization (+ ReLU) blocks ending in BatchNormalization -> softmax."""
    L = keras().layers
    return _randomize_batchnorm(keras().Sequential([
        L.Dense(32, input_shape=(16,), name="fc1"), L.BatchNormalization(name="bn1"), L.Activation("relu", name="relu1"),
        L.Dense(16, name="fc2"), L.BatchNormalization(name="bn2"), L.Activation("relu", name="relu2"),
        L.Dense(5, name="fc4"), L.BatchNormalization(name="bn4"), L.Activation("softmax", name="softmax"),
    ]), 3)


def float_jet_conv2d() -> Any:
    """Functional float Conv2D jet-tagging-style model (8x8x1) whose last Dense has a fused softmax."""
    K = keras()
    L = K.layers
    inp = K.Input((8, 8, 1), name="input_1")
    h = L.Conv2D(4, (3, 3), activation="relu", name="conv1")(inp)
    h = L.MaxPooling2D((2, 2), name="pool1")(h)
    h = L.Flatten(name="flatten")(h)
    out = L.Dense(5, activation="softmax", name="output_softmax")(h)
    return K.Model(inp, out)


def float_conv_bn() -> Any:
    """Functional float Conv2D with BatchNormalization folded into it, AveragePooling2D, Dense (linear output)."""
    K = keras()
    L = K.layers
    inp = K.Input((6, 6, 2), name="img")
    h = L.Conv2D(3, (3, 3), name="conv")(inp)
    h = L.BatchNormalization(name="conv_bn")(h)
    h = L.Activation("relu", name="conv_relu")(h)
    h = L.AveragePooling2D((2, 2), name="avg")(h)
    h = L.Flatten(name="flat")(h)
    out = L.Dense(4, name="logits")(h)
    return _randomize_batchnorm(K.Model(inp, out), 5)


@dataclass(frozen=True)
class Entry:
    """One corpus model: its builder, file format (``json`` = Keras JSON + ``_weights.h5``, or ``h5``),
    config granularity, whether it is a QKeras model, whether C-sim must equal the model (``exact``) and
    the reason ``hlsflow rtl`` refuses it (None: RTL and simulation must pass)."""

    name: str
    build: Callable[[], Any]
    fmt: str
    granularity: str
    qkeras: bool
    exact: bool
    rtl_reason: str | None


CORPUS = [
    Entry("qkeras_jet_mlp", qkeras_jet_mlp, "json", "name", True, True, None),
    # hls4ml 1.3 keys a type-granularity config by the Keras class (QDense) but looks it up by the graph's
    # (Dense): the accumulators fall back to the ap_fixed<16,6> default and round every product
    Entry("qkeras_jet_mlp_type", qkeras_jet_mlp, "h5", "type", True, False, None),
    Entry("qkeras_mnist_cnn", qkeras_mnist_cnn, "h5", "name", True, True, None),
    Entry("qkeras_conv1d", qkeras_conv1d, "json", "name", True, True, None),
    Entry("float_bn_mlp", float_bn_mlp, "h5", "name", False, False, None),
    Entry("float_bn_mlp_model", float_bn_mlp, "json", "model", False, False, None),
    Entry("float_jet_conv2d", float_jet_conv2d, "h5", "name", False, False, None),
    Entry("float_conv_bn", float_conv_bn, "json", "type", False, False, None),
]
BY_NAME = {e.name: e for e in CORPUS}


def save_model(model: Any, folder: Path, name: str, fmt: str) -> Path:
    """Save as users do: ``name.json`` + ``name_weights.h5``, or ``name.h5``; returns the model file."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        path = folder / f"{name}.json"
        path.write_text(model.to_json())
        model.save_weights(str(folder / f"{name}_weights.h5"))
        return path
    path = folder / f"{name}.h5"
    model.save(path)
    return path


def write_hls4ml_config(model: Any, path: Path, granularity: str, backend: str = "Vitis",
                        io_type: str = "io_parallel") -> Path:
    """hls4ml's own ``config_from_keras_model`` at ``granularity``, in a YAML file as users keep it."""
    with hls4ml_sees_keras2() as hls4ml:
        cfg = hls4ml.utils.config_from_keras_model(model, granularity=granularity, backend=backend,
                                                   default_precision=DEFAULT_PRECISION)
    path.write_text(yaml.safe_dump({"Backend": backend, "IOType": io_type, "HLSConfig": cfg}, sort_keys=False))
    return path


def materialize(entry: Entry, folder: Path, seed: int = 0) -> tuple[Path, Path]:
    """Build ``entry`` (seeded weights), save it and its config; returns ``(model file, config file)``."""
    set_seed(seed)
    model = entry.build()
    model.compile()
    path = save_model(model, folder, entry.name, entry.fmt)
    return path, write_hls4ml_config(model, folder / f"{entry.name}_hls4ml.yml", entry.granularity)
