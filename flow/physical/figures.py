"""Physical figures of ``PROJECT/rtl`` in one file, ``PROJECT/rtl/physical.json``: FPGA and ASIC.

* FPGA (:mod:`flow.physical.fpga`): Fmax of ``clk`` on a named part after place-and-route (post-route, or the
  placer's estimate where routing does not finish in time: ``fpga.fmax_stage``), met or not at the clock
  target, slack (ns), utilisation.
* ASIC (:mod:`flow.physical.asic`): cell area (um^2), critical path, WNS/TNS at the clock period (OpenSTA),
  and power from the switching activity of a gate-level simulation of the project's test data
  (:mod:`flow.physical.activity`), streamed one sample per cycle. The same simulation checks the gate-level
  netlist against the bit-exact emulator.

Energy per inference (nJ) = total power (mW) x time per inference (ns) / 1000, where time per inference
= initiation interval (1) x clock period: the core takes one sample per cycle, and the power is measured
while it does. Latency (ns) = latency (cycles) x clock period.

Paths in ``physical.json`` are relative to the project folder; logs and reports stay in
``PROJECT/rtl/physical/`` (large intermediates such as the VCD are deleted).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flow.core import tools
from flow.core.errors import FlowError
from flow.core.outputs import PHYSICAL
from flow.core.simulators import ICARUS
from flow.core.staging import staged_dir
from flow.rtl.port_map import PortMap

POWER_SAMPLES = 200  # test-data samples streamed through the gate-level netlist for the power estimate
KEEP = ("nextpnr.log", "nextpnr_report.json", "fpga_stat.txt", "asic_stat.txt", "sta.tcl", "sta.log",
        "asic_netlist.v", "abc.constr")


def _say(msg: str) -> None:
    print(f"hlsflow rtl: {msg}", file=sys.stderr, flush=True)


def _latency_cycles(pm: PortMap, rtl_dir: Path) -> int:
    """The core's latency in clock cycles; FlowError naming the port map when it states none."""
    if pm.latency_cycles is None:
        raise FlowError(f"{rtl_dir / 'port_map.json'}: missing 'latency_cycles'")
    return pm.latency_cycles


def require_tools(fpga: str | None, asic: str | None) -> None:
    """ToolMissing (one line: what is missing and what installs it) before any long work starts."""
    if fpga:
        from flow.core.targets import fpga_part

        fpga_part(fpga)
        tools.require("yosys")
        tools.nextpnr_ecp5()
    if asic:
        if asic not in tools.LIBRARIES:
            raise FlowError(f"unknown cell library {asic!r}; known: {', '.join(tools.LIBRARIES)}")
        tools.require("yosys")
        tools.require("sta")
        ICARUS.require()  # the gate-level activity run (flow.physical.activity)
        tools.library_file(asic)
        tools.library_file(asic, ".v")


def fpga_figures(rtl_dir: Path, pm: PortMap, part_name: str, period_ns: float, work: Path,
                 route: bool = True, route_timeout: float | None = None) -> dict[str, Any]:
    """``synth_ecp5`` + nextpnr-ecp5 of the RTL at the clock period; the ``fpga`` section of physical.json."""
    from flow.core.targets import fpga_part
    from flow.physical import fpga

    target = fpga_part(part_name)
    tools.nextpnr_ecp5()  # ToolMissing before a long synthesis
    _say(f"Yosys {target.synth} ...")
    syn = fpga.synthesize(rtl_dir, list(pm.verilog), pm.top, work, target)
    target_mhz = 1000.0 / period_ns
    _say(f"nextpnr-ecp5 place and route on {target.ordering_code} (speed grade {target.speed}) ...")
    pnr = fpga.place_and_route(work, syn["netlist_json"], target, target_mhz, route,
                               fpga.ROUTE_TIMEOUT if route_timeout is None else route_timeout)
    fmax = float(pnr["fmax_mhz"])
    out = {"part": part_name, "device": target.ordering_code, "speed_grade": target.speed,
           "fmax_mhz": round(fmax, 2), "fmax_stage": pnr["fmax_stage"],
           "clock_target_mhz": round(target_mhz, 3), "met": fmax >= target_mhz,
           "slack_ns": round(period_ns - 1000.0 / fmax, 3), "min_period_ns": round(1000.0 / fmax, 3),
           **fpga.utilisation(syn["cells"]), "resources": pnr.get("resources", {}),
           "critical_path": pnr.get("critical_path"), "note": pnr.get("note"),
           "command": pnr["command"], "seconds": {"synth": syn["seconds"], "place_and_route": pnr["seconds"]},
           "tools": {"yosys": tools.version("yosys"), "nextpnr": tools.version("nextpnr-ecp5")}}
    return {k: v for k, v in out.items() if v is not None}


