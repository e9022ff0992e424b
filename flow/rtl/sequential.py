"""Sequential RTL architectures: folded layers (reuse factor) and streaming CNNs (line buffers), bit-exact.

``hlsflow rtl`` comes here (:func:`flow.commands.rtl_command.rtl_project`) when a Dense/Conv layer has a reuse factor
above 1 (``folded``) or the project is an io_stream CNN (``stream``). The arithmetic is traced from the layer
descriptions by :mod:`flow.rtl.architecture`; this module wraps every kernel in its sequential unit
(:mod:`flow.rtl.units`), chains the units (FIFOs where the schedule needs them, depths from
:mod:`flow.rtl.schedule`), writes the top module and ``port_map.json``.

Top module ``<name>_axis``: the ports of the unrolled core (``clk``, ``rst`` synchronous active high,
``s_axis_*``, ``m_axis_*``, AXI4-Stream, back-pressure by ``tready``). One sample is ``input.beats`` input beats
and ``output.beats`` output beats, in order: a whole sample per beat for the folded architecture (as the
unrolled core); one pixel (all channels) per beat in raster order for a streaming CNN, and one beat for the
result of a final Dense layer. No ``tlast``: the core counts beats. A rate limiter accepts a sample's first
beat at most every ``initiation_interval`` cycles, so every sample has the declared latency (cycles from its
last input beat's handshake to its last output beat's handshake, without stalls).

Before anything is written the composed kernels are compared with the emulator
(:func:`flow.rtl.compose.check_composition`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow.arith.types import FixedType
from flow.core.errors import FlowError
from flow.core.outputs import RTL
from flow.core.staging import staged_dir
from flow.rtl import netlist, progress, schedule, units
from flow.rtl.architecture import Architecture, Collect, Fold, Segment, Token, Window, cost, multipliers
from flow.rtl.emit import EMITTERS, registers_stages
from flow.rtl.netlist import axis_module
from flow.rtl.port_map import PortMap, port_map_record

HEADER = "`timescale 1ns / 1ps\n"


@dataclass
class UnitInstance:
    """One unit instance of the top module: its module, declared stream widths, model, and port-map record."""

    name: str
    kind: str
    module: str
    in_bits: int
    out_bits: int
    files: dict[str, str]
    record: dict[str, Any]
    model: Any = None      # factory of a fresh schedule model
    latency: int = 0       # cycles the unit adds (stated per unit)
    cycles: int = 0        # cycles per sample the unit needs (its own initiation interval)
    memories: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Emission:
    """How kernels become Verilog: ``latency_cutoff`` (da4ml's pipelining budget per stage, <= 0: one stage;
    None: chosen per kernel for ``clock_period`` ns on ``timing_target``, :func:`flow.rtl.timing.choose_cutoff`)
    and the stage ``emitter`` (:mod:`flow.rtl.emit`)."""

    latency_cutoff: float | None = 5.0
    emitter: str = EMITTERS[0]
    clock_period: float | None = None
    timing_target: str | None = None

    def cutoff(self, comb: Any) -> float:
        """The cutoff for the kernel ``comb``."""
        if self.latency_cutoff is not None:
            return self.latency_cutoff
        from flow.rtl import timing as delays

        if not self.clock_period or self.clock_period <= 0:
            raise FlowError("a latency cutoff or a clock period (ns) is needed to pipeline the RTL")
        return delays.choose_cutoff(self.clock_period, self.timing_target or delays.DEFAULT_TARGET,
                                    float(comb.latency[1])).cutoff


def _stages(comb: Any, emission: Emission) -> list[Any]:
    from da4ml.trace.pipeline import to_pipeline

    latency_cutoff = emission.cutoff(comb)
    if latency_cutoff > 0 and len(comb.ops) > 0:
        return list(to_pipeline(comb, latency_cutoff, verbose=False).solutions)
    return [comb]


def _netlist(sol: Any, module: str, prefix: str, files: dict[str, str], mem: dict[str, str],
             emitter: str, registered: bool = False) -> str | None:
    from flow.rtl.netlist import netlist_verilog, packed_width

    if not (packed_width(sol.inp_qint) and packed_width(sol.out_qint)):
        return None
    code, tables = netlist_verilog(sol, module, prefix, emitter, registered)
    files[f"{module}.v"] = code
    mem.update(tables)
    return module


def _comb_part(prefix: str, seg: Segment, emission: Emission, input_register: bool) -> UnitInstance:
    name = f"{prefix}_{seg.name}"
    stages = _stages(seg.comb, emission)
    files: dict[str, str] = {}
    mem: dict[str, str] = {}
    registered = registers_stages(emission.emitter)
    mods = [_netlist(sol, f"{name}_stage{s}", prefix, files, mem, emission.emitter, registered)
            for s, sol in enumerate(stages)]
    in_types = [seg.in_token.t] * seg.in_token.size
    out_types = [seg.out_token.t] * seg.out_token.size
    files[f"{name}.v"] = units.comb_unit(name, mods, stages, in_types, out_types, input_register, HEADER,
                                         registered)
    regs = len(stages) + int(input_register)
    fifo_bits = max(netlist.packed_width(stages[-1].out_qint), 1)
    files[f"{name}_out_fifo.v"] = units.fifo_unit(f"{name}_out_fifo", fifo_bits, units.comb_fifo_depth(regs), HEADER)
    rec = {"kind": "kernel", "layers": seg.layers, "pipeline_stages": len(stages), "latency_cycles": regs,
           "output_fifo_depth": units.comb_fifo_depth(regs),
           "cycles_per_sample": seg.in_token.beats, "da4ml_cost": float(seg.comb.cost),
           "beat": f"{seg.in_token.size} x {seg.in_token.t} -> {seg.out_token.size} x {seg.out_token.t}"}
    return UnitInstance(name, "kernel", name, seg.in_token.bits, seg.out_token.bits, files, rec,
                lambda: schedule.CombModel(regs, units.comb_fifo_depth(regs)), regs, seg.in_token.beats, mem)


def _window_tables(w: Window) -> tuple[list[list[bool]], list[list[bool]]]:
    sp, ker, st, out, pads = w.spatial, w.kernel, w.stride, w.out, w.pads
    if len(sp) == 1:
        sp, ker, st, out, pads = (1, *sp), (1, *ker), (1, *st), (1, *out), ((0, 0), *pads)
    hp, wp = sp[0] + sum(pads[0]), sp[1] + sum(pads[1])

    def ok(p: int, k: int, s: int, o: int) -> bool:
        return p >= k - 1 and (p - k + 1) % s == 0 and (p - k + 1) // s < o

    pad = [[r < pads[0][0] or r >= pads[0][0] + sp[0] or q < pads[1][0] or q >= pads[1][0] + sp[1] for q in range(wp)]
           for r in range(hp)]
    done = [[ok(r, ker[0], st[0], out[0]) and ok(q, ker[1], st[1], out[1]) for q in range(wp)] for r in range(hp)]
    return pad, done


def _window_part(prefix: str, w: Window) -> UnitInstance:
    name = f"{prefix}_{w.name}"
    pad, done = _window_tables(w)
    pushes = len(pad) * len(pad[0])
    rec = {"kind": "line buffer", "layers": [w.layer], "image": list(w.spatial), "channels": w.channels,
           "window": list(w.kernel), "stride": list(w.stride), "padding": [list(p) for p in w.pads],
           "pad_code": w.pad_code, "windows": list(w.out), "latency_cycles": 1, "cycles_per_sample": pushes,
           "buffer_pixels": (w.kernel[0] - 1) * len(pad[0]) + w.kernel[-1] if len(w.kernel) == 2 else w.kernel[0]}
    return UnitInstance(name, "window", name, w.in_token.bits, w.out_token.bits, {f"{name}.v": units.window_unit(name, w, HEADER)},
                rec, lambda: schedule.WindowModel(pad, done), 1, pushes)


def fold_part(prefix: str, f: Fold, emitter: str = EMITTERS[0]) -> UnitInstance:
    """The fold unit of ``f`` (its module, the step kernel and its shell, the ROM file) as a part of the top."""
    name = f"{prefix}_{f.name}"
    files: dict[str, str] = {}
    mem: dict[str, str] = {}
    comb_mod = _netlist(f.step, f"{name}_step_kernel", prefix, files, mem, emitter)
    if comb_mod is None:
        raise FlowError(f"layer {f.layer!r}: the step kernel of reuse factor {f.reuse} has no logic")
    groups = [("x", [f.x_t] * f.ki), ("w", [f.w_t] * (f.ki * f.ko)), ("b", [f.acc_t] * f.ko)]
    files[f"{name}_step.v"] = units.kernel_shell(f"{name}_step", comb_mod, f.step, groups, "y", [f.acc_t] * f.ko,
                                                HEADER)
    rom_file = f"{name}_rom.mem"
    mem[rom_file] = units.rom_lines(f)
    files[f"{name}.v"] = units.fold_unit(name, f, f"{name}_step", rom_file, HEADER)
    steps = f.reuse * f.out_token.beats
    rom_w = f.ki * f.ko * f.w_t.width + (f.ko * f.acc_t.width if f.blocks > 1 else 0)
    rec = {"kind": "folded product", "layers": [f.layer], "reuse_factor": f.reuse, "reuse_factor_requested": f.requested,
           "multipliers": f.multipliers, "inputs_per_step": f.ki, "outputs_per_step": f.ko,
           "beats_per_product": f.group, "step_kernel_da4ml_cost": float(f.step.cost),
           "rom": {"file": rom_file, "words": f.reuse, "width": rom_w, "weight_type": str(f.w_t)},
           "accumulators": f"{f.ko} x {f.acc_t}", "latency_cycles": f.reuse // f.group + 1,
           "cycles_per_sample": steps}
    return UnitInstance(name, "fold", name, f.in_token.bits, f.out_token.bits, files, rec,
                lambda: schedule.FoldModel(f.slices, f.blocks, f.group), f.reuse // f.group + 1, steps, mem)


def _collect_part(prefix: str, c: Collect) -> UnitInstance:
    name = f"{prefix}_{c.name}"
    rec = {"kind": "collect", "layers": [c.layer], "beats": c.group, "latency_cycles": 1,
           "cycles_per_sample": c.in_token.beats}
    return UnitInstance(name, "collect", name, c.in_token.bits, c.out_token.bits, {f"{name}.v": units.collect_unit(name, c, HEADER)},
                rec, lambda: schedule.CollectModel(c.group), 1, c.in_token.beats)


def _fifo_part(prefix: str, k: int, width: int, beats: int) -> UnitInstance:
    name = f"{prefix}_fifo{k}"
    return UnitInstance(name, "fifo", name, width, width, {}, {"kind": "fifo", "layers": [], "width": width,
                "latency_cycles": 1, "cycles_per_sample": beats}, None, 1, beats)


@dataclass
class Edge:
    """What feeds part k: the previous part's output (or the top's input), optionally permuted (wiring)."""

    index: list[int] | None
    t: FixedType


def build_parts(arch: Architecture, prefix: str, emission: Emission) -> tuple[list[UnitInstance], list[Edge], Edge]:
    """The top module's parts in stream order, the edge into each, and the edge into ``m_axis``."""
    parts: list[UnitInstance] = []
    edges: list[Edge] = []
    pending: list[int] | None = None
    pending_t: FixedType = arch.in_token.t
    for unit in arch.units:
        if isinstance(unit, Segment):
            if unit.is_wiring:
                idx = unit.wiring()
                pending = idx if pending is None else [pending[j] for j in idx]
                pending_t = unit.out_token.t
                continue
            part = _comb_part(prefix, unit, emission, input_register=not parts)
        elif isinstance(unit, Window):
            part = _window_part(prefix, unit)
        elif isinstance(unit, Fold):
            part = fold_part(prefix, unit, emission.emitter)
        else:
            part = _collect_part(prefix, unit)
        if arch.stream and parts and parts[-1].kind == "kernel" and part.kind in ("window", "fold", "collect"):
            tok = unit.in_token
            fifo = _fifo_part(prefix, sum(p.kind == "fifo" for p in parts), tok.bits, tok.beats)
            parts.append(fifo)
            edges.append(Edge(pending, pending_t))
            pending = None
        parts.append(part)
        edges.append(Edge(pending, pending_t))
        pending, pending_t = None, unit.out_token.t
    return parts, edges, Edge(pending, pending_t)


