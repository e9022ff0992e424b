"""Models converted without a Keras model object: what every such front end provides to the flow.

hls4ml reads more than the Keras models this process can build: Keras files whose layer classes only its
own reader knows (:mod:`flow.hls.keras_files`), ONNX/QONNX graphs (:mod:`flow.hls.onnx_source`) and PyTorch
modules (:mod:`flow.hls.torch_source`). Each is a :class:`ModelSource`: it stands where a Keras model stands
in the flow (``layers``, ``input_names``, ``input_shape``, so :func:`flow.hls.layer_map.layer_map` maps the
graph's own layers and nothing else), makes the hls4ml config and graph through hls4ml's own converter for
its format, saves itself into a project, and either computes the model-side reference outputs (the
framework's own forward pass, float64) or says why it cannot (``reference_unavailable``). Every check that
needs no framework (emulator == C simulation, RTL == emulator) runs on the graph as for Keras models.
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import numpy as np


class ModelSource(abc.ABC):
    """A model file hls4ml converts with its own reader for the format (no Keras model is built).

    Every source runs in the ``keras2`` process (:mod:`flow.keras.frontends`), where hls4ml is imported.
    ``kind``: ``project.json``'s ``source``. ``path``: the user's file.
    ``input_shape``: ``(None, *shape)`` of one sample, as Keras states it (channels last).
    """

    kind: str = "keras"  # project.json `source`: keras (a Keras file hls4ml's reader converts), onnx, pytorch
    reference_name: str = ""  # what computes reference(): "onnxruntime", "qonnx executor", "torch forward"
    layers: tuple = ()  # no framework layers: stage comparisons happen at the graph's output only

    def __init__(self, path: Path, input_shape: tuple[int, ...], input_name: str) -> None:
        self.path = Path(path)
        self.input_shape = (None, *(int(d) for d in input_shape))
        self.input_names = [input_name]

    # ---- the model side of the comparisons ------------------------------------------------------------
    @property
    def reference_unavailable(self) -> str | None:
        """Why no model-side output can be computed (None: :meth:`reference` works)."""
        return None

    @property
    def bit_accurate(self) -> bool:
        """Whether the model is bit-accurate to its conversion by design (a quantized model whose every
        scale is a power of two): then C simulation == model is required, not only reported."""
        return False

    def reference(self, x: np.ndarray) -> np.ndarray:
        """The model's own outputs for inputs ``x`` (batch first, channels last), float64 ``(N, -1)``."""
        raise NotImplementedError

    # ---- hls4ml --------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def hls4ml_config(self, backend: str) -> dict[str, Any]:
        """hls4ml's HLSConfig for this model at ``granularity='name'`` (types from the model's quantizers)."""

    @abc.abstractmethod
    def to_hls(self, config: dict[str, Any]) -> Any:
        """hls4ml's ModelGraph from ``config`` (``create_config`` output with ``HLSConfig`` set)."""

    def record(self) -> dict[str, Any]:
        """What ``project.json`` keeps besides the model file to open the saved copy again."""
        return {"source": self.kind}

    @abc.abstractmethod
    def save(self, folder: Path) -> str:
        """Copy what the model needs into project ``folder``; the file name ``project.json`` records."""
