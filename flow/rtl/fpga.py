"""FPGA figures without vendor tools: Yosys ``synth_ecp5`` and nextpnr-ecp5 (WebAssembly wheel).

* Yosys 0.23 ``synth_ecp5 -top T -json`` -> cell counts (LUT4, CCU2C carry pairs, TRELLIS_FF,
  DP16KD block RAM, MULT18X18D multipliers) and the netlist nextpnr reads;
* nextpnr-ecp5 ``--<size> --out-of-context`` (an IP core's wide AXI ports need no package pins),
  ``--freq`` = the clock target in MHz, ``--report`` (JSON: achieved Fmax per clock, utilisation, the
  critical path). Fmax is **post-route** when routing finishes within the time limit; otherwise the
  placer's own timing estimate (**post-place**, printed as ``Max frequency for clock``) is kept and the
  result says so (``fmax_stage``). Routing in WebAssembly is slow on large nets (see docs/physical.md,
  "Limits of nextpnr in WebAssembly", for the limits measured).

Units: MHz, ns. Fmax is for the clock ``clk`` (register to register; out-of-context ports unconstrained).
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow import procs, tools
from flow.errors import FlowError
from flow.rtl.estimate import parse_stat, run_yosys


@dataclass(frozen=True)
class Part:
    """An FPGA target: ``device`` (vendor name), nextpnr's device flags, its ``luts`` (LUT4s, Lattice's data
    sheet), the speed grade timed (ECP5: 6, the slowest, to 8, the fastest), Yosys's synthesis command."""

    device: str
    device_args: tuple[str, ...]
    luts: int = 0
    speed: int = 6
    synth: str = "synth_ecp5"

    @property
    def lut_budget(self) -> int:
        """The part's LUT4s in the LUT6s of :mod:`flow.rtl.budget`'s estimate (:data:`LUT4_PER_LUT6`)."""
        return int(self.luts / LUT4_PER_LUT6)

    @property
    def nextpnr_args(self) -> tuple[str, ...]:
        """nextpnr-ecp5's device and speed-grade flags (the speed grade passed even where it is the default)."""
        return (*self.device_args, "--speed", str(self.speed))

    @property
    def ordering_code(self) -> str:
        """Device and speed grade as in Lattice's ordering codes (``LFE5U-85F-6``; package left out)."""
        return f"{self.device}-{self.speed}"


# nextpnr-ecp5 (and the PyPI wheel) time LFE5U parts at speed grade 6, the slowest, unless told otherwise: the
# shipped part names keep that grade, stated in physical.json (``speed_grade``, ``device``); the calibration
# (flow/rtl/calibration.json) was measured at it.
PARTS = {
    "ecp5-25k": Part("LFE5U-25F", ("--25k",), 24_288),
    "ecp5-45k": Part("LFE5U-45F", ("--45k",), 43_848),
    "ecp5-85k": Part("LFE5U-85F", ("--85k",), 83_640),
}
# Yosys synth_ecp5 LUT4s (LUT4 cells + 2 per CCU2C carry cell, which takes a slice's two LUT4s) per synth_xilinx LUT
# (LUT1..LUT6) on the same RTL: the estimate counts the latter, a part's budget is the former. Measured 1.31 on the
# digits MLP's unrolled core and 1.86 on the jet MLP folded at R = 16 (docs/rtl.md "Estimating and folding to a
# budget"): the larger, rounded up, so a budget from a part errs towards more folding
LUT4_PER_LUT6 = 1.9
# Router and placer: router2 settled designs that router1 (nextpnr's default) kept ripping up
# (docs/physical.md); HeAP is nextpnr-ecp5's default placer.
NEXTPNR_FLAGS = ("--out-of-context", "--router", "router2", "--timing-allow-fail", "--seed", "1")
ROUTE_TIMEOUT = 600.0  # s of nextpnr before its post-place estimate is used instead of routing to the end

_FMAX = re.compile(r"Max frequency for clock\s+'([^']+)':\s*([0-9.]+)\s*MHz")


def part(name: str) -> Part:
    """The :data:`PARTS` entry, or FlowError listing the known parts."""
    try:
        return PARTS[name]
    except KeyError:
        raise FlowError(f"unknown FPGA part {name!r}; known: {', '.join(PARTS)}") from None


def synthesize(rtl_dir: Path, files: list[str], top: str, work: Path, target: Part,
               timeout: float = 3600) -> dict[str, Any]:
    """Yosys ``synth_ecp5`` of ``top``; writes ``work/fpga_netlist.json``; returns cell counts and seconds."""
    work = Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    netlist, stat = work / "fpga_netlist.json", work / "fpga_stat.txt"
    script = f"read_verilog {' '.join(files)}; {target.synth} -top {top} -json {netlist}; tee -q -o {stat} stat"
    seconds = run_yosys(rtl_dir, script, f"Yosys {target.synth}", timeout)
    cells = parse_stat(stat.read_text())
    return {"cells": cells, "seconds": round(seconds, 1), "netlist_json": netlist}