def _top(prefix: str, arch: Architecture, parts: list[UnitInstance], edges: list[Edge], out_edge: Edge, ii: int,
         latency: int) -> str:
    in_tok, out_tok = arch.in_token, arch.out_token
    in_w, out_w = in_tok.bits, out_tok.bits
    decl, inst, wires = [], [], []
    for k, p in enumerate(parts):
        decl += [f"wire [{p.in_bits - 1}:0] p{k}_in_data;", f"wire [{p.out_bits - 1}:0] p{k}_out_data;",
                 f"wire p{k}_in_valid, p{k}_in_ready, p{k}_out_valid, p{k}_out_ready;"]
        inst.append(f"{p.module} u_p{k} (.clk(clk), .rst(rst), .in_data(p{k}_in_data), "
                    f".in_valid(p{k}_in_valid), .in_ready(p{k}_in_ready), .out_data(p{k}_out_data), "
                    f".out_valid(p{k}_out_valid), .out_ready(p{k}_out_ready));")
    sources = ["in_data"] + [f"p{k}_out_data" for k in range(len(parts))]
    for k, (p, e) in enumerate(zip(parts, edges)):
        src = sources[k]
        if e.index is None:
            wires.append(f"assign p{k}_in_data = {src};")
        else:
            wires += units.wiring_assigns(f"p{k}_in_data", src, e.index, e.t)
        wires.append(f"assign p{k}_in_valid = {'in_valid' if k == 0 else f'p{k - 1}_out_valid'};")
        if k:
            wires.append(f"assign p{k - 1}_out_ready = p{k}_in_ready;")
    last = f"p{len(parts) - 1}_out_data"
    if out_edge.index is None:
        wires.append(f"assign m_axis_tdata = {last};")
    else:
        wires += units.wiring_assigns("m_axis_tdata", last, out_edge.index, out_edge.t)
    wires += [f"assign m_axis_tvalid = p{len(parts) - 1}_out_valid;", f"assign p{len(parts) - 1}_out_ready = m_axis_tready;"]
    beats = in_tok.beats
    sw, bw = units.bits(ii + 1), units.bits(beats)
    if ii > 1 or beats > 1:
        limiter = f"""    // rate limiter: a sample's first beat at most every II = {ii} cycles (constant latency, no queueing)
    reg  [{sw - 1}:0] since;
    reg  [{bw - 1}:0] beat;
    wire first_beat = (beat == {bw}'d0);
    wire allow = !first_beat || (since >= {sw}'d{ii});
    wire in_fire = s_axis_tvalid && s_axis_tready;
    always @(posedge clk) begin
        if (rst) begin
            since <= {sw}'d{ii};
            beat <= {bw}'d0;
        end else begin
            since <= (in_fire && first_beat) ? {sw}'d1 : ((since >= {sw}'d{ii}) ? {sw}'d{ii} : since + {sw}'d1);
            if (in_fire) beat <= (beat == {bw}'d{beats - 1}) ? {bw}'d0 : beat + {bw}'d1;
        end
    end"""
    else:
        limiter = "    wire allow = 1'b1;"
    j = "\n    "
    summary = ", ".join(f"{p.kind} {p.name[len(prefix) + 1:]}" for p in parts)
    return f"""{HEADER}// {arch_name(arch)} architecture: latency {latency} cycles, initiation interval {ii} cycles.
// s_axis_tdata: one beat = {in_tok.size} x {in_tok.t} (element k at [k*{in_tok.t.width} +: {in_tok.t.width}]), {beats} beat(s) per sample
// m_axis_tdata: one beat = {out_tok.size} x {out_tok.t}, {out_tok.beats} beat(s) per sample
// units: {summary}
{axis_module(prefix, in_w, out_w)}
{limiter}
    wire [{in_w - 1}:0] in_data = s_axis_tdata;
    wire in_valid = s_axis_tvalid && allow;
    assign s_axis_tready = p0_in_ready && allow;
    {j.join(decl)}
    {j.join(inst)}
    {j.join(wires)}
endmodule
"""


