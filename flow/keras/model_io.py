"""Load existing Keras 2 / QKeras models: ``.h5``, ``.keras``, or Keras JSON + weights ``.h5``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flow.errors import FlowError
from flow.keras.env import keras, qkeras_objects


def find_weights(json_path: Path) -> Path | None:
    """The weights file conventionally beside a Keras JSON: ``<stem>_weights.h5`` or ``<stem>.h5``."""
    for cand in (json_path.with_name(json_path.stem + "_weights.h5"), json_path.with_suffix(".h5")):
        if cand.is_file():
            return cand
    return None


def load_model(path: str | Path, weights: str | Path | None = None) -> Any:
    """Load a model with QKeras custom objects. Raises FlowError naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"{path}: model file not found")
    k = keras()
    objects = qkeras_objects()
    if path.suffix == ".json":
        wpath = Path(weights) if weights else find_weights(path)
        if wpath is None:
            raise FlowError(f"{path}: Keras JSON needs its weights: pass --weights FILE.h5 "
                            f"(looked for {path.stem}_weights.h5 beside it)")
        if not wpath.is_file():
            raise FlowError(f"{wpath}: weights file not found")
        try:
            model = k.models.model_from_json(path.read_text(), custom_objects=objects)
        except Exception as exc:
            raise FlowError(f"{path}: cannot build a Keras 2 model from this JSON: {type(exc).__name__}: {exc}") from None
        try:
            model.load_weights(str(wpath))
        except Exception as exc:
            raise FlowError(f"{wpath}: cannot load these weights into {path.name}: {exc}") from None
        return model
    if path.suffix not in (".h5", ".keras", ".hdf5"):
        raise FlowError(f"{path}: unsupported model file; use .h5, .keras, or a Keras .json with weights")
    try:
        return k.models.load_model(str(path), custom_objects=objects, compile=False)
    except Exception as exc:
        raise FlowError(f"{path}: cannot load model: {type(exc).__name__}: {exc}") from None
