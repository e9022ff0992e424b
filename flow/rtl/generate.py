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

import json
import sys
import time
from pathlib import Path
from typing import Any

from flow.arith.types import FixedType
from flow.errors import FlowError
from flow.outputs import RTL, claim_output
from flow.rtl import budget, progress
from flow.rtl.emit import EMITTERS
from flow.rtl.kernels import bits
from flow.rtl.netlist import (axis_module, da4ml_version, lint, module_prefix, netlist_verilog, pack_assigns,
                              packed_width, static_modules, unpack_assigns)
from flow.rtl.units import fifo_unit
from flow.staging import scratch_dir, staged_dir

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
             emitter: str = EMITTERS[0], force: bool = False) -> dict[str, Any]:
    """Trace ``graph`` and write the RTL folder ``out_dir`` (staged; replaced atomically, an existing folder only
    when it is an hlsflow RTL folder or with ``force``: :mod:`flow.outputs`).

    ``latency_cutoff`` is da4ml's pipelining budget per stage in its estimated logic-delay units
    (<= 0: one combinational stage). ``None``: chosen for ``clock_period`` (ns) on ``timing_target``
    (an FPGA part or cell library; default :data:`flow.rtl.timing.DEFAULT_TARGET`) from the shipped
    delay calibration (:func:`flow.rtl.timing.choose_cutoff`). Before anything is written, da4ml's
    interpreter of the traced netlist is compared with the emulator on ``check_samples`` full-range inputs
    (:func:`flow.arith.equivalence.check_netlist`): any difference raises :class:`~flow.errors.NotBitExact`
    naming the first differing layer. Returns the port map (also written as ``port_map.json``; ``timing``
    records how the cut was chosen and the stage delay it predicts). ``emitter``: how stage modules are
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
                              "calibration": "flow/rtl/calibration.json (python -m flow.rtl.calibrate)"}
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
        port_map = {
            "top": f"{prefix}_axis", "verilog": files, "memories": sorted(memfiles), "clock": "clk", "reset": "rst",
            "reset_active_high": True, "reset_synchronous": True,
            "architecture": "unrolled", "latency_cycles": len(stages) + 1, "initiation_interval": 1,
            "pipeline_stages": len(stages), "latency_cutoff": latency_cutoff, "emitter": emitter,
            "stall": "none: data registers load every cycle; back-pressure fills the output FIFO",
            "output_fifo": {"depth": fifo_depth, "width": fifo_bits, "bits": fifo_depth * fifo_bits,
                            "ready_from": "credits (FIFO beats minus samples accepted and not yet delivered)"},
            "registers": register_bits(stages, fifo_depth),
            "output_layer": traced.output_layer,
            "input": {"tdata_width": n_in * traced.input_type.width, "shape": list(in_shape),
                      "fields": [_field(nm, k * traced.input_type.width, traced.input_type)
                                 for k, nm in enumerate(_index_names("x", tuple(in_shape)))]},
            "output": {"tdata_width": n_out * traced.output_type.width, "shape": [n_out],
                       "fields": [_field(f"y[{k}]", k * traced.output_type.width, traced.output_type)
                                  for k in range(n_out)]},
            "da4ml": {"version": da4ml_version(), "cost_estimate": float(comb.cost),
                      "trace_seconds": round(t_trace, 3)},
            "timing": timing,
            "equivalence": {"netlist_vs_emulator": equivalence.to_dict()},
        }
        if run_lint:
            with progress.phase("linting with Verilator", large):
                port_map["lint"] = lint(work, files, port_map["top"])
        (work / "port_map.json").write_text(json.dumps(port_map, indent=2) + "\n")
    return port_map



def rtl_project(project: Path, latency_cutoff: float | None = None, upto: str | None = None,
                yosys: bool = False, name: str | None = None, fpga: str | None = None, asic: str | None = None,
                clock_period: float | None = None, route: bool = True, check_samples: int = CHECK_SAMPLES,
                emitter: str = EMITTERS[0], reuse_factor: int | None = None,
                architecture: str = "auto", force: bool = False, max_luts: int | None = None,
                fit_fpga: bool = False) -> dict[str, Any]:
    """``hlsflow rtl``: generate ``<project>/rtl/`` and its figures (lint; Yosys, FPGA, ASIC when asked).

    ``PROJECT`` must be an hlsflow project and an existing ``PROJECT/rtl`` an hlsflow RTL folder (or ``force``),
    checked before any work (:func:`flow.outputs.claim_output`).

    ``name`` (default: the project folder's name) prefixes every Verilog module. ``upto`` names a graph
    layer or a Keras layer (mapped to the graph layer holding its output, :mod:`flow.hls.layer_map`).
    ``latency_cutoff`` None: the cut is chosen for ``clock_period`` (default: the project's
    ``hardware.clock_period``) on the timing target (``fpga``, else ``asic``, else the default part). With
    ``fpga``/``asic`` the physical figures are measured (:mod:`flow.rtl.physical`, ``rtl/physical.json``);
    when a chosen cut misses the period on the timing target, the cut is moved once by the measured delay
    and measured again, and the better of the two is kept (unrolled cores; a sequential core is measured once).
    ``architecture`` (``auto``, ``unrolled``, ``folded``, ``stream``) and ``reuse_factor`` (overrides the
    project's per-layer reuse factors) choose between :func:`generate` (fully unrolled, II 1) and the sequential
    architectures of :mod:`flow.rtl.sequential`.

    Before tracing, the design is estimated from the graph (:mod:`flow.rtl.budget`, one ``estimate:`` line).
    ``max_luts`` (or, with ``fit_fpga``, the LUTs of the ``fpga`` part) is a budget: with ``architecture`` auto
    and no ``reuse_factor`` the smallest reuse factor estimated to fit is traced (FlowError when none fits);
    an explicit choice is kept, with a warning when it is estimated over the budget.
    """
    from flow.hls.layer_map import layer_map
    from flow.hls.project import load_meta, rebuild
    from flow.rtl.physical import physical_project, project_clock_period, require_tools, write_json_atomic

    project = Path(project)
    load_meta(project)  # an hlsflow project (one line otherwise), before anything else is read
    claim_output(project / "rtl", RTL, force)
    require_tools(fpga, asic)
    budget_what = f"--max-luts {max_luts}"
    if max_luts is None and fit_fpga and fpga is not None:
        from flow.rtl.fpga import LUT4_PER_LUT6, part as fpga_part

        max_luts = fpga_part(fpga).lut_budget
        budget_what = f"--fpga {fpga}: {fpga_part(fpga).luts:,} LUT4 / {LUT4_PER_LUT6}"
    period = clock_period if clock_period is not None else project_clock_period(project)
    target = fpga or asic
    t0 = time.perf_counter()
    with scratch_dir("rtl") as tmp:
        model, graph, meta = rebuild(project, Path(tmp) / "hls")
        if upto is not None:
            upto = layer_map(model, graph).graph_layer(upto)
        from flow.rtl.sequential import Emission, choose_architecture, generate_sequential

        kind, reuse = choose_architecture(graph, architecture, reuse_factor)
        explicit = architecture != "auto" or reuse_factor is not None
        kind, reuse, est = budget.decide(graph, kind, reuse, explicit, max_luts, budget_what, upto)
        if not explicit and max_luts is not None and any(r > 1 for r in reuse.values()):
            reuse_factor = max(reuse.values())  # recorded in port_map.json as the override it is
        n_layers, weights = progress.trace_size(graph, upto)
        progress.say(f"tracing {name or project.name} with da4ml ({kind}): {n_layers} layers, {weights:,} nonzero "
                     "weights (multiplications by a constant) ...")
        if kind != "unrolled":
            emission = Emission(latency_cutoff, emitter, period, target)
            port_map = generate_sequential(graph, project / "rtl", name or project.name, kind, reuse, emission, upto,
                                           check_samples=check_samples, reuse_override=reuse_factor, force=force)
            summary = _summary(project, port_map, t0) | {"estimate": _estimate_record(est, max_luts)}
            if yosys:
                _yosys(project, port_map, summary)
            if fpga or asic:
                phys = physical_project(project, fpga, asic, period, route=route)
                write_json_atomic(project / "rtl" / "physical.json", phys)
                summary["physical"] = _physical_summary(phys)
            summary["generate_seconds"] = round(time.perf_counter() - t0, 2)
            return summary
        port_map = generate(graph, project / "rtl", name or project.name, latency_cutoff, upto,
                            clock_period=period, timing_target=target, check_samples=check_samples, emitter=emitter,
                            force=force)
        summary = _summary(project, port_map, t0)
        if yosys:
            _yosys(project, port_map, summary)
        if fpga or asic:
            phys = physical_project(project, fpga, asic, period, route=route)
            tries = [_try(port_map, phys, target)]
            if latency_cutoff is None and not tries[0]["met"]:
                better = _retry_cutoff(port_map, tries[0], target, period)
                if better is not None:
                    print(f"hlsflow rtl: {tries[0]['min_period_ns']} ns > {period} ns; trying cutoff {better} ...",
                          file=sys.stderr)
                    first = (port_map, phys)
                    port_map = generate(graph, project / "rtl", name or project.name, better, upto,
                                        clock_period=period, timing_target=target, check_samples=check_samples,
                                        emitter=emitter, force=force)
                    port_map["timing"]["cutoff_from"] = "clock_period, after place-and-route"
                    (project / "rtl" / "port_map.json").write_text(json.dumps(port_map, indent=2) + "\n")
                    if yosys:
                        _yosys(project, port_map, summary)
                    phys = physical_project(project, fpga, asic, period, route=route)
                    tries.append(_try(port_map, phys, target))
                    if tries[1]["min_period_ns"] > tries[0]["min_period_ns"] and not tries[1]["met"]:
                        print(f"hlsflow rtl: cutoff {first[0]['latency_cutoff']} was better; regenerating it ...",
                              file=sys.stderr)
                        port_map = generate(graph, project / "rtl", name or project.name, first[0]["latency_cutoff"],
                                            upto, clock_period=period, timing_target=target,
                                            check_samples=check_samples, emitter=emitter, force=force)
                        if yosys:
                            _yosys(project, port_map, summary)
                        phys = physical_project(project, fpga, asic, period, route=route)
            best = min(tries, key=lambda t: t["min_period_ns"])
            phys["timing_closure"] = {
                "target": target, "clock_period_ns": period, "tries": tries, "met": any(t["met"] for t in tries),
                "best_period_ns": best["min_period_ns"], "best_cutoff": best["cutoff"],
                "statement": (f"meets {period:g} ns on {target}" if any(t["met"] for t in tries) else
                              f"cannot meet {period:g} ns on {target}: best period found {best['min_period_ns']:g} ns "
                              f"(cutoff {best['cutoff']:g}, {best['stages']} stages)")}
            write_json_atomic(project / "rtl" / "physical.json", phys)
            summary = _summary(project, port_map, t0) | {k: v for k, v in summary.items() if k == "yosys"}
            summary["physical"] = _physical_summary(phys)
    summary["estimate"] = _estimate_record(est, max_luts)
    summary["generate_seconds"] = round(time.perf_counter() - t0, 2)
    return summary


def _estimate_record(est: Any, max_luts: int | None) -> dict[str, Any]:
    """The pre-trace estimate as the summary states it (:class:`flow.rtl.budget.Estimate`)."""
    return {"folding": est.folding, "multiplications": est.multiplications, "adders": est.adders, "luts": est.luts,
            "registers": est.registers, "max_luts": max_luts}


def _summary(project: Path, port_map: dict[str, Any], t0: float) -> dict[str, Any]:
    out = {"rtl": "rtl", "top": port_map["top"], "architecture": port_map["architecture"],
           "latency_cycles": port_map["latency_cycles"], "initiation_interval": port_map["initiation_interval"],
           "pipeline_stages": port_map.get("pipeline_stages"), "latency_cutoff": port_map["latency_cutoff"],
           "timing": port_map.get("timing"), "lint_clean": port_map.get("lint", {}).get("clean"),
           **port_map["equivalence"], "generate_seconds": round(time.perf_counter() - t0, 2)}
    if "reuse_factors" in port_map:
        out["reuse_factors"] = port_map["reuse_factors"]
    if "registers" in port_map:
        out["register_bits"] = port_map["registers"]
    return out


def _yosys(project: Path, port_map: dict[str, Any], summary: dict[str, Any]) -> None:
    from flow.rtl.estimate import yosys_estimate

    print("hlsflow rtl: Yosys resource estimate ...", file=sys.stderr)
    est = yosys_estimate(project / "rtl", port_map["verilog"], port_map["top"])
    port_map["yosys"] = est
    (project / "rtl" / "port_map.json").write_text(json.dumps(port_map, indent=2) + "\n")
    summary["yosys"] = est


def _try(port_map: dict[str, Any], phys: dict[str, Any], target: str) -> dict[str, Any]:
    section = phys["fpga"] if "fpga" in phys and phys["fpga"]["part"] == target else phys["asic"]
    return {"cutoff": port_map["latency_cutoff"], "stages": port_map["pipeline_stages"],
            "latency_cycles": port_map["latency_cycles"], "stage_delay_units": port_map["timing"]["stage_delay_units"],
            "min_period_ns": section["min_period_ns"], "met": bool(section["met"]),
            "measured_by": section.get("fmax_stage", "OpenSTA")}


def _retry_cutoff(port_map: dict[str, Any], first: dict[str, Any], target: str, period: float) -> float | None:
    """A smaller cutoff from the measured stage delay (ns per da4ml unit re-fitted on this net), or None."""
    import math

    from flow.rtl.timing import model

    a, _ = model(target)
    units = first["stage_delay_units"]
    if units <= 1 or first["min_period_ns"] <= a:
        return None
    b = (first["min_period_ns"] - a) / units
    new = float(math.floor((period - a) / b))
    if new >= port_map["latency_cutoff"]:
        new = port_map["latency_cutoff"] - 1
    return max(1.0, new) if port_map["latency_cutoff"] > 1 else None


def _physical_summary(phys: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"file": "rtl/physical.json"}
    if "fpga" in phys:
        f = phys["fpga"]
        out["fpga"] = {k: f[k] for k in ("part", "fmax_mhz", "fmax_stage", "clock_target_mhz", "met", "luts", "ffs")}
    if "asic" in phys:
        a = phys["asic"]
        out["asic"] = {k: a[k] for k in ("library", "area_um2", "critical_path_ns", "wns_ns", "power_mw",
                                         "energy_nj_per_inference")}
    if "timing_closure" in phys:
        out["timing_closure"] = phys["timing_closure"]["statement"]
    return out


def cost_figures(project: Path, latency_cutoff: float | None = None, fpga: str | None = "ecp5-85k",
                 asic: str | None = "osu018") -> dict[str, float]:
    """RTL cost of a project for sweeps (writes ``rtl/``): latency and initiation interval (cycles), latency (ns),
    and with ``fpga`` the ECP5 utilisation and Fmax after place-and-route; with ``asic`` the cell area, power and
    energy. The architecture follows the project (its reuse factors: a sweep's ``reuse_factor`` axis reaches the
    RTL through the point's hls4ml config)."""
    s = rtl_project(Path(project), latency_cutoff, yosys=False, fpga=fpga, asic=asic)
    phys = json.loads((Path(project) / "rtl" / "physical.json").read_text()) if (fpga or asic) else {}
    out: dict[str, float] = {"latency_cycles": s["latency_cycles"], "ii_cycles": s["initiation_interval"]}
    if "latency_ns" in phys:
        out["latency_ns"] = phys["latency_ns"]
    if "fpga" in phys:
        f = phys["fpga"]
        out |= {"luts": f["luts"], "ffs": f["ffs"], "carry": f["ccu2c"], "dsps": f["mult18x18d"],
                "fmax_mhz": f["fmax_mhz"]}
    if "asic" in phys:
        a = phys["asic"]
        out |= {"area_um2": a["area_um2"], "power_mw": a["power_mw"], "energy_nj": a["energy_nj_per_inference"]}
    return out
