"""The RTL trace checked against the emulator: the helper every layer-model test uses."""

from __future__ import annotations

import numpy as np

from flow.arith.emulate import Emulation, emulate
from flow.arith.netlist_eval import predict
from flow.arith.trace import trace_graph
from flow.arith.types import parse_type, quantize
from flow.commands.verify import full_range_inputs
from flow.hls.convert import csim_predict


def normal_inputs(shape: tuple[int, ...], n: int, seed: int, input_type: str, scale: float = 2.0) -> np.ndarray:
    """``n`` inputs of ``shape`` drawn from N(0, ``scale``) and quantized to ``input_type`` (seeded)."""
    x = np.random.default_rng(seed).normal(0, scale, (n, *shape))
    return quantize(x, parse_type(input_type))


def assert_emulator_equals_csim(graph, x: np.ndarray, chunk: int) -> Emulation:
    """The emulator (with per-layer traces, in chunks of ``chunk`` samples: pick an odd size so chunk boundaries
    fall mid-batch) gives exactly the outputs of hls4ml's compiled C simulation on ``x``; returns the emulation."""
    want = csim_predict(graph, x)
    got = emulate(graph, x, trace=True, chunk=chunk)
    assert got.outputs.shape == want.shape
    assert got.outputs.dtype == np.float64
    differing = int(np.count_nonzero(got.outputs != want))
    assert differing == 0, f"{differing} of {want.size} outputs differ between the emulator and the C simulation"
    return got


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


def both_executors(fn, types, codes) -> tuple[np.ndarray, np.ndarray]:
    """``fn(ops, *inputs)`` (an :class:`~flow.arith.ops.Ops` program returning one Tensor) run by the numpy executor
    on ``codes`` (one (N, *shape) integer array per input, mantissas of ``types``) and by the symbolic executor on
    variables holding every code of those types, its netlist run by the exact interpreter
    (:func:`flow.arith.netlist_eval.evaluate_codes`) on the same codes. Returns both outputs as Python-int codes
    (N, n_out) at one common LSB, so equal arrays mean equal values bit for bit, at any width."""
    from decimal import localcontext

    from da4ml.trace import comb_trace

    from flow.arith import fxp
    from flow.arith.netlist_eval import evaluate_codes
    from flow.arith.numpy_ops import NumpyOps
    from flow.arith.ops import Tensor
    from flow.arith.symbolic_ops import SymbolicOps

    n = len(codes[0])
    got = fn(NumpyOps(), *[Tensor(fxp.as_int64(np.asarray(c)), t.fractional, t) for c, t in zip(codes, types)])
    data = np.asarray(got.data)
    np_codes = (np.broadcast_to(data, (n, *data.shape)) if got.const else data).reshape(n, -1)
    ops = SymbolicOps()
    with localcontext() as ctx:
        ctx.prec = 200
        ins = [ops.variables(t, tuple(np.shape(c)[1:])) for c, t in zip(codes, types)]
        out = fn(ops, *ins)
        flat_in = [v for x in ins for v in np.ravel(x.data)]
        outs = list(np.ravel(ops.array(out)._vars))
    comb = comb_trace(flat_in, outs, keep_dead_inputs=True)
    flat_codes = np.concatenate([fxp.as_object(np.asarray(c)).reshape(n, -1) for c in codes], axis=1)
    sym, fracs = evaluate_codes(comb, flat_codes, [t.fractional for t, c in zip(types, codes)
                                                   for _ in range(int(np.prod(np.shape(c)[1:])))])
    top = max([got.frac, *fracs])
    a = fxp.as_object(np_codes) * (1 << (top - got.frac))
    b = fxp.as_object(sym).copy()
    for j, f in enumerate(fracs):
        b[:, j] = b[:, j] * (1 << (top - f))
    return a, b
