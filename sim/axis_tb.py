"""cocotb testbench for an AXI4-Stream DUT wrapped in ``sim/axis_harness.v`` (driven by ``flow/sim/runner.py``).

A sample is ``in_beats`` input beats and ``out_beats`` output beats (1 and 1 for a core that takes a whole
sample per beat; a streaming CNN takes one pixel per beat), in order; beats are counted, there is no tlast.

Inputs and expected outputs arrive as packed ``tdata`` words (``.npy`` arrays of little-endian
bytes, one row per sample, written by :func:`flow.sim.run_cocotb`); the configuration is a JSON
file named by the environment variable ``HLSFLOW_SIM_CONFIG``. Every output word is compared with
the expected word as an integer, so every output bit is checked; the words received are written back
(``received``) for a field-by-field report on the host.

One coroutine runs the whole test, waking once per clock cycle at the falling edge. The harness has
registered what happened at the rising edge before (``fire_q``: input/output transfer, ``out_data_q``),
so the values read are stable; the drives written at the falling edge (``tvalid``, ``tdata``,
``tready``) are what the DUT sees at the next rising edge. Phases:

1. reset (the DUT's registers may start as X on Icarus), then
2. measurement: the first ``measure_samples`` samples with no gaps and no back-pressure, drained
   completely: latency (cycles from the input handshake to the output handshake) and throughput
   (output handshakes per cycle, steady state);
3. stress: the remaining samples with random valid gaps and random back-pressure (seeded patterns,
   the gap/stall probability changes every 64 cycles between 0 and ``max_gap``/``max_stall``), and
   one reset in the middle while samples are in flight. Samples accepted but not yet output when
   the reset hits are sent again afterwards, so every sample's output is checked exactly once, in
   order;
4. drain: a few latencies with ``tready`` high to catch outputs nobody asked for.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
import numpy as np
from cocotb.clock import Clock
from cocotb.triggers import FallingEdge

PATTERN_BITS = 16  # random patterns repeat every 2**16 cycles


def _words(rows: np.ndarray) -> list[int]:
    return [int.from_bytes(r.tobytes(), "little") for r in rows]


def _pattern(rng: np.random.Generator, max_p: float, n: int) -> list[bool]:
    """``n`` booleans, each True with probability ``1 - p``, where ``p`` ~ U(0, max_p) per 64-cycle block."""
    if max_p <= 0:
        return [True] * n
    p = np.repeat(rng.uniform(0.0, max_p, size=n // 64 + 1), 64)[:n]
    return (rng.random(n) >= p).tolist()


class _Signals:
    """Per-cycle access to the harness ports, through cocotb's raw simulator handles when it has them.

    cocotb's public ``handle.value`` builds a :class:`LogicArray` on every read and re-validates
    strings on every write; reading ``int(binstr, 2)`` and writing binary strings prepared before the
    simulation starts was 2-3x faster in samples/s on Verilator (cocotb 2.1). With a cocotb whose
    handles lack these methods the public API is used.
    """

    def __init__(self, dut, in_width: int) -> None:
        self.in_width = in_width
        raw = [getattr(h, "_handle", None) for h in (dut.fire_q, dut.out_data_q, dut.s_axis_tdata)]
        if all(hasattr(r, "get_signal_val_binstr") and hasattr(r, "set_signal_val_binstr") for r in raw):
            fire, out, data = raw
            self._fire = fire.get_signal_val_binstr
            self._out = out.get_signal_val_binstr
            self.put_data = lambda b: data.set_signal_val_binstr(0, b)  # 0: cocotb's _GPISetAction.DEPOSIT
        else:
            self._fire = lambda: str(dut.fire_q.value)
            self._out = lambda: str(dut.out_data_q.value)

            def put(b: str) -> None:
                dut.s_axis_tdata.value = b

            self.put_data = put

    def fire(self) -> int:
        """Bit 0: input transfer, bit 1: output transfer at the last rising edge; -1 if X/Z."""
        try:
            return int(self._fire(), 2)
        except ValueError:
            return -1

    def out_word(self) -> int | None:
        """The output word of the last rising edge, or None if any bit is X/Z."""
        try:
            return int(self._out(), 2)
        except ValueError:
            return None

    def binstr(self, word: int) -> str:
        return format(word, f"0{self.in_width}b")


class _Progress:
    """Writes ``{"done": outputs checked, "total": n}`` to the config's ``progress`` file (atomic
    replace) at most every ``PROGRESS_S`` seconds, for the host's progress bar (flow/sim/runner.py)."""

    PROGRESS_S = 0.5

    def __init__(self, path: str | None, total: int) -> None:
        self.path, self.total, self.last = (Path(path) if path else None), total, 0.0

    def __call__(self, done: int) -> None:
        now = time.perf_counter()
        if self.path is None or now - self.last < self.PROGRESS_S:
            return
        self.last = now
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"done": done, "total": self.total}))
        os.replace(tmp, self.path)


