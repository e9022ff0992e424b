"""The one description of every layer's fixed-point arithmetic, and the registry from hls4ml layer classes to it.

Each implementation is a function ``fn(layer, inputs, ops, target) -> Tensor`` written once against the
operations of :class:`flow.arith.ops.Ops`; :mod:`flow.arith.walk` runs the graph through it with the numpy
executor (the emulator) or the symbolic one (the RTL trace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from flow.arith.hls_layer import is_latency_strategy, where
from flow.arith.layers import activations, binary, dense, merge, pooling, quantizer, shape, softmax
from flow.arith.ops import Tensor
from flow.core.errors import FlowError

LayerFn = Callable[..., Tensor]

SUPPORTED_LAYERS = (
    "Input, Dense, Conv1D, Conv2D, MaxPooling1D/2D, AveragePooling1D/2D, GlobalMax/AveragePooling1D/2D, "
    "Flatten/Reshape, ZeroPadding1D/2D, BatchNormalization, ReLU/linear/sigmoid/tanh Activation, LeakyReLU, "
    "ThresholdedReLU, hard_sigmoid/hard_tanh, Softmax (stable/latency), Add/Subtract/Multiply/Average/Maximum/"
    "Minimum, Concatenate, HGQ2's heterogeneous FixedPointQuantizer (io_parallel), binary/ternary weights and binary "
    "(xnor) data in Dense and Conv1D/2D, BatchNormalizationQuantizedTanh (binary/ternary), binary_tanh/ternary_tanh Activation, "
    "and hls4ml's io_stream Clone/Repack"
)
# Catapult (ac_fixed) backend: the layers whose nnet_utils templates were checked against its C simulation
CATAPULT_LAYERS = "Input, Dense and Conv2D (Latency strategy), ReLU/linear Activation, MaxPooling2D, Flatten/Reshape"


@dataclass(frozen=True)
class Implementation:
    """A layer description: ``fn``, how many inputs it takes, and whether it was checked on Catapult."""

    name: str
    fn: LayerFn
    inputs: int = 1
    catapult: bool = False


IMPLEMENTATIONS = {
    "dense": Implementation("dense", dense.dense, catapult=True),
    "conv1d": Implementation("conv1d", dense.conv1d),
    "conv2d": Implementation("conv2d", dense.conv2d, catapult=True),
    "batchnorm": Implementation("batchnorm", dense.batchnorm),
    "pooling1d": Implementation("pooling1d", pooling.pooling1d),
    "pooling2d": Implementation("pooling2d", pooling.pooling2d, catapult=True),
    "global_pooling": Implementation("global_pooling", pooling.global_pooling),
    "reshape": Implementation("reshape", shape.reshape, catapult=True),
    "zeropad1d": Implementation("zeropad1d", shape.zeropad1d),
    "zeropad2d": Implementation("zeropad2d", shape.zeropad2d),
    "copy": Implementation("copy", shape.copy),
    "activation": Implementation("activation", activations.activation, catapult=True),
    "param_activation": Implementation("param_activation", activations.param_activation),
    "hard_activation": Implementation("hard_activation", activations.hard_activation),
    "softmax": Implementation("softmax", softmax.softmax),
    "merge": Implementation("merge", merge.merge, inputs=2),
    "concatenate": Implementation("concatenate", merge.concatenate, inputs=2),
    "fixed_point_quantizer": Implementation("fixed_point_quantizer", quantizer.fixed_point_quantizer),
    "batchnorm_quantized_tanh": Implementation("batchnorm_quantized_tanh", binary.batchnorm_quantized_tanh),
    "binary_activation": Implementation("binary_activation", binary.binary_activation),
}


def implementation(layer: Any) -> Implementation | None:
    """The description of an hls4ml layer, by its class (None if there is none)."""
    from hls4ml.model import layers as L

    if isinstance(layer, L.Softmax) or type(layer).__name__.endswith("Softmax"):
        return IMPLEMENTATIONS["softmax"]
    from hls4ml.model.optimizer.passes.hgq_proxy_model import FixedPointQuantizer

    if isinstance(layer, FixedPointQuantizer):  # hls4ml's layer for HGQ2's heterogeneous quantizers
        return IMPLEMENTATIONS["fixed_point_quantizer"]
    from hls4ml.backends.fpga.fpga_layers import BatchNormalizationQuantizedTanh

    if isinstance(layer, BatchNormalizationQuantizedTanh):  # BatchNormalization + binary/ternary tanh, as thresholds
        return IMPLEMENTATIONS["batchnorm_quantized_tanh"]
    if isinstance(layer, L.Activation) and activations.activation_name(layer) in binary.ACTIVATIONS:
        return IMPLEMENTATIONS["binary_activation"]  # also QKeras's TernaryTanh class
    if isinstance(layer, (L.Conv2DBatchnorm, L.DepthwiseConv1D, L.DepthwiseConv2D)) or (
            type(layer).__name__.endswith("DenseBatchnorm")):
        return None  # subclasses of Conv1D/Conv2D with different arithmetic
    by_class = [
        (L.Dense, "dense"), (L.Conv2D, "conv2d"), (L.Conv1D, "conv1d"), (L.Pooling2D, "pooling2d"),
        (L.Pooling1D, "pooling1d"), (L.GlobalPooling1D, "global_pooling"), (L.GlobalPooling2D, "global_pooling"),
        (L.Reshape, "reshape"), (L.ZeroPadding2D, "zeropad2d"), (L.ZeroPadding1D, "zeropad1d"),
        (L.BatchNormalization, "batchnorm"), (L.Concatenate, "concatenate"),
    ]
    for cls, key in by_class:
        if isinstance(layer, cls):
            return IMPLEMENTATIONS[key]
    if isinstance(layer, L.Merge) and not isinstance(layer, (L.Dot, L.BiasAdd)):
        return IMPLEMENTATIONS["merge"]
    if type(layer).__name__.endswith(("Clone", "Repack")) and layer.class_name in ("Clone", "Repack"):
        return IMPLEMENTATIONS["copy"]
    act = activations.activation_name(layer) if isinstance(layer, L.Activation) else ""
    if isinstance(layer, L.HardActivation):
        return IMPLEMENTATIONS["hard_activation"] if act in activations.HARD_ACTIVATIONS else None
    if isinstance(layer, L.ParametrizedActivation):
        return IMPLEMENTATIONS["param_activation"] if act in activations.PARAM_ACTIVATIONS else None
    if type(layer).__name__.endswith("Activation") and isinstance(layer, L.Activation):
        return IMPLEMENTATIONS["activation"]
    return None


def check_catapult(layer: Any, impl: Implementation) -> None:
    """FlowError unless ``layer`` is one the descriptions were checked to reproduce on the Catapult backend."""
    why = None
    if not impl.catapult:
        why = "this layer type"
    elif impl.name == "activation" and activations.activation_name(layer) not in ("relu", "linear"):
        why = (f"activation {layer.get_attr('activation')!r} (Catapult computes it with ac_math "
               "piecewise-linear functions)")
    elif impl.name in ("dense", "conv2d") and not is_latency_strategy(layer):
        why = f"strategy {layer.get_attr('strategy')!r}"
    elif impl.name in ("dense", "conv2d"):
        from hls4ml.model.types import FixedPrecisionType, IntegerPrecisionType

        for var in layer.get_weights():
            prec = var.type.precision
            if not isinstance(prec, (FixedPrecisionType, IntegerPrecisionType)) or type(prec).__name__.endswith(
                    ("ExponentPrecisionType", "XnorPrecisionType")):
                why = f"weights of type {prec}"
    if why is not None:
        raise FlowError(f"{where(layer)}: {why} is not supported by the emulator on the Catapult backend "
                        f"(supported there: {CATAPULT_LAYERS})")
