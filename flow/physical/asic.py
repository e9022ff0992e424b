"""ASIC figures without vendor tools: Yosys with a real standard-cell liberty, then OpenSTA.

Data flow (files in a work folder):

* Yosys 0.23: ``synth -flatten; dfflibmap -liberty L; abc -liberty L; opt_clean`` -> ``stat -liberty L``
  (cell area, um^2) and ``write_json`` (the mapped netlist);
* :func:`sta_netlist`: our own structural Verilog of that netlist for OpenSTA. Debian's OpenSTA (a
  2019 snapshot) stops with a syntax error on the concatenations Yosys ``write_verilog`` puts on the
  left of ``assign`` (``assign { a[14:13], a[1:0] } = ...``) and goes on with those nets unconnected.
  Here every bit of the Yosys netlist is one net ``n<bit>`` (ports keep their names), cells are
  ``c<k>``, and the only ``assign`` statements are scalar ones that connect an output port bit to
  another net or a constant;
* :func:`connection_issues` parses a structural netlist (ours or anyone's) with the liberty's pin
  directions and lists every net that is read but not driven, driven twice, every cell input left
  open, every unknown cell and every ``assign`` OpenSTA 2019 cannot read. The flow refuses to time a
  netlist with any such issue;
* :func:`run_sta`: ``read_liberty``, ``read_verilog``, ``link_design``, ``create_clock`` at the clock
  period (ns) on the clock port, inputs and outputs constrained to the clock at 0 ns (register-to-
  register paths dominate: the core registers its inputs and outputs), activities of every net from a
  gate-level simulation (:mod:`flow.physical.activity`) with ``set_power_activity -pins``, then
  ``report_checks``, ``report_wns``, ``report_tns``, ``report_power``.

Units: time ns, area um^2 (the liberty's), power mW. OSU 0.18 um cells (``osu018_stdcells.lib``:
typical corner, 1.8 V, 25 C) have no wire-load model, so delays are cell delays with pin loads only
(no routing parasitics): a lower bound on the post-layout critical path.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow.core import procs, tools
from flow.core.errors import FlowError
from flow.physical.estimate import parse_stat, run_yosys

# ---------------------------------------------------------------------------------------------------
# Liberty: cells, pin directions, sequential outputs


@dataclass(frozen=True)
class CellLib:
    """Pin directions of a liberty's cells; ``sequential`` = cells with an ``ff``/``latch`` group."""

    path: Path
    inputs: dict[str, tuple[str, ...]]
    outputs: dict[str, tuple[str, ...]]
    sequential: frozenset[str]


_GROUP = re.compile(r"\b(cell|pin|ff|latch|bus)\s*\(\s*\"?([^\")]*)\"?\s*\)\s*\{|\{|\}|direction\s*:\s*(\w+)")


def read_liberty(path: Path) -> CellLib:
    """Cells of a liberty file with their input and output pins (a scan of its group structure)."""
    text = re.sub(r"/\*.*?\*/", "", Path(path).read_text(errors="replace"), flags=re.S)
    inputs: dict[str, list[str]] = {}
    outputs: dict[str, list[str]] = {}
    sequential: set[str] = set()
    stack: list[tuple[str, str]] = []
    for m in _GROUP.finditer(text):
        kind, name, direction = m.group(1), m.group(2), m.group(3)
        if kind:
            stack.append((kind, name.strip()))
            cells = [n for k, n in stack if k == "cell"]
            if kind == "cell":
                inputs.setdefault(name.strip(), [])
                outputs.setdefault(name.strip(), [])
            elif kind in ("ff", "latch") and cells:
                sequential.add(cells[-1])
        elif m.group(0) == "{":
            stack.append(("", ""))
        elif m.group(0) == "}":
            if stack:
                stack.pop()
        elif direction and len(stack) >= 2 and stack[-1][0] == "pin" and stack[-2][0] == "cell":
            cell, pin = stack[-2][1], stack[-1][1]
            (outputs if direction == "output" else inputs)[cell].append(pin)
    if not inputs:
        raise FlowError(f"{path}: no cells found in the liberty file")
    return CellLib(Path(path), {c: tuple(p) for c, p in inputs.items()}, {c: tuple(p) for c, p in outputs.items()},
                   frozenset(sequential))


