"""The IP core's plain Verilog testbench and its run on Icarus Verilog or Verilator (no cocotb, no Python needed).

The testbench (``tb/<name>_tb.v``, Verilog-2005; Icarus and ``verilator --binary`` accept it):

* reads the input and expected tdata words with ``$readmemh`` (one word per line, hex; ``//``
  comments allowed), from the files named by the plusargs ``+inputs=`` and ``+expected=``
  (default ``<name>_inputs.hex`` and ``<name>_expected.hex`` in the working directory);
* drives ``s_axis`` with a valid pattern and ``m_axis_tready`` with a back-pressure pattern taken from
  two 32-bit Galois LFSRs with fixed seeds (each about 3 cycles in 4 on), so every run is identical; with the
  plusarg ``+full_rate``, valid on every cycle and no back-pressure (to measure throughput);
* compares every output word, in order, with the expected word (``!==``: X/Z bits count as
  differences), waits a few cycles for extra outputs, and prints one summary line,
  ``PASS: <N> vectors, 0 mismatches, <C> cycles`` or ``FAIL: ...`` with the first mismatching
  index and both words, then ends with ``$finish`` (exit 0) or ``$fatal`` (exit 1 in ``vvp`` and in
  Verilator binaries).

The clock in the testbench is 10 ns of simulation time; it says nothing about the clock target.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any

from flow.core import procs, tools
from flow.core.simulators import VERILATOR, VERILATOR_OPT, SimulatorName
from flow.core.simulators import simulator as get_simulator
from flow.core.staging import scratch_dir

_SEED_SOURCE = 0x1D872B41
_SEED_SINK = 0x5EED2025
_LFSR_TAPS = 0x00400007  # x^32 + x^22 + x^2 + x + 1 (maximal length), left-shifting Galois form
_SUMMARY = re.compile(r"^(PASS|FAIL): .*$", re.MULTILINE)
_CYCLES = re.compile(r", (\d+) cycles$")


def testbench(name: str, top: str, in_width: int, out_width: int, n: int, latency: int, header: str,
              clock: str = "clk", reset: str = "rst", reset_active_high: bool = True, in_beats: int = 1,
              out_beats: int = 1, ii: int = 1) -> str:
    """Verilog source of ``<name>_tb`` for ``n`` vectors of ``top`` (tdata widths in bits, latency in cycles).

    A vector is ``in_beats`` input words and ``out_beats`` expected words (a streaming core takes one pixel per
    beat); ``ii``: the core's initiation interval in cycles (for the time-out).
    ``clock``/``reset``: the DUT's port names (from the port map); ``header``: the stamp comment.
    """
    rst_expr = "rst" if reset_active_high else "!rst"
    return f"""{header}`timescale 1ns / 1ps
// Self-checking testbench for {top}: reads the vectors with $readmemh, drives s_axis with an LFSR
// valid pattern and m_axis_tready with an LFSR back-pressure pattern (fixed seeds), compares every
// output word with the expected word and prints one line: PASS: ... or FAIL: ... ($fatal, exit 1).
// Plusargs: +inputs=FILE +expected=FILE (default {name}_inputs.hex, {name}_expected.hex),
// +full_rate (valid on every cycle, no back-pressure).
module {name}_tb;
    localparam IN_W = {in_width};
    localparam OUT_W = {out_width};
    localparam [31:0] N = {n};  // vectors
    localparam [31:0] N_IN = {n * in_beats};  // input words ({in_beats} per vector)
    localparam [31:0] N_OUT = {n * out_beats};  // expected words ({out_beats} per vector)
    localparam [31:0] LATENCY = {latency};
    localparam [31:0] TIMEOUT = 16 * (N_IN + N_OUT) + 4 * {ii} * N + 64 * (LATENCY + 1) + 1000;  // cycles
    localparam [31:0] DRAIN = 2 * LATENCY + 8;  // cycles waited for extra outputs after the last one
    localparam [31:0] TAPS = 32'h{_LFSR_TAPS:08x};

    reg clk;
    reg rst;
    reg [IN_W-1:0] in_mem [0:N_IN-1];
    reg [OUT_W-1:0] exp_mem [0:N_OUT-1];
    reg [8*1024-1:0] inputs_file;
    reg [8*1024-1:0] expected_file;

    reg [IN_W-1:0] s_axis_tdata;
    reg s_axis_tvalid;
    wire s_axis_tready;
    wire [OUT_W-1:0] m_axis_tdata;
    wire m_axis_tvalid;
    reg m_axis_tready;

    reg [31:0] lfsr_src;    // valid pattern
    reg [31:0] lfsr_snk;    // back-pressure pattern
    reg [31:0] sent;        // input beats accepted
    reg [31:0] received;    // output beats accepted
    reg [31:0] mismatches;
    reg [31:0] extra;       // output beats beyond N_OUT
    reg full_rate;          // +full_rate: valid on every cycle, no back-pressure (throughput runs)
    reg [31:0] cycles;
    reg [31:0] drain;
    reg [31:0] first_bad;
    reg [OUT_W-1:0] first_got;
    reg [OUT_W-1:0] first_exp;

    wire in_fire = s_axis_tvalid && s_axis_tready;
    wire out_fire = m_axis_tvalid && m_axis_tready;
    wire [31:0] next_sent = sent + {{31'd0, in_fire}};

    {top} dut (
        .{clock}(clk),
        .{reset}({rst_expr}),
        .s_axis_tdata(s_axis_tdata),
        .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready),
        .m_axis_tdata(m_axis_tdata),
        .m_axis_tvalid(m_axis_tvalid),
        .m_axis_tready(m_axis_tready)
    );

    initial clk = 1'b0;
    always #5 clk = ~clk;

    initial begin
        rst = 1'b1;
        full_rate = $test$plusargs("full_rate") != 0;
        if (!$value$plusargs("inputs=%s", inputs_file)) inputs_file = "{name}_inputs.hex";
        if (!$value$plusargs("expected=%s", expected_file)) expected_file = "{name}_expected.hex";
        $readmemh(inputs_file, in_mem);
        $readmemh(expected_file, exp_mem);
        repeat (4) @(posedge clk);
        @(negedge clk);
        rst = 1'b0;
    end

    always @(posedge clk) begin
        if (rst) begin
            s_axis_tdata <= {{IN_W{{1'b0}}}};
            s_axis_tvalid <= 1'b0;
            m_axis_tready <= 1'b0;
            lfsr_src <= 32'h{_SEED_SOURCE:08x};
            lfsr_snk <= 32'h{_SEED_SINK:08x};
            sent <= 32'd0;
            received <= 32'd0;
            mismatches <= 32'd0;
            extra <= 32'd0;
            cycles <= 32'd0;
            drain <= 32'd0;
            first_bad <= 32'd0;
            first_got <= {{OUT_W{{1'b0}}}};
            first_exp <= {{OUT_W{{1'b0}}}};
        end else begin
            cycles <= cycles + 32'd1;
            lfsr_src <= {{lfsr_src[30:0], 1'b0}} ^ (lfsr_src[31] ? TAPS : 32'd0);
            lfsr_snk <= {{lfsr_snk[30:0], 1'b0}} ^ (lfsr_snk[31] ? TAPS : 32'd0);
            m_axis_tready <= full_rate || (lfsr_snk[1:0] != 2'b00) || (received >= N_OUT);
            // AXI4-Stream: a beat once offered is held until it is accepted
            if (in_fire || !s_axis_tvalid) begin
                sent <= next_sent;
                if (next_sent < N_IN && (full_rate || lfsr_src[1:0] != 2'b00)) begin
                    s_axis_tvalid <= 1'b1;
                    s_axis_tdata <= in_mem[next_sent];
                end else begin
                    s_axis_tvalid <= 1'b0;
                end
            end
            if (out_fire) begin
                if (received >= N_OUT) begin
                    extra <= extra + 32'd1;
                end else begin
                    if (m_axis_tdata !== exp_mem[received]) begin
                        if (mismatches == 32'd0) begin
                            first_bad <= received;
                            first_got <= m_axis_tdata;
                            first_exp <= exp_mem[received];
                        end
                        mismatches <= mismatches + 32'd1;
                    end
                    received <= received + 32'd1;
                end
            end
            if (received >= N_OUT) drain <= drain + 32'd1;
        end
    end

    always @(posedge clk) begin
        if (!rst && (drain == DRAIN || cycles == TIMEOUT)) begin
            if (received == N_OUT && mismatches == 32'd0 && extra == 32'd0) begin
                $display("PASS: %0d vectors, 0 mismatches, %0d cycles", N, cycles);
                $finish;
            end else begin
                if (received < N_OUT)
                    $display("FAIL: %0d vectors, %0d mismatches, %0d output words missing after %0d cycles",
                             N, mismatches, N_OUT - received, cycles);
                else if (mismatches != 32'd0)
                    $display("FAIL: %0d vectors, %0d mismatches, first at index %0d: got %h expected %h",
                             N, mismatches, first_bad, first_got, first_exp);
                else
                    $display("FAIL: %0d vectors, 0 mismatches, %0d extra outputs", N, extra);
                $fatal(1, "{name}_tb: outputs differ from the expected vectors");
            end
        end
    end
endmodule
"""


# hlsflow ip --simulators; the first is the default
TESTBENCH_SIMULATORS: tuple[str, ...] = (SimulatorName.ICARUS.value, SimulatorName.VERILATOR.value)


def run_testbench(simulator: str, ip_dir: Path, verilog: list[str], tb: str, top_tb: str, inputs: str,
                  expected: str, vectors: int, full_rate: bool = False, verilator_opt: str = VERILATOR_OPT,
                  timeout: float = 1800) -> dict[str, Any]:
    """Compile and run the plain testbench of the IP folder ``ip_dir`` on ``simulator``: Icarus (``iverilog
    -g2005``, ``vvp``) or Verilator (``verilator --binary`` with the FuseSoC core's options, a C++ model;
    ``verilator_opt``: g++ optimisation of the model, ``-O1`` as the core's, ``-O3`` builds slower, runs faster).

    ``verilog``/``tb``/``inputs``/``expected`` are paths relative to ``ip_dir``; ``vectors``: how many the
    testbench checks; ``full_rate``: ``+full_rate`` (no gaps, no back-pressure). Runs in a temporary folder
    holding copies of the ``.mem`` files of ``ip_dir/rtl`` ($readmemh opens them relative to the working
    directory), so nothing is written into ``ip_dir``. Returns
    ``passed``, the summary ``line`` (``PASS: ...``/``FAIL: ...``), the exit code and the simulator version
    (deterministic: what the datasheet states), and ``timing``: build and run wall seconds, clock cycles
    simulated, cycles and samples (vectors) per second of the run (a measurement, not in the datasheet).
    """
    ip_dir = Path(ip_dir).resolve()
    sim = get_simulator(simulator)
    version = sim.version()
    stimulus = "full rate" if full_rate else "LFSR valid gaps and back-pressure"
    with scratch_dir("ip-tb") as tmp:
        work = Path(tmp)
        for mem in sorted((ip_dir / "rtl").glob("*.mem")):
            shutil.copy2(mem, work / mem.name)
        t0 = time.perf_counter()
        sources = [str(ip_dir / f) for f in [*verilog, tb]]
        options = VERILATOR.binary_options(verilator_opt) if sim is VERILATOR else None
        build = procs.run(sim.compile_command(sources, top_tb, work, options=options),
                          cwd=work, capture_output=True, text=True, env=tools.hdl_env(), timeout=timeout)
        t_build = time.perf_counter() - t0
        if build.returncode != 0:
            tool = sim.tools[0]
            first_error = _first_error(build.stderr or build.stdout).replace(f"{ip_dir}/", "")
            return {"passed": False, "line": f"FAIL: {tool} could not compile the testbench: {first_error}",
                    "exit_code": build.returncode, "simulator": version, "stimulus": stimulus}
        binary = sim.run_command(work)
        t0 = time.perf_counter()
        plusargs = [f"+inputs={ip_dir / inputs}", f"+expected={ip_dir / expected}", *(["+full_rate"] * full_rate)]
        run = procs.run([*binary, *plusargs],
                        cwd=work, capture_output=True, text=True, env=tools.hdl_env(), timeout=timeout)
        t_run = time.perf_counter() - t0
    lines = [m.group(0).replace(f"{ip_dir}/", "") for m in _SUMMARY.finditer(run.stdout)]
    line = lines[-1] if lines else (f"FAIL: no summary line ({simulator} exit code {run.returncode}): "
                                    f"{_last_line(run.stdout + run.stderr)}")
    passed = run.returncode == 0 and line.startswith("PASS: ")
    cycles = _CYCLES.search(line)
    timing = {"build_seconds": round(t_build, 2), "run_seconds": round(t_run, 3),
              "samples_per_second": round(vectors / t_run, 1) if t_run > 0 else None}
    if cycles:
        timing |= {"cycles": int(cycles.group(1)), "cycles_per_second": round(int(cycles.group(1)) / t_run)}
    return {"passed": passed, "line": line, "exit_code": run.returncode, "simulator": version,
            "stimulus": stimulus, "timing": timing}


def _first_error(text: str) -> str:
    """The first line that names an error (else the first line) of a compiler's output."""
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if "error" in ln.lower()]
    return (errors or lines or ["(no output)"])[0]


def _last_line(text: str) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else "(no output)"
