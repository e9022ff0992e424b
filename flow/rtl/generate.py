"""Vendor-free RTL: Verilog from the project's fixed-point graph, with an AXI4-Stream wrapper.

Data flow: ``project.json`` -> hls4ml ModelGraph (:func:`flow.hls.project.rebuild`) -> symbolic trace
(:mod:`flow.arith.trace`, da4ml) -> da4ml ``CombLogic`` -> optional pipelining (``to_pipeline`` with a
latency cutoff) -> Verilog stage modules (:mod:`flow.rtl.emit`: levelized by default, or da4ml's own code
generator) + our top-level wrapper:

* ports ``clk``, ``rst`` (synchronous, active high), ``s_axis_tdata/tvalid/tready``,
  ``m_axis_tdata/tvalid/tready``; one whole sample per beat; one output beat per input beat, in order;
* a pipeline without a stall: the data registers (input register, one in front of every stage, output
  register) load on every clock edge, with no enable, and the valid bits shift on every edge (reset clears
  them); no signal fans out to every flip-flop. Back-pressure is absorbed at the edge by an output FIFO
  (:func:`flow.rtl.units.fifo_unit`) of latency + 1 beats (:func:`output_fifo_depth`), passed by when it is
  empty and the sink takes the sample; ``s_axis_tready = credits != 0``, where ``credits`` counts FIFO beats
  not promised to a sample accepted and not yet delivered, so the FIFO never overflows. Initiation interval 1;
  latency = pipeline stages + 1 cycles (input register, stage registers, output register);
* ``tdata`` fields: element k of the flattened (C-order) sample sits at
  ``[k*W +: W]`` as the raw code of the declared type (``ap_fixed<W,I>``: W total bits, I integer
  bits incl. sign; value = code * 2**-(W-I)), input type = the graph's input type, output type = the
  output layer's result type. ``port_map.json`` lists every field.

Everything is written into ``<project>/rtl/`` through a staged folder (nothing half-written).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flow.arith.types import FixedType
from flow.core.errors import FlowError
from flow.core.outputs import RTL
from flow.core.staging import staged_dir
from flow.rtl import progress
from flow.rtl.architecture import bits
from flow.rtl.emit import EMITTERS
from flow.rtl.netlist import (axis_module, da4ml_version, lint, module_prefix, netlist_verilog, pack_assigns,
                              packed_width, static_modules, unpack_assigns)
from flow.rtl.port_map import PortMap, port_map_record
from flow.rtl.units import fifo_unit

CHECK_SAMPLES = 2000  # full-range inputs on which the traced netlist must equal the emulator before RTL is written


def _field(name: str, lsb: int, t: FixedType) -> dict[str, Any]:
    return {"name": name, "lsb": lsb, "width": t.width, "signed": t.signed, "integer_bits": t.integer,
            "type": str(t)}


def _index_names(prefix: str, shape: tuple[int, ...]) -> list[str]:
    import numpy as np

    return [f"{prefix}[{','.join(str(i) for i in idx)}]" for idx in np.ndindex(*shape)]


def output_fifo_depth(stages: int) -> int:
    """Beats the unrolled core's output FIFO holds: latency (``stages`` + 1 cycles) + 1, the samples in flight
    at full rate plus the one whose credit returns on the cycle it leaves (II 1 with ``m_axis_tready`` high)."""
    return stages + 2


def register_bits(stages: list[Any], fifo_depth: int) -> dict[str, Any]:
    """Flip-flops of the unrolled core, in bits: ``per_stage[s]`` the register in front of stage ``s`` (its packed
    input; stage 0's is the input register), ``output`` the register after the last stage, ``control`` the
    valid bits and the credit counter, ``fifo`` the output FIFO's storage (words x packed width; distributed RAM
    on FPGAs, flip-flops in a cell library) and its pointers; ``total`` the sum."""
    per_stage = [packed_width(sol.inp_qint) for sol in stages]
    out_bits = packed_width(stages[-1].out_qint)
    control = len(stages) + 1 + bits(fifo_depth + 1)
    fifo = fifo_depth * max(out_bits, 1) + 2 * bits(fifo_depth) + bits(fifo_depth + 1)
    return {"per_stage": per_stage, "output": out_bits, "control": control, "fifo": fifo,
            "data": sum(per_stage) + out_bits, "total": sum(per_stage) + out_bits + control + fifo}


def _top_module(prefix: str, stages: list[Any], in_t: FixedType, out_t: FixedType, n_in: int, n_out: int) -> str:
    in_q, out_q = list(stages[0].inp_qint), list(stages[-1].out_qint)
    in_lines, in_bits = pack_assigns("packed_inp", "in_data", in_q, [in_t] * len(in_q))
    out_lines, out_bits = unpack_assigns("out_data", "packed_out", out_q, [out_t] * len(out_q)), packed_width(out_q)
    n = len(stages)
    depth = output_fifo_depth(n)
    cb = bits(depth + 1)
    ob = max(out_bits, 1)
    wi, wo = n_in * in_t.width, n_out * out_t.width
    decl, inst, seq = [], [], []
    for s, sol in enumerate(stages):
        ib, sb = (packed_width(sol.inp_qint), packed_width(sol.out_qint))
        decl.append(f"reg  [{max(ib, 1) - 1}:0] stage{s}_inp;")
        decl.append(f"wire [{max(sb, 1) - 1}:0] stage{s}_out;")
        if ib and sb:
            inst.append(f"{prefix}_stage{s} u_stage{s} (.model_inp(stage{s}_inp), .model_out(stage{s}_out));")
        else:
            inst.append(f"assign stage{s}_out = {max(sb, 1)}'d0;")
        src = "packed_inp" if s == 0 else f"stage{s - 1}_out"
        seq.append(f"stage{s}_inp <= {src};")
    seq.append(f"packed_out_q <= stage{n - 1}_out;")
    j = "\n    "
    jj = "\n        "
    return f"""`timescale 1ns / 1ps
// AXI4-Stream wrapper: one sample per beat, free-running pipeline (no stall), latency {n + 1} cycles, II 1.
// Data registers load every cycle (no enable); valid bits shift every cycle; back-pressure is absorbed by
// an output FIFO of {depth} beats; s_axis_tready = credits != 0 (credits = FIFO beats not promised to a sample
// accepted and not yet delivered), so the FIFO never overflows and nothing is lost or duplicated.
// s_axis_tdata: {n_in} x {in_t} (element k at [k*{in_t.width} +: {in_t.width}])
// m_axis_tdata: {n_out} x {out_t} (element k at [k*{out_t.width} +: {out_t.width}])
{axis_module(prefix, wi, wo)}
    localparam STAGES = {n};
    // verilator lint_off UNUSEDSIGNAL
    wire [{wi - 1}:0] in_data = s_axis_tdata;
    // verilator lint_on UNUSEDSIGNAL
    wire [{max(in_bits, 1) - 1}:0] packed_inp;
    reg  [{ob - 1}:0] packed_out_q;
    wire [{ob - 1}:0] fifo_out;
    wire fifo_valid;
    // verilator lint_off UNUSEDSIGNAL
    wire fifo_ready;  // always high when written: the credits keep room for every sample in flight
    wire [{ob - 1}:0] packed_out = fifo_valid ? fifo_out : packed_out_q;
    // verilator lint_on UNUSEDSIGNAL
    wire [{wo - 1}:0] out_data;
    reg  [STAGES:0] valid;
    reg  [{cb - 1}:0] credits;
    wire accept = s_axis_tvalid && s_axis_tready;
    wire deliver = m_axis_tvalid && m_axis_tready;
    // the last stage's sample goes straight out when the FIFO is empty and the sink takes it, else into the FIFO
    wire fifo_write = valid[STAGES] && (fifo_valid || !m_axis_tready);

    {j.join(in_lines) if in_lines else "assign packed_inp = 1'b0;"}

    {j.join(decl)}
    {j.join(inst)}

    always @(posedge clk) begin
        if (rst) begin
            valid <= {n + 1}'d0;
            credits <= {cb}'d{depth};
        end else begin
            valid <= {{valid[STAGES-1:0], accept}};
            if (accept && !deliver) credits <= credits - {cb}'d1;
            else if (deliver && !accept) credits <= credits + {cb}'d1;
        end
    end

    always @(posedge clk) begin
        {jj.join(seq)}
    end

    {prefix}_out_fifo u_out_fifo (.clk(clk), .rst(rst), .in_data(packed_out_q), .in_valid(fifo_write),
        .in_ready(fifo_ready), .out_data(fifo_out), .out_valid(fifo_valid), .out_ready(m_axis_tready));

    {j.join(out_lines)}

    assign s_axis_tready = credits != {cb}'d0;
    assign m_axis_tvalid = fifo_valid || valid[STAGES];
    assign m_axis_tdata = out_data;
endmodule
"""


def generate(graph: Any, out_dir: Path, name: str, latency_cutoff: float | None = 5.0, upto: str | None = None,
             input_shape: tuple[int, ...] | None = None, run_lint: bool = True, clock_period: float | None = None,
             timing_target: str | None = None, check_samples: int = CHECK_SAMPLES,
             emitter: str = EMITTERS[0], force: bool = False) -> PortMap:
    """Trace ``graph`` and write the RTL folder ``out_dir`` (staged; replaced atomically, an existing folder only
    when it is an hlsflow RTL folder or with ``force``: :mod:`flow.core.outputs`).

    ``latency_cutoff`` is da4ml's pipelining budget per stage in its estimated logic-delay units
    (<= 0: one combinational stage). ``None``: chosen for ``clock_period`` (ns) on ``timing_target``
    (an FPGA part or cell library; default :data:`flow.rtl.timing.DEFAULT_TARGET`) from the shipped
    delay calibration (:func:`flow.rtl.timing.choose_cutoff`). Before anything is written, da4ml's
    interpreter of the traced netlist is compared with the emulator on ``check_samples`` full-range inputs
    (:func:`flow.arith.equivalence.check_netlist`): any difference raises :class:`~flow.core.errors.NotBitExact`
    naming the first differing layer. Returns the :class:`~flow.rtl.port_map.PortMap` (also written as
    ``port_map.json``; ``timing`` records how the cut was chosen and the stage delay it predicts). ``emitter``: how stage modules are
    written (:mod:`flow.rtl.emit`).
    """
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    from flow.arith.equivalence import check_netlist
    from flow.arith.trace import trace_graph

    if check_samples < 1:
        raise FlowError(f"--check-samples must be >= 1, got {check_samples}")
    if emitter not in EMITTERS:
        raise FlowError(f"--emitter must be one of {', '.join(EMITTERS)}, got {emitter!r}")
    prefix = module_prefix(name)
    n_layers, weights = progress.trace_size(graph, upto)
    large = progress.is_large(weights)
    t0 = time.perf_counter()
    with progress.phase(f"tracing {n_layers} layers", large):
        traced = trace_graph(graph, upto, progress.layer_reporter(n_layers, large))
    with progress.phase("building the netlist", large):
        comb = comb_trace(traced.inputs, traced.outputs, keep_dead_inputs=True)
    t_trace = time.perf_counter() - t0
    with progress.phase(f"checking {check_samples} samples against the emulator", large):
        equivalence = check_netlist(graph, traced, comb, check_samples, seed=0, upto=upto)
    from flow.rtl import timing as delays

    target = timing_target or delays.DEFAULT_TARGET
    comb_units = float(comb.latency[1])
    timing: dict[str, Any] = {"target": target, "clock_period_ns": clock_period, "comb_delay_units": comb_units,
                              "calibration": "flow/rtl/calibration.json (python -m flow.physical.calibrate)"}
    if latency_cutoff is None:
        if clock_period is None or clock_period <= 0:
            raise FlowError("a latency cutoff or a clock period (ns) is needed to pipeline the RTL")
        choice = delays.choose_cutoff(clock_period, target, comb_units)
        latency_cutoff = choice.cutoff
        timing["cutoff_from"] = "clock_period"
    else:
        timing["cutoff_from"] = "explicit"
    if latency_cutoff > 0:
        with progress.phase("pipelining", large):
            pipe = to_pipeline(comb, latency_cutoff, verbose=False)
        stages = list(pipe.solutions)
    else:
        stages = [comb]
    units = delays.stage_units(stages)
    timing["stage_delay_units"] = units
    try:
        pred = delays.predicted_ns(units, target)
        timing["predicted_stage_ns"] = round(pred, 3)
        if clock_period:
            timing["predicted_meets"] = pred <= clock_period
    except FlowError:
        pass  # no calibration for this target: nothing predicted
    with staged_dir(out_dir, RTL, force) as work:
        files: list[str] = []
        memfiles: dict[str, str] = {}
        with progress.phase(f"writing Verilog ({len(stages)} stages)", large):
            for s, sol in enumerate(stages):
                ib, ob = (packed_width(sol.inp_qint), packed_width(sol.out_qint))
                if not (ib and ob):
                    continue
                code, tables = netlist_verilog(sol, f"{prefix}_stage{s}", prefix, emitter)
                memfiles.update(tables)
                (work / f"{prefix}_stage{s}.v").write_text(code)
                files.append(f"{prefix}_stage{s}.v")
        for name_, text in memfiles.items():
            (work / name_).write_text(text)
        for fname, text in static_modules(prefix, bool(memfiles), emitter).items():
            (work / fname).write_text(text)
            files.append(fname)
        n_in, n_out = len(traced.inputs), traced.n_outputs
        top = _top_module(prefix, stages, traced.input_type, traced.output_type, n_in, n_out)
        (work / f"{prefix}_axis.v").write_text(top)
        fifo_bits = max(packed_width(stages[-1].out_qint), 1)
        fifo_depth = output_fifo_depth(len(stages))
        (work / f"{prefix}_out_fifo.v").write_text(fifo_unit(f"{prefix}_out_fifo", fifo_bits, fifo_depth,
                                                             "`timescale 1ns / 1ps\n"))
        files[:0] = [f"{prefix}_axis.v", f"{prefix}_out_fifo.v"]
        in_shape = input_shape or traced.input_shape
        checked = None
        if run_lint:
            with progress.phase("linting with Verilator", large):
                checked = lint(work, files, f"{prefix}_axis")
        port_map = PortMap.from_json(port_map_record(
            top=f"{prefix}_axis", verilog=files, memories=sorted(memfiles), architecture="unrolled",
            latency_cycles=len(stages) + 1, initiation_interval=1, pipeline_stages=len(stages),
            latency_cutoff=latency_cutoff, emitter=emitter,
            details={"stall": "none: data registers load every cycle; back-pressure fills the output FIFO",
                     "output_fifo": {"depth": fifo_depth, "width": fifo_bits, "bits": fifo_depth * fifo_bits,
                                     "ready_from": "credits (FIFO beats minus samples accepted and not yet "
                                                   "delivered)"},
                     "registers": register_bits(stages, fifo_depth)},
            output_layer=traced.output_layer,
            input={"tdata_width": n_in * traced.input_type.width, "shape": list(in_shape),
                   "fields": [_field(nm, k * traced.input_type.width, traced.input_type)
                              for k, nm in enumerate(_index_names("x", tuple(in_shape)))]},
            output={"tdata_width": n_out * traced.output_type.width, "shape": [n_out],
                    "fields": [_field(f"y[{k}]", k * traced.output_type.width, traced.output_type)
                               for k in range(n_out)]},
            da4ml={"version": da4ml_version(), "cost_estimate": float(comb.cost), "trace_seconds": round(t_trace, 3)},
            timing=timing, equivalence={"netlist_vs_emulator": equivalence.to_dict()}, lint=checked), "port map")
        port_map.write(work)
    return port_map
