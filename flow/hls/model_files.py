"""Open any model file hlsflow converts: Keras (this process's front end), Keras files only hls4ml's reader
knows, ONNX/QONNX and PyTorch; and save it into a project so later commands rebuild the same graph.

The kind of model is read from the file (:func:`source_kind`): ``keras`` for ``.h5``/``.keras``/``.json``
(a Keras model built by :func:`flow.keras.model_io.load_model`, or, when Keras refuses classes that
hls4ml's own handlers convert, :class:`flow.hls.keras_files.KerasFile`), ``onnx`` for ``.onnx``
(:mod:`flow.hls.onnx_source`), ``pytorch`` for ``.pt``/``.pth`` (:mod:`flow.hls.torch_source`).
``project.json`` records it as ``source`` (absent: ``keras``) with the model file copied into the project.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.hls.sources import ModelSource

SOURCES = {
    "keras": ".h5, .keras, or a Keras .json with weights (Keras 2/3, QKeras, HGQ2; Keras files whose classes only "
             "hls4ml's reader knows: BinaryDense, TernaryDense, HGQ 1 proxies)",
    "onnx": ".onnx: float ONNX or QONNX (Quant, BipolarQuant), e.g. a Brevitas export",
    "pytorch": ".pt/.pth: a saved torch.nn.Module, or a state dict with --torch-module FILE.py, with --input-shape "
               "(TorchScript is refused: hls4ml traces Python modules with torch.fx)",
}
SUFFIXES = {".onnx": "onnx", ".pt": "pytorch", ".pth": "pytorch"}


def source_kind(path: str | Path) -> str:
    """``keras``, ``onnx`` or ``pytorch``, from the file's suffix."""
    return SUFFIXES.get(Path(path).suffix.lower(), "keras")


def open_model(path: str | Path, weights: str | Path | None = None, custom_objects: str | Path | None = None,
               input_shape: tuple[int, ...] | None = None, module_file: str | Path | None = None) -> Any:
    """The model in ``path``: a Keras model, or a :class:`flow.hls.sources.ModelSource` for what Keras does not
    build. ``input_shape`` (one sample, as the framework orders it) and ``module_file`` are PyTorch's."""
    path = Path(path)
    kind = source_kind(path)
    if kind == "onnx":
        from flow.hls.onnx_source import OnnxSource

        return OnnxSource.open(path)
    if kind == "pytorch":
        from flow.hls.torch_source import TorchSource

        return TorchSource.open(path, input_shape, module_file)
    from flow.keras.model_io import UnknownClasses, load_model

    try:
        return load_model(path, weights, custom_objects)
    except UnknownClasses as refusal:
        from flow.hls.keras_files import read_with_hls4ml

        return read_with_hls4ml(refusal, weights)


def save_model(model: Any, folder: Path) -> str:
    """Save ``model`` into project ``folder``; the file name for ``project.json``."""
    if isinstance(model, ModelSource):
        return model.save(folder)
    from flow.keras.model_io import save_model as save_keras

    return save_keras(model, folder)


def model_record(model: Any) -> dict[str, Any]:
    """What ``project.json`` keeps to reopen ``model``: ``source`` and the source's own options."""
    if isinstance(model, ModelSource):
        return model.record()
    return {"source": "keras"}


def reopen(project: Path, meta: dict[str, Any], custom_objects: Path | None) -> Any:
    """The model of a project from its ``project.json`` record ``meta``."""
    path = Path(project) / meta["model"]
    kind = meta.get("source", "keras")
    if kind not in SOURCES:
        raise FlowError(f"{Path(project) / 'project.json'}: field `source`: unknown {kind!r} (known: {', '.join(SOURCES)})")
    shape = meta.get("input_shape")
    module = meta.get("module_file")
    return open_model(path, None, custom_objects, tuple(shape) if shape else None,
                      Path(project) / module if module else None)
