"""The RTL trace checked against the emulator: the helper every layer-model test uses."""

from __future__ import annotations

import numpy as np

from flow.arith.emulate import emulate
from flow.arith.netlist_eval import predict
from flow.arith.trace import trace_graph
from flow.verify import full_range_inputs


def assert_trace_equals_emulator(graph, n: int = 2000, seed: int = 0, upto: str | None = None) -> int:
    """The graph traced by the symbolic executor (da4ml's interpreter of the netlist) computes exactly what the
    numpy executor computes, on ``n`` inputs drawn from every code of the input type. Returns the number of
    outputs compared."""
    from da4ml.trace import comb_trace

    traced = trace_graph(graph, upto)
    comb = comb_trace(traced.inputs, traced.outputs, keep_dead_inputs=True)
    x = full_range_inputs(traced.input_type, traced.input_shape, n, seed)
    want = emulate(graph, x, upto=upto).outputs
    got = predict(comb, x.reshape(len(x), -1))
    assert got.shape == want.shape
    differing = int(np.count_nonzero(got != want))
    assert differing == 0, f"{differing} of {want.size} outputs differ between the RTL trace and the emulator"
    return int(want.size)
