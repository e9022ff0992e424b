"""Cycle-level model of the units' handshakes (no data): declared latency, initiation interval, FIFO depths.

Each unit of :mod:`flow.rtl.units` is modelled by the same registers and equations as its Verilog (valid bits,
counters, the ready it gives its producer); per cycle the valids come from registers, the readies are
evaluated from the sink back to the source, then every register is updated. The source offers a new beat in
every cycle (as the testbench's measurement phase does) through the top module's rate limiter, the sink is
always ready. From a few simulated samples come:

* the initiation interval ``II``: the first simulation runs without a limiter, and the largest spacing of two
  consecutive samples' first input beats in steady state becomes the limiter's interval (a sample's first beat
  is accepted at most every ``II`` cycles), so that no sample queues inside and every sample sees the same
  latency;
* the latency in cycles: from the handshake of a sample's last input beat to that of its last output beat;
* FIFO depths: each FIFO is modelled unbounded; its depth is the largest occupancy seen plus one (at least 2),
  so it never fills and the design runs at the modelled rate.

``hlsflow sim`` measures the same two figures on the RTL (``latency_cycles``, throughput) and the tests check
they equal the declared ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from flow.core.errors import FlowError


class CombModel:
    """``regs`` registers without a stall (valid bits shift every cycle), an output FIFO of ``depth`` beats passed
    by when empty, ``in_ready = credits != 0`` (:func:`flow.rtl.units.comb_unit`)."""

    def __init__(self, regs: int, depth: int) -> None:
        self.v = [False] * regs
        self.fifo = 0
        self.credits = depth

    def out_valid(self) -> bool:
        return self.fifo > 0 or self.v[-1]

    def in_ready(self, out_ready: bool) -> bool:
        return self.credits > 0

    def tick(self, in_valid: bool, out_ready: bool) -> None:
        accept = in_valid and self.credits > 0
        deliver = self.out_valid() and out_ready
        write = self.v[-1] and (self.fifo > 0 or not out_ready)
        read = self.fifo > 0 and out_ready
        self.fifo += int(write) - int(read)
        self.credits += int(deliver) - int(accept)
        self.v = [accept] + self.v[:-1]


class WindowModel:
    """The line buffer's push rule (see :func:`flow.rtl.units.window_unit`)."""

    def __init__(self, pad: list[list[bool]], completes: list[list[bool]]) -> None:
        self.pad, self.completes = pad, completes
        self.hp, self.wp = len(pad), len(pad[0])
        self.pr = self.pc = 0
        self.win_valid = False

    def out_valid(self) -> bool:
        return self.win_valid

    def in_ready(self, out_ready: bool) -> bool:
        return (not self.win_valid or out_ready) and not self.pad[self.pr][self.pc]

    def tick(self, in_valid: bool, out_ready: bool) -> None:
        push_ok = not self.win_valid or out_ready
        is_pad = self.pad[self.pr][self.pc]
        if push_ok and (is_pad or in_valid):
            self.win_valid = self.completes[self.pr][self.pc]
            self.pc += 1
            if self.pc == self.wp:
                self.pc, self.pr = 0, (self.pr + 1) % self.hp
        elif out_ready:
            self.win_valid = False


class FoldModel:
    """The fold unit's counters (see :func:`flow.rtl.units.fold_unit`)."""

    def __init__(self, slices: int, blocks: int, group: int) -> None:
        self.slices, self.blocks, self.group = slices, blocks, group
        self.busy = self.valid = False
        self.sb = self.ob = self.bt = 0

    def _flags(self, out_ready: bool) -> tuple[bool, bool, bool]:
        beat_done = self.sb == self.slices - 1 and self.ob == self.blocks - 1
        final = beat_done and self.bt == self.group - 1
        # one output block: the accumulators are the output register, so no step runs while it waits
        advance = self.busy and ((self.blocks > 1 and not final) or not self.valid or out_ready)
        return beat_done, final, advance

    def out_valid(self) -> bool:
        return self.valid

    def in_ready(self, out_ready: bool) -> bool:
        beat_done, _, advance = self._flags(out_ready)
        return not self.busy or (advance and beat_done)

    def tick(self, in_valid: bool, out_ready: bool) -> None:
        beat_done, final, advance = self._flags(out_ready)
        accept = in_valid and (not self.busy or (advance and beat_done))
        if self.valid and out_ready:
            self.valid = False
        if advance:
            sb_last = self.sb == self.slices - 1
            self.sb = 0 if sb_last else self.sb + 1
            if sb_last:
                self.ob = 0 if self.ob == self.blocks - 1 else self.ob + 1
            if beat_done:
                self.bt = 0 if self.bt == self.group - 1 else self.bt + 1
            if final:
                self.valid = True
        if accept:
            self.busy = True
        elif advance and beat_done:
            self.busy = False


