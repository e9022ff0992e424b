"""Physical figures per model in one run: ECP5-85k place-and-route and OSU 0.18 um timing and power.

For each model (a copy of its project in a temporary folder): ``hlsflow rtl PROJECT --fpga ecp5-85k
--asic osu018`` at the project's clock period (timing-driven pipelining from the shipped calibration,
one re-cut after place-and-route when the period is missed), then one table row: pipeline depth,
latency (cycles, ns), Fmax on ECP5-85k (post-route, or post-place where routing did not finish within
``--route-timeout``: the table says which), LUT4, FF, ASIC area, critical path, power and nJ per
inference, with the seconds each tool took. Beside them the published figures of other designs, labelled
as such: different networks, tools and processes.

    python3 bench/physical.py [--models digits_mlp,digits_cnn,jet_mlp] [--route-timeout 900] [--no-route] [--out FILE.json]
    python3 bench/physical.py --table-from FILE.json     # the table of a (partial) earlier run

Projects: ``hlsflow run`` of the shipped digits specs (RTL stage off) and, for the jet MLP,
``hlsflow convert ../shared/models/KERAS_3layer.json --precision 'ap_fixed<16,6>'`` (skipped with the
reason when it does not trace). Run it on an otherwise idle machine: it takes about an hour.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
sys.path.insert(0, str(ROOT))

from flow.core.errors import FlowError  # noqa: E402

PUBLISHED = [
    ("hls4ml jet tagger (16-64-32-32-5), Xilinx UltraScale+, Vivado HLS", "about 100 ns latency at 200 MHz",
     "published (hls4ml, Duarte et al., JINST 2018), figure as quoted in issue 13; vendor tools, other FPGA family"),
    ("ECON-T autoencoder ASIC, hls4ml + Catapult HLS, 65 nm LP CMOS", "2.4 nJ per inference",
     "published (Di Guglielmo et al., IEEE TNS 2021), figure as quoted in issue 13; other net and process "
     "(65 nm vs 0.18 um)"),
]


def make_project(model: str, root: Path) -> Path:
    """A fresh project of ``model`` in ``root`` (training or conversion; RTL off)."""
    import yaml

    from flow.commands.pipeline import convert_existing, run

    root.mkdir(parents=True, exist_ok=True)
    if model.startswith("digits_"):
        spec = yaml.safe_load((ROOT / "models" / f"{model}.yaml").read_text())
        spec["rtl"] = {"enabled": False}
        path = root / f"{model}.yaml"
        path.write_text(yaml.safe_dump(spec))
        run(path, root / "out")
        return root / "out" / model
    if model == "jet_mlp":
        src = SHARED / "KERAS_3layer.json"
        if not src.is_file():
            raise FlowError(f"{src} not found")
        out = root / "out" / "jet_mlp"
        convert_existing(src, out, precision="ap_fixed<16,6>", samples=100)
        return out
    raise FlowError(f"unknown model {model!r}")


def traces(project: Path) -> str | None:
    """None when the project's graph traces with da4ml, else the reason."""
    from flow.arith.trace import trace_graph
    from flow.hls.project import rebuild

    with tempfile.TemporaryDirectory() as tmp:
        try:
            _, graph, _ = rebuild(project, Path(tmp) / "hls")
            trace_graph(graph)
        except FlowError as exc:
            return str(exc)
    return None


def measure(model: str, root: Path, route_timeout: float, route: bool = True) -> dict:
    from flow.physical import fpga
    from flow.commands.rtl_command import rtl_project

    t0 = time.perf_counter()
    project = make_project(model, root)
    why = traces(project)
    if why:
        return {"model": model, "skipped": why}
    fpga.ROUTE_TIMEOUT = route_timeout
    try:
        s = rtl_project(project, fpga="ecp5-85k", asic="osu018", route=route)
        fpga_error = None
    except FlowError as exc:  # e.g. the net does not fit the part: the ASIC figures are still measured
        fpga_error = str(exc)
        print(f"bench: {model}: FPGA failed: {exc}", file=sys.stderr)
        s = rtl_project(project, asic="osu018")
    phys = json.loads((project / "rtl" / "physical.json").read_text())
    if fpga_error:
        phys["fpga_error"] = fpga_error
    return {"model": model, "summary": s, "physical": phys, "seconds": round(time.perf_counter() - t0, 1)}


def row(r: dict) -> str:
    if "skipped" in r:
        return f"| {r['model']} | not traced: {r['skipped']} |" + " |" * 12
    p, a = r["physical"], r["physical"]["asic"]
    f = p.get("fpga") or {"fmax_mhz": 0, "fmax_stage": p.get("fpga_error", "not measured"), "met": False, "luts": 0,
                          "ffs": 0, "seconds": {"synth": 0, "place_and_route": 0}}
    tc = p.get("timing_closure", {})
    return (f"| {r['model']} | {p['clock_period_ns']:g} | {p['pipeline_stages']} ({p['latency_cutoff']:g}) | "
            f"{p['latency_cycles']} / {p['latency_ns']:g} | {f['fmax_mhz']:g} ({f['fmax_stage']}) | "
            f"{'yes' if f['met'] else 'no'} | {f['luts']:,} | {f['ffs']:,} | {a['area_um2'] / 1e6:.3f} | "
            f"{a['critical_path_ns']:g} | {a['power_mw']:g} | {a['energy_nj_per_inference']:g} | "
            f"{tc.get('statement', '')} | {f['seconds']['synth']:g} + {f['seconds']['place_and_route']:g} / "
            f"{a['seconds']['synth']:g} + {a['activity']['seconds']:g} + {a['seconds']['sta']:g} |")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="digits_mlp,digits_cnn,jet_mlp")
    ap.add_argument("--route-timeout", type=float, default=900.0, help="s of nextpnr before post-place figures are used")
    ap.add_argument("--no-route", action="store_true", help="place only (post-place Fmax): the shipped digits nets "
                                                             "do not route within 20 minutes here")
    ap.add_argument("--out", type=Path, help="also write every result as JSON here (after each model)")
    ap.add_argument("--table-from", type=Path, help="only print the table of a JSON file written by --out")
    args = ap.parse_args(argv)
    load = os.getloadavg()[0]
    if args.table_from:
        results = json.loads(args.table_from.read_text())
    else:
        results = []
        with tempfile.TemporaryDirectory(prefix="bench-physical-") as tmp:
            for m in [x.strip() for x in args.models.split(",") if x.strip()]:
                print(f"bench: {m} ...", file=sys.stderr, flush=True)
                results.append(measure(m, Path(tmp) / m, args.route_timeout, not args.no_route))
                if args.out:
                    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
        print(f"Load average before the run: {load:.2f} (2 cores). Route timeout {args.route_timeout:g} s.\n")
    print("| model | clock period (ns) | pipeline stages (da4ml cutoff) | latency (cycles / ns) | ECP5-85k Fmax MHz "
          "(stage) | period met | LUT4 | FF | ASIC area (mm^2) | critical path (ns) | power (mW) | nJ / inference | "
          "timing closure | seconds: synth_ecp5 + nextpnr / ASIC synth + gate sim + STA |")
    print("|" + "---|" * 14)
    for r in results:
        print(row(r))
    print("\nPublished figures of other designs (labelled; not measured here, different nets and processes):\n")
    print("| design | figure | source and caveat |\n|---|---|---|")
    for d, fig, src in PUBLISHED:
        print(f"| {d} | {fig} | {src} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