# ---------------------------------------------------------------------------------------------------
# Yosys: synthesis to the library

DRIVING_CELL = "BUFX2"   # what drives the core's inputs (ABC's constraint file; an OSU 0.18 um cell)
# Yosys 0.23's ABC script for -D with -constr, without its "&fraig -x; scorr" (SAT sweeping: on a 16-8-4 net
# pipelined at cutoff 8 it had not finished after 15 minutes; without it 4 s): map for the delay target,
# then buffer high-fanout nets, upsize and downsize cells (commas are spaces in Yosys's "+" scripts).
ABC_SCRIPT = "strash;dc2;strash;&get,-n;&dch,-f;&nf,{D};&put;buffer;upsize,{D};dnsize,{D};stime,-p"
OUTPUT_LOAD_PF = 0.01    # load on every output, pF


def synthesize(rtl_dir: Path, files: list[str], top: str, liberty: Path, work: Path, period_ns: float,
               timeout: float = 3600) -> dict[str, Any]:
    """Yosys synthesis of ``top`` to the cells of ``liberty``; writes ``work/asic_netlist.json``.

    ABC maps for a delay target of ``period_ns`` (``abc -D``, which also buffers high-fanout nets and
    sizes cells: without it the pipeline's enable, one inverter driving every flip-flop, alone takes
    over 100 ns in OSU 0.18 um).

    Returns ``area_um2`` (``stat -liberty``: sum of the cells' areas), ``cells`` (count per cell
    type), ``cell_count``, ``seconds`` and the Yosys version.
    """
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    netlist = work / "asic_netlist.json"
    stat = work / "asic_stat.txt"
    delay_ps = period_ns * 1000
    constr = work / "abc.constr"  # with -constr, ABC's script buffers, upsizes and downsizes for -D
    constr.write_text(f"set_driving_cell {DRIVING_CELL}\nset_load {OUTPUT_LOAD_PF}\n")
    script = (f"read_verilog {' '.join(files)}; synth -top {top} -flatten; dfflibmap -liberty {liberty}; "
              f"abc -D {int(delay_ps)} -constr {constr} -liberty {liberty} -script +{ABC_SCRIPT}; opt_clean; "
              f"tee -q -o {stat} stat -liberty {liberty}; write_json {netlist}")
    seconds = run_yosys(rtl_dir, script, "Yosys ASIC synthesis", timeout)
    text = stat.read_text()
    area = re.findall(r"Chip area for module .*?:\s*([0-9.]+)", text)
    if not area:
        raise FlowError(f"Yosys printed no chip area for {top} (liberty {liberty})")
    cells = parse_stat(text)
    return {"area_um2": float(area[-1]), "cells": cells, "cell_count": sum(cells.values()),
            "seconds": round(seconds, 1), "tool": tools.version("yosys"), "netlist_json": netlist}


# ---------------------------------------------------------------------------------------------------
# The netlist OpenSTA reads


@dataclass
class StaNetlist:
    """Our structural netlist of a Yosys JSON netlist.

    ``verilog``: the text; ``net_of_bit``: Yosys bit id -> net name in the text; ``driver_pin``: net
    name -> ``c<k>/<PIN>`` of the cell output driving it (OpenSTA pin names); ``bits_of``: Yosys
    net name (RTL signal, e.g. ``stage0_inp``) -> its bit ids, LSB first; ``cells``: instance count.
    """

    verilog: str
    net_of_bit: dict[int, str]
    driver_pin: dict[str, str]
    bits_of: dict[str, list[Any]]
    inputs: list[str]
    cells: int
    flops: list[str] = field(default_factory=list)


