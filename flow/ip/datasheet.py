"""The IP core's datasheet: one list of blocks rendered as Markdown (``datasheet.md``) and HTML.

Every figure comes from a file of the project or from the run of ``hlsflow ip`` itself:
``rtl/port_map.json`` (fields, latency, II, lint, Yosys), ``spec.yaml``/``project.json`` (clock
target, ns), ``report.json`` (accuracy on the test split, emulator vs C simulation),
``rtl/sim_<simulator>.json`` (cocotb runs) and the plain testbench's result. A missing figure is
written as "not measured" with the command that measures it. Nothing time-dependent is written, so
the same inputs give the same bytes.

Fixed-point convention: ``ap_fixed<W,I>`` has W total bits and I integer bits including the sign
(``ap_ufixed``: unsigned); the field holds the raw code and ``value = code * 2**-(W-I)``.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Any, Sequence

from flow.rtl.port_map import Port, PortMap
from flow.rtl.words import Field

Block = tuple  # ("h1"|"h2"|"p"|"code"|"ul", text or items) or ("table", headers, rows)


@dataclass(frozen=True)
class DatasheetInputs:
    """What the datasheet states. ``port_map``: ``rtl/port_map.json`` as read."""

    name: str
    core: str
    hlsflow_version: str
    stamp_source: str
    stamp_sha256: str
    port_map: PortMap
    clock_period_ns: float | None
    report: dict[str, Any] | None
    sims: dict[str, dict[str, Any]]
    vectors: dict[str, Any]
    testbenches: dict[str, dict[str, Any]]  # simulator -> plain testbench result (flow.ip.testbench.run_testbench)
    files: list[str]
    project_name: str
    physical: dict[str, Any] | None = None  # rtl/physical.json


def _pct(x: float | None) -> str:
    return "not measured" if x is None else f"{100 * x:.2f} %"


def _range(f: Field) -> str:
    t = f.fixed_type
    return f"[{t.min_value:g}, {t.max_value:g}]"


def _field_rows(fields: Sequence[Field]) -> list[list[str]]:
    rows = []
    for f in fields:
        lsb, w, i = f.lsb, f.width, f.integer_bits
        rows.append([f"`{f.name}`", f"[{lsb + w - 1}:{lsb}]", f"`{f.type}`",
                     "yes" if f.signed else "no", str(w), str(i), str(w - i), f"2^-{w - i}" if w - i else "1",
                     _range(f)])
    return rows


def _unrolled_interface(pm: PortMap) -> str:
    """How the unrolled core handles back-pressure, from its port map (the output FIFO, or the older global stall)."""
    fifo = pm.record.get("output_fifo")
    if not fifo:
        return ("A global-stall pipeline: every register advances when `!m_axis_tvalid || m_axis_tready`, and "
                "`s_axis_tready` is that enable, so back-pressure holds the output and nothing is lost. ")
    return ("A pipeline without a stall: the data registers load on every cycle, and back-pressure fills an output "
            f"FIFO of {fifo['depth']} samples; `s_axis_tready` is high while a FIFO slot is free for every sample "
            "accepted and not yet delivered (a credit count), so nothing is lost. ")


def _type_summary(port: Port) -> str:
    types = sorted({f.type for f in port.fields})
    return f"{len(port.fields)} x " + ", ".join(f"`{t}`" for t in types)


def _resources(pm: PortMap) -> list[Block]:
    y = pm.record.get("yosys")
    blocks: list[Block] = [("h2", "Resources (estimate)")]
    if not y:
        blocks.append(("p", "Yosys estimate: not measured: run `hlsflow rtl PROJECT --yosys` (Xilinx cell counts), "
                            "or see the measured ECP5 and ASIC figures below, then `hlsflow ip` again."))
    else:
        x = y["xilinx"]
        blocks += [("p", f"{y['tool']}, `synth_xilinx -flatten` (Xilinx 7-series/UltraScale primitives) and "
                         "generic `synth -flatten`; cell counts from Yosys `stat`, not a vendor place-and-route."),
                   ("table", ["LUT", "FF", "DSP", "CARRY4", "BRAM", "MUXF7/8", "generic cells"],
                    [[f"{x['LUT']:,}", f"{x['FF']:,}", str(x["DSP"]), f"{x['CARRY']:,}", str(x.get("BRAM", 0)),
                      str(x.get("MUXF", 0)), f"{y['generic_total']:,}"]])]
    da = pm.record.get("da4ml") or {}
    if "cost_estimate" in da:
        blocks.append(("p", f"da4ml {da.get('version', '')} cost estimate of the traced netlist: "
                            f"{da['cost_estimate']:,.0f} (its LUT-equivalent units)."))
    return blocks


def _physical(phys: dict[str, Any] | None, pm: PortMap) -> list[Block]:
    """Measured timing, area and power (``rtl/physical.json``), or the command that measures them."""
    blocks: list[Block] = [("h2", "Timing, area and power (open tools)")]
    if not phys:
        return blocks + [("p", "Not measured: run `hlsflow rtl PROJECT --fpga ecp5-85k --asic osu018`, then "
                               "`hlsflow ip` again.")]
    period = phys["clock_period_ns"]
    blocks.append(("p", f"At the clock period {period:g} ns: latency {phys['latency_cycles']} cycles = "
                        f"{phys['latency_ns']:g} ns, {phys.get('pipeline_stages')} pipeline stages "
                        f"(da4ml cutoff {phys.get('latency_cutoff')}). From `rtl/physical.json`."))
    f = phys.get("fpga")
    if f:
        blocks += [("p", f"FPGA {f['device']}, Yosys `synth_ecp5` + {f['tools']['nextpnr']} "
                         f"(`{f['command']}`); Fmax is {f['fmax_stage']}."),
                   ("table", ["Fmax (MHz)", "target (MHz)", "met", "slack (ns)", "LUT4", "FF", "CCU2C", "DP16KD",
                              "MULT18X18D"],
                    [[f"{f['fmax_mhz']:g}", f"{f['clock_target_mhz']:g}", "yes" if f["met"] else "no",
                      f"{f['slack_ns']:g}", f"{f['luts']:,}", f"{f['ffs']:,}", f"{f['ccu2c']:,}", str(f["dp16kd"]),
                      str(f["mult18x18d"])]])]
    a = phys.get("asic")
    if a:
        blocks += [("p", f"ASIC {a['description']}: {a['tools']['yosys']}, {a['tools']['opensta']} ({a['delay_model']}). "
                         f"Power with the switching activity of a gate-level simulation of {a['activity']['samples']} "
                         f"test samples streamed one per cycle ({a['activity']['gate_level_vs_emulator']}); "
                         f"{a['energy_formula']}."),
                   ("table", ["area (um^2)", "cells", "critical path (ns)", "WNS (ns)", "TNS (ns)", "power (mW)",
                              "leakage (mW)", "energy per inference (nJ)"],
                    [[f"{a['area_um2']:,.0f}", f"{a['cells']:,}", f"{a['critical_path_ns']:g}", f"{a['wns_ns']:g}",
                      f"{a['tns_ns']:g}", f"{a['power_mw']:g}", f"{a['leakage_power_mw']:g}",
                      f"{a['energy_nj_per_inference']:g}"]])]
    tc = phys.get("timing_closure")
    if tc:
        blocks.append(("p", f"Timing-driven pipelining: {tc['statement']}."))
    return blocks


def _accuracy(inp: DatasheetInputs) -> list[Block]:
    blocks: list[Block] = [("h2", "Accuracy against the float reference")]
    r = inp.report
    if not r:
        blocks.append(("p", "Not measured: the project has no `report.json` (made by `hlsflow run`)."))
    else:
        acc = r.get("accuracy", {})
        n = (r.get("samples") or {}).get("test")
        blocks += [("p", "Classification accuracy on the project's test split"
                         + (f" ({n} samples)" if n else "") + ", from `report.json`:"),
                   ("table", ["model", "accuracy"],
                    [["float baseline (Keras, float32)", _pct(acc.get("float"))],
                     ["QKeras (quantization-aware training)", _pct(acc.get("qkeras"))],
                     ["hls4ml C simulation", _pct(acc.get("csim"))],
                     ["bit-exact emulator (= this core's outputs)", _pct(acc.get("emulator"))]])]
    rows = []
    for sim, s in inp.sims.items():
        for key, ref in s.get("rtl_vs_reference", {}).items():
            td = ref.get("test_data")
            if td:
                rows.append([f"RTL ({sim}) vs {key} (`{ref.get('file', '')}`)", f"{td['outputs']:,}",
                             _pct(td.get("argmax_agreement")), f"{td['max_abs_diff']:.4g}", f"{td['mean_abs_diff']:.4g}"])
    if rows:
        blocks += [("p", "RTL outputs on the test data, from `hlsflow sim` (`rtl/sim_<simulator>.json`):"),
                   ("table", ["comparison", "outputs", "argmax agreement", "max abs difference",
                              "mean abs difference"], rows)]
    elif r:
        blocks.append(("p", "RTL vs float model on the test data: not measured: run "
                            "`hlsflow sim PROJECT --simulator icarus`."))
    return blocks


def _evidence(inp: DatasheetInputs) -> list[Block]:
    v = inp.vectors
    blocks: list[Block] = [
        ("h2", "Bit-exactness evidence"),
        ("p", f"Vectors shipped with this core: **{v['count']:,}** (`{v['inputs']}`, `{v['expected']}`, "
              f"`{v['npz']}`): {v['test_data']:,} from the project's test data, then {v['random']:,} drawn "
              f"uniformly from every code of the input type `{v['input_type']}` (seed {v['seed']}). Expected "
              f"outputs are hlsflow's bit-exact emulator of the hls4ml graph at layer `{v['output_layer']}`."),
    ]
    if not inp.testbenches:
        blocks.append(("p", "Plain testbench: not run (the simulators asked for are not installed); run "
                            f"`fusesoc --cores-root . run --target sim --tool icarus {inp.core}` (or `--tool verilator`)."))
    for tb in inp.testbenches.values():
        blocks.append(("p", f"Plain testbench `tb/{inp.name}_tb.v` run by `hlsflow ip` on {tb['simulator']} "
                            f"({tb['stimulus']}, every output word "
                            "compared):"))
        blocks.append(("code", tb["line"]))
    rows = []
    for sim, s in inp.sims.items():
        d, st = s["rtl_vs_emulator"], s.get("stimulus", {})
        stim = ", ".join(k for k, on in (("valid gaps", st.get("gaps")), ("back-pressure", st.get("backpressure")),
                                          ("mid-stream reset", st.get("reset_midstream"))) if on) or "none"
        rows.append([s["simulator"]["version"], f"{d['samples']:,} ({s['samples']['test_data']:,} test data + "
                     f"{s['samples']['random_full_range']:,} random)", str(d["mismatching_samples"]),
                     str(d["differing_bits"]), str(s["latency_cycles"]["measured"]), stim,
                     "PASS" if s.get("ok") else "FAIL"])
    if rows:
        blocks += [("p", "cocotb testbench runs of the same RTL (`hlsflow sim`, `rtl/sim_<simulator>.json`; "
                         "JUnit XML in the project's `rtl/sim_<simulator>.junit.xml`):"),
                   ("table", ["simulator", "samples", "mismatching samples", "differing bits",
                              "latency measured (cycles)", "stimulus", "result"], rows)]
    else:
        blocks.append(("p", "cocotb runs: not measured: run `hlsflow sim PROJECT --simulator icarus` "
                            "(and `--simulator verilator`)."))
    r = inp.report or {}
    e = r.get("emulator_vs_csim")
    if e and "outputs" in e:
        blocks.append(("p", f"Emulator vs hls4ml C simulation (`report.json`): {e['equal_outputs']:,} of "
                            f"{e['outputs']:,} outputs equal on the test data."))
    elif e and "pending" in e:
        blocks.append(("p", f"Emulator vs hls4ml C simulation (`report.json`): pending: {e['pending']}."))
    return blocks


def _architecture_text(pm: PortMap) -> str:
    arch = pm.architecture
    if arch == "unrolled":
        return "unrolled: every product its own constant-coefficient adder tree, one sample per clock"
    rf = pm.record.get("reuse_factors") or {}
    folds = ", ".join(f"`{k}` {v['used']}" + (f" ({v['requested']} requested)" if v["used"] != v["requested"] else "")
                      for k, v in rf.items())
    what = ("streaming: one pixel per beat through line buffers, one copy of each kernel" if arch == "stream" else
            "folded: shared multipliers, weights in ROMs")
    return what + (f"; reuse factors {folds}; {pm.record.get('multipliers', 0)} shared multipliers" if folds else "")


def _sequential_interface(pm: PortMap) -> str:
    i, o = pm.input, pm.output
    beat_in = "one pixel (all channels) per beat, in raster order" if i.beats > 1 else "one whole sample per beat"
    return (f"AXI4-Stream, {beat_in}: a sample is {i.beats} input beat(s) and {o.beats} output "
            "beat(s), in order; beats are counted by the core (no `tlast`). Every unit holds its output until it is "
            "taken, so back-pressure (`m_axis_tready` low) stops the core without losing data; a sample's first "
            f"beat is accepted at most every {pm.initiation_interval} cycles. ")


def _units(pm: PortMap) -> list[Block]:
    units = pm.record.get("units")
    if not units:
        return []
    rows = []
    for u in units:
        what = {"folded product": lambda: f"reuse factor {u['reuse_factor']}, {u['multipliers']} multipliers, ROM "
                                          f"{u['rom']['words']} x {u['rom']['width']} bits",
                "line buffer": lambda: f"window {'x'.join(map(str, u['window']))}, stride "
                                       f"{'x'.join(map(str, u['stride']))}, {u['buffer_pixels']} pixels buffered",
                "fifo": lambda: f"depth {u['depth']} (peak occupancy {u['peak_occupancy']}), {u['width']} bits",
                "kernel": lambda: f"{u['pipeline_stages']} pipeline stage(s), da4ml cost {u['da4ml_cost']:,.0f}",
                "collect": lambda: f"{u['beats']} beats into one"}[u["kind"]]()
        rows.append([f"`{u['name']}`", u["kind"], ", ".join(f"`{x}`" for x in u["layers"]), what,
                     str(u["latency_cycles"]), str(u["cycles_per_sample"])])
    return [("h2", "Units"),
            ("p", "The core's units in stream order (`rtl/port_map.json` `units`): each kernel's arithmetic is traced "
                  "from the layer descriptions; latency = cycles the unit adds, cycles/sample = its own initiation "
                  "interval."),
            ("table", ["unit", "kind", "layers", "structure", "latency (cycles)", "cycles per sample"], rows)]


def blocks(inp: DatasheetInputs) -> list[Block]:
    """The datasheet as blocks; :func:`markdown` and :func:`to_html` render them."""
    pm = inp.port_map
    i, o = pm.input, pm.output
    lat, ii = pm.latency_cycles, pm.initiation_interval
    measured = sorted({s["latency_cycles"]["measured"] for s in inp.sims.values()
                       if s.get("latency_cycles", {}).get("measured") is not None})
    arch = pm.architecture
    seq = arch != "unrolled"
    lat_text = f"{lat} cycles ({'last input beat to last output beat of a sample' if seq else 'input handshake to output handshake'})" + (
        f"; measured in cocotb simulation: {', '.join(map(str, measured))}" if measured else
        "; not measured in simulation: run `hlsflow sim`")
    phys = inp.physical or {}
    if inp.clock_period_ns:
        clock = f"{inp.clock_period_ns:g} ns ({1000 / inp.clock_period_ns:g} MHz), the spec's `hardware.clock_period`"
        f = phys.get("fpga")
        if f:
            clock += (f"; {f['device']}: Fmax {f['fmax_mhz']:g} MHz ({f['fmax_stage']}, nextpnr), "
                      + ("met" if f["met"] else "not met") + f", slack {f['slack_ns']:g} ns")
        if phys.get("asic"):
            a = phys["asic"]
            clock += (f"; {a['library']}: critical path {a['critical_path_ns']:g} ns (OpenSTA), "
                      + ("met" if a["met"] else "not met") + f", WNS {a['wns_ns']:g} ns")
        if not phys:
            clock += (": a target; no timing analysis was run (run `hlsflow rtl PROJECT --fpga ecp5-85k "
                      "--asic osu018`, then `hlsflow ip` again)")
    else:
        clock = "not set: the project has no `hardware.clock_period`"
    lint = pm.record.get("lint")
    lint_text = ("not measured: run `hlsflow rtl` with Verilator installed" if not lint else
                 f"`{lint['command']}` ({lint['tool']}): " + ("clean" if lint["clean"] else
                                                              f"{len(lint['warnings'])} warnings"))
    out: list[Block] = [
        ("h1", f"{inp.name}: hlsflow IP core"),
        ("p", f"FuseSoC core `{inp.core}`, top module `{pm.top}`. Generated by hlsflow {inp.hlsflow_version} "
              f"from project `{inp.project_name}` (`{inp.stamp_source}` sha256 `{inp.stamp_sha256}`); "
              "vendor-free Verilog traced by da4ml from the project's hls4ml graph. PROJECT below is that "
              "project's folder (e.g. `hls_projects/" + inp.project_name + "`)."),
        ("h2", "Summary"),
        ("table", ["property", "value"], [
            ["input (`s_axis_tdata`)", f"{i.tdata_width} bits: {_type_summary(i)}, shape "
                                       f"{pm.record['input'].get('shape')}"],
            ["output (`m_axis_tdata`)", f"{o.tdata_width} bits: {_type_summary(o)} at layer `{pm.output_layer}`"],
            ["architecture", _architecture_text(pm)],
            ["latency", lat_text],
            ["initiation interval", f"{ii} cycles between samples when not stalled" if seq else
             f"{ii} (one sample per clock cycle when not stalled)"],
            *([["beats per sample", f"{i.beats} in, {o.beats} out"]] if seq else
              [["pipeline", f"{pm.pipeline_stages} stages (da4ml latency cutoff {pm.latency_cutoff})"]]),
            ["clock target", clock],
            ["lint", lint_text],
        ]),
        ("h2", "Interface"),
        ("p", (_sequential_interface(pm) if seq else
               "AXI4-Stream, one whole sample per beat, one output beat per input beat, in order. "
               + _unrolled_interface(pm)) +
              f"Reset `{pm.reset}`: "
              f"{'synchronous' if pm.reset_synchronous else 'asynchronous'}, active "
              f"{'high' if pm.reset_active_high else 'low'}; clears the valid bits and the "
              "control counters, not the data registers."),
        ("table", ["port", "direction", "width", "description"], [
            [f"`{pm.clock}`", "in", "1", "clock, rising edge"],
            [f"`{pm.reset}`", "in", "1", "synchronous reset"],
            ["`s_axis_tdata`", "in", str(i.tdata_width), "input sample (fields below)"],
            ["`s_axis_tvalid`", "in", "1", "input beat valid"],
            ["`s_axis_tready`", "out", "1", "core accepts the beat"],
            ["`m_axis_tdata`", "out", str(o.tdata_width), "output sample (fields below)"],
            ["`m_axis_tvalid`", "out", "1", "output beat valid"],
            ["`m_axis_tready`", "in", "1", "downstream accepts the beat"],
        ]),
        ("p", "Fixed-point fields: `ap_fixed<W,I>` has W total bits and I integer bits including the sign "
              "(`ap_ufixed<W,I>`: unsigned); a field holds the raw two's-complement (signed) or unsigned code, "
              "`value = code * 2^-(W-I)`. Element k of the flattened (C-order) sample sits at "
              "`tdata[lsb + W - 1 : lsb]`. Unused tdata bits are 0."),
        ("h2", "Input fields (`s_axis_tdata`)"),
        ("table", ["field", "bits", "type", "signed", "W", "I", "fractional bits", "LSB weight", "value range"],
         _field_rows(i.fields)),
        ("h2", "Output fields (`m_axis_tdata`)"),
        ("table", ["field", "bits", "type", "signed", "W", "I", "fractional bits", "LSB weight", "value range"],
         _field_rows(o.fields)),
        *_units(pm),
        *_resources(pm),
        *_physical(inp.physical, pm),
        *_accuracy(inp),
        *_evidence(inp),
        ("h2", "Using the core"),
        ("p", "FuseSoC 2.4 (`pip install fusesoc==2.4.7`), from this folder:"),
        ("code", f"fusesoc --cores-root . run --target sim --tool icarus {inp.core}\n"
                 f"fusesoc --cores-root . run --target sim --tool verilator {inp.core}\n"
                 f"fusesoc --cores-root . run --target lint {inp.core}"),
        ("p", "Without FuseSoC (Icarus Verilog; run where the `.mem` files of `rtl/` are, if any):"),
        ("code", f"iverilog -g2005 -s {inp.name}_tb -o {inp.name}_tb.vvp tb/{inp.name}_tb.v rtl/*.v\n"
                 f"vvp -n {inp.name}_tb.vvp +inputs={inp.vectors['inputs']} +expected={inp.vectors['expected']}"),
        ("p", "`ci/` holds a GitHub Actions workflow that runs these on every push."),
        ("h2", "Files"),
        ("ul", [f"`{f}`" for f in inp.files]),
    ]
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown(bs: list[Block], header: str) -> str:
    """Markdown text of the blocks, after ``header`` (an HTML comment)."""
    lines = [header.rstrip("\n"), ""]
    for b in bs:
        kind = b[0]
        if kind == "h1":
            lines += [f"# {b[1]}", ""]
        elif kind == "h2":
            lines += [f"## {b[1]}", ""]
        elif kind == "p":
            lines += [b[1], ""]
        elif kind == "code":
            lines += ["```", b[1], "```", ""]
        elif kind == "ul":
            lines += [f"- {item}" for item in b[1]] + [""]
        elif kind == "table":
            lines.append("| " + " | ".join(_md_cell(h) for h in b[1]) + " |")
            lines.append("|" + "---|" * len(b[1]))
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b[2]]
            lines.append("")
    return "\n".join(lines)


def _inline(text: str) -> str:
    """Escape, then `code` -> <code>, **bold** -> <strong>."""
    out = html.escape(text, quote=False)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", out)


_CSS = ("body{font-family:sans-serif;max-width:60em;margin:2em auto;padding:0 1em;color:#222}"
        "table{border-collapse:collapse;margin:0.5em 0 1em}td,th{border:1px solid #bbb;padding:0.2em 0.5em;"
        "text-align:left;vertical-align:top}th{background:#eee}code,pre{background:#f4f4f4}"
        "pre{padding:0.5em;overflow-x:auto}")


def to_html(bs: list[Block], header: str, title: str) -> str:
    """A standalone HTML page of the blocks (inline CSS, no scripts, no network), after ``header``."""
    parts = [header.rstrip("\n"), "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             f"<title>{html.escape(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>"]
    for b in bs:
        kind = b[0]
        if kind in ("h1", "h2"):
            parts.append(f"<{kind}>{_inline(b[1])}</{kind}>")
        elif kind == "p":
            parts.append(f"<p>{_inline(b[1])}</p>")
        elif kind == "code":
            parts.append(f"<pre><code>{html.escape(b[1], quote=False)}</code></pre>")
        elif kind == "ul":
            parts.append("<ul>" + "".join(f"<li>{_inline(item)}</li>" for item in b[1]) + "</ul>")
        elif kind == "table":
            head = "".join(f"<th>{_inline(h)}</th>" for h in b[1])
            body = "".join("<tr>" + "".join(f"<td>{_inline(c)}</td>" for c in row) + "</tr>" for row in b[2])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")
    parts += ["</body>", "</html>", ""]
    return "\n".join(parts)
