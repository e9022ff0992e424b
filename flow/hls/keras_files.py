"""Keras 2 files whose layer classes only hls4ml's own reader knows, converted from the file itself.

hls4ml's Keras-2 converter reads a model three ways: from a Keras model object, or from the files
(``KerasJson`` + ``KerasH5`` weights, or a whole-model ``KerasH5``): it parses the architecture JSON and
reads every weight with h5py (``hls4ml.converters.keras_v2_to_hls.KerasFileReader``) and never builds a
Keras layer. Its handlers include classes Keras cannot build without the code that defined them:
``BinaryDense``/``TernaryDense`` (binary and ternary weights, ``hls4ml.model.quantizers``), GarNet, and
HGQ 1 proxy layers (``FixedPointQuantizer``, ``UnaryLUT``). When Keras refuses such a file
(:class:`flow.keras.model_io.UnknownClasses`) and every unknown class has a handler that ships with hls4ml
(a handler a user's ``--custom-objects`` file registered does not count: then Keras needs that file too),
:func:`read_with_hls4ml` gives a :class:`KerasFile` and the flow carries on from hls4ml's graph. The
model-side comparison is then unavailable (no framework runs the model) and says so;
``--custom-objects`` brings the Keras model back.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.hls.sources import ModelSource
from flow.keras.env import hls4ml_sees_keras2
from flow.keras.model_io import UnknownClasses, layer_classes

JSON_FILE, WEIGHTS_FILE, H5_FILE = "model.json", "model_weights.h5", "model.h5"  # the copies in a project
# classes hls4ml's reader converts but the emulator and the RTL trace cannot express (no description in
# flow/arith/layers): refused before anything is written, naming the layer
EMULATOR_LACKS = {
    "GarNet": "GarNet (a graph layer over a vertex-count input: its aggregation divides by a run-time vertex "
              "count and uses hls4ml's exponential tables) has no description in the emulator",
    "GarNetStack": "GarNetStack (stacked GarNet layers) has no description in the emulator",
}


def hls4ml_handles(cls: str) -> bool:
    """Whether a handler shipped with hls4ml converts Keras class ``cls`` (not one a user registered)."""
    with hls4ml_sees_keras2():
        from hls4ml.converters.keras_v2_to_hls import get_layer_handlers

        handler = get_layer_handlers().get(cls)
    return handler is not None and getattr(handler, "__module__", "").startswith("hls4ml.")


class KerasFile(ModelSource):
    """A Keras 2 JSON + weights ``.h5`` or whole-model ``.h5`` read by hls4ml's own file reader.

    ``arch``: the model config; ``weights``: the ``.h5`` with the weights (the file itself for a whole-model
    ``.h5``); ``unknown``: the classes Keras could not build (the reason the model side is unavailable).
    """

    def __init__(self, path: Path, weights: Path, arch: dict[str, Any], unknown: list[str]) -> None:
        self.arch, self.weights, self.unknown = arch, Path(weights), list(unknown)
        name, shape = _input_of(arch, Path(path))
        super().__init__(path, shape, name)

    @property
    def reference_unavailable(self) -> str:
        return (f"Keras cannot build layer class{'es' if len(self.unknown) > 1 else ''} "
                f"{', '.join(self.unknown)} without the code that defines "
                f"{'them' if len(self.unknown) > 1 else 'it'}: converted with hls4ml's own file reader; "
                f"pass that code with --custom-objects module.py to compare with the model")

    @contextlib.contextmanager
    def _source(self) -> Iterator[dict[str, str]]:
        if self.path.suffix == ".json":
            yield {"KerasJson": str(self.path), "KerasH5": str(self.weights)}
        else:
            yield {"KerasH5": str(self.path)}

    def hls4ml_config(self, backend: str) -> dict[str, Any]:
        with hls4ml_sees_keras2() as hls4ml, self._source() as source:
            from hls4ml.converters.keras_v2_to_hls import KerasFileReader

            reader = KerasFileReader(source)
            saved = hls4ml.converters.KerasModelReader
            # hls4ml's config_from_keras_model takes a model config dict, but reads its weights through a
            # KerasModelReader of that dict; the file reader is what reads this model's weights
            hls4ml.converters.KerasModelReader = lambda _arch: reader
            try:
                return hls4ml.utils.config_from_keras_model(self.arch, granularity="name", backend=backend)
            except Exception as exc:  # noqa: BLE001 - hls4ml raises many kinds for a model it cannot read
                raise FlowError(f"{self.path}: hls4ml cannot convert this model: {type(exc).__name__}: {exc}") from None
            finally:
                hls4ml.converters.KerasModelReader = saved

    def to_hls(self, config: dict[str, Any]) -> Any:
        with hls4ml_sees_keras2(), self._source() as source:
            from hls4ml.converters import keras_v2_to_hls

            try:
                return keras_v2_to_hls({**config, **source})
            except Exception as exc:  # noqa: BLE001
                raise FlowError(f"{self.path}: hls4ml cannot convert this model: {type(exc).__name__}: {exc}") from None

    def save(self, folder: Path) -> str:
        if self.path.suffix == ".json":
            (folder / JSON_FILE).write_text(json.dumps(self.arch))
            shutil.copyfile(self.weights, folder / WEIGHTS_FILE)
            return JSON_FILE
        shutil.copyfile(self.path, folder / H5_FILE)
        return H5_FILE


def _input_of(arch: dict[str, Any], path: Path) -> tuple[str, tuple[int, ...]]:
    """The model's single input: its name as hls4ml names it and the shape of one sample."""
    cfg = arch.get("config") or {}
    layers = cfg.get("layers") or []
    if not layers:
        raise FlowError(f"{path}: the model config has no layers")
    first = layers[0]
    if first.get("class_name") != "InputLayer":  # a Sequential model without an InputLayer entry
        shape = first.get("config", {}).get("batch_input_shape")
        name = f"{first.get('config', {}).get('name', 'input')}_input"
    else:
        shape = first["config"].get("batch_input_shape") or first["config"].get("batch_shape")
        name = first["config"].get("name") or first.get("name")
    inputs = cfg.get("input_layers")
    if isinstance(inputs, list) and inputs and isinstance(inputs[0], list) and len(inputs) != 1:
        raise FlowError(f"{path}: the model has {len(inputs)} inputs; only single-input models are supported")
    if not shape or any(d is None for d in shape[1:]):
        raise FlowError(f"{path}: layer {first.get('config', {}).get('name')!r}: the input shape is not fixed "
                        f"({shape}); hls4ml needs every dimension but the batch")
    return str(name), tuple(int(d) for d in shape[1:])


