"""ONNX and QONNX models (float exports from Keras or PyTorch, Brevitas QONNX exports) through hls4ml's ONNX converter.

hls4ml 1.3's ONNX front end expects what its documentation (``docs/frontend/qonnx.rst``) says to prepare:
a graph cleaned by qonnx (``cleanup_model``: shapes inferred, constants folded, names made unique),
converted to channels-last (``ConvertToChannelsLastAndClean``) and with ``Gemm`` turned into ``MatMul`` + ``Add``
(``GemmToMatMul``), cleaned again. :meth:`OnnxSource.open` does this for the user and refuses, with one line
naming the node and the reason, what the flow cannot carry bit-exactly:

- an op hls4ml's ONNX converter has no handler for;
- a ``Quant`` node whose scale is not a constant power of two or whose zero point is not 0 (hls4ml turns other
  scales into float multiplications, and the model is then no longer bit-accurate to any fixed-point type);
  a ``Quant`` with a non-constant bit width;
- a ``BatchNormalization`` whose scale (``gamma / sqrt(var + eps)``) is not positive in front of a ``BipolarQuant``:
  hls4ml folds the two into ``x >= -bias / scale`` (``BatchNormalizationQuantizedTanh``), which is the binary
  activation only for a positive scale (a negative one flips the comparison).

The flow's samples are channels-last (as the hls4ml graph takes them, ``input_shape``); the reference runs the
user's file in its own layout (channels-first inputs transposed back): onnxruntime for a float ONNX model, qonnx's
executor (``qonnx.core.onnx_exec.execute_onnx``, which runs ``Quant``/``BipolarQuant`` in numpy) for a QONNX
model. A QONNX model with power-of-two scales is bit-accurate by design: C simulation == model is then required.
"""

from __future__ import annotations

import contextlib
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flow.core.errors import FlowError
from flow.hls.sources import ModelSource
from flow.keras.env import hls4ml_sees_keras2

MODEL_FILE = "model.onnx"  # the user's file, copied into a project
QUANT_OPS = ("Quant", "IntQuant", "BipolarQuant")


def _is_power_of_two(values: np.ndarray) -> bool:
    v = np.asarray(values, dtype=np.float64).ravel()
    if not np.all(np.isfinite(v)) or np.any(v <= 0):
        return False
    mantissa, _ = np.frexp(v)
    return bool(np.all(mantissa == 0.5))


