"""Layers that move values without arithmetic: Reshape/Flatten, ZeroPadding1D/2D, and hls4ml's io_stream
``Clone`` (``clone_stream``: the input on every output) and ``Repack`` (``repack_stream``). Every value is cast
to the output type (normally the identity)."""

from __future__ import annotations

from typing import Any

from flow.arith.hls_layer import channels_last, ftype, int_attr, out_shape, out_type, where
from flow.arith.ops import Ops, Tensor
from flow.arith.target import Target
from flow.core.errors import FlowError


def reshape(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    return ops.cast(ops.reshape(xs[0], out_shape(layer)), out_type(layer))


def zeropad2d(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    channels_last(layer)
    pads = [(int_attr(layer, "pad_top"), int_attr(layer, "pad_bottom")),
            (int_attr(layer, "pad_left"), int_attr(layer, "pad_right")), (0, 0)]
    return ops.cast(ops.pad(xs[0], pads), out_type(layer))


def zeropad1d(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    """nnet_padding.h ``zeropad1d_cl``: zeros left and right."""
    channels_last(layer)
    pads = [(int_attr(layer, "pad_left"), int_attr(layer, "pad_right")), (0, 0)]
    return ops.cast(ops.pad(xs[0], pads), out_type(layer))


def copy(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    out_t = out_type(layer)
    for name in layer.outputs:
        if ftype(layer, layer.get_output_variable(name).type.precision, f"output {name}") != out_t:
            raise FlowError(f"{where(layer)}: outputs of different types")
    return ops.cast(ops.reshape(xs[0], out_shape(layer)), out_t)
