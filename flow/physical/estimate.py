"""Resource estimates of generated RTL with Yosys (no vendor tool).

Two runs on the same sources: ``synth -top T`` (technology-independent: generic gates and flip-flops)
and ``synth_xilinx -top T -flatten`` (Xilinx 7-series/UltraScale primitives: LUT1..LUT6, FDRE/FDSE...,
DSP48E1, CARRY4). Counts are Yosys's ``stat`` numbers, not a vendor place-and-route result.
"""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path
from typing import Any

from flow.core import procs, tools
from flow.core.errors import FlowError

_CELL = re.compile(r"^\s+(\$?[A-Za-z_][\w$]*)\s+(\d+)\s*$")


def parse_stat(text: str) -> dict[str, int]:
    """Cell counts of the last ``stat`` block in a Yosys log (the top module's, after flattening)."""
    blocks = text.split("Number of cells:")
    if len(blocks) < 2:
        raise FlowError("Yosys printed no 'stat' block")
    counts: dict[str, int] = {}
    for line in blocks[-1].splitlines()[1:]:
        m = _CELL.match(line)
        if m:
            counts[m.group(1)] = counts.get(m.group(1), 0) + int(m.group(2))
        elif line.strip() and not line.startswith(" "):
            break
    return counts


def run_yosys(rtl_dir: Path, script: str, what: str, timeout: float) -> float:
    """``yosys -q -p script`` in ``rtl_dir``; FlowError naming ``what`` on failure or timeout; returns seconds."""
    exe = tools.require("yosys")
    t0 = time.perf_counter()
    try:
        out = procs.run([exe, "-q", "-p", script], cwd=rtl_dir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlowError(f"{what} did not finish within {timeout:.0f} s on {rtl_dir}") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        raise FlowError(f"{what} failed on {rtl_dir}: {' | '.join(tail)}")
    return time.perf_counter() - t0


def _run(rtl_dir: Path, files: list[str], script: str, timeout: float) -> tuple[str, float]:
    exe = tools.require("yosys")
    t0 = time.perf_counter()
    # -defer: modules are elaborated only with the parameters the hierarchy gives them, so a table ROM module
    # (da4ml's lookup_table.v) never opens its placeholder default $readmemh file
    cmd = [exe, "-q", "-p", f"read_verilog -defer {' '.join(files)}; {script}; tee -o /dev/stdout stat"]
    try:
        out = procs.run(cmd, cwd=rtl_dir, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlowError(f"Yosys did not finish within {timeout:.0f} s on {rtl_dir}") from None
    if out.returncode != 0:
        tail = (out.stderr or out.stdout).strip().splitlines()[-5:]
        raise FlowError(f"Yosys failed on {rtl_dir}: {' | '.join(tail)}")
    return out.stdout, time.perf_counter() - t0


def summarize_xilinx(cells: dict[str, int]) -> dict[str, int]:
    """LUT / FF / DSP / CARRY / BRAM totals from ``synth_xilinx`` cell counts."""
    def total(pred: Any) -> int:
        return sum(n for c, n in cells.items() if pred(c))

    return {
        "LUT": total(lambda c: c.startswith("LUT")),
        "FF": total(lambda c: c.startswith("FD")),
        "DSP": total(lambda c: c.startswith("DSP")),
        "CARRY": total(lambda c: c.startswith("CARRY")),
        "BRAM": total(lambda c: c.startswith("RAMB")),
        "MUXF": total(lambda c: c.startswith("MUXF")),
    }


def xilinx_estimate(rtl_dir: Path, files: list[str], top: str, timeout: float = 1800) -> dict[str, Any]:
    """``synth_xilinx`` alone (one Yosys process): the LUT / FF / DSP / CARRY / BRAM / MUXF totals of ``top``
    (:func:`summarize_xilinx`) and the cell counts; raises ToolMissing when Yosys is not installed."""
    log, seconds = _run(rtl_dir, files, f"synth_xilinx -top {top} -flatten", timeout)
    cells = parse_stat(log)
    return {"tool": tools.version("yosys"), "xilinx_cells": cells, "xilinx": summarize_xilinx(cells),
            "seconds": {"synth_xilinx": round(seconds, 1)}}


def yosys_estimate(rtl_dir: Path, files: list[str], top: str, timeout: float = 1800) -> dict[str, Any]:
    """Generic and Xilinx cell counts for ``top``; raises ToolMissing when Yosys is not installed."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2) as pool:  # two independent Yosys processes
        generic_job = pool.submit(_run, rtl_dir, files, f"synth -top {top} -flatten", timeout)
        xilinx_job = pool.submit(_run, rtl_dir, files, f"synth_xilinx -top {top} -flatten", timeout)
        try:
            (generic_log, t_generic), (xilinx_log, t_xilinx) = generic_job.result(), xilinx_job.result()
        except BaseException as exc:  # Ctrl-C/SIGTERM reach this thread only: stop the tools the pool waits for
            procs.stop_all(isinstance(exc, KeyboardInterrupt))
            raise
    generic = parse_stat(generic_log)
    xilinx = parse_stat(xilinx_log)
    return {
        "tool": tools.version("yosys"),
        "generic_cells": generic,
        "generic_total": sum(generic.values()),
        "xilinx_cells": xilinx,
        "xilinx": summarize_xilinx(xilinx),
        "seconds": {"synth": round(t_generic, 1), "synth_xilinx": round(t_xilinx, 1)},
    }