class CollectModel:
    def __init__(self, group: int) -> None:
        self.group, self.count, self.full = group, 0, False

    def out_valid(self) -> bool:
        return self.full

    def in_ready(self, out_ready: bool) -> bool:
        return not self.full or out_ready

    def tick(self, in_valid: bool, out_ready: bool) -> None:
        accept = in_valid and self.in_ready(out_ready)
        if self.full and out_ready:
            self.full = False
        if accept:
            if self.count == self.group - 1:
                self.count, self.full = 0, True
            else:
                self.count += 1


class FifoModel:
    """A FIFO of ``depth`` beats (None: unbounded); ``peak`` is the largest occupancy."""

    def __init__(self, depth: int | None) -> None:
        self.depth, self.count, self.peak = depth, 0, 0

    def out_valid(self) -> bool:
        return self.count > 0

    def in_ready(self, out_ready: bool) -> bool:
        return self.depth is None or self.count < self.depth

    def tick(self, in_valid: bool, out_ready: bool) -> None:
        wr = in_valid and self.in_ready(out_ready)
        rd = self.count > 0 and out_ready
        self.count += int(wr) - int(rd)
        self.peak = max(self.peak, self.count)


@dataclass
class Timing:
    """Modelled figures: ``latency`` (cycles, last input beat to last output beat), ``ii`` (cycles between
    samples), per-sample cycles of both, FIFO peaks by node index."""

    latency: int
    ii: int
    latencies: list[int]
    starts: list[int]
    fifo_peaks: dict[int, int] = field(default_factory=dict)


def simulate(nodes: list[Any], in_beats: int, out_beats: int, samples: int, ii: int) -> Timing:
    """Run ``samples`` samples through ``nodes`` (models, source to sink) with the limiter at ``ii``."""
    n_in = samples * in_beats
    sent = got = 0
    since = ii  # cycles since the last sample start (saturating); the limiter allows a start at >= ii
    last_in: list[int] = []
    first_in: list[int] = []
    last_out: list[int] = []
    budget = 100 * (samples + 2) * max(ii, in_beats, out_beats, 1) + 10_000
    for cycle in range(budget):
        if got >= samples * out_beats:
            break
        valids = [n.out_valid() for n in nodes]
        readies = [False] * len(nodes)
        ready = True  # the sink
        for k in range(len(nodes) - 1, -1, -1):
            readies[k] = nodes[k].in_ready(ready)
            ready = readies[k]
        first_beat = sent % in_beats == 0
        s_valid = sent < n_in and (not first_beat or since >= ii)
        fire_in = s_valid and readies[0]
        offered = [s_valid] + valids[:-1]
        outs = [readies[k + 1] for k in range(len(nodes) - 1)] + [True]
        if valids[-1]:
            got += 1
            if got % out_beats == 0:
                last_out.append(cycle)
        for k, node in enumerate(nodes):
            node.tick(offered[k], outs[k])
        since = 1 if (fire_in and first_beat) else min(since + 1, ii)
        if fire_in:
            if first_beat:
                first_in.append(cycle)
            sent += 1
            if sent % in_beats == 0:
                last_in.append(cycle)
    else:
        raise FlowError("internal: the modelled units did not finish their samples (a deadlock in the schedule)")
    lat = [o - i for i, o in zip(last_in, last_out)]
    gaps = [b - a for a, b in zip(first_in, first_in[1:])]
    peaks = {k: n.peak for k, n in enumerate(nodes) if isinstance(n, FifoModel)}
    return Timing(max(lat), max(gaps[len(gaps) // 2:], default=ii), lat, first_in, peaks)


def timing(make_nodes: Any, in_beats: int, out_beats: int, samples: int = 6) -> tuple[Timing, list[Any]]:
    """The declared figures of a unit chain built by ``make_nodes(fifo_depths)`` (a fresh model chain each call;
    ``fifo_depths``: None for unbounded FIFOs). Returns the timing and the nodes of the final run."""
    free = simulate(make_nodes(None), in_beats, out_beats, samples, 1)
    ii = max(free.ii, 1)
    for _ in range(64):
        nodes = make_nodes(None)
        t = simulate(nodes, in_beats, out_beats, samples, ii)
        if len(set(t.latencies)) == 1:
            break
        ii += 1
    else:
        raise FlowError("internal: no initiation interval gives every sample the same latency")
    depths = {k: max(2, p + 1) for k, p in t.fifo_peaks.items()}
    nodes = make_nodes(depths)
    final = simulate(nodes, in_beats, out_beats, samples, ii)
    if final.latencies != t.latencies:
        raise FlowError("internal: the FIFO depths change the modelled schedule")
    final.fifo_peaks = t.fifo_peaks
    return final, nodes
