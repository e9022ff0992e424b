"""hls4ml ``softmax_stable`` / ``softmax_latency`` (io_parallel and io_stream), table for table.

stable: ``d_i = (inp_norm_t)(max_j x_j - x_i)``; ``e_i = (accum_t) exp_table[top bits of d_i]`` with
``exp_table[k] = expf(-value_k * exp_scale)``; latency indexes ``exp_table`` (``expf(+value_k * exp_scale)``)
with the top bits of ``x_i`` itself. Then ``s = (inv_inp_t) reduce_add<accum_t>(e)`` (balanced tree, each sum
cast to ``accum_t``), ``r = invert_table[top bits of s]`` with ``invert_table[k] = 1/value_k`` in float, and
``y_i = (result_t)(e_i * r)``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from flow.arith.hls_layer import ftype, out_type, where
from flow.arith.layers.common import add_cast, tree_reduce
from flow.arith.ops import Ops, Tensor
from flow.arith.tables import exp_table, index_bits, invert_table
from flow.arith.target import Target
from flow.arith.types import FixedType, parse_type
from flow.core.errors import FlowError

IMPLEMENTATIONS = ("stable", "latency")


@dataclass(frozen=True)
class SoftmaxConfig:
    """The softmax config struct exactly as written to the HLS project."""

    implementation: str
    n_slice: int
    n_outer: int
    n_inner: int
    exp_table_size: int
    inv_table_size: int
    exp_scale: np.float32
    exp_table_t: FixedType
    inv_table_t: FixedType
    accum_t: FixedType
    inv_inp_t: FixedType
    inp_norm_t: FixedType | None


def softmax_config(layer: Any) -> SoftmaxConfig:
    """The config struct as hls4ml writes it (``config_cpp``, from its ``SoftmaxConfigTemplate``); typedef
    names are resolved through the layer's named types."""
    text = layer.get_attr("config_cpp")
    if not text:
        from hls4ml.backends.vivado.passes.core_templates import SoftmaxConfigTemplate

        text = SoftmaxConfigTemplate().format(layer)
    ints = {k: int(v) for k, v in re.findall(r"static const unsigned (\w+) = (-?\d+);", text)}
    impl = re.search(r"softmax_implementation::(\w+);", text)
    scale = re.search(r"exp_scale = ([^;]+);", text)
    typedefs = {alias: name.strip() for name, alias in re.findall(r"typedef ([^;]+?) (\w+);", text)}
    if impl is None or scale is None:
        raise FlowError(f"{where(layer)}: cannot read its softmax config:\n{text}")
    named = {}
    for value in layer.attributes.values():
        if hasattr(value, "precision") and hasattr(value, "name"):
            named.setdefault(str(value.name), value.precision)

    def resolve(alias: str) -> FixedType | None:
        name = typedefs.get(alias)
        if name is None:
            return None
        if name in named:
            return ftype(layer, named[name], alias)
        try:
            return parse_type(name.replace(" ", ""))
        except ValueError as exc:
            raise FlowError(f"{where(layer)}: {alias} {name!r}: {exc}") from None

    types = {a: resolve(a) for a in ("exp_table_t", "inv_table_t", "accum_t", "inv_inp_t", "inp_norm_t")}
    for a in ("exp_table_t", "inv_table_t", "accum_t", "inv_inp_t"):
        if types[a] is None:
            raise FlowError(f"{where(layer)}: softmax config has no {a}")
    return SoftmaxConfig(
        implementation=impl.group(1), n_slice=ints["n_slice"], n_outer=ints.get("n_outer", 1),
        n_inner=ints.get("n_inner", 1), exp_table_size=ints["exp_table_size"],
        inv_table_size=ints["inv_table_size"], exp_scale=np.float32(float(scale.group(1).rstrip("fF"))),
        **types,
    )


def top_bits(ops: Ops, x: Tensor, t: FixedType, n: int, table: np.ndarray, table_t: FixedType, role: str) -> Tensor:
    """``table[top n bits of x's word in type t]`` (``softmax_idx_from_real_val``): x (already of type t) is
    truncated to its top n bits (``ap_fixed<n, I>``), whose code read as unsigned is the index."""
    top = ops.cast(x, FixedType(n, t.integer, t.signed), role)
    mask = (1 << n) - 1
    return ops.lookup(top, lambda codes: table[codes & mask], table_t.fractional, table_t)


def softmax(layer: Any, xs: list[Tensor], ops: Ops, target: Target) -> Tensor:
    x = xs[0]
    cfg = softmax_config(layer)
    if cfg.implementation not in IMPLEMENTATIONS:
        raise FlowError(f"{where(layer)}: softmax implementation {cfg.implementation!r} is not supported by the "
                        f"emulator (supported: {', '.join(IMPLEMENTATIONS)})")
    shape = ops.shape(x)
    if target.stream and (cfg.n_inner != 1 or shape[-1] != cfg.n_slice):
        raise FlowError(f"{where(layer)}: io_stream softmax is emulated only over the last axis (n_slice "
                        f"{cfg.n_slice}, n_inner {cfg.n_inner}, input shape {shape})")
    v = ops.reshape(x, (cfg.n_outer, cfg.n_slice, cfg.n_inner))
    v = ops.reshape(ops.transpose(v, (0, 2, 1)), (cfg.n_outer * cfg.n_inner, cfg.n_slice))  # one softmax per row
    if cfg.implementation == "stable":
        if cfg.inp_norm_t is None:
            raise FlowError(f"{where(layer)}: softmax config has no inp_norm_t")
        idx_t = cfg.inp_norm_t
        m = ops.reshape(ops.reduce_max(v, -1), (cfg.n_outer * cfg.n_inner, 1))
        d = ops.cast(ops.sub(m, v), idx_t, "inp_norm_t")
    else:
        idx_t, d = x.t, v
    name = where(layer)
    n_exp = index_bits(name, idx_t, cfg.exp_table_size, "exp table")
    n_inv = index_bits(name, cfg.inv_inp_t, cfg.inv_table_size, "invert table")
    e_table = exp_table(idx_t, n_exp, cfg.exp_scale, cfg.implementation == "stable", cfg.exp_table_t)
    i_table = invert_table(cfg.inv_inp_t, n_inv, cfg.inv_table_t)
    acc_t = cfg.accum_t
    e = ops.cast(top_bits(ops, d, idx_t, n_exp, e_table, cfg.exp_table_t, "exp index"), acc_t, "accum")
    total = tree_reduce([ops.index(e, (slice(None), k)) for k in range(cfg.n_slice)], add_cast(ops, acc_t, "accum"))
    s = ops.cast(total, cfg.inv_inp_t, "inv_inp_t")
    r = top_bits(ops, s, cfg.inv_inp_t, n_inv, i_table, cfg.inv_table_t, "invert index")
    y = ops.cast(ops.mul(e, ops.reshape(r, (cfg.n_outer * cfg.n_inner, 1))), out_type(layer))
    y = ops.transpose(ops.reshape(y, (cfg.n_outer, cfg.n_inner, cfg.n_slice)), (0, 2, 1))
    return ops.reshape(y, shape)
