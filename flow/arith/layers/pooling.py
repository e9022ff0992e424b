"""Max and Average pooling, 1-D and 2-D, and global pooling (``nnet_pooling.h``, ``nnet_pooling_stream.h``).

io_parallel: a window of input values (padding cells hold :func:`pad_code`); Max takes the maximum in the
input type and casts it to ``accum_t``; Average starts ``accum_t y = 0``, does ``y += x_k`` in window order
(each sum cast to ``accum_t``), then ``y /= n`` with n the number of non-padding cells (or the window size with
``count_pad``), an integer division truncating toward zero. io_stream (no padding, pool == stride): every value
is cast to ``accum_t`` first; Max is their maximum, Average their balanced-tree sum (each partial sum cast to
``accum_t``) divided by the window size the same way. The result is cast to the output type.

Global pooling, io_parallel: over the pixels in order, Max takes the maximum in the input type and casts it to
``accum_t``; Average does ``y += x`` in ``accum_t`` then ``y /= n_pixels``. io_stream: a per-channel ``accum_t``
register takes ``max(reg, (accum_t)x)`` or ``(accum_t)(reg + (accum_t)x)`` pixel by pixel; Average ends with
``reg / n_pixels``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith.hls_layer import attr_type, channels_last, int_attr, out_type, where
from flow.arith.layers.common import add_cast, div_trunc, tree_reduce
from flow.arith.ops import Ops, Tensor
from flow.arith.target import Target
from flow.arith.types import FixedType
from flow.core.errors import FlowError


def pad_code(t: FixedType, op: str) -> int:
    """nnet_pooling.h ``pad_val``: 0 for Average; for Max a word with only its top bit set, which is the most
    negative value of a signed type but ``+2**(W-1)`` LSBs for an unsigned one (hls4ml's code, reproduced)."""
    if op != "Max":
        return 0
    return -(1 << (t.width - 1)) if t.signed else 1 << (t.width - 1)


def _op(layer: Any, target: Target) -> str:
    op = layer.get_attr("pool_op")
    if op not in ("Max", "Average"):
        raise FlowError(f"{where(layer)}: {op} pooling is not supported by the emulator")
    channels_last(layer)
    return op


def _pool(layer: Any, x: Tensor, ops: Ops, target: Target, two_d: bool) -> Tensor:
    op = _op(layer, target)
    if two_d:
        pool = (int_attr(layer, "pool_height"), int_attr(layer, "pool_width"))
        stride = (int_attr(layer, "stride_height"), int_attr(layer, "stride_width"))
        out = (int_attr(layer, "out_height"), int_attr(layer, "out_width"))
        pads = [(int_attr(layer, "pad_top"), int_attr(layer, "pad_bottom")),
                (int_attr(layer, "pad_left"), int_attr(layer, "pad_right"))]
    else:
        pool, stride, out = (int_attr(layer, "pool_width"),), (int_attr(layer, "stride_width"),), (int_attr(layer, "n_out"),)
        pads = [(int_attr(layer, "pad_left"), int_attr(layer, "pad_right"))]
    acc_t, out_t = attr_type(layer, "accum_t"), out_type(layer)
    if target.catapult and (op != "Max" or acc_t != x.t):
        raise FlowError(f"{where(layer)}: on the Catapult backend the emulator supports only max pooling with "
                        f"accum_t equal to the input type (here {op}, accum_t {acc_t}, input {x.t})")
    padded = any(a or b for a, b in pads)
    if target.stream and (padded or pool != stride):
        raise FlowError(f"{where(layer)}: hls4ml's io_stream pooling requires no padding and pool size == stride "
                        f"(pool {pool}, stride {stride}, padding {pads})")
    spatial = ops.shape(x)[:-1]
    count = np.ones(spatial, dtype=np.int64)
    if padded:
        x = ops.pad(x, pads + [(0, 0)], pad_code(x.t, op))
        count = np.pad(count, pads)
    k = int(np.prod(pool))
    if target.stream:  # pool == stride: the windows do not overlap, so casting the input casts every cell once
        x = ops.cast(x, acc_t, "accum")
    win = ops.windows(x, pool, stride, out)             # (*out, C, *pool), cells in row-major window order
    if op == "Max":
        for _ in pool:  # first pool axis first (rows of a channels-last tensor are contiguous in numpy)
            win = ops.reduce_max(win, len(out) + 1)     # the maximum of a window does not depend on the order
        y = win if target.stream else ops.cast(win, acc_t, "accum")
    elif target.stream:
        win = ops.reshape(win, (*ops.shape(win)[:len(out) + 1], k))
        cells = [ops.index(win, (Ellipsis, j)) for j in range(k)]
        y = div_trunc(ops, tree_reduce(cells, add_cast(ops, acc_t, "accum")), k)
    else:
        win = ops.reshape(win, (*ops.shape(win)[:len(out) + 1], k))
        y = ops.cast(ops.index(win, (Ellipsis, 0)), acc_t, "accum")
        for j in range(1, k):
            y = ops.cast(ops.add(y, ops.index(win, (Ellipsis, j))), acc_t, "accum")
        if layer.get_attr("count_pad", False):
            n_cells = np.full(out, k, dtype=np.int64)
        else:
            cw = np.lib.stride_tricks.sliding_window_view(count, pool)
            cw = cw[tuple(slice(None, None, s) for s in stride)][tuple(slice(0, o) for o in out)]
            n_cells = cw.reshape(*out, k).sum(axis=-1)
        y = div_trunc(ops, y, n_cells[..., None])
    return ops.cast(y, out_t)


def pooling2d(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    return _pool(layer, xs[0], ops, target, two_d=True)


def pooling1d(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    return _pool(layer, xs[0], ops, target, two_d=False)


def global_pooling(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    x = xs[0]
    op = _op(layer, target)
    if target.catapult:
        raise FlowError(f"{where(layer)}: global pooling is not emulated for the Catapult backend")
    acc_t, out_t = attr_type(layer, "accum_t"), out_type(layer)
    shape = ops.shape(x)
    v = ops.reshape(x, (int(np.prod(shape[:-1])), shape[-1]))  # (pixels, C)
    pixels = ops.shape(v)[0]
    if target.stream:
        v = ops.cast(v, acc_t, "accum")
    if op == "Max":
        y = ops.reduce_max(v, 0)
        if not target.stream:
            y = ops.cast(y, acc_t, "accum")
    else:
        y = ops.cast(ops.index(v, (0,)), acc_t, "accum")
        for i in range(1, pixels):
            y = ops.cast(ops.add(y, ops.index(v, (i,))), acc_t, "accum")
        y = div_trunc(ops, y, pixels)
    return ops.cast(y, out_t)
