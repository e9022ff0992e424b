"""The bit-exact emulator: an hls4ml ModelGraph executed on numpy integers, equal to hls4ml's C simulation.

The arithmetic of every layer is the one description in :mod:`flow.arith.layers` (the same the RTL is traced
from), executed by :class:`flow.arith.numpy_ops.NumpyOps` in batches. Types come from the converted graph
(:mod:`flow.arith.hls_layer`). Values are integer mantissas (``ap_fixed<W,I>``: W total bits, I integer bits
incl. sign; a value of type t is ``mantissa * 2**-(W-I)``).

Checked against hls4ml 1.3's C simulation on every output bit (tests/test_emulate*.py, the equivalence test
``tests/test_arith_equivalence.py``):

* Vitis/Vivado, io_parallel and io_stream: Dense (Latency; Resource io_parallel), Conv1D, Conv2D,
  MaxPooling1D/2D, AveragePooling1D/2D, GlobalMax/AveragePooling1D/2D, Flatten, Reshape, ZeroPadding1D/2D,
  standalone BatchNormalization (Keras and QKeras), ReLU (``max_value`` is dropped by hls4ml's parser),
  linear, LeakyReLU (Keras layer and QKeras ``quantized_relu(negative_slope=...)``), ThresholdedReLU,
  hard_sigmoid, hard_tanh (QKeras ``quantized_tanh``), sigmoid/tanh tables, Softmax (stable, latency),
  Add/Subtract/Multiply/Average/Maximum/Minimum, Concatenate (channels of 3-D tensors; vectors);
  io_parallel only: padded (``'same'``) Max/Average pooling with stride != pool size, 1x1
  (PointwiseConv2D) convolution. Inputs to pooling/accumulators with hls4ml's inferred types and with
  narrow rounding, saturating and wrapping ``accum_t`` set in the config.
* Catapult (``ac_fixed``), io_parallel and io_stream: Dense and Conv2D (Latency), ReLU/linear,
  MaxPooling2D, Flatten, including AC_RND_INF/AC_SAT_SYM, AC_TRN_ZERO/AC_SAT and AC_RND_ZERO/AC_SAT_ZERO
  types. Other Catapult layers raise :class:`FlowError` (its sigmoid/tanh/softmax use ac_math
  piecewise-linear functions and its average pooling has its own ac_fixed accumulator).

Other layers (e.g. PReLU, ELU, DepthwiseConv, SeparableConv, Dot, Cropping, recurrent layers) raise
:class:`FlowError` naming the layer.
"""

from __future__ import annotations

import contextvars
import math
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from flow.arith import fxp
from flow.arith.heap import kept_heap
from flow.arith.hls_layer import weights_read_once
from flow.arith.numpy_ops import NumpyOps
from flow.arith.ops import CastRecord
from flow.arith.target import Target
from flow.arith.types import FixedType
from flow.arith.walk import output_names, plan, run, work_per_sample
from flow.core.errors import FlowError

MAX_THREADS = 8  # batches run side by side at most (each holds its temporaries)
MAX_WORK_ELEMENTS = 1 << 20  # bound on one layer's temporaries per batch (samples * per-sample elements)


@dataclass
class LayerTrace:
    """One layer's output over all emulated samples.

    ``type`` is the fixed-point output type string; ``n_overflow`` counts values that wrapped or
    saturated when cast to that type; ``type_min``/``type_max`` are the type's representable range.
    """

    name: str
    type: str
    values: np.ndarray
    n_overflow: int
    observed_min: float
    observed_max: float
    type_min: float
    type_max: float


@dataclass
class Emulation:
    """Emulator result. ``outputs`` has the layout of :func:`flow.hls.convert.csim_predict` (N, n_out).

    ``overflows``: layer name -> values wrapped or saturated by the cast to the layer's output type.
    ``casts``: every cast of every layer with the values it rounded and overflowed (with ``count_rounding``
    the rounded counts are measured, else 0).
    """

    outputs: np.ndarray
    traces: list[LayerTrace] = field(default_factory=list)
    overflows: dict[str, int] = field(default_factory=dict)
    casts: list[CastRecord] = field(default_factory=list)


