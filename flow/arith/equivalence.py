"""The gate between the two executors: the traced netlist must compute the emulator's bits.

:func:`check_netlist` runs da4ml's interpreter of the traced netlist (``CombLogic.predict``) and the emulator
on the same inputs, drawn from every code of the input type, and raises :class:`~flow.core.errors.NotBitExact`
naming the first layer whose traced outputs differ from the emulator's when any output differs. The netlist is
run by :func:`flow.arith.netlist_eval.predict` (exact at every width; da4ml's C++ interpreter is not for signed
ops wider than 32 bits).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flow.arith.emulate import emulate
from flow.arith.netlist_eval import predict
from flow.arith.types import full_range_inputs
from flow.core.errors import NotBitExact


@dataclass(frozen=True)
class Equivalence:
    """What the gate compared: ``samples`` inputs (seed ``seed``), ``outputs`` values, all equal."""

    samples: int
    seed: int
    outputs: int
    differing_outputs: int

    def to_dict(self) -> dict[str, int]:
        return {"samples": self.samples, "seed": self.seed, "outputs": self.outputs,
                "differing_outputs": self.differing_outputs}


def check_netlist(graph: Any, traced: Any, comb: Any, samples: int = 2000, seed: int = 0,
                  upto: str | None = None) -> Equivalence:
    """Compare the netlist ``comb`` (traced from ``graph``) with the emulator on ``samples`` inputs."""
    x = full_range_inputs(traced.input_type, traced.input_shape, samples, seed)
    want = emulate(graph, x, upto=upto, trace=True)
    got = predict(comb, x.reshape(len(x), -1))
    differing = int(np.count_nonzero(got != want.outputs)) if got.shape == want.outputs.shape else int(want.outputs.size)
    if differing:
        layer = _first_differing_layer(traced, want, x)
        where = f" (first differing layer: {layer!r})" if layer else ""
        raise NotBitExact(f"the traced RTL differs from the emulator on {differing} of {want.outputs.size} outputs "
                          f"({samples} full-range inputs, seed {seed}){where}; no RTL was written")
    return Equivalence(samples, seed, int(want.outputs.size), 0)


def _first_differing_layer(traced: Any, emulation: Any, x: np.ndarray) -> str | None:
    from da4ml.trace import comb_trace

    for tr in emulation.traces:
        if tr.name not in traced.layers:
            continue
        comb = comb_trace(traced.inputs, traced.layers[tr.name], keep_dead_inputs=True)
        got = predict(comb, x.reshape(len(x), -1))
        want = tr.values.reshape(len(x), -1)
        if got.shape != want.shape or np.any(got != want):
            return tr.name
    return None
