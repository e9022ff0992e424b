"""Keras 2 files whose layer classes only hls4ml's own reader knows, written here as such files are written
(a model config JSON and an HDF5 weights file laid out as Keras saves them), never copied from elsewhere.

- ``binary``/``ternary``: an MLP whose Dense layers are renamed ``BinaryDense``/``TernaryDense`` (the classes of
  the Larq-style binary/ternary MLPs and BNNs hls4ml converts) holding weights those layers hold: +-1, and
  -1/0/+1.
- ``hgq1_proxy``: an HGQ (version 1) proxy model as hls4ml reads it: Dense layers between ``FixedPointQuantizer``
  layers carrying per-tensor (``fusible``) or per-element (heterogeneous) ``keep_negative``/``bits``/``integers``
  arrays, rounding and saturation modes, weights on the quantizer's grid.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

N_IN, HIDDEN, N_OUT = 8, 6, 3


def _dense(name: str, units: int, cls: str = "Dense", activation: str = "linear") -> dict:
    return {"class_name": cls, "config": {"name": name, "trainable": True, "dtype": "float32", "units": units,
                                          "activation": activation, "use_bias": True}}


def _quantizer(name: str, rnd: str, sat: str, fusible: bool) -> dict:
    return {"class_name": "FixedPointQuantizer",
            "config": {"name": name, "trainable": False, "dtype": "float32", "RND": rnd, "SAT": sat,
                       "fusible": fusible, "overrides": None}}


def _sequential(layers: list[dict]) -> dict:
    inp = {"class_name": "InputLayer", "config": {"batch_input_shape": [None, N_IN], "dtype": "float32",
                                                  "sparse": False, "ragged": False, "name": "x"}}
    return {"class_name": "Sequential", "config": {"name": "model", "layers": [inp, *layers]},
            "keras_version": "2.21.0", "backend": "tensorflow"}


def _write(folder: Path, stem: str, arch: dict, weights: dict[str, dict[str, np.ndarray]]) -> Path:
    """``<stem>.json`` and ``<stem>_weights.h5`` (one group per layer, ``<layer>/<layer>/<var>:0``)."""
    import h5py

    path = folder / f"{stem}.json"
    path.write_text(json.dumps(arch))
    with h5py.File(folder / f"{stem}_weights.h5", "w") as f:
        f.attrs["layer_names"] = [k.encode() for k in weights]
        for layer, variables in weights.items():
            g = f.create_group(layer)
            g.attrs["weight_names"] = [f"{layer}/{v}:0".encode() for v in variables]
            for var, data in variables.items():
                g.create_dataset(f"{layer}/{var}:0", data=data)
    return path


def binary_or_ternary(folder: Path, kind: str, seed: int = 0) -> Path:
    """An 8-6-3 MLP (tanh between) of ``BinaryDense`` (weights +-1) or ``TernaryDense`` (-1, 0, +1) layers."""
    rng = np.random.default_rng(seed)
    cls = {"binary": "BinaryDense", "ternary": "TernaryDense"}[kind]
    values = np.array([-1.0, 1.0]) if kind == "binary" else np.array([-1.0, 0.0, 1.0])

    def pick(*shape: int) -> np.ndarray:
        return rng.choice(values, size=shape).astype(np.float32)

    arch = _sequential([_dense("fc1", HIDDEN, cls), {"class_name": "Activation", "config": {
        "name": "act1", "trainable": True, "dtype": "float32", "activation": "tanh"}}, _dense("fc2", N_OUT, cls)])
    weights = {"fc1": {"kernel": pick(N_IN, HIDDEN), "bias": pick(HIDDEN)},
               "act1": {}, "fc2": {"kernel": pick(HIDDEN, N_OUT), "bias": pick(N_OUT)}}
    return _write(folder, f"{kind}_mlp", arch, weights)


def hgq1_proxy(folder: Path, seed: int = 0) -> Path:
    """Input quantizer (per-tensor, fusible) -> Dense -> per-element quantizer (heterogeneous bits, RND/SAT)
    -> ReLU -> per-tensor quantizer -> Dense -> per-tensor quantizer: an HGQ 1 proxy model's shape."""
    rng = np.random.default_rng(seed)

    def kbi(shape: tuple[int, ...], k: int, bits: np.ndarray | int, integers: np.ndarray | int) -> dict:
        full = (1, *shape)
        return {"keep_negative": np.full(full, k, np.int8),  # integer arrays: hls4ml combines them bitwise
                "bits": np.broadcast_to(np.asarray(bits, np.int8), full).copy(),
                "integers": np.broadcast_to(np.asarray(integers, np.int8), full).copy()}

    arch = _sequential([
        _quantizer("q_in", "TRN", "WRAP", True), _dense("fc1", HIDDEN), _quantizer("q1", "RND", "SAT", False),
        {"class_name": "Activation", "config": {"name": "relu1", "trainable": True, "dtype": "float32",
                                                "activation": "relu"}},
        _quantizer("q2", "TRN", "WRAP", True), _dense("fc2", N_OUT), _quantizer("q_out", "RND", "SAT", True)])
    weights = {
        "q_in": kbi((N_IN,), 1, 8, 3),
        "fc1": {"kernel": np.round(rng.standard_normal((N_IN, HIDDEN)) * 8) / 8,
                "bias": np.round(rng.standard_normal(HIDDEN) * 4) / 4},
        "q1": kbi((HIDDEN,), 1, rng.integers(3, 9, HIDDEN), rng.integers(1, 4, HIDDEN)),
        "relu1": {},
        "q2": kbi((HIDDEN,), 0, 6, 3),
        "fc2": {"kernel": np.round(rng.standard_normal((HIDDEN, N_OUT)) * 4) / 4,
                "bias": np.round(rng.standard_normal(N_OUT) * 2) / 2},
        "q_out": kbi((N_OUT,), 1, 10, 5),
    }
    return _write(folder, "hgq1_proxy", arch, weights)


def as_whole_h5(json_path: Path) -> Path:
    """The same model as one ``.h5`` as ``model.save()`` lays it out: ``model_config`` and ``keras_version``
    attributes, the weights under ``model_weights/``."""
    import h5py

    path = json_path.with_name(json_path.stem + "_whole.h5")
    with h5py.File(json_path.with_name(json_path.stem + "_weights.h5"), "r") as src, h5py.File(path, "w") as dst:
        dst.attrs["model_config"] = json_path.read_text()
        dst.attrs["keras_version"] = "2.21.0"
        dst.attrs["backend"] = "tensorflow"
        group = dst.create_group("model_weights")
        for key, value in src.attrs.items():
            group.attrs[key] = value
        for name in src:
            src.copy(src[name], group, name=name)
    return path
