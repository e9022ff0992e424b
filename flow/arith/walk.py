"""Walking an hls4ml ModelGraph through the layer descriptions with one executor.

:func:`plan` orders the layers and finds each one's description (FlowError for the first layer without
one); :func:`run` executes the plan on an executor (:class:`~flow.arith.numpy_ops.NumpyOps` for the
emulator, :class:`~flow.arith.symbolic_ops.SymbolicOps` for the RTL trace). Both front ends,
:func:`flow.arith.emulate.emulate` and :func:`flow.arith.trace.trace_graph`, go through here, so the two
executions cannot differ in which layers run, in what order, or with which description.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from flow.arith.hls_layer import int_attr, out_type, where
from flow.arith.layers import SUPPORTED_LAYERS, Implementation, check_catapult, implementation
from flow.arith.ops import Ops, OpsError, Tensor
from flow.arith.target import Target
from flow.core.errors import FlowError


@dataclass(frozen=True)
class Step:
    """One layer of the plan: its description (None for the input layer) and the names of its inputs."""

    layer: Any
    impl: Implementation | None
    sources: tuple[str, ...]

    @property
    def name(self) -> str:
        return str(self.layer.name)


def plan(graph: Any, upto: str | None = None) -> list[Step]:
    """The layers in graph order, up to and including ``upto``; FlowError names the first unsupported layer."""
    from hls4ml.model import layers as L

    layers = list(graph.get_layers())
    if upto is not None and upto not in [layer.name for layer in layers]:
        raise FlowError(f"no layer named {upto!r} in the graph; layers: {', '.join(layer.name for layer in layers)}")
    target = Target.of(graph)
    steps: list[Step] = []
    for layer in layers:
        if steps and steps[-1].name == upto:
            break
        if isinstance(layer, L.Input):
            steps.append(Step(layer, None, ()))
            continue
        impl = implementation(layer)
        if impl is None:
            act = layer.get_attr("activation") if isinstance(layer, L.Activation) else None
            what = f"{layer.class_name}, activation {act!r}" if act else layer.class_name
            raise FlowError(f"layer {layer.name!r} of class {what} ({type(layer).__name__}) is not supported "
                            f"by the emulator (supported: {SUPPORTED_LAYERS})")
        if target.catapult:
            check_catapult(layer, impl)
        sources = tuple(i for i in layer.inputs if i)
        if len(sources) != impl.inputs:
            raise FlowError(f"{where(layer)}: {len(sources)} inputs, expected {impl.inputs}")
        steps.append(Step(layer, impl, sources))
    if not steps or steps[0].impl is not None:
        raise FlowError("the graph has no input layer")
    return steps


def output_names(graph: Any, steps: list[Step], upto: str | None) -> list[str]:
    names = [steps[-1].layer.outputs[0]] if upto is not None else list(graph.outputs)
    if len(names) != 1:
        raise FlowError(f"single-output models only; this graph has {len(names)} outputs")
    return names


LayerHook = Callable[[int, Step, "float | None"], None]


def run(steps: list[Step], ops: Ops, target: Target, on_layer: LayerHook | None = None
        ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Execute ``steps``; returns (tensor by output variable name, tensor by layer name).

    ``on_layer`` (the RTL trace's progress lines; the emulator passes none) is called for every layer with a
    description as ``on_layer(i, step, None)`` before it and ``on_layer(i, step, seconds)`` after it (i counts
    from 1, wall-clock seconds); it only observes: the results are the same with or without it."""
    by_var: dict[str, Tensor] = {}
    by_layer: dict[str, Tensor] = {}
    index = 0
    for step in steps:
        layer = step.layer
        ops.layer = step.name
        try:
            if step.impl is None:
                res = ops.input(out_type(layer), tuple(int(s) for s in layer.get_output_variable().shape))
            elif on_layer is None:
                res = step.impl.fn(layer, [by_var[s] for s in step.sources], ops, target)
            else:
                index += 1
                on_layer(index, step, None)
                t0 = time.perf_counter()
                res = step.impl.fn(layer, [by_var[s] for s in step.sources], ops, target)
                on_layer(index, step, time.perf_counter() - t0)
        except OpsError as exc:
            side = "RTL trace" if ops.symbolic else "emulator"
            raise FlowError(f"{where(layer)}: {exc} ({side})") from None
        for name in layer.outputs:  # Clone: the same values on every output
            by_var[name] = res
        by_layer[step.name] = res
    return by_var, by_layer


def work_per_sample(steps: list[Step]) -> int:
    """A bound on the elements of the largest temporary any layer makes per sample (im2col windows, casts of
    pooling windows), used to size the emulator's batches."""
    worst = 1
    for step in steps:
        layer = step.layer
        size = int(np.prod([int(s) for s in layer.get_output_variable().shape]))
        if step.impl is not None and step.impl.name in ("conv1d", "conv2d"):
            kernel = int_attr(layer, "filt_width", 1) * (int_attr(layer, "filt_height", 1) if step.impl.name == "conv2d" else 1)
            size = max(size, size // max(1, int_attr(layer, "n_filt", 1)) * kernel * int_attr(layer, "n_chan", 1))
        if step.impl is not None and step.impl.name in ("pooling1d", "pooling2d"):
            size *= int_attr(layer, "pool_width", 1) * int_attr(layer, "pool_height", 1)
        worst = max(worst, size)
    return worst