def arch_name(arch: Architecture) -> str:
    return "stream" if arch.stream else "folded"


def _fields(prefix: str, tok: Token, stream_axes: int) -> list[dict[str, Any]]:
    t = tok.t
    return [{"name": nm, "lsb": k * t.width, "width": t.width, "signed": t.signed, "integer_bits": t.integer,
             "type": str(t)} for k, nm in enumerate(units.index_names(prefix, tok.shape, stream_axes))]


def has_windows(graph: Any) -> bool:
    """True when the graph has a convolution or pooling layer (a line buffer in the streaming architecture)."""
    from flow.arith.walk import plan

    return any(s.impl is not None and s.impl.name in ("conv1d", "conv2d", "pooling1d", "pooling2d") for s in plan(graph))


def choose_architecture(graph: Any, architecture: str = "auto", reuse_factor: int | None = None
                        ) -> tuple[str, dict[str, int]]:
    """(architecture, reuse factor per foldable layer) for ``hlsflow rtl``.

    ``auto``: ``stream`` for an io_stream graph with convolutions or pooling, else ``folded`` when a Dense/Conv
    layer has a reuse factor above 1 (hls4ml's ``ReuseFactor`` in the project's config, or ``reuse_factor``),
    else ``unrolled``. ``unrolled`` ignores the configured reuse factors; with an explicit ``reuse_factor`` > 1
    it is refused."""
    from flow.arith.target import Target
    from flow.rtl.architecture import reuse_factors
    from flow.spec import ARCHITECTURES

    if architecture not in ARCHITECTURES:
        raise FlowError(f"--architecture must be one of {', '.join(ARCHITECTURES)}, got {architecture!r}")
    if reuse_factor is not None and reuse_factor < 1:
        raise FlowError(f"--reuse-factor must be >= 1, got {reuse_factor}")
    reuse = reuse_factors(graph, reuse_factor)
    if architecture == "unrolled" and reuse_factor is not None and reuse_factor > 1:
        raise FlowError(f"--reuse-factor {reuse_factor} needs a sequential architecture (folded or stream), "
                        "not --architecture unrolled")
    if architecture == "auto":
        if Target.of(graph).stream and has_windows(graph):
            architecture = "stream"
        elif any(r > 1 for r in reuse.values()):
            architecture = "folded"
        else:
            architecture = "unrolled"
    return architecture, reuse


