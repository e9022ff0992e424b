"""``hlsflow rtl``: generate ``PROJECT/rtl/`` (:mod:`flow.rtl.generate`, :mod:`flow.rtl.sequential`) and, when
asked, its figures (Yosys resource counts, FPGA and ASIC physical figures, :mod:`flow.physical`); the RTL cost of a
sweep point (:func:`cost_figures`)."""

from __future__ import annotations

import json
import math
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

from flow.core.outputs import RTL, claim_output
from flow.core.staging import scratch_dir, staged_dir
from flow.core.targets import LUT4_PER_LUT6, fpga_part
from flow.hls.layer_map import layer_map
from flow.hls.project import load_meta, rebuild
from flow.physical.estimate import yosys_estimate
from flow.physical.figures import physical_project, project_clock_period, require_tools, write_json_atomic
from flow.rtl import budget, progress, timing
from flow.rtl.emit import EMITTERS
from flow.rtl.generate import CHECK_SAMPLES, generate
from flow.rtl.port_map import PortMap
from flow.rtl.sequential import Emission, choose_architecture, generate_sequential

# cuts placed and routed (or timed) by `hlsflow rtl --fpga/--asic`: the chosen one, then one moved by the measured delay
MAX_CUTS = 2


def rtl_project(project: Path, latency_cutoff: float | None = None, upto: str | None = None,
                yosys: bool = False, name: str | None = None, fpga: str | None = None, asic: str | None = None,
                clock_period: float | None = None, route: bool = True, check_samples: int = CHECK_SAMPLES,
                emitter: str = EMITTERS[0], reuse_factor: int | None = None,
                architecture: str = "auto", force: bool = False, max_luts: int | None = None,
                fit_fpga: bool = False) -> dict[str, Any]:
    """``hlsflow rtl``: generate ``<project>/rtl/`` and its figures (lint; Yosys, FPGA, ASIC when asked).

    ``PROJECT`` must be an hlsflow project and an existing ``PROJECT/rtl`` an hlsflow RTL folder (or ``force``),
    checked before any work (:func:`flow.core.outputs.claim_output`).

    ``name`` (default: the project folder's name) prefixes every Verilog module. ``upto`` names a graph
    layer or a Keras layer (mapped to the graph layer holding its output, :mod:`flow.hls.layer_map`).
    ``latency_cutoff`` None: the cut is chosen for ``clock_period`` (default: the project's
    ``hardware.clock_period``) on the timing target (``fpga``, else ``asic``, else the default part). With
    ``fpga``/``asic`` the physical figures are measured (:mod:`flow.physical.figures`, ``rtl/physical.json``);
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
    project = Path(project)
    load_meta(project)  # an hlsflow project (one line otherwise), before anything else is read
    claim_output(project / "rtl", RTL, force)
    require_tools(fpga, asic)
    budget_what = f"--max-luts {max_luts}"
    if max_luts is None and fit_fpga and fpga is not None:
        max_luts = fpga_part(fpga).lut_budget
        budget_what = f"--fpga {fpga}: {fpga_part(fpga).luts:,} LUT4 / {LUT4_PER_LUT6}"
    period = clock_period if clock_period is not None else project_clock_period(project)
    target = fpga or asic
    t0 = time.perf_counter()
    with scratch_dir("rtl") as tmp:
        model, graph, meta = rebuild(project, Path(tmp) / "hls")
        if upto is not None:
            upto = layer_map(model, graph).graph_layer(upto)

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
        else:
            port_map = generate(graph, project / "rtl", name or project.name, latency_cutoff, upto,
                                clock_period=period, timing_target=target, check_samples=check_samples, emitter=emitter,
                                force=force)
        summary = _summary(project, port_map, t0)
        if yosys:
            port_map = _yosys(project, port_map, summary)
        if (fpga or asic) and kind != "unrolled":  # a sequential core is measured once
            phys = physical_project(project, fpga, asic, period, route=route)
            write_json_atomic(project / "rtl" / "physical.json", phys)
            summary["physical"] = _physical_summary(phys)
        elif fpga or asic:
            def regenerate(cutoff: float) -> PortMap:
                pm = generate(graph, project / "rtl", name or project.name, cutoff, upto, clock_period=period,
                              timing_target=target, check_samples=check_samples, emitter=emitter, force=force)
                pm = pm.with_entries(timing={**pm.record["timing"],
                                             "cutoff_from": "clock_period, after place-and-route"})
                pm.write(project / "rtl")
                return _yosys(project, pm, summary) if yosys else pm

            port_map, phys = _measured_cuts(project, port_map, regenerate, lambda: physical_project(
                project, fpga, asic, period, route=route), target, period, latency_cutoff is None, summary)
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


def _summary(project: Path, port_map: PortMap, t0: float) -> dict[str, Any]:
    record = port_map.to_json()
    out = {"rtl": "rtl", "top": port_map.top, "architecture": port_map.architecture,
           "latency_cycles": port_map.latency_cycles, "initiation_interval": port_map.initiation_interval,
           "pipeline_stages": port_map.pipeline_stages, "latency_cutoff": port_map.latency_cutoff,
           "timing": record.get("timing"), "lint_clean": port_map.lint_clean,
           **record["equivalence"], "generate_seconds": round(time.perf_counter() - t0, 2)}
    if "reuse_factors" in record:
        out["reuse_factors"] = record["reuse_factors"]
    if "registers" in record:
        out["register_bits"] = record["registers"]
    return out


def _yosys(project: Path, port_map: PortMap, summary: dict[str, Any]) -> PortMap:
    """Yosys resource counts of the RTL, added to ``port_map.json`` (``yosys``) and ``summary``; the new port map."""
    print("hlsflow rtl: Yosys resource estimate ...", file=sys.stderr)
    est = yosys_estimate(project / "rtl", list(port_map.verilog), port_map.top)
    port_map = port_map.with_entries(yosys=est)
    port_map.write(project / "rtl")
    summary["yosys"] = est
    return port_map


def _measured_cuts(project: Path, port_map: PortMap, regenerate: Callable[[float], PortMap],
                   measure: Callable[[], dict[str, Any]], target: str, period: float, auto_cut: bool,
                   summary: dict[str, Any]) -> tuple[PortMap, dict[str, Any]]:
    """Place-and-route (or time) the generated cut; while an automatic cut (``auto_cut``) misses ``period`` ns, move
    it by the measured delay (:func:`_retry_cutoff`) and measure again, at most :data:`MAX_CUTS` cuts. A measured
    ``PROJECT/rtl`` is copied aside before the next cut replaces it; the best one (met, else the shortest period,
    the later on a tie) ends in ``PROJECT/rtl``, restored from its copy rather than generated and measured again.
    Returns its port map and physical figures with ``timing_closure`` (every try; the best is the one kept);
    ``summary["yosys"]`` follows the kept cut."""
    kept: list[tuple[PortMap, dict[str, Any], Path | None, Any]] = []
    tries: list[dict[str, Any]] = []
    with scratch_dir("cuts") as aside:
        while True:
            phys = measure()
            tries.append(_try(port_map, phys, target))
            better = (_retry_cutoff(port_map, tries[-1], target, period)
                      if auto_cut and not tries[-1]["met"] and len(tries) < MAX_CUTS else None)
            copy = None if better is None else Path(aside) / f"cut{len(tries)}"
            if copy is not None:
                shutil.copytree(project / "rtl", copy)
            kept.append((port_map, phys, copy, summary.get("yosys")))
            if better is None:
                break
            print(f"hlsflow rtl: {tries[-1]['min_period_ns']} ns > {period} ns; trying cutoff {better} ...",
                  file=sys.stderr)
            port_map = regenerate(better)
        best = max(range(len(tries)), key=lambda k: (tries[k]["met"], -tries[k]["min_period_ns"], k))
        port_map, phys, copy, yosys_counts = kept[best]
        if copy is not None:  # not the last cut measured: its folder comes back
            print(f"hlsflow rtl: cutoff {port_map.latency_cutoff} was better; keeping what was measured for it",
                  file=sys.stderr)
            with staged_dir(project / "rtl", RTL) as restored:
                shutil.copytree(copy, restored, dirs_exist_ok=True)
            if yosys_counts is not None:
                summary["yosys"] = yosys_counts
    met, t = any(t["met"] for t in tries), tries[best]
    phys["timing_closure"] = {
        "target": target, "clock_period_ns": period, "tries": tries, "met": met,
        "best_period_ns": t["min_period_ns"], "best_cutoff": t["cutoff"],
        "statement": (f"meets {period:g} ns on {target}" if met else
                      f"cannot meet {period:g} ns on {target}: best period found {t['min_period_ns']:g} ns "
                      f"(cutoff {t['cutoff']:g}, {t['stages']} stages)")}
    return port_map, phys


def _try(port_map: PortMap, phys: dict[str, Any], target: str) -> dict[str, Any]:
    section = phys["fpga"] if "fpga" in phys and phys["fpga"]["part"] == target else phys["asic"]
    return {"cutoff": port_map.latency_cutoff, "stages": port_map.pipeline_stages,
            "latency_cycles": port_map.latency_cycles, "stage_delay_units": port_map.stage_delay_units,
            "min_period_ns": section["min_period_ns"], "met": bool(section["met"]),
            "measured_by": section.get("fmax_stage", "OpenSTA")}


def _retry_cutoff(port_map: PortMap, first: dict[str, Any], target: str, period: float) -> float | None:
    """A smaller cutoff from the measured stage delay (ns per da4ml unit re-fitted on this net), or None."""
    a, _ = timing.model(target)
    units = first["stage_delay_units"]
    if units <= 1 or first["min_period_ns"] <= a:
        return None
    b = (first["min_period_ns"] - a) / units
    new = float(math.floor((period - a) / b))
    cutoff = port_map.latency_cutoff or 0.0
    if new >= cutoff:
        new = cutoff - 1
    return max(1.0, new) if cutoff > 1 else None


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
