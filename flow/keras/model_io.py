"""Load existing models: ``.h5``, ``.keras``, or Keras JSON + weights ``.h5``, in this process's front end.

Keras 2 (tf_keras) and QKeras 0.9 models load in the ``keras2`` front end; Keras 3, QKeras v3 and
HGQ2 models in a Keras-3 worker (:mod:`flow.keras.frontends`). Layers and objects the model needs
beyond those come from a user's Python file (``--custom-objects module.py``): its module-level
``custom_objects`` dict and every class it registers with Keras's serialization
(``keras.saving.register_keras_serializable`` / ``tf_keras.utils.register_keras_serializable``).
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.keras.env import FRONTEND, KERAS_MAJOR, keras, qkeras_objects
from flow.keras.frontends import FRONTENDS, detect

MODEL_FILE = {2: "model.h5", 3: "model.keras"}  # how convert saves the model into a project, per Keras major

# the messages tf_keras and Keras 3 give for a class they cannot find
_UNKNOWN_CLASS = re.compile(r"Unknown (?:layer|object|activation|regularizer|constraint|initializer|loss|metric)"
                            r"(?: type)?: '?([\w.>]+)'?|Could not locate (?:class|function) '([\w.>]+)'")


def find_weights(json_path: Path) -> Path | None:
    """The weights file conventionally beside a Keras JSON: ``<stem>_weights.h5`` or ``<stem>.h5``."""
    for cand in (json_path.with_name(json_path.stem + "_weights.h5"), json_path.with_suffix(".h5")):
        if cand.is_file():
            return cand
    return None


_LOADED: dict[str, dict[str, Any]] = {}  # sha256 of a custom-objects file -> its objects (executed once)


def load_custom_objects(path: str | Path) -> dict[str, Any]:
    """The custom objects a user's Python file provides: its ``custom_objects`` dict plus the classes it
    registers with Keras's serialization while it is executed. FlowError naming the file if it fails.

    A file is executed once per process (by content: the project's copy of the same file is not run
    again, since Keras refuses to register a name twice); it may also register hls4ml layer handlers.
    """
    import hashlib

    from flow.keras.env import hls4ml_sees_keras2

    path = Path(path)
    if not path.is_file():
        raise FlowError(f"{path}: --custom-objects file not found")
    if path.suffix != ".py":
        raise FlowError(f"{path}: --custom-objects takes a Python file (module.py)")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest in _LOADED:
        return dict(_LOADED[digest])
    registry = keras().saving.get_custom_objects() if KERAS_MAJOR == 3 else keras().utils.get_custom_objects()
    before = dict(registry)
    name = f"hlsflow_custom_objects_{digest[:16]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        with hls4ml_sees_keras2():  # `import keras` in the file gives this front end's Keras, as hls4ml sees it
            spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - anything the user's file raises
        sys.modules.pop(name, None)
        raise FlowError(f"{path}: cannot import it: {type(exc).__name__}: {exc}") from None
    objects = {k: v for k, v in registry.items() if before.get(k) is not v}
    declared = getattr(module, "custom_objects", {})
    if not isinstance(declared, dict) or not all(isinstance(k, str) for k in declared):
        raise FlowError(f"{path}: `custom_objects` must be a dict of names to classes or functions")
    objects.update(declared)
    for key, obj in list(objects.items()):  # registered as 'package>Name': a config may name it either way
        objects.setdefault(key.split(">")[-1], obj)
    _LOADED[digest] = objects
    return dict(objects)


class UnknownClasses(FlowError):
    """Keras cannot build the model: its config names layer classes Keras does not know (``classes``, in
    config order). hls4ml's own file reader may still convert it (:mod:`flow.hls.keras_files`)."""

    def __init__(self, path: Path, classes: list[str]) -> None:
        super().__init__(f"{path}: unknown layer or object class {classes[0]!r}: pass the Python file that defines "
                         f"it with --custom-objects module.py (a module-level `custom_objects` dict, or classes "
                         f"registered with Keras's register_keras_serializable)")
        self.path = path
        self.classes = classes


def layer_classes(config: Any) -> list[str]:
    """Every layer ``class_name`` of a Keras model config (nested models too), in config order, once each."""
    found: list[str] = []
    stack = [config]
    while stack:
        item = stack.pop(0)
        if isinstance(item, dict):
            if isinstance(item.get("class_name"), str) and isinstance(item.get("config"), dict):
                if item["class_name"] not in found:
                    found.append(item["class_name"])
                stack.extend(item["config"].get("layers") or [])
        elif isinstance(item, list):
            stack.extend(item)
    return found