def generate_sequential(graph: Any, out_dir: Path, name: str, kind: str, reuse: dict[str, int],
                        emission: Emission = Emission(), upto: str | None = None, run_lint: bool = True,
                        check_samples: int = 2000, reuse_override: int | None = None,
                        force: bool = False) -> PortMap:
    """Trace ``graph`` as the ``kind`` architecture (``folded`` or ``stream``) and write ``out_dir``
    (:func:`write_sequential`); returns the port map."""
    from flow.rtl.architecture import trace_architecture

    if check_samples < 1:
        raise FlowError(f"--check-samples must be >= 1, got {check_samples}")
    n_layers, weights = progress.trace_size(graph, upto)
    with progress.phase(f"tracing {n_layers} layers into {kind} units", progress.is_large(weights)):
        arch = trace_architecture(graph, reuse, stream=kind == "stream", upto=upto)
    return write_sequential(graph, arch, out_dir, name, emission, run_lint, check_samples, upto, reuse_override,
                            force=force)


def write_sequential(graph: Any, arch: Architecture, out_dir: Path, name: str, emission: Emission = Emission(),
                     run_lint: bool = True, check_samples: int = 2000, upto: str | None = None,
                     reuse_override: int | None = None, force: bool = False) -> PortMap:
    """Check ``arch`` (composition gate), build its units and write the RTL folder ``out_dir`` (staged; an existing
    one replaced only when it is an hlsflow RTL folder or with ``force``); returns the port map (also
    ``port_map.json``)."""
    from flow.rtl.compose import check_composition
    from flow.rtl.netlist import da4ml_version, lint, module_prefix, static_modules

    large = progress.is_large(progress.trace_size(graph, upto)[1])
    t0 = time.perf_counter()
    with progress.phase(f"checking {check_samples} samples of the composed units against the emulator", large):
        composition = check_composition(graph, arch, check_samples, seed=0, upto=upto)
    prefix = module_prefix(name)
    with progress.phase("building the units' netlists and Verilog", large):
        parts, edges, out_edge = build_parts(arch, prefix, emission)
    in_tok, out_tok = arch.in_token, arch.out_token

    def make_nodes(depths: dict[int, int] | None) -> list[Any]:
        return [schedule.FifoModel(None if depths is None else depths[k]) if p.kind == "fifo" else p.model()
                for k, p in enumerate(parts)]

    timing, _ = schedule.timing(make_nodes, in_tok.beats, out_tok.beats)
    for k, p in enumerate(parts):
        if p.kind == "fifo":
            p.record["depth"] = max(2, timing.fifo_peaks[k] + 1)
            p.record["peak_occupancy"] = timing.fifo_peaks[k]
            p.files[f"{p.name}.v"] = units.fifo_unit(p.name, p.in_bits, p.record["depth"], HEADER)
    with staged_dir(out_dir, RTL, force) as work:
        files: dict[str, str] = {}
        memories: dict[str, str] = {}
        for p in parts:
            files.update(p.files)
            memories.update(p.memories)
        files.update(static_modules(prefix, any(n.endswith(".mem") and "_table_" in n for n in memories),
                                    emission.emitter))
        top = _top(prefix, arch, parts, edges, out_edge, timing.ii, timing.latency)
        order = [f"{prefix}_axis.v"] + sorted(files)
        files[f"{prefix}_axis.v"] = top
        for fname, text in files.items():
            (work / fname).write_text(text)
        for fname, text in memories.items():
            (work / fname).write_text(text)
        stream_axes = len(arch.input_shape) - 1 if arch.stream else 0
        out_axes = len(out_tok.shape) - 1 if out_tok.beats > 1 else 0
        unit_records = [{"name": p.name[len(prefix) + 1:], **p.record} for p in parts]
        details: dict[str, Any] = {
            "latency_definition": "cycles from the handshake of a sample's last input beat to that of its last "
                                  "output beat, without stalls",
            "reuse_factors": {u.layer: {"requested": u.requested, "used": u.reuse}
                              for u in arch.units if isinstance(u, Fold)},
            "multipliers": multipliers(arch), "units": unit_records}
        if reuse_override is not None:
            details["reuse_factor_override"] = reuse_override
        port_map = PortMap.from_json(port_map_record(
            top=f"{prefix}_axis", verilog=order, memories=sorted(memories), architecture=arch_name(arch),
            latency_cycles=timing.latency, initiation_interval=timing.ii, latency_cutoff=emission.latency_cutoff,
            emitter=emission.emitter, details=details, output_layer=arch.output_layer,
            input={"tdata_width": in_tok.bits, "beats": in_tok.beats, "shape": list(arch.input_shape),
                   "beat_shape": list(in_tok.shape), "fields": _fields("x", in_tok, stream_axes)},
            output={"tdata_width": out_tok.bits, "beats": out_tok.beats, "shape": list(arch.output_shape),
                    "beat_shape": list(out_tok.shape), "fields": _fields("y", out_tok, out_axes)},
            da4ml={"version": da4ml_version(), "cost_estimate": cost(arch),
                   "trace_seconds": round(time.perf_counter() - t0, 3)},
            timing={"target": emission.timing_target, "clock_period_ns": emission.clock_period,
                    "cutoff_from": "explicit" if emission.latency_cutoff is not None else "clock_period, per kernel"},
            equivalence={"kernels_composed_vs_emulator": composition.to_dict()},
            lint=lint(work, order, f"{prefix}_axis") if run_lint else None), "port map")
        port_map.write(work)
    return port_map

