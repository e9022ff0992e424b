"""The composition gate of a sequential architecture: its kernels, composed as the units compose them, against
the emulator.

:func:`predict` runs the traced kernels of an :class:`~flow.rtl.architecture.Architecture` with the exact interpreter
of each netlist (:func:`flow.arith.netlist_eval.predict`) in the order and on the data the units give them: line-buffer windows
(the padded image's windows in raster order), every step of a folded product on its slice of inputs with the
ROM word of that step and the running accumulator, collected chunks. :func:`check_composition` compares that
with the emulator on inputs drawn from every code of the input type and raises
:class:`~flow.core.errors.NotBitExact` naming the first unit whose output differs. It checks the decomposition
(cut points, slices, ROM contents, window geometry); the Verilog of the units is checked by the cocotb
testbench.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from flow.arith import netlist_eval
from flow.arith.equivalence import Equivalence
from flow.core.errors import NotBitExact
from flow.rtl.architecture import Architecture, Collect, Fold, Segment, Window


def _values(codes: np.ndarray, frac: int) -> np.ndarray:
    return np.asarray(codes, dtype=np.float64) * 2.0 ** -frac


def window_tokens(unit: Window, tokens: np.ndarray) -> np.ndarray:
    """(N, pixels, C) values -> (N, windows, C * prod(kernel)), each window in (channel, *kernel) order."""
    n = len(tokens)
    img = tokens.reshape(n, *unit.spatial, unit.channels)
    pad = unit.pad_code * 2.0 ** -unit.in_token.t.fractional
    img = np.pad(img, [(0, 0), *unit.pads, (0, 0)], constant_values=pad)
    nd = len(unit.kernel)
    win = np.lib.stride_tricks.sliding_window_view(img, unit.kernel, axis=tuple(range(1, nd + 1)))
    win = win[(slice(None),) + tuple(slice(None, None, s) for s in unit.stride)]
    win = win[(slice(None),) + tuple(slice(0, o) for o in unit.out)]  # (N, *out, C, *kernel)
    return win.reshape(n, int(np.prod(unit.out)), -1)


def fold_tokens(unit: Fold, tokens: np.ndarray) -> np.ndarray:
    """(N, beats, chunk) values -> (N, beats / group, n_out) accumulators: every step of the step kernel."""
    n, beats, chunk = tokens.shape
    groups = beats // unit.group
    x = tokens.reshape(n * groups, unit.group * chunk)
    acc = np.tile(_values(unit.bias, unit.acc_t.fractional), (len(x), 1))
    w = _values(unit.weights, unit.w_t.fractional)
    formats = netlist_eval.op_formats(unit.step)  # one netlist, run once per step
    for s in range(unit.reuse):
        i0, ob = unit.step_block(s)
        cols = slice(ob * unit.ko, (ob + 1) * unit.ko)
        ins = np.concatenate([x[:, i0:i0 + unit.ki], np.tile(w[i0:i0 + unit.ki, cols].ravel(), (len(x), 1)),
                              acc[:, cols]], axis=1)
        acc[:, cols] = netlist_eval.predict(unit.step, ins, formats)
    return acc.reshape(n, groups, unit.n_out)


def predict(arch: Architecture, x: np.ndarray, until: int | None = None) -> np.ndarray:
    """The composed kernels on float inputs ``x`` (N, *input shape) of the input type: (N, tokens, size) values
    after unit ``until`` (default: the last one)."""
    n = len(x)
    tok = arch.in_token
    tokens = np.asarray(x, dtype=np.float64).reshape(n, tok.beats, tok.size)
    for k, unit in enumerate(arch.units):
        if isinstance(unit, Segment):
            if unit.is_wiring:
                tokens = tokens[:, :, unit.wiring()]
            else:
                beats = tokens.shape[1]
                tokens = netlist_eval.predict(unit.comb, tokens.reshape(n * beats, -1)).reshape(n, beats, -1)
        elif isinstance(unit, Window):
            tokens = window_tokens(unit, tokens)
        elif isinstance(unit, Fold):
            tokens = fold_tokens(unit, tokens)
        elif isinstance(unit, Collect):
            tokens = tokens.reshape(n, tokens.shape[1] // unit.group, -1)
        if until is not None and k == until:
            break
    return tokens


def check_composition(graph: Any, arch: Architecture, samples: int = 2000, seed: int = 0,
                      upto: str | None = None) -> Equivalence:
    """The composed kernels against the emulator on ``samples`` full-range inputs (NotBitExact on a difference)."""
    from flow.arith.emulate import emulate
    from flow.arith.types import full_range_inputs

    x = full_range_inputs(arch.input_type, arch.input_shape, samples, seed)
    want = emulate(graph, x, upto=upto).outputs
    got = predict(arch, x).reshape(len(x), -1)
    differing = int(np.count_nonzero(got != want)) if got.shape == want.shape else int(want.size)
    if differing:
        raise NotBitExact(f"the sequential RTL's kernels, composed, differ from the emulator on {differing} of "
                          f"{want.size} outputs ({samples} full-range inputs, seed {seed}); no RTL was written")
    return Equivalence(samples, seed, int(want.size), 0)