def asic_figures(project: Path, pm: PortMap, library: str, period_ns: float, work: Path,
                 samples: int = POWER_SAMPLES) -> dict[str, Any]:
    """Yosys + liberty, OpenSTA timing and power at the clock period; the ``asic`` section of physical.json."""
    from flow.physical import activity, asic
    from flow.rtl.words import pack
    from flow.sim.sim_project import build_vectors

    rtl_dir = project / "rtl"
    lib_path = tools.library_file(library)
    models = tools.library_file(library, ".v")
    tools.require("sta")
    lib = asic.read_liberty(lib_path)
    _say(f"Yosys synthesis to {library} cells ...")
    syn = asic.synthesize(rtl_dir, list(pm.verilog), pm.top, lib_path, work, period_ns)
    netlist = asic.sta_netlist(syn["netlist_json"], pm.top, lib)
    issues = asic.connection_issues(netlist.verilog, lib)
    if issues:
        raise FlowError(f"the netlist for OpenSTA has {len(issues)} connectivity problems, e.g. {issues[0]}")
    (work / "asic_netlist.v").write_text(netlist.verilog)
    latency = _latency_cycles(pm, rtl_dir)
    vec = build_vectors(project, max(samples, latency + 8))
    n = vec.test_data if vec.test_data >= latency + 8 else len(vec.x_codes)
    (fin, win), (fout, wout) = (pm.input.fields, pm.input.tdata_width), (pm.output.fields, pm.output.tdata_width)
    words = pack(vec.x_codes[:n], fin, win)
    expected = pack(vec.y_codes[:n], fout, wout)
    _say(f"gate-level simulation of {n} samples (Icarus) for switching activity ...")
    t0 = time.perf_counter()
    act = activity.simulate(work, work / "asic_netlist.v", models, pm.top, words, win, wout, latency)
    t_sim = time.perf_counter() - t0
    equal = sum(1 for got, want in zip(act.outputs, expected) if got == want)
    if len(act.outputs) != n or equal != n:
        raise FlowError(f"the gate-level {library} netlist differs from the emulator: {equal} of {n} outputs equal "
                        f"({len(act.outputs)} received); see {work}")
    tcl, annotated, missing = asic.activity_tcl(netlist, act.activity, act.duty, pm.clock)
    (work / "activity.tcl").write_text(tcl)
    _say("OpenSTA timing and power ...")
    sta = asic.run_sta(work, netlist, lib, pm.top, pm.clock, period_ns, work / "activity.tcl")
    (work / "activity.vcd").unlink(missing_ok=True)
    p = sta["power_mw"]
    min_period = period_ns - sta["slack_ns"]
    ii = pm.initiation_interval
    return {
        "library": library, "description": tools.LIBRARIES[library][3], "area_um2": round(syn["area_um2"], 1),
        "cells": syn["cell_count"], "cell_types": syn["cells"],
        "clock_period_ns": period_ns, "critical_path_ns": round(sta["data_arrival_ns"], 4),
        "min_period_ns": round(min_period, 4), "fmax_mhz": round(1000.0 / min_period, 2),
        "wns_ns": sta["wns_ns"], "tns_ns": sta["tns_ns"], "met": sta["met"],
        "critical_path": {"from": _register_name(netlist, sta["startpoint"]), "to": _register_name(netlist, sta["endpoint"])},
        "power_mw": round(p["total"], 4), "dynamic_power_mw": round(p["internal"] + p["switching"], 4),
        "internal_power_mw": round(p["internal"], 4), "switching_power_mw": round(p["switching"], 4),
        "leakage_power_mw": round(p["leakage"], 7),
        "time_per_inference_ns": ii * period_ns,
        "energy_nj_per_inference": round(p["total"] * ii * period_ns / 1000.0, 6),
        "energy_formula": "energy (nJ) = power (mW) x initiation interval x clock period (ns) / 1000",
        "activity": {"source": "Icarus gate-level simulation (zero delay) of the OpenSTA netlist with the library's "
                               "cell models, test data streamed one sample per cycle",
                     "samples": n, "cycles": act.cycles, "annotated_nets": annotated, "nets_without_activity": missing,
                     "gate_level_vs_emulator": f"{equal} of {n} outputs equal", "seconds": round(t_sim, 1)},
        "netlist_check": "no unconnected, undriven or multiply driven net (flow.physical.asic.connection_issues)",
        "delay_model": "liberty cell delays with pin loads, ideal clock, no wire load or routing parasitics",
        "seconds": {"synth": syn["seconds"], "sta": sta["seconds"]},
        "tools": {"yosys": syn["tool"], "opensta": tools.version("sta"), ICARUS.name.value: ICARUS.version()},
    }