def _refuse_what_the_emulator_lacks(path: Path) -> None:
    """FlowError naming the first layer of a class in :data:`EMULATOR_LACKS`."""
    from flow.keras.model_io import saved_config

    stack = [saved_config(path)]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            cls = str(item.get("class_name", "")).split(">")[-1]
            if cls in EMULATOR_LACKS and isinstance(item.get("config"), dict):
                raise FlowError(f"{path}: layer {item['config'].get('name', '?')!r}: {EMULATOR_LACKS[cls]}; hlsflow "
                                f"checks every conversion against it, so it cannot take this model")
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def read_with_hls4ml(refusal: UnknownClasses, weights: str | Path | None = None) -> KerasFile:
    """The file Keras refused (``refusal``) as a :class:`KerasFile`, when hls4ml's own handlers know every class
    Keras lacks; otherwise ``refusal`` itself (the one-line error naming the class and ``--custom-objects``)."""
    from flow.keras.model_io import find_weights

    path = Path(refusal.path)
    if not all(hls4ml_handles(c) for c in refusal.classes):
        raise refusal
    _refuse_what_the_emulator_lacks(path)
    if path.suffix == ".json":
        arch = json.loads(path.read_text())
        wpath = Path(weights) if weights else find_weights(path)
        if wpath is None or not wpath.is_file():
            raise FlowError(f"{path}: Keras JSON needs its weights: pass --weights FILE.h5 "
                            f"(looked for {path.stem}_weights.h5 beside it)")
    else:
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        arch = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        wpath = path
    if not isinstance(arch, dict) or not layer_classes(arch):
        raise refusal
    return KerasFile(path, wpath, arch, refusal.classes)
