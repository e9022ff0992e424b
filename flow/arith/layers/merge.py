"""Merges and concatenation (``nnet_merge.h``, ``nnet_merge_stream.h``).

``res[i] = (res_T)(a[i % n1] OP b[i % n2])`` with the exact ap_fixed sum, difference or product; average is
``(a + b) * 0.5``; maximum/minimum compare exactly and cast the chosen input. io_parallel broadcasts the
smaller input by the flat index modulo its size. Concatenate puts the two inputs side by side along ``axis``,
each value cast to the output type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith.hls_layer import out_shape, out_type, where
from flow.arith.ops import Ops, Tensor
from flow.arith.target import Target
from flow.core.errors import FlowError

MERGE_OPS = ("add", "subtract", "multiply", "average", "maximum", "minimum")


def merge(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    op = str(layer.get_attr("op", "")).lower()
    if op not in MERGE_OPS:
        raise FlowError(f"{where(layer)}: merge operation {op!r} is not supported by the emulator "
                        f"(supported: {', '.join(MERGE_OPS)})")
    if len(xs) != 2:
        raise FlowError(f"{where(layer)}: {len(xs)} inputs; hls4ml merges two")
    a, b = xs
    na, nb = int(np.prod(ops.shape(a))), int(np.prod(ops.shape(b)))
    idx = np.arange(max(na, nb))
    a, b = ops.gather(a, idx % na), ops.gather(b, idx % nb)
    if op == "add":
        y = ops.add(a, b)
    elif op == "subtract":
        y = ops.sub(a, b)
    elif op == "average":
        y = ops.scale(ops.add(a, b), -1)  # times ap_ufixed<1,0>(0.5): one more fractional bit
    elif op == "multiply":
        y = ops.mul(a, b)
    elif op == "maximum":
        y = ops.maximum(a, b)
    else:
        y = ops.minimum(a, b)
    return ops.reshape(ops.cast(y, out_type(layer)), out_shape(layer))


def concatenate(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    if len(xs) != 2:
        raise FlowError(f"{where(layer)}: {len(xs)} inputs; hls4ml concatenates two")
    axis = int(layer.get_attr("axis", -1))
    if axis > 0:
        axis -= 1  # hls4ml: a positive Keras axis counts the batch dimension
    out_t = out_type(layer)
    parts = [ops.cast(x, out_t) for x in xs]
    y = ops.concat(parts, axis % ops.ndim(parts[0]))
    if list(ops.shape(y)) != out_shape(layer):
        raise FlowError(f"{where(layer)}: concatenated shape {list(ops.shape(y))} != output shape {out_shape(layer)}")
    return y