@cocotb.test()
async def axis_stream(dut) -> None:
    """Drive every sample, check every output word, measure latency and throughput."""
    cfg = json.loads(Path(os.environ["HLSFLOW_SIM_CONFIG"]).read_text())
    x_words = _words(np.load(cfg["inputs"]))
    expected = _words(np.load(cfg["expected"]))
    bi, bo = int(cfg.get("in_beats", 1)), int(cfg.get("out_beats", 1))  # beats per sample
    n = len(expected) // bo
    assert len(expected) == n * bo and len(x_words) == n * bi, \
        f"{len(x_words)} input beats and {len(expected)} expected output beats for {bi} and {bo} per sample"
    rng = np.random.default_rng(int(cfg["seed"]))
    plen = 1 << PATTERN_BITS
    mask = plen - 1
    valid_pat = _pattern(rng, float(cfg["max_gap"]), plen)
    ready_pat = _pattern(rng, float(cfg["max_stall"]), plen)
    latency_hint = int(cfg.get("latency_hint", 8))
    idle_limit = 2000 + 20 * latency_hint + 4 * int(cfg.get("ii_hint", 1))  # cycles without any transfer: give up

    sig = _Signals(dut, int(cfg["in_width"]))
    x_bin = [sig.binstr(w) for w in x_words]
    progress = _Progress(cfg.get("progress"), n)
    dut.rst.value = 1
    dut.s_axis_tvalid.value = 0
    dut.m_axis_tready.value = 1
    dut.s_axis_tdata.value = 0
    Clock(dut.clk, 10, unit="ns").start()
    fall = FallingEdge(dut.clk)

    received: list[int | None] = [None] * (n * bo)
    state = {"cycle": 0, "sent": 0, "got": 0, "extra": 0, "bad": 0, "valid": 0, "ready": 1, "unknown": 0}

    async def reset(cycles: int = 2) -> None:
        """Hold rst for ``cycles`` rising edges with tvalid low and tready high (flushes X on Icarus)."""
        dut.rst.value = 1
        dut.s_axis_tvalid.value = 0
        dut.m_axis_tready.value = 1
        state.update(valid=0, ready=1)
        for _ in range(cycles):
            await fall
            state["cycle"] += 1
        dut.rst.value = 0

    def set_ready(r: int) -> None:
        if r != state["ready"]:
            dut.m_axis_tready.value = r
            state["ready"] = r

    async def stream(stop: int, gaps: bool, stalls: bool, reset_after: int | None,
                     in_cycles: list[int] | None, out_cycles: list[int] | None) -> dict:
        """Send samples until ``stop`` have been accepted and output; returns what happened. ``sent`` and
        ``got`` count beats; ``in_cycles``/``out_cycles`` get the cycle of each sample's last beat."""
        info = {"reset_done": False, "resent": 0, "reset_cycle": None, "timed_out": False}
        cycle, sent, got = state["cycle"], state["sent"], state["got"]
        valid, ready = state["valid"], state["ready"]
        presenting = valid == 1
        idle = 0
        armed = None
        set_r = dut.m_axis_tready
        set_v = dut.s_axis_tvalid
        fire_of, out_word, put = sig.fire, sig.out_word, sig.put_data
        extra = bad = 0
        while got < stop * bo:
            await fall
            cycle += 1
            if not cycle & 255:
                progress(got // bo)
            f = fire_of()
            if f < 0:  # X/Z handshake: no transfer, reported
                state["unknown"] += 1
                f = 0
            if f:
                idle = 0
                if f & 1:
                    sent += 1
                    if in_cycles is not None and sent % bi == 0:
                        in_cycles.append(cycle)
                    presenting = False
                if f & 2:
                    w = out_word()
                    if got < n * bo:
                        received[got] = w  # None (X/Z bits) counts as missing on the host
                        if w != expected[got]:
                            bad += 1
                        got += 1
                        if out_cycles is not None and got % bo == 0:
                            out_cycles.append(cycle)
                    else:
                        extra += 1
            else:
                idle += 1
                if idle > idle_limit:
                    info["timed_out"] = True
                    break
            if reset_after is not None and got >= reset_after * bo:
                # reset once half the stress samples are out, preferably with samples in flight
                armed = cycle if armed is None else armed
                if sent * bo > got * bi or cycle - armed > 4 * latency_hint + 16:
                    state.update(cycle=cycle, valid=valid, ready=ready)
                    done = got // bo  # samples whose every output beat arrived
                    info.update(reset_done=True, resent=-(-sent // bi) - done, reset_cycle=cycle)
                    await reset()
                    cycle, valid, ready, presenting = state["cycle"], 0, state["ready"], False
                    # outputs of accepted-but-unfinished samples are gone: send them again, from their first beat
                    sent, got = done * bi, done * bo
                    reset_after = None
            # drive for the next rising edge
            k = cycle & mask
            if not presenting and sent < stop * bi:
                if not gaps or valid_pat[k]:
                    put(x_bin[sent])
                    presenting = True
                    if not valid:
                        set_v.value = 1
                        valid = 1
                elif valid:
                    set_v.value = 0
                    valid = 0
            elif not presenting and valid:
                set_v.value = 0
                valid = 0
            r = 1 if (not stalls or ready_pat[k]) else 0
            if r != ready:
                set_r.value = r
                ready = r
        state.update(cycle=cycle, sent=sent, got=got, valid=valid, ready=ready)
        state["extra"] += extra
        state["bad"] += bad
        return info

    await reset(latency_hint + 2)  # long enough to flush X through a pipeline whose data is not reset
    t0 = time.perf_counter()
    c0 = state["cycle"]
    # phase 2: measurement, no gaps, no back-pressure
    m = min(n, int(cfg["measure_samples"]))
    in_cycles: list[int] = []
    out_cycles: list[int] = []
    set_ready(1)
    meas = await stream(m, gaps=False, stalls=False, reset_after=None, in_cycles=in_cycles, out_cycles=out_cycles)
    lat = [o - i for i, o in zip(in_cycles, out_cycles)]
    # phase 3: stress
    stress = {"reset_done": False, "resent": 0, "reset_cycle": None, "timed_out": meas["timed_out"]}
    if m < n and not meas["timed_out"]:
        reset_after = (m + n) // 2 if cfg["reset_midstream"] else None
        stress = await stream(n, gaps=bool(cfg["gaps"]), stalls=bool(cfg["backpressure"]), reset_after=reset_after,
                              in_cycles=None, out_cycles=None)
    # phase 4: drain, looking for outputs nobody asked for
    set_ready(1)
    if state["valid"]:
        dut.s_axis_tvalid.value = 0
        state["valid"] = 0
    for _ in range(2 * latency_hint + 16):
        await fall
        state["cycle"] += 1
        f = sig.fire()
        if f < 0:
            state["unknown"] += 1
        elif f & 2:
            state["extra"] += 1
    wall = time.perf_counter() - t0
    violations = int(dut.stall_violations.value.to_unsigned())

    rows = np.zeros((n * bo, int(cfg["out_bytes"])), dtype=np.uint8)  # one row per output beat
    got_mask = np.zeros(n * bo, dtype=bool)
    for i, w in enumerate(received):
        if w is not None:
            rows[i] = np.frombuffer(w.to_bytes(rows.shape[1], "little"), dtype=np.uint8)
            got_mask[i] = True
    np.save(cfg["received"], rows)
    np.save(cfg["received_mask"], got_mask)
    steady = (len(out_cycles) - 1) / (out_cycles[-1] - out_cycles[0]) if len(out_cycles) > 1 else None
    summary = {
        "samples": n, "received": int(got_mask.reshape(n, bo).all(axis=1).sum()), "mismatching_words": state["bad"],
        "extra_outputs": state["extra"], "stall_violations": violations, "unknown_handshakes": state["unknown"],
        "timed_out": bool(stress["timed_out"]),
        "measure_samples": m, "latency_cycles_min": min(lat) if lat else None,
        "latency_cycles_max": max(lat) if lat else None, "throughput_samples_per_cycle": steady,
        "reset_midstream": bool(stress["reset_done"]), "reset_cycle": stress["reset_cycle"],
        "resent_after_reset": stress["resent"], "cycles": state["cycle"] - c0, "wall_seconds": wall,
    }
    Path(cfg["summary"]).write_text(json.dumps(summary, indent=2) + "\n")
    problems = []
    if summary["received"] < n:
        problems.append(f"{n - summary['received']} of {n} outputs never arrived"
                        + (f" (timed out: no transfer for {idle_limit} cycles)" if summary["timed_out"] else ""))
    if state["bad"]:
        problems.append(f"{state['bad']} of {n * bo} output words differ from the expected words")
    if state["extra"]:
        problems.append(f"{state['extra']} output transfers beyond the {n * bo} expected")
    if state["unknown"]:
        problems.append(f"tvalid/tready were X/Z at {state['unknown']} rising edges")
    if violations:
        problems.append(f"{violations} back-pressure violations (m_axis_tvalid/tdata changed while tready was low)")
    if cfg["reset_midstream"] and m < n and not stress["reset_done"] and not summary["timed_out"]:
        problems.append("the mid-stream reset did not happen")
    assert not problems, "; ".join(problems)