def _port_ref(name: str, width: int, i: int) -> str:
    return f"{name}[{i}]" if width > 1 else name


def sta_netlist(netlist_json: Path, top: str, lib: CellLib) -> StaNetlist:
    """Write the Yosys JSON netlist of ``top`` as flat structural Verilog OpenSTA 2019 reads (see the module doc)."""
    data = json.loads(Path(netlist_json).read_text())
    try:
        mod = data["modules"][top]
    except KeyError:
        raise FlowError(f"{netlist_json}: no module {top}") from None
    ports = mod["ports"]
    name_of: dict[int, str] = {}
    for pname, p in ports.items():  # input port bits name their nets first, then output port bits
        if p["direction"] == "input":
            for i, b in enumerate(p["bits"]):
                if isinstance(b, int):
                    name_of.setdefault(b, _port_ref(pname, len(p["bits"]), i))
    driven: set[int] = set()
    for c in mod["cells"].values():
        for pin, bits in c["connections"].items():
            if pin in lib.outputs.get(c["type"], ()):
                driven.update(b for b in bits if isinstance(b, int))
    assigns: list[str] = []
    for pname, p in ports.items():
        if p["direction"] != "output":
            continue
        for i, b in enumerate(p["bits"]):
            ref = _port_ref(pname, len(p["bits"]), i)
            if not isinstance(b, int):
                assigns.append(f"assign {ref} = 1'b{'1' if b == '1' else '0'};")
            elif b in name_of:
                assigns.append(f"assign {ref} = {name_of[b]};")
            else:
                name_of[b] = ref
    decl = [f"module {top} ({', '.join(ports)});"]
    for pname, p in ports.items():
        w = len(p["bits"])
        decl.append(f"  {p['direction']} {f'[{w - 1}:0] ' if w > 1 else ''}{pname};")
    wires: list[str] = []
    inst: list[str] = []
    driver_pin: dict[str, str] = {}
    flops: list[str] = []

    def net(b: Any) -> str:
        if not isinstance(b, int):
            return "1'b1" if b == "1" else "1'b0"
        if b not in name_of:
            name_of[b] = f"n{b}"
            wires.append(f"  wire n{b};")
        return name_of[b]

    for k, (cname, c) in enumerate(sorted(mod["cells"].items())):
        ctype = c["type"]
        if ctype not in lib.inputs:
            raise FlowError(f"{netlist_json}: cell {cname} of type {ctype} is not in {lib.path}")
        conns = []
        for pin, bits in c["connections"].items():
            if len(bits) != 1:
                raise FlowError(f"{netlist_json}: pin {pin} of cell {cname} ({ctype}) has {len(bits)} bits")
            n = net(bits[0])
            conns.append(f".{pin}({n})")
            if pin in lib.outputs[ctype]:
                driver_pin[n] = f"c{k}/{pin}"
        if ctype in lib.sequential:
            flops.append(f"c{k}")
        inst.append(f"  {ctype} c{k} ({', '.join(conns)});")
    bits_of = {nm: list(v["bits"]) for nm, v in mod["netnames"].items() if not v.get("hide_name")}
    text = "\n".join([f"// {top}: structural netlist for OpenSTA, written by hlsflow (flow/physical/asic.py)", *decl,
                      *wires, *inst, *[f"  {a}" for a in assigns], "endmodule", ""])
    inputs = [_port_ref(pn, len(p["bits"]), i) for pn, p in ports.items() if p["direction"] == "input"
              for i in range(len(p["bits"]))]
    return StaNetlist(text, dict(name_of), driver_pin, bits_of, inputs, len(inst), flops)


# ---------------------------------------------------------------------------------------------------
# Connectivity check of a structural netlist

