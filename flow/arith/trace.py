"""The RTL's arithmetic: an hls4ml ModelGraph traced into da4ml combinational logic.

The layers are the same descriptions the emulator executes (:mod:`flow.arith.layers`), run by
:class:`flow.arith.symbolic_ops.SymbolicOps` on one sample of da4ml ``FixedVariable`` objects; constant-matrix
products become da4ml's CMVM adder trees, lookups become ROMs. :func:`trace_graph` returns the flattened
input and output arrays that ``da4ml.trace.comb_trace`` turns into a netlist (:mod:`flow.rtl.generate`).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import localcontext
from typing import Any

from flow.arith.hls_layer import out_type
from flow.arith.symbolic_ops import SymbolicOps, cyclic_gc_paused, kif
from flow.arith.target import Target
from flow.arith.types import FixedType
from flow.arith.walk import LayerHook, output_names, plan, run
from flow.core.errors import FlowError

__all__ = ["Traced", "trace_graph", "kif"]
DECIMAL_DIGITS = 200  # exact decimal arithmetic for every constant while tracing (da4ml uses Decimal)


@dataclass
class Traced:
    """The traced graph: da4ml input/output arrays (flattened) and the declared port types."""

    inputs: Any
    outputs: Any
    input_type: FixedType
    output_type: FixedType
    input_shape: tuple[int, ...]
    n_outputs: int
    output_layer: str
    layers: dict[str, Any]  # layer name -> its traced output (flat FixedVariableArray), for locating a difference


def trace_graph(graph: Any, upto: str | None = None, on_layer: LayerHook | None = None) -> Traced:
    """Trace ``graph`` (up to layer ``upto``, inclusive) for one sample. FlowError names the first layer that
    cannot be traced and the operation. ``on_layer``: called around every layer (:func:`flow.arith.walk.run`)."""
    steps = plan(graph, upto)
    out_name = output_names(graph, steps, upto)[0]
    ops = SymbolicOps()
    with localcontext() as ctx, cyclic_gc_paused():
        ctx.prec = DECIMAL_DIGITS
        by_var, by_layer = run(steps, ops, Target.of(graph), on_layer)
    inp = ops.inputs[0]
    out = by_var[out_name]
    if out.t is None:
        raise FlowError(f"the graph output {out_name!r} has no declared type")
    outputs = ops.array(out)
    return Traced(inputs=inp.reshape(-1), outputs=outputs, input_type=out_type(steps[0].layer), output_type=out.t,
                  input_shape=tuple(inp.shape), n_outputs=int(outputs.size), output_layer=steps[-1].name,
                  layers={name: ops.array(v) for name, v in by_layer.items() if v.t is not None})
