"""Switching activity of a gate-level netlist from a simulation of real inputs (Icarus Verilog, VCD).

The netlist OpenSTA times (:func:`flow.physical.asic.sta_netlist`) is simulated with the library's cell
models (zero delay: functional transitions only, no glitches) by a streaming testbench: reset, then
one input word per clock cycle, back to back (the core's full throughput, initiation interval 1),
``m_axis_tready`` held high. The VCD covers only the top module's nets (``$dumpvars(1, dut)``: one
``n<bit>`` net per netlist bit, the ports) and only the window after the pipeline has filled and
before the last input, so every net is defined and the core is in its steady state.

Per net bit: ``activity`` = transitions per clock cycle (0..2 for a net that may glitch; <= 1 for a
register output), ``duty`` = fraction of time at 1 (OpenSTA's ``set_power_activity -activity -duty``).

The outputs of the gate-level simulation are also returned, so the netlist can be checked against
the bit-exact emulator on the same inputs.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from flow.core import procs
from flow.core.errors import FlowError
from flow.core.simulators import ICARUS

HALF_PERIOD = 5  # testbench clock: 10 time units (1 ns each) per cycle; zero-delay cells, so it is not the clock target
TB = "hlsflow_activity_tb"


def stream_testbench(top: str, in_width: int, out_width: int, n: int, latency: int, inputs: str, outputs: str,
                     vcd: str) -> str:
    """Verilog of the streaming testbench for ``n`` input words (``$readmemh`` file ``inputs``)."""
    start = latency + 2  # cycles of streaming before the VCD window opens
    return f"""`timescale 1ns / 1ps
module {TB};
    reg clk = 1'b0;
    reg rst = 1'b1;
    reg [{in_width - 1}:0] mem [0:{n - 1}];
    reg [{in_width - 1}:0] tdata = {in_width}'d0;
    reg tvalid = 1'b0;
    wire tready;
    wire [{out_width - 1}:0] odata;
    wire ovalid;
    integer i = 0, fd;
    {top} dut (.clk(clk), .rst(rst), .s_axis_tdata(tdata), .s_axis_tvalid(tvalid), .s_axis_tready(tready),
               .m_axis_tdata(odata), .m_axis_tvalid(ovalid), .m_axis_tready(1'b1));
    always #{HALF_PERIOD} clk = ~clk;
    initial begin
        $readmemh("{inputs}", mem);
        fd = $fopen("{outputs}", "w");
        repeat (4) @(negedge clk);
        rst = 1'b0;
        while (i < {n}) begin
            tdata = mem[i];
            tvalid = 1'b1;
            if (i == {start}) begin
                $dumpfile("{vcd}");
                $dumpvars(1, dut);
            end
            @(negedge clk);
            if (tready) i = i + 1;
        end
        $dumpoff;
        tvalid = 1'b0;
        repeat ({latency + 4}) @(negedge clk);
        $fclose(fd);
        $finish;
    end
    always @(negedge clk) if (!rst && ovalid) $fwrite(fd, "%h\\n", odata);
endmodule
"""


@dataclass
class Activity:
    """Per net bit: transitions per cycle and duty (fraction of time at 1), over ``cycles`` clock cycles."""

    activity: dict[str, float]
    duty: dict[str, float]
    cycles: int
    outputs: list[int]


_VAR = re.compile(r"\$var\s+\S+\s+(\d+)\s+(\S+)\s+(\S+)(?:\s+\[(\d+)(?::(\d+))?\])?\s+\$end")


_UNITS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "ps": 1e-12, "fs": 1e-15}


def parse_vcd(path: Path, period_ns: float = 2 * HALF_PERIOD) -> tuple[dict[str, float], dict[str, float], int]:
    """Transitions per cycle and duty of every bit in a VCD (bit names ``n`` or ``p[i]``), up to ``$dumpoff``.

    ``period_ns``: the testbench's clock period. Only 0<->1 changes count as transitions.
    """
    text = Path(path).read_text()
    head, sep, body = text.partition("$enddefinitions")
    if not sep:
        raise FlowError(f"{path}: not a VCD file (no $enddefinitions)")
    ts = re.search(r"\$timescale\s+(\d+)\s*(s|ms|us|ns|ps|fs)\s+\$end", head)
    unit = int(ts.group(1)) * _UNITS[ts.group(2)] if ts else 1e-9
    period = max(1, round(period_ns * 1e-9 / unit))
    names: dict[str, list[str]] = {}
    for width, code, name, hi, lo in _VAR.findall(head):
        if int(width) == 1:
            names.setdefault(code, []).append(f"{name}[{hi}]" if hi != "" and lo == "" else name)
        else:
            h, lw = int(hi), int(lo)
            step = -1 if h >= lw else 1
            names.setdefault(code, []).extend(f"{name}[{b}]" for b in range(h, lw + step, step))  # MSB first
    vals: dict[str, list[str]] = {}
    since: dict[str, list[int]] = {}
    high: dict[str, list[int]] = {}
    tog: dict[str, list[int]] = {}
    t, t0, end = 0, None, None
    for line in body.split("\n"):
        if not line:
            continue
        c = line[0]
        if c == "#":
            t = int(line[1:])
            continue
        if c == "$":
            if line.startswith("$dumpoff"):
                end = t
                break
            continue
        if c in "01xzXZ":
            v, code = c, line[1:].strip()
        elif c in "bB":
            v, _, code = line[1:].partition(" ")
            code = code.strip()
        else:
            continue
        bits = names.get(code)
        if bits is None:
            continue
        w = len(bits)
        if len(v) < w:
            v = v.rjust(w, "0" if v[0] in "01" else v[0])
        old = vals.get(code)
        if old is None:
            t0 = t if t0 is None else t0
            vals[code], since[code], high[code], tog[code] = list(v), [t] * w, [0] * w, [0] * w
            continue
        sn, hg, tg = since[code], high[code], tog[code]
        for k in range(w):
            a, b = old[k], v[k]
            if a != b:
                if a == "1":
                    hg[k] += t - sn[k]
                if a in "01" and b in "01":
                    tg[k] += 1
                old[k], sn[k] = b, t
    end = t if end is None else end
    t0 = end if t0 is None else t0
    span = max(1, end - t0)
    cycles = max(1, span // period)
    activity: dict[str, float] = {}
    duty: dict[str, float] = {}
    for code, v in vals.items():
        for k, name in enumerate(names[code]):
            h = high[code][k] + (end - since[code][k] if v[k] == "1" else 0)
            activity[name] = tog[code][k] / cycles
            duty[name] = min(1.0, h / span)
    return activity, duty, int(cycles)


def simulate(work: Path, netlist_v: Path, cell_models: Path, top: str, words: list[int], in_width: int,
             out_width: int, latency: int, timeout: float = 3600) -> Activity:
    """Run the streaming testbench on the gate-level ``netlist_v`` with Icarus; activity and output words."""
    ICARUS.require()
    work = Path(work).resolve()
    n = len(words)
    if n < latency + 8:
        raise FlowError(f"power estimate: {n} input words are too few for latency {latency} (need {latency + 8})")
    hexw = (in_width + 3) // 4
    (work / "activity_inputs.hex").write_text("".join(f"{w:0{hexw}x}\n" for w in words))
    tb = work / f"{TB}.v"
    tb.write_text(stream_testbench(top, in_width, out_width, n, latency, "activity_inputs.hex",
                                   "activity_outputs.hex", "activity.vcd"))
    build = procs.run(ICARUS.compile_command([tb, Path(netlist_v).resolve(), cell_models], TB, work, "activity"),
                      capture_output=True, text=True, cwd=work)
    if build.returncode != 0:
        raise FlowError(f"Icarus could not build the gate-level netlist: {(build.stderr or build.stdout).strip()[:300]}")
    try:
        run = procs.run(ICARUS.run_command(work, "activity"), capture_output=True, text=True, cwd=work, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlowError(f"gate-level simulation did not finish within {timeout:.0f} s") from None
    if run.returncode != 0:
        raise FlowError(f"gate-level simulation failed: {(run.stderr or run.stdout).strip()[-300:]}")
    activity, duty, cycles = parse_vcd(work / "activity.vcd")
    outs = []
    for line in (work / "activity_outputs.hex").read_text().split():
        outs.append(int(line, 16) if re.fullmatch(r"[0-9a-fA-F]+", line) else -1)
    return Activity(activity, duty, cycles, outs)