_ID = r"(?:\\\S+\s|[A-Za-z_][\w$]*)"
_REF = re.compile(rf"^\s*({_ID})\s*(?:\[\s*(\d+)\s*\])?\s*$")
_DECL = re.compile(r"^(input|output|inout|wire)\s*(?:\[\s*(\d+)\s*:\s*(\d+)\s*\])?\s*(.+)$", re.S)
_INST = re.compile(rf"^({_ID})\s*(?:#\s*\(.*?\)\s*)?({_ID})\s*\((.*)\)$", re.S)
_CONN = re.compile(rf"\.\s*({_ID})\s*\(([^()]*)\)")


def _bits(expr: str, widths: dict[str, tuple[int, int]]) -> list[str] | None:
    """Net bits of a connection expression (``name``, ``name[i]``, constants); None if not understood."""
    expr = expr.strip()
    if not expr:
        return []
    if re.fullmatch(r"\d*'[bdhBDH][0-9a-fA-FxXzZ_]+|\d+", expr):
        return ["<const>"]
    if expr.startswith("{") and expr.endswith("}"):
        out: list[str] = []
        for part in _split_top(expr[1:-1]):
            b = _bits(part, widths)
            if b is None:
                return None
            out += b
        return out
    m = _REF.match(expr + " " if expr.startswith("\\") else expr)
    if not m:
        return None
    name = m.group(1).strip()
    if m.group(2) is not None:
        return [f"{name}[{m.group(2)}]"]
    if name in widths and widths[name] != (0, 0):
        hi, lo = widths[name]
        return [f"{name}[{i}]" for i in range(min(hi, lo), max(hi, lo) + 1)]
    return [name]