def utilisation(cells: dict[str, int]) -> dict[str, int]:
    """ECP5 resource counts from ``synth_ecp5`` cells (LUT4, FF, CCU2C, DP16KD, MULT18X18D)."""
    return {"luts": cells.get("LUT4", 0), "ffs": cells.get("TRELLIS_FF", 0), "ccu2c": cells.get("CCU2C", 0),
            "dp16kd": cells.get("DP16KD", 0), "mult18x18d": cells.get("MULT18X18D", 0)}


def place_and_route(work: Path, netlist_json: Path, target: Part, freq_mhz: float, route: bool = True,
                    timeout: float = ROUTE_TIMEOUT, extra: tuple[str, ...] = ()) -> dict[str, Any]:
    """nextpnr-ecp5 on ``netlist_json``; Fmax (MHz) of ``clk``, post-route or post-place (``fmax_stage``).

    With ``route`` False or when routing has not finished after ``timeout`` s, the placer's last
    estimate is used. Raises FlowError when placement itself fails or gives no estimate.
    """
    work = Path(work).resolve()
    netlist_json = Path(netlist_json).resolve()
    if netlist_json.parent != work:
        raise FlowError(f"{netlist_json}: nextpnr (WebAssembly) sees only its working folder {work}")
    # the WebAssembly sandbox sees the working directory only: relative file names
    cmd = [*tools.nextpnr_ecp5(), *target.nextpnr_args, *NEXTPNR_FLAGS, *extra, "--json", netlist_json.name,
           "--freq", f"{freq_mhz:g}", "--report", "nextpnr_report.json"]
    if not route:
        cmd.append("--no-route")
    log = work / "nextpnr.log"
    report = work / "nextpnr_report.json"
    report.unlink(missing_ok=True)
    t0 = time.perf_counter()
    finished = True
    with log.open("w") as fh:
        proc = procs.popen(cmd, stdout=fh, stderr=subprocess.STDOUT, text=True, cwd=work)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            procs.kill_group(proc)
            proc.wait()
            finished = False
        except BaseException:
            procs.kill_group(proc)
            proc.wait()
            raise
    seconds = round(time.perf_counter() - t0, 1)
    text = log.read_text(errors="replace")
    estimates = _FMAX.findall(text)
    result: dict[str, Any] = {"command": "nextpnr-ecp5 " + " ".join([*target.nextpnr_args, *NEXTPNR_FLAGS, *extra])
                              + f" --freq {freq_mhz:g}" + ("" if route else " --no-route"), "seconds": seconds}
    if finished and proc.returncode == 0 and report.is_file() and route and "Routing complete" in text:
        rep = json.loads(report.read_text())
        result |= _from_report(rep) | {"fmax_stage": "post-route"}
        return result
    if finished and proc.returncode != 0:
        err = [ln for ln in text.splitlines() if "ERROR" in ln]
        raise FlowError(f"nextpnr-ecp5 failed: {(err or text.strip().splitlines() or ['no output'])[-1].strip()}")
    clk = [float(f) for name, f in estimates if name == "clk"]
    if not clk:
        raise FlowError(f"nextpnr-ecp5 gave no timing estimate within {timeout:.0f} s (see {log})")
    result |= {"fmax_mhz": clk[-1], "fmax_stage": "post-place",
               "note": "routing not run" if not route else f"routing did not finish within {timeout:.0f} s"}
    if report.is_file():
        rep = json.loads(report.read_text())
        result["resources"] = _resources(rep)
    return result


def _resources(rep: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {k: {"used": int(v["used"]), "available": int(v["available"])}
            for k, v in rep.get("utilization", {}).items() if v.get("used")}


def _from_report(rep: dict[str, Any]) -> dict[str, Any]:
    """Fmax of ``clk`` and the critical path (ns: logic vs routing) from nextpnr's ``--report`` JSON."""
    fmax = rep.get("fmax", {}).get("clk")
    if not fmax:
        raise FlowError("nextpnr's report has no Fmax for clock 'clk'")
    out: dict[str, Any] = {"fmax_mhz": float(fmax["achieved"]), "resources": _resources(rep)}
    paths = [p for p in rep.get("critical_paths", []) if "clk" in (p.get("from", ""), p.get("to", ""))
             or p.get("from", "").endswith("clk")]
    if paths:
        steps = paths[0]["path"]
        logic = sum(s["delay"] for s in steps if s["type"] != "routing")
        routing = sum(s["delay"] for s in steps if s["type"] == "routing")
        out["critical_path"] = {"from": steps[0]["from"]["cell"], "to": steps[-1]["to"]["cell"],
                                "logic_ns": round(logic, 3), "routing_ns": round(routing, 3),
                                "cells": sum(1 for s in steps if s["type"] == "logic")}
    return out
