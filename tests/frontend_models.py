"""PyTorch, ONNX and Brevitas/QONNX models built here (seeded), as users save or export them.

Float PyTorch MLP and CNN (saved whole, or as a state dict with the file that builds the module), the same
exported to ONNX, a branched ONNX graph (two Linear paths joined by an Add), and Brevitas quantization-aware MLP
and CNN with power-of-two (fixed-point) scales exported to QONNX; Brevitas binary networks (bipolar activations
and weights: ``BipolarQuant`` nodes, hls4ml's xnor types); plus the refusals: a Brevitas model with float
scales and an ONNX graph with an op hls4ml has no handler for.
"""

from __future__ import annotations

from pathlib import Path

N_IN, IMAGE = 8, (1, 6, 6)

TORCH_MODULE = '''
import torch


def build_model():
    return torch.nn.Sequential(torch.nn.Linear(8, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
'''


def _torch():
    import torch

    torch.manual_seed(0)
    return torch


def float_mlp():
    torch = _torch()
    return torch.nn.Sequential(torch.nn.Linear(N_IN, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3)).eval()


def float_cnn():
    torch = _torch()
    return torch.nn.Sequential(torch.nn.Conv2d(1, 3, 3), torch.nn.ReLU(), torch.nn.Flatten(),
                               torch.nn.Linear(3 * 4 * 4, 3)).eval()


def branched():
    torch = _torch()

    class Branched(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b, self.head = torch.nn.Linear(N_IN, 4), torch.nn.Linear(N_IN, 4), torch.nn.Linear(4, 3)

        def forward(self, x):
            return self.head(torch.relu(self.a(x)) + self.b(x))

    return Branched().eval()


def brevitas_mlp(power_of_two: bool = True, quantized_bias: bool = True):
    torch = _torch()
    import brevitas.nn as qnn
    from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8ActPerTensorFloat,
                                Int8BiasPerTensorFixedPointInternalScaling, Int8WeightPerTensorFixedPoint,
                                Int8WeightPerTensorFloat)

    weight = Int8WeightPerTensorFixedPoint if power_of_two else Int8WeightPerTensorFloat
    act = Int8ActPerTensorFixedPoint if power_of_two else Int8ActPerTensorFloat
    bias = Int8BiasPerTensorFixedPointInternalScaling if power_of_two and quantized_bias else None
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=act, return_quant_tensor=True),
        qnn.QuantLinear(N_IN, 6, bias=True, weight_quant=weight, bias_quant=bias, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=act, return_quant_tensor=True),
        qnn.QuantLinear(6, 3, bias=True, weight_quant=weight, bias_quant=bias, return_quant_tensor=False))
    return _calibrated(model, (64, N_IN))


def brevitas_cnn():
    torch = _torch()
    import brevitas.nn as qnn
    from brevitas.quant import (Int8ActPerTensorFixedPoint, Int8BiasPerTensorFixedPointInternalScaling,
                                Int8WeightPerTensorFixedPoint)

    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantConv2d(1, 3, 3, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                        bias_quant=Int8BiasPerTensorFixedPointInternalScaling, return_quant_tensor=True),
        qnn.QuantReLU(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=False),
        torch.nn.Flatten(),
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantLinear(3 * 4 * 4, 3, bias=True, weight_quant=Int8WeightPerTensorFixedPoint,
                        bias_quant=Int8BiasPerTensorFixedPointInternalScaling, return_quant_tensor=False))
    return _calibrated(model, (64, *IMAGE))


def _binary_quantizers(weight_scale: float = 1.0):
    """Brevitas's bipolar quantizers: weights +-``weight_scale`` (Brevitas's default is 0.1; hls4ml folds only a
    unit scale into its xnor weights), activations +-1."""
    from brevitas.quant import SignedBinaryActPerTensorConst, SignedBinaryWeightPerTensorConst

    return SignedBinaryWeightPerTensorConst.let(scaling_const=weight_scale), SignedBinaryActPerTensorConst


def brevitas_binary_mlp(weight_scale: float = 1.0):
    """8-bit input -> Linear (binary weights) -> binary activation -> Linear (8-bit power-of-two weights) -> binary
    activation -> Linear (binary weights): hls4ml's weight_binary, data_binary and both_binary products and its
    binary_tanh activation, every parameter quantized by Brevitas (bit-accurate by design)."""
    torch = _torch()
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFixedPoint, Int8WeightPerTensorFixedPoint

    weight, act = _binary_quantizers(weight_scale)
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantLinear(N_IN, 6, bias=False, weight_quant=weight, return_quant_tensor=False),
        qnn.QuantIdentity(act_quant=act, return_quant_tensor=True),
        qnn.QuantLinear(6, 4, bias=False, weight_quant=Int8WeightPerTensorFixedPoint, return_quant_tensor=False),
        qnn.QuantIdentity(act_quant=act, return_quant_tensor=True),
        qnn.QuantLinear(4, 3, bias=False, weight_quant=weight, return_quant_tensor=False))
    return _calibrated(model, (64, N_IN))