def _register_name(netlist: Any, inst: str | None) -> str | None:
    """An RTL name for the cell ``c<k>`` of OpenSTA's report: the public signal its output drives."""
    if not inst:
        return inst
    pins = [net for net, pin in netlist.driver_pin.items() if pin.split("/")[0] == inst]
    if not pins:
        return inst
    bit_names = {}
    for name, bits in netlist.bits_of.items():
        for i, b in enumerate(bits):
            if isinstance(b, int):
                bit_names.setdefault(netlist.net_of_bit.get(b), f"{name}[{i}]" if len(bits) > 1 else name)
    return bit_names.get(pins[0], inst)


def physical_project(project: Path, fpga: str | None = None, asic: str | None = None,
                     period_ns: float | None = None, route: bool = True, samples: int = POWER_SAMPLES,
                     route_timeout: float | None = None) -> dict[str, Any]:
    """FPGA and/or ASIC figures of ``PROJECT/rtl`` at ``period_ns`` (default: the project's
    ``hardware.clock_period``); writes ``PROJECT/rtl/physical.json`` and ``PROJECT/rtl/physical/``."""
    project = Path(project)
    rtl_dir = project / "rtl"
    pm = PortMap.load(rtl_dir)
    latency = _latency_cycles(pm, rtl_dir)
    if period_ns is None:
        period_ns = project_clock_period(project)
    if period_ns <= 0:
        raise FlowError(f"the clock period must be > 0 ns, got {period_ns}")
    result: dict[str, Any] = {"clock_period_ns": period_ns, "latency_cycles": latency,
                              "latency_ns": round(latency * period_ns, 3),
                              "initiation_interval": pm.initiation_interval,
                              "pipeline_stages": pm.pipeline_stages, "latency_cutoff": pm.latency_cutoff}
    with staged_dir(rtl_dir / "physical", PHYSICAL) as work, tempfile.TemporaryDirectory(prefix="hlsflow-phys-") as tmp:
        scratch = Path(tmp)
        if fpga:
            result["fpga"] = fpga_figures(rtl_dir, pm, fpga, period_ns, scratch / "fpga", route, route_timeout)
        if asic:
            result["asic"] = asic_figures(project, pm, asic, period_ns, scratch / "asic", samples)
        for sub in ("fpga", "asic"):
            for name in KEEP:
                if (scratch / sub / name).is_file():
                    (work / sub).mkdir(exist_ok=True)
                    shutil.copy2(scratch / sub / name, work / sub / name)
        result["files"] = sorted(str(p.relative_to(project)) for p in _final_files(work, rtl_dir / "physical"))
    write_json_atomic(rtl_dir / "physical.json", result)
    return result


def _final_files(work: Path, final: Path) -> list[Path]:
    return [final / p.relative_to(work) for p in sorted(work.rglob("*")) if p.is_file()]


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON to ``path`` through a temporary file in the same folder (never half-written)."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)


def project_clock_period(project: Path) -> float:
    """``hardware.clock_period`` (ns) from the project's ``project.json``."""
    meta = Path(project) / "project.json"
    try:
        return float(json.loads(meta.read_text())["hardware"]["clock_period"])
    except (OSError, KeyError, ValueError, TypeError):
        raise FlowError(f"{meta}: no hardware.clock_period (give --clock-period)") from None