def unknown_classes(config: Any, objects: dict[str, Any]) -> list[str]:
    """The layer classes of ``config`` that neither this Keras nor ``objects`` (QKeras, the user's) provide."""
    k = keras()
    registry = k.saving.get_custom_objects() if KERAS_MAJOR == 3 else k.utils.get_custom_objects()
    known = {"Sequential", "Functional", "Model"} | set(objects) | {n.split(">")[-1] for n in registry}
    names = [c.split(">")[-1] for c in layer_classes(config)]  # 'package>Name' as registered: the class is Name
    return [c for i, c in enumerate(names) if c not in known and not hasattr(k.layers, c) and c not in names[:i]]


def saved_config(path: Path) -> Any:
    """The model config stored in a Keras JSON or ``.h5`` file (None when there is none or it is unreadable)."""
    import json

    try:
        if path.suffix == ".json":
            return json.loads(path.read_text())
        import h5py

        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
        return json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    except Exception:  # noqa: BLE001 - the load error itself is reported
        return None


def _load_error(path: Path, exc: Exception, what: str, objects: dict[str, Any] | None = None) -> FlowError:
    """FlowError for a failed load; a class Keras does not know gets its own line naming the remedy
    (:class:`UnknownClasses`)."""
    text = str(exc)
    unknown = unknown_classes(saved_config(path), objects or {}) if path.suffix in (".json", ".h5", ".hdf5") else []
    if unknown:
        return UnknownClasses(path, unknown)
    m = _UNKNOWN_CLASS.search(text)
    if m:
        return UnknownClasses(path, [(m.group(1) or m.group(2)).split(">")[-1]])
    first = text.strip().splitlines()[0] if text.strip() else ""
    return FlowError(f"{path}: {what}: {type(exc).__name__}: {first}")


def check_frontend(path: Path) -> str:
    """The front end ``path`` needs; FlowError if it is not this process's (the CLI starts the right worker)."""
    kind = detect(path)
    if kind != FRONTEND.name:
        raise FlowError(f"{path}: a {FRONTENDS[kind].reads.split(',')[0]} file, but this process runs the "
                        f"{FRONTEND.name} front end; use the hlsflow command line, which runs it in a "
                        f"{kind} worker")
    return kind


def load_model(path: str | Path, weights: str | Path | None = None,
               custom_objects: str | Path | None = None) -> Any:
    """Load a model of this process's front end, with QKeras (or QKeras v3 / HGQ2) objects and the user's
    ``custom_objects`` file. Raises FlowError naming the file on any failure."""
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"{path}: model file not found")
    check_frontend(path)
    k = keras()
    objects = qkeras_objects()
    if custom_objects is not None:
        objects.update(load_custom_objects(custom_objects))
    if path.suffix == ".json":
        wpath = Path(weights) if weights else find_weights(path)
        if wpath is None:
            raise FlowError(f"{path}: Keras JSON needs its weights: pass --weights FILE.h5 "
                            f"(looked for {path.stem}_weights.h5 beside it)")
        if not wpath.is_file():
            raise FlowError(f"{wpath}: weights file not found")
        try:
            model = k.models.model_from_json(path.read_text(), custom_objects=objects)
        except Exception as exc:  # noqa: BLE001 - Keras raises many kinds for a bad config
            raise _load_error(path, exc, f"cannot build a Keras {KERAS_MAJOR} model from this JSON", objects) from None
        try:
            model.load_weights(str(wpath))
        except Exception as exc:  # noqa: BLE001
            raise FlowError(f"{wpath}: cannot load these weights into {path.name}: {exc}") from None
        return model
    try:
        return k.models.load_model(str(path), custom_objects=objects, compile=False)
    except Exception as exc:  # noqa: BLE001
        raise _load_error(path, exc, "cannot load model", objects) from None


def save_model(model: Any, folder: Path) -> str:
    """Save ``model`` into ``folder`` in its Keras's own format; returns the file name (``model.h5``/``model.keras``)."""
    name = MODEL_FILE[KERAS_MAJOR]
    model.save(folder / name)
    return name
