"""HGQ2's heterogeneous activation quantizer as hls4ml keeps it (``FixedPointQuantizer``, io_parallel only):
element k of the input is cast to its own type, ``out[k] = ap_fixed<B_k, I_k, AP_RND, AP_SAT>(inp[k])``
(``ap_ufixed`` where ``k_k`` is 0; 0 where ``B_k`` is 0), then assigned to the output type
(``hls4ml/backends/fpga/passes/hgq_proxy_model.py``, ``generate_mask_fn``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith.hls_layer import out_type, where
from flow.arith.layers.common import zero
from flow.arith.ops import Ops, Tensor
from flow.arith.target import Target
from flow.arith.types import FixedType
from flow.core.errors import FlowError


def element_types(layer: Any, shape: tuple[int, ...]) -> np.ndarray:
    """The per-element types of the quantizer (None where it has no bits), shape ``shape``."""
    mask = layer.get_attr("mask_kbi")
    if mask is None:
        raise FlowError(f"{where(layer)}: no quantization mask (mask_kbi)")
    rnd, sat = str(layer.get_attr("RND")).upper(), str(layer.get_attr("SAT")).upper()
    k, b, i = (np.broadcast_to(np.asarray(m).reshape(-1, *np.shape(m)[1:])[0], shape) for m in mask)
    out = np.empty(shape, dtype=object)
    for idx in np.ndindex(*shape):
        out[idx] = FixedType(int(b[idx]), int(i[idx]), bool(k[idx]), rnd, sat) if int(b[idx]) > 0 else None
    return out


def fixed_point_quantizer(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    x = xs[0]
    if target.stream:
        raise FlowError(f"{where(layer)}: hls4ml supports heterogeneous quantizers only in io_parallel")
    types = element_types(layer, ops.shape(x))
    y = None
    for t in sorted({t for t in types.ravel() if t is not None}, key=str):
        part = ops.cast(x, t, "quantizer")
        y = part if y is None else ops.select(ops.const(np.vectorize(lambda u: u == t)(types), 0), part, y)
    if y is None:
        y = ops.mul(x, zero(ops))  # no element has bits
    empty = np.vectorize(lambda u: u is None)(types)
    if np.any(empty):
        y = ops.select(ops.const(empty, 0), zero(ops), y)
    return ops.cast(y, out_type(layer))