class OnnxSource(ModelSource):
    """An ONNX or QONNX file: ``path`` (the user's file), ``clean`` (qonnx ModelWrapper, cleaned, channels-last,
    no Gemm: what hls4ml converts), ``reference_model`` (qonnx ModelWrapper of the user's file after
    ``cleanup_model`` only: what the reference runs); ``quantized``: it has Quant nodes (qonnx's executor runs it);
    ``exact``: quantized with no float parameter outside a Quant node (bit-accurate by design)."""

    kind = "onnx"

    def __init__(self, path: Path, clean: Any, reference_model: Any, quantized: bool, exact: bool,
                 input_shape: tuple[int, ...],
                 model_input_shape: tuple[int, ...], input_name: str) -> None:
        self.clean, self.reference_model, self.quantized, self.exact = clean, reference_model, quantized, exact
        self.model_input_shape = model_input_shape  # one sample as the file takes it (channels first)
        self.reference_name = "qonnx executor" if quantized else "onnxruntime"
        super().__init__(path, input_shape, input_name)

    @classmethod
    def open(cls, path: Path) -> "OnnxSource":
        """Read, check and prepare ``path`` for hls4ml (see the module docstring); FlowError naming the node."""
        path = Path(path)
        if not path.is_file():
            raise FlowError(f"{path}: model file not found")
        try:
            import onnx
            from qonnx.core.modelwrapper import ModelWrapper
            from qonnx.transformation.channels_last import ConvertToChannelsLastAndClean
            from qonnx.transformation.gemm_to_matmul import GemmToMatMul
            from qonnx.util.cleanup import cleanup_model
        except ImportError as exc:
            from flow.core.errors import ToolMissing

            raise ToolMissing(f"the ONNX front end needs onnx, onnxruntime and qonnx ({exc}): run scripts/setup.sh") from None
        try:
            raw = onnx.load(str(path))
        except Exception as exc:  # noqa: BLE001 - protobuf errors of a damaged file
            raise FlowError(f"{path}: not a readable ONNX model: {type(exc).__name__}: {exc}") from None
        inputs = [i for i in raw.graph.input if i.name not in {t.name for t in raw.graph.initializer}]
        if len(inputs) != 1:
            raise FlowError(f"{path}: the graph has {len(inputs)} inputs; only single-input models are supported")
        if len(raw.graph.output) != 1:
            raise FlowError(f"{path}: the graph has {len(raw.graph.output)} outputs; only single-output models are supported")
        try:
            reference = cleanup_model(ModelWrapper(raw))
            _check_quant_nodes(path, reference)
            _check_binary_thresholds(path, reference)
            clean = reference.transform(ConvertToChannelsLastAndClean())
            clean = cleanup_model(_with_gemm_bias(clean).transform(GemmToMatMul()))
        except FlowError:
            raise
        except Exception as exc:  # noqa: BLE001 - qonnx's transformations on a graph they cannot take
            raise FlowError(f"{path}: qonnx clean-up failed (cleanup, channels-last, Gemm to MatMul): "
                            f"{type(exc).__name__}: {exc}") from None
        _check_supported(path, clean)
        # bit-accurate by design: quantized, and no compute node takes a float parameter that no Quant node made
        # (e.g. a Brevitas layer without bias_quant: hls4ml casts that bias to a default type)
        quantized = any(n.op_type in QUANT_OPS for n in reference.graph.node)
        exact = quantized and not _float_parameters(reference)
        model_shape = tuple(int(d) for d in reference.get_tensor_shape(reference.graph.input[0].name)[1:])
        shape = tuple(int(d) for d in clean.get_tensor_shape(clean.graph.input[0].name)[1:])
        if len(model_shape) > 1:  # hls4ml takes channels-last: (C, L) -> (L, C), (C, H, W) -> (H, W, C)
            shape = (*model_shape[1:], model_shape[0])
        return cls(path, clean, reference, quantized, exact, shape, model_shape, clean.graph.input[0].name)

    @property
    def bit_accurate(self) -> bool:
        return self.exact  # _check_quant_nodes refused every scale that is not a power of two

    def reference(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).reshape(len(x), *self.input_shape[1:])
        if len(self.model_input_shape) > 1:  # back to channels first, as the file takes it
            x = np.moveaxis(x, -1, 1)
        name = self.reference_model.graph.input[0].name
        out_name = self.reference_model.graph.output[0].name
        batch = self.reference_model.get_tensor_shape(name)[0]
        batch = batch if isinstance(batch, int) and batch > 0 else len(x)  # a fixed batch size (e.g. 1) as exported
        if self.quantized:
            from qonnx.core.onnx_exec import execute_onnx

            def run(chunk: np.ndarray) -> np.ndarray:
                return execute_onnx(self.reference_model, {name: chunk})[out_name]
        else:
            import onnxruntime as ort

            sess = ort.InferenceSession(self.reference_model.model.SerializeToString(),
                                        providers=["CPUExecutionProvider"])

            def run(chunk: np.ndarray) -> np.ndarray:
                return sess.run([out_name], {name: chunk})[0]
        outs = [np.asarray(run(x[i:i + batch]), dtype=np.float64) for i in range(0, len(x), batch)]
        return np.concatenate([o.reshape(len(o), -1) for o in outs])

    def hls4ml_config(self, backend: str) -> dict[str, Any]:
        with hls4ml_sees_keras2() as hls4ml, contextlib.redirect_stdout(sys.stderr):
            try:
                return hls4ml.utils.config.config_from_onnx_model(self.clean, granularity="name", backend=backend,
                                                                  default_precision="fixed<16,6>")
            except Exception as exc:  # noqa: BLE001
                raise FlowError(f"{self.path}: hls4ml cannot convert this model: {type(exc).__name__}: {exc}") from None

    def to_hls(self, config: dict[str, Any]) -> Any:
        with hls4ml_sees_keras2(), contextlib.redirect_stdout(sys.stderr):  # hls4ml prints its progress
            from hls4ml.converters import onnx_to_hls

            try:
                return onnx_to_hls({**config, "OnnxModel": self.clean})
            except Exception as exc:  # noqa: BLE001
                raise FlowError(f"{self.path}: hls4ml cannot convert this model: {type(exc).__name__}: {exc}") from None

    def save(self, folder: Path) -> str:
        shutil.copyfile(self.path, folder / MODEL_FILE)
        return MODEL_FILE


