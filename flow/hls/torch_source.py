"""PyTorch models through hls4ml's PyTorch converter (``torch.fx`` symbolic tracing).

What ``hlsflow convert model.pt --input-shape C,H,W`` reads:

- a whole saved module (``torch.save(model, path)``, unpickled with ``weights_only=False``: only open files you trust);
- a state dict (``torch.save(model.state_dict(), path)``) with ``--torch-module FILE.py``: a Python file whose
  module-level ``model`` (an ``nn.Module``) or ``build_model()`` gives the module the state dict is loaded into;
  the file is copied into the project, as ``--custom-objects`` files are for Keras.

TorchScript files are refused with one line: hls4ml's parser traces the Python module with ``torch.fx``, which a
``ScriptModule`` is not. ``--input-shape`` is one sample as PyTorch takes it (channels first); hls4ml converts the
graph to channels last (``channels_last_conversion='full'``), and the flow's samples are channels last, transposed
back for the reference, which is the module's own forward pass (float32, ``torch.no_grad``).
"""

from __future__ import annotations

import contextlib
import importlib.util
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from flow.core.errors import FlowError
from flow.hls.sources import ModelSource
from flow.keras.env import hls4ml_sees_keras2

MODEL_FILE, MODULE_FILE = "model.pt", "torch_module.py"  # the copies in a project


def parse_input_shape(text: str) -> tuple[int, ...]:
    """``'1,28,28'`` -> ``(1, 28, 28)``; FlowError naming ``--input-shape`` otherwise."""
    try:
        shape = tuple(int(d) for d in str(text).replace("x", ",").split(",") if d.strip())
    except ValueError:
        shape = ()
    if not shape or any(d < 1 for d in shape):
        raise FlowError(f"--input-shape: expected positive sizes of one sample, e.g. 16 or 1,28,28; got {text!r}")
    return shape


def _module_from_file(path: Path) -> Any:
    """The ``nn.Module`` a ``--torch-module`` file provides (``model`` or ``build_model()``)."""
    import torch

    if not path.is_file() or path.suffix != ".py":
        raise FlowError(f"{path}: --torch-module takes an existing Python file (module.py)")
    spec = importlib.util.spec_from_file_location(f"hlsflow_torch_module_{abs(hash(path.read_bytes()))}", path)
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
        model = mod.build_model() if callable(getattr(mod, "build_model", None)) else getattr(mod, "model", None)
    except Exception as exc:  # noqa: BLE001 - anything the user's file raises
        raise FlowError(f"{path}: cannot import it: {type(exc).__name__}: {exc}") from None
    if not isinstance(model, torch.nn.Module):
        raise FlowError(f"{path}: defines no module-level `model` (a torch.nn.Module) or `build_model()` returning one")
    return model