def _split_top(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
            continue
        depth += ch == "{"
        depth -= ch == "}"
        cur += ch
    return parts + [cur] if cur.strip() else parts


def connection_issues(text: str, lib: CellLib) -> list[str]:
    """Every connectivity problem of a flat structural Verilog netlist, as one line each (empty: clean).

    Nets joined by scalar ``assign`` statements count as one net. Reported: an ``assign`` with a
    concatenation on its left (OpenSTA 2019 cannot read it and leaves those nets unconnected); a
    statement the check cannot parse; an unknown cell type; a cell input pin left unconnected; a net
    read by a cell input or an output port that nothing drives (no cell output, input port or
    constant); a net with more than one driver.
    """
    issues: list[str] = []
    body = re.sub(r"//[^\n]*", "", text)
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    widths: dict[str, tuple[int, int]] = {}
    parent: dict[str, str] = {}

    def root(b: str) -> str:
        while parent.get(b, b) != b:
            parent[b] = parent.get(parent[b], parent[b])
            b = parent[b]
        return b

    drivers: list[str] = []
    loads: list[tuple[str, str]] = []
    statements = [s.strip() for s in body.split(";")]
    for s in statements:
        m = _DECL.match(s)
        if m:
            hi, lo = (int(m.group(2)), int(m.group(3))) if m.group(2) else (0, 0)
            for name in (n.strip() for n in m.group(4).split(",")):
                widths[name] = (hi, lo)
                bits = _bits(name, widths) or []
                if m.group(1) == "input":
                    drivers += bits
                elif m.group(1) == "output":
                    loads += [(b, f"output port {name}") for b in bits]
    const = 0
    for s in statements:
        if not s or s.startswith(("module", "endmodule", "input", "output", "inout", "wire", "`timescale")):
            continue
        if s.startswith("assign"):
            lhs, _, rhs = s[len("assign"):].partition("=")
            if lhs.strip().startswith("{"):
                issues.append(f"assign with a concatenation on the left (OpenSTA 2019 cannot read it): "
                              f"assign {lhs.strip()[:60]} ...")
                continue
            lb, rb = _bits(lhs, widths), _bits(rhs, widths)
            if lb is None or rb is None or len(lb) != len(rb):
                issues.append(f"cannot parse: assign {lhs.strip()[:60]} = {rhs.strip()[:40]}")
                continue
            for a, b in zip(lb, rb):
                if b == "<const>":
                    const += 1
                    b = f"<const{const}>"
                    drivers.append(b)
                parent[root(a)] = root(b)
            continue
        m = _INST.match(s)
        if not m:
            issues.append(f"cannot parse statement: {s[:80]}")
            continue
        ctype, inst = m.group(1).strip(), m.group(2).strip()
        if ctype not in lib.inputs:
            issues.append(f"cell {inst}: type {ctype} is not in {lib.path.name}")
            continue
        conns = {p.strip(): e for p, e in _CONN.findall(m.group(3))}
        for pin in lib.inputs[ctype]:
            bits = _bits(conns.get(pin, ""), widths)
            if not bits:
                issues.append(f"cell {inst} ({ctype}): input {pin} is not connected")
            loads += [(b, f"{inst}/{pin}") for b in bits or [] if b != "<const>"]
        for pin in lib.outputs[ctype]:
            drivers += [b for b in _bits(conns.get(pin, ""), widths) or [] if b != "<const>"]
    n_drivers: dict[str, int] = {}
    for b in drivers:
        n_drivers[root(b)] = n_drivers.get(root(b), 0) + 1
    seen: set[str] = set()
    for b, where in loads:
        r = root(b)
        if n_drivers.get(r, 0) == 0 and r not in seen:
            seen.add(r)
            issues.append(f"net {b} is read by {where} but nothing drives it")
    issues += [f"net {r} has {n} drivers" for r, n in n_drivers.items() if n > 1]
    return issues


# ---------------------------------------------------------------------------------------------------
# OpenSTA


def activity_tcl(netlist: StaNetlist, activity: dict[str, float], duty: dict[str, float],
                 clock_port: str) -> tuple[str, int, int]:
    """Activity commands for every simulated net: on the cell output pin that drives it, or on the input
    port. Returns (Tcl text, annotated nets, nets of the netlist without a simulated value).

    ``activity``: transitions per clock cycle (OpenSTA scales it by the clock period), ``duty`` in [0, 1].
    The 2019 OpenSTA's ``set_power_activity -pins`` is broken (it calls a missing ``get_pins_error`` and
    accepts input pins only), so its underlying commands ``sta::set_power_pin_activity`` and
    ``sta::set_power_input_port_activity`` are called directly.
    """
    lines = []
    missing = 0
    for net, pin in netlist.driver_pin.items():
        if net in activity:
            lines.append(f"sta::set_power_pin_activity [get_pins {{{pin}}}] {activity[net]:.6g} {duty[net]:.6g}")
        else:
            missing += 1
    for port in netlist.inputs:
        if port == clock_port:
            continue
        if port in activity:
            lines.append(f"sta::set_power_input_port_activity [get_ports {{{port}}}] {activity[port]:.6g} "
                         f"{duty[port]:.6g}")
        else:
            missing += 1
    return "\n".join(lines) + "\n", len(lines), missing


def sta_script(netlist_v: Path, liberty: Path, top: str, clock_port: str, period_ns: float,
               activity_tcl: Path | None) -> str:
    """The OpenSTA Tcl script of :func:`run_sta` (ns; inputs/outputs constrained at 0 ns to the clock)."""
    lines = [f"read_liberty {liberty}", f"read_verilog {netlist_v}", f"link_design {top}",
             f"create_clock -name clk -period {period_ns:g} [get_ports {clock_port}]",
             f"set_input_delay 0 -clock clk [delete_from_list [all_inputs] [get_ports {clock_port}]]",
             "set_output_delay 0 -clock clk [all_outputs]",
             "puts \"HLSFLOW-CHECKS\"",
             "report_checks -path_delay max -format full -digits 4",
             "puts \"HLSFLOW-WNS\"", "report_wns -digits 4", "puts \"HLSFLOW-TNS\"", "report_tns -digits 4"]
    if activity_tcl is not None:
        lines.append(f"source {activity_tcl}")
    lines += ["puts \"HLSFLOW-POWER\"", "report_power -digits 6", "exit"]
    return "\n".join(lines) + "\n"


def _section(out: str, tag: str) -> str:
    part = out.split(f"HLSFLOW-{tag}\n", 1)
    if len(part) < 2:
        raise FlowError(f"OpenSTA printed no {tag.lower()} report")
    return re.split(r"HLSFLOW-[A-Z]+\n", part[1], 1)[0]


def parse_sta(out: str) -> dict[str, Any]:
    """Critical path (ns), WNS/TNS (ns, <= 0; 0 when met), power (mW) from :func:`sta_script`'s output."""
    checks = _section(out, "CHECKS")
    arrival = re.search(r"^\s*(-?[0-9.]+)\s+data arrival time", checks, re.M)
    slack = re.search(r"^\s*(-?[0-9.]+)\s+slack \((MET|VIOLATED)\)", checks, re.M)
    start = re.search(r"^Startpoint:\s*(\S+)", checks, re.M)
    end = re.search(r"^Endpoint:\s*(\S+)", checks, re.M)
    if not (arrival and slack):
        raise FlowError("OpenSTA's report_checks has no data arrival time / slack (nothing timed?)")
    wns = re.search(r"wns\s+(-?[0-9.]+)", _section(out, "WNS"))
    tns = re.search(r"tns\s+(-?[0-9.]+)", _section(out, "TNS"))
    power = _section(out, "POWER")
    total = re.search(r"^Total\s+([-0-9.eE+]+)\s+([-0-9.eE+]+)\s+([-0-9.eE+]+)\s+([-0-9.eE+]+)", power, re.M)
    if not total:
        raise FlowError("OpenSTA's report_power has no Total line")
    internal, switching, leakage, tot = (float(v) * 1e3 for v in total.groups())  # W -> mW
    return {"data_arrival_ns": float(arrival.group(1)), "slack_ns": float(slack.group(1)),
            "met": slack.group(2) == "MET", "startpoint": start.group(1) if start else None,
            "endpoint": end.group(1) if end else None,
            "wns_ns": min(0.0, float(wns.group(1))) if wns else None,
            "tns_ns": min(0.0, float(tns.group(1))) if tns else None,
            "power_mw": {"internal": internal, "switching": switching, "leakage": leakage, "total": tot}}


def run_sta(work: Path, netlist: StaNetlist, lib: CellLib, top: str, clock_port: str, period_ns: float,
            activity_tcl: Path | None = None, timeout: float = 1800) -> dict[str, Any]:
    """Write ``work/asic_netlist.v``, refuse it on any :func:`connection_issues` issue, then time and power it.

    Raises FlowError naming the first issues, or when OpenSTA reports a syntax error or an unlinked
    design (it would otherwise time a netlist with open nets).
    """
    exe = tools.require("sta")
    work = Path(work).resolve()
    issues = connection_issues(netlist.verilog, lib)
    if issues:
        raise FlowError(f"the netlist for OpenSTA has {len(issues)} connectivity problems, e.g. {issues[0]}")
    v = work / "asic_netlist.v"
    v.write_text(netlist.verilog)
    tcl = work / "sta.tcl"
    tcl.write_text(sta_script(v, lib.path, top, clock_port, period_ns,
                              None if activity_tcl is None else Path(activity_tcl).resolve()))
    t0 = time.perf_counter()
    try:
        out = procs.run([exe, "-no_init", "-no_splash", "-exit", str(tcl)], capture_output=True, text=True,
                             timeout=timeout, cwd=work)
    except subprocess.TimeoutExpired:
        raise FlowError(f"OpenSTA did not finish within {timeout:.0f} s") from None
    text = out.stdout + out.stderr
    (work / "sta.log").write_text(text)
    bad = [ln for ln in text.splitlines() if re.search(r"syntax error|^Error|not found|unknown|not linked", ln, re.I)]
    if bad:
        raise FlowError(f"OpenSTA: {bad[0].strip()} (see {work / 'sta.log'})")
    result = parse_sta(text)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result