def _check_quant_nodes(path: Path, model: Any) -> None:
    """FlowError naming the first Quant node whose scale is not a constant power of two, zero point not 0, or bit
    width not constant."""
    for node in model.graph.node:
        if node.op_type not in ("Quant", "IntQuant"):
            continue
        scale, zeropt, bits = (model.get_initializer(node.input[i]) if len(node.input) > i else None for i in (1, 2, 3))
        if scale is None or bits is None or zeropt is None:
            what = "scale" if scale is None else "bit width" if bits is None else "zero point"
            raise FlowError(f"{path}: node {node.name!r} ({node.op_type}): its {what} is not a constant; hls4ml needs "
                            f"constant quantization parameters")
        if not _is_power_of_two(scale):
            bad = np.asarray(scale).ravel()
            raise FlowError(f"{path}: node {node.name!r} ({node.op_type}): scale {bad[0]:g}"
                            f"{' (and others)' if bad.size > 1 else ''} is not a power of two; the model is then not "
                            f"bit-accurate to a fixed-point type (export with power-of-two scales, e.g. Brevitas "
                            f"*PowerOfTwo* / restrict_scaling_type=POWER_OF_TWO quantizers)")
        if np.any(np.asarray(zeropt) != 0):
            raise FlowError(f"{path}: node {node.name!r} ({node.op_type}): zero point {np.asarray(zeropt).ravel()[0]:g} "
                            f"is not 0; hls4ml's fixed-point types have no offset")
    for node in model.graph.node:
        if node.op_type == "BipolarQuant" and model.get_initializer(node.input[1]) is not None and not _is_power_of_two(
                model.get_initializer(node.input[1])):
            bad = np.asarray(model.get_initializer(node.input[1])).ravel()
            raise FlowError(f"{path}: node {node.name!r} (BipolarQuant): scale {bad[0]:g} is not a power of two; the "
                            f"+-scale values are then not a fixed-point type (export binary quantizers with a unit or "
                            f"power-of-two scale, e.g. SignedBinaryWeightPerTensorConst.let(scaling_const=1.0))")


def _check_binary_thresholds(path: Path, model: Any) -> None:
    """FlowError naming the first BatchNormalization with a scale that is not positive whose output a BipolarQuant
    quantizes (hls4ml's thresholds ``x >= -bias / scale`` assume a positive scale)."""
    for node in model.graph.node:
        if node.op_type != "BatchNormalization":
            continue
        consumers = model.find_consumers(node.output[0]) or []
        bipolar = [c for c in consumers if c.op_type == "BipolarQuant"]
        gamma, var = model.get_initializer(node.input[1]), model.get_initializer(node.input[4])
        if not bipolar or gamma is None or var is None:
            continue
        eps = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        scale = np.asarray(gamma, dtype=np.float64) / np.sqrt(np.asarray(var, dtype=np.float64) + eps)
        if np.any(scale <= 0):
            k = int(np.flatnonzero(scale <= 0)[0])
            raise FlowError(f"{path}: node {node.name!r} (BatchNormalization): scale {scale[k]:g} of channel {k} "
                            f"before the binary activation {bipolar[0].name!r} is not positive; hls4ml folds them "
                            f"into the threshold test x >= -bias/scale, which a negative scale turns the wrong way")


def _with_gemm_bias(model: Any) -> Any:
    """``model`` with a zero bias ``C`` on every ``Gemm`` that has none (``Linear(..., bias=False)``, e.g. the
    layers of a Brevitas BNN): qonnx's ``GemmToMatMul`` needs the input C. Adding 0 changes no value."""
    for node in model.graph.node:
        if node.op_type != "Gemm" or (len(node.input) > 2 and node.input[2]):
            continue
        shape = model.get_tensor_shape(node.output[0])
        if shape is None:
            raise FlowError(f"node {node.name!r} (Gemm): output shape unknown")
        name = model.make_new_valueinfo_name()
        model.set_initializer(name, np.zeros((int(shape[-1]),), dtype=np.float32))
        if len(node.input) > 2:
            node.input[2] = name
        else:
            node.input.append(name)
    return model


def _float_parameters(model: Any) -> list[str]:
    """Compute nodes (Gemm, MatMul, Conv, Add, Mul, ...) with a float initializer as a direct input."""
    found = []
    for node in model.graph.node:
        if node.op_type not in ("Gemm", "MatMul", "Conv", "Add", "Sub", "Mul", "Div", "BatchNormalization"):
            continue
        for name in node.input:
            value = model.get_initializer(name)
            if value is not None and np.issubdtype(np.asarray(value).dtype, np.floating):
                found.append(node.name)
                break
    return found


def _check_supported(path: Path, model: Any) -> None:
    """FlowError naming the first node whose op hls4ml's ONNX converter has no handler for."""
    with hls4ml_sees_keras2():
        from hls4ml.converters.onnx_to_hls import get_supported_onnx_layers

        supported = set(get_supported_onnx_layers())
    for node in model.graph.node:
        if node.op_type not in supported and node.op_type != "Constant":
            raise FlowError(f"{path}: node {node.name!r}: op {node.op_type} is not supported by hls4ml's ONNX converter "
                            f"(supported: {', '.join(sorted(supported))})")