def _input_name(path: Path, module: Any) -> str:
    """The module's single input as hls4ml names it: the ``torch.fx`` placeholder of ``forward``'s argument."""
    import torch

    try:
        traced = torch.fx.symbolic_trace(module)
    except Exception as exc:  # noqa: BLE001 - data-dependent control flow and the like
        raise FlowError(f"{path}: torch.fx cannot trace this module (hls4ml's PyTorch parser needs it): "
                        f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None
    names = [n.name for n in traced.graph.nodes if n.op == "placeholder"]
    if len(names) != 1:
        raise FlowError(f"{path}: forward() takes {len(names)} inputs; only single-input models are supported")
    return names[0]


class TorchSource(ModelSource):
    """A PyTorch module: ``module`` (eval mode), ``torch_shape`` (one sample, channels first), ``module_file``."""

    kind = "pytorch"
    reference_name = "torch forward"

    def __init__(self, path: Path, module: Any, torch_shape: tuple[int, ...], module_file: Path | None) -> None:
        self.module, self.torch_shape, self.module_file = module, torch_shape, module_file
        shape = (*torch_shape[1:], torch_shape[0]) if len(torch_shape) > 1 else torch_shape
        super().__init__(path, shape, _input_name(path, module))

    @classmethod
    def open(cls, path: Path, input_shape: tuple[int, ...] | None, module_file: str | Path | None) -> "TorchSource":
        path = Path(path)
        if not path.is_file():
            raise FlowError(f"{path}: model file not found")
        if not input_shape:
            raise FlowError(f"{path}: a PyTorch model needs --input-shape (one sample, channels first, e.g. 1,28,28)")
        try:
            import torch
        except ImportError as exc:
            from flow.core.errors import ToolMissing

            raise ToolMissing(f"the PyTorch front end needs torch ({exc}): run scripts/setup.sh") from None
        if zipfile.is_zipfile(path) and any(n.endswith("/constants.pkl") or n.endswith("/code/__torch__.py")
                                            or "/code/" in n for n in zipfile.ZipFile(path).namelist()):
            raise FlowError(f"{path}: a TorchScript file; hls4ml's PyTorch parser traces Python modules with torch.fx, "
                            f"which a ScriptModule is not: save the module itself (torch.save(model, ...)) or export "
                            f"it to ONNX")
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=False)
        except Exception as exc:  # noqa: BLE001 - pickle errors: a class the file needs, a damaged file
            raise FlowError(f"{path}: cannot load it with torch.load: {type(exc).__name__}: {exc}") from None
        if isinstance(obj, torch.nn.Module):
            module = obj
        elif isinstance(obj, dict):
            if module_file is None:
                raise FlowError(f"{path}: a state dict: pass the Python file that builds the module with "
                                f"--torch-module module.py (a module-level `model` or `build_model()`)")
            module = _module_from_file(Path(module_file))
            try:
                module.load_state_dict(obj)
            except Exception as exc:  # noqa: BLE001 - missing/unexpected keys, shape mismatches
                raise FlowError(f"{path}: the state dict does not fit the module of {module_file}: "
                                f"{' | '.join(str(exc).splitlines()[:2])}") from None
        else:
            raise FlowError(f"{path}: holds a {type(obj).__name__}, not a torch.nn.Module or a state dict")
        module.eval()
        return cls(path, module, tuple(int(d) for d in input_shape), Path(module_file) if module_file else None)

    def reference(self, x: np.ndarray) -> np.ndarray:
        import torch

        x = np.asarray(x, dtype=np.float32).reshape(len(x), *self.input_shape[1:])
        if len(self.torch_shape) > 1:
            x = np.moveaxis(x, -1, 1)  # channels last (the flow's) -> channels first (the module's)
        with torch.no_grad():
            y = self.module(torch.from_numpy(np.ascontiguousarray(x)))
        y = y.numpy().astype(np.float64)
        if y.ndim > 2:  # hls4ml returns channels last
            y = np.moveaxis(y, 1, -1)
        return y.reshape(len(x), -1)

    def hls4ml_config(self, backend: str) -> dict[str, Any]:
        with hls4ml_sees_keras2() as hls4ml, contextlib.redirect_stdout(sys.stderr):
            try:
                cfg = hls4ml.utils.config.config_from_pytorch_model(
                    self.module, input_shape=self.torch_shape, granularity="name", backend=backend,
                    default_precision="ap_fixed<16,6>")
            except Exception as exc:  # noqa: BLE001 - torch.fx cannot trace it, a layer hls4ml lacks
                raise FlowError(f"{self.path}: hls4ml cannot convert this module: {type(exc).__name__}: "
                                f"{' | '.join(str(exc).splitlines()[:2])}") from None
        cfg.pop("PytorchModel", None)  # the module itself: to_hls passes it; project.json keeps JSON only
        cfg["InputShape"] = list(self.torch_shape)
        return cfg

    def to_hls(self, config: dict[str, Any]) -> Any:
        with hls4ml_sees_keras2(), contextlib.redirect_stdout(sys.stderr):
            from hls4ml.converters import pytorch_to_hls

            try:
                return pytorch_to_hls({**config, "PytorchModel": self.module, "InputShape": tuple(self.torch_shape)})
            except Exception as exc:  # noqa: BLE001
                raise FlowError(f"{self.path}: hls4ml cannot convert this module: {type(exc).__name__}: {exc}") from None

    def record(self) -> dict[str, Any]:
        rec: dict[str, Any] = {"source": self.kind, "input_shape": list(self.torch_shape)}
        if self.module_file is not None:
            rec["module_file"] = MODULE_FILE
        return rec

    def save(self, folder: Path) -> str:
        shutil.copyfile(self.path, folder / MODEL_FILE)
        if self.module_file is not None:
            shutil.copyfile(self.module_file, folder / MODULE_FILE)
        return MODEL_FILE