def emulate(graph: object, x: np.ndarray, trace: bool = False, chunk: int = 8192, upto: str | None = None,
            count_rounding: bool = False) -> Emulation:
    """Run the hls4ml ``graph`` on float inputs ``x`` (batch first) in integer fixed-point arithmetic.

    Inputs are converted to the input layer's type exactly as the C simulation's bridge does
    (``ap_fixed(double)`` with that type's rounding/overflow). ``outputs`` are float64 values of the
    output type, shape ``(N, n_out)``, the layout of :func:`flow.hls.convert.csim_predict`. With
    ``trace=True`` every layer's output values are kept; overflow counts are always computed.
    Samples are processed in batches of at most ``chunk`` (fewer when a layer's temporaries would be large) to
    bound memory, on :func:`emulator_threads` threads (results and counts do not depend on how many). ``upto``
    names a layer to stop at: ``outputs`` are then that layer's output (for comparing a
    prefix of a model, e.g. before a softmax).
    """
    steps = plan(graph, upto)
    out_name = output_names(graph, steps, upto)[0]
    target = Target.of(graph)
    x = np.asarray(x, dtype=np.float64)
    n = x.shape[0]
    batch = int(max(1, min(chunk, MAX_WORK_ELEMENTS // max(1, work_per_sample(steps)))))
    starts = list(range(0, n, batch)) or [0]

    def one(start: int) -> _BatchResult:
        return _batch(steps, NumpyOps(count_rounding=count_rounding), target, x[start:start + batch], out_name, trace)

    with weights_read_once(), kept_heap():
        done = [one(starts[0])]  # reads the weights and loads the compiled loops once, before any thread starts
        threads = min(emulator_threads(), len(starts) - 1)
        if threads > 1:
            with ThreadPoolExecutor(threads) as pool:
                ctx = contextvars.copy_context  # each task sees the weights read above
                done += [f.result() for f in [pool.submit(ctx().run, one, st) for st in starts[1:]]]
        else:
            done += [one(st) for st in starts[1:]]
    ops = done[0].ops
    for d in done[1:]:
        ops.absorb(d.ops)
    overflows = {s.name: ops.overflows(s.name) for s in steps}
    traces = []
    if trace:
        for s in steps:
            vals = np.concatenate([d.traces[s.name] for d in done], axis=0)
            t = done[-1].types[s.name]
            traces.append(LayerTrace(
                name=s.name, type=str(t), values=vals, n_overflow=overflows[s.name],
                observed_min=float(vals.min()) if vals.size else math.nan,
                observed_max=float(vals.max()) if vals.size else math.nan,
                type_min=_type_min(t), type_max=_type_max(t),
            ))
    return Emulation(outputs=np.concatenate([d.outputs for d in done], axis=0), traces=traces, overflows=overflows,
                     casts=ops.records)


def emulator_threads() -> int:
    """Threads that run batches side by side: the CPUs this process may use, at most :data:`MAX_THREADS`. Each
    batch has its own executor and the batches' records are added in batch order, so results and counts do
    not depend on the thread count; the compiled loops release the GIL."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(MAX_THREADS, cpus))


@dataclass
class _BatchResult:
    outputs: np.ndarray
    ops: NumpyOps
    types: dict[str, FixedType | None]
    traces: dict[str, np.ndarray]


def _batch(steps: list, ops: NumpyOps, target: Target, xb: np.ndarray, out_name: str, trace: bool) -> _BatchResult:
    ops.feed(xb)
    by_var, by_layer = run(steps, ops, target)
    if out_name not in by_var:
        raise FlowError(f"graph output {out_name!r} is not produced by any emulated layer")
    types = {name: res.t for name, res in by_layer.items()}
    traces = ({name: fxp.to_float(res.data, res.frac).reshape(res.data.shape) for name, res in by_layer.items()}
              if trace else {})
    y = by_var[out_name]
    return _BatchResult(fxp.to_float(y.data, y.frac).reshape(xb.shape[0], -1), ops, types, traces)


def _type_min(t: FixedType | None) -> float:
    if t is None:
        return -math.inf
    lo = -t.max_code if t.overflow == "SAT_SYM" and t.signed else t.min_code
    return math.ldexp(lo, -t.fractional)


def _type_max(t: FixedType | None) -> float:
    return math.inf if t is None else t.max_value