def brevitas_bnn(negative_scale: bool = False):
    """The binary MLP of FINN's examples: Linear (binary weights, no bias) -> BatchNorm1d -> binary activation,
    twice, then a binary Linear: hls4ml folds each BatchNorm + binary activation into thresholds
    (BatchNormalizationQuantizedTanh). The BatchNorm parameters are float, so not bit-accurate by design.
    ``negative_scale``: the first BatchNorm's channel 0 gets gamma -1 (what hls4ml's thresholds cannot express)."""
    torch = _torch()
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFixedPoint

    weight, act = _binary_quantizers()
    model = torch.nn.Sequential(
        qnn.QuantIdentity(act_quant=Int8ActPerTensorFixedPoint, return_quant_tensor=True),
        qnn.QuantLinear(N_IN, 8, bias=False, weight_quant=weight, return_quant_tensor=False),
        torch.nn.BatchNorm1d(8),
        qnn.QuantIdentity(act_quant=act, return_quant_tensor=True),
        qnn.QuantLinear(8, 6, bias=False, weight_quant=weight, return_quant_tensor=False),
        torch.nn.BatchNorm1d(6),
        qnn.QuantIdentity(act_quant=act, return_quant_tensor=True),
        qnn.QuantLinear(6, 3, bias=False, weight_quant=weight, return_quant_tensor=False))
    with torch.no_grad():  # trained-looking BatchNorm statistics and affine parameters (positive scales)
        for bn in (model[2], model[5]):
            bn.weight.uniform_(0.5, 1.5)
            bn.bias.uniform_(-0.5, 0.5)
        if negative_scale:
            model[2].weight[0] = -1.0
    return _calibrated(model, (64, N_IN))


def _calibrated(model, shape):
    """A few forward passes in training mode set the activation scales (Brevitas's statistics), then eval."""
    import torch

    model.train()
    with torch.no_grad():
        for _ in range(4):
            model(torch.randn(*shape))
    return model.eval()


def export_onnx(model, shape: tuple[int, ...], path: Path) -> Path:
    import torch

    torch.onnx.export(model, (torch.randn(1, *shape),), str(path), dynamo=False, input_names=["x"],
                      output_names=["y"])
    return path


def export_qonnx(model, shape: tuple[int, ...], path: Path) -> Path:
    import torch
    from brevitas.export import export_qonnx as export

    export(model, torch.randn(1, *shape), export_path=str(path))
    return path


def save_whole(model, path: Path) -> Path:
    import torch

    torch.save(model, str(path))
    return path


def unsupported_op(path: Path) -> Path:
    """x -> MatMul -> Sin -> y: an op hls4ml's ONNX converter has no handler for."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((N_IN, 3)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"], name="fc"), helper.make_node("Sin", ["h"], ["y"], name="wave")],
        "sine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, N_IN])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])], [w])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8), str(path))
    return path


BUILDERS = {
    # name: (builder(folder) -> model file, extra convert arguments)
    "torch_mlp": (lambda d: save_whole(float_mlp(), d / "mlp.pt"), ["--input-shape", str(N_IN)]),
    "torch_cnn": (lambda d: save_whole(float_cnn(), d / "cnn.pt"), ["--input-shape", ",".join(map(str, IMAGE))]),
    "onnx_mlp": (lambda d: export_onnx(float_mlp(), (N_IN,), d / "mlp.onnx"), []),
    "onnx_cnn": (lambda d: export_onnx(float_cnn(), IMAGE, d / "cnn.onnx"), []),
    "onnx_branch": (lambda d: export_onnx(branched(), (N_IN,), d / "branch.onnx"), []),
    "brevitas_mlp": (lambda d: export_qonnx(brevitas_mlp(), (N_IN,), d / "qmlp.onnx"), []),
    "brevitas_cnn": (lambda d: export_qonnx(brevitas_cnn(), IMAGE, d / "qcnn.onnx"), []),
}

BINARY_BUILDERS = {
    # name: builder(folder) -> QONNX file with BipolarQuant nodes (tests/test_frontend_binary.py)
    "brevitas_binary_mlp": lambda d: export_qonnx(brevitas_binary_mlp(), (N_IN,), d / "binary.onnx"),
    "brevitas_bnn": lambda d: export_qonnx(brevitas_bnn(), (N_IN,), d / "bnn.onnx"),
}
