"""Simulation speed of the two stage emitters, side by side in one run: levelized (flow/rtl/emit.py, the default)
vs da4ml's own generator (``hlsflow rtl --emitter da4ml``: one module instance per op).

For each project (a copy in a temporary folder) and each emitter: ``hlsflow rtl`` (no Yosys) seconds, then
``hlsflow sim`` on Icarus and on Verilator (every output bit checked against the emulator, with gaps,
back-pressure and a mid-stream reset; a differing bit fails the bench): build seconds, samples per second
of the testbench loop and the wall seconds of the whole simulation (start-up included). With ``--yosys``
(projects whose da4ml cost is at most ``--yosys-max-cost``) also Yosys ``synth_xilinx`` LUT/FF/CARRY and its
seconds. Ratios levelized / da4ml at the end.

    python3 bench/icarus_speed.py [--projects P ...] [--icarus-samples 300] [--verilator-samples 5000]
                                  [--yosys] [--yosys-max-cost 30000]

Missing default projects (digits MLP, digits CNN, the third-party qkeras_mnist_dense) are made first, as
bench/rtl_speed.py does.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.rtl_speed import DEFAULT_PROJECTS, ensure_project  # noqa: E402
from flow.rtl.emit import EMITTERS  # noqa: E402
from flow.commands.rtl_command import rtl_project  # noqa: E402
from flow.sim.sim_project import sim_project  # noqa: E402

SIMULATORS = ("icarus", "verilator")


def bench_emitter(project: Path, emitter: str, args: argparse.Namespace) -> dict:
    row: dict = {"model": project.name, "emitter": emitter}
    with tempfile.TemporaryDirectory(prefix="icarus-bench-") as tmp:
        work = Path(tmp) / project.name
        shutil.copytree(project, work, ignore=shutil.ignore_patterns("rtl", "hls", "ip"))
        t0 = time.perf_counter()
        summary = rtl_project(work, latency_cutoff=args.latency_cutoff, yosys=False, emitter=emitter)
        row["gen_s"] = time.perf_counter() - t0
        pm = json.loads((work / "rtl" / "port_map.json").read_text())
        row["lint"] = summary["lint_clean"]
        row["cost"] = pm["da4ml"]["cost_estimate"]
        row["verilog_kb"] = sum((work / "rtl" / f).stat().st_size for f in pm["verilog"]) / 1024
        for sim in SIMULATORS:
            n = args.icarus_samples if sim == "icarus" else args.verilator_samples
            t0 = time.perf_counter()
            s = sim_project(work, sim, samples=n, seed=5)
            wall = time.perf_counter() - t0
            if not s["ok"]:
                raise SystemExit(f"{project.name} ({emitter}): {sim} RTL differs from the emulator: {s['rtl_vs_emulator']}")
            row[sim] = {"build_s": s["simulator"]["build_seconds"], "sps": s["simulator"]["samples_per_second"],
                        "wall_s": wall, "n": n}
        if args.yosys and row["cost"] <= args.yosys_max_cost:
            from flow.physical.estimate import yosys_estimate

            est = yosys_estimate(work / "rtl", pm["verilog"], pm["top"])
            row["yosys"] = est["xilinx"] | {"seconds": est["seconds"]["synth_xilinx"]}
    return row


def _f(v) -> str:
    return "-" if v is None else f"{v:,.0f}"


def print_tables(rows: list[dict]) -> None:
    print("| model | emitter | Verilog KB | rtl s | Icarus build s | Icarus samples/s | Icarus wall s (samples) | "
          "Verilator build s | Verilator samples/s | Verilator wall s (samples) | Yosys LUT | FF | CARRY | Yosys s |")
    print("|" + "---|" * 14)
    for r in rows:
        i, v, y = r["icarus"], r["verilator"], r.get("yosys", {})
        print(f"| {r['model']} | {r['emitter']} | {r['verilog_kb']:,.0f} | {r['gen_s']:.1f} | {i['build_s']:.1f} | "
              f"{i['sps']:,.1f} | {i['wall_s']:.0f} ({i['n']:,}) | {v['build_s']:.1f} | {v['sps']:,.0f} | "
              f"{v['wall_s']:.0f} ({v['n']:,}) | {_f(y.get('LUT'))} | {_f(y.get('FF'))} | {_f(y.get('CARRY'))} | "
              f"{_f(y.get('seconds'))} |")
    print()
    print("| model | Icarus samples/s levelized / da4ml | Icarus wall | Verilator samples/s | Verilator build s | "
          "Yosys LUT | Yosys FF |")
    print("|---|---|---|---|---|---|---|")
    by = {(r["model"], r["emitter"]): r for r in rows}
    for model in dict.fromkeys(r["model"] for r in rows):
        new, old = by.get((model, "levelized")), by.get((model, "da4ml"))
        if not (new and old):
            continue
        ratio = [new["icarus"]["sps"] / old["icarus"]["sps"], new["icarus"]["wall_s"] / old["icarus"]["wall_s"],
                 new["verilator"]["sps"] / old["verilator"]["sps"],
                 new["verilator"]["build_s"] / old["verilator"]["build_s"]]
        luts = [f"{new['yosys'][k] / old['yosys'][k]:.3f}x" if "yosys" in new and "yosys" in old else "-"
                for k in ("LUT", "FF")]
        print(f"| {model} | {ratio[0]:.1f}x | {ratio[1]:.2f}x | {ratio[2]:.2f}x | {ratio[3]:.2f}x | "
              f"{luts[0]} | {luts[1]} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--projects", nargs="+", help=f"project folders (default: hls_projects/{{{','.join(DEFAULT_PROJECTS)}}})")
    ap.add_argument("--icarus-samples", type=int, default=300)
    ap.add_argument("--verilator-samples", type=int, default=5000)
    ap.add_argument("--latency-cutoff", type=float, default=5.0)
    ap.add_argument("--yosys", action="store_true", help="also Yosys synth_xilinx of both (minutes per model)")
    ap.add_argument("--yosys-max-cost", type=float, default=30000, help="skip Yosys above this da4ml cost")
    args = ap.parse_args()
    projects = [Path(p) for p in args.projects] if args.projects else \
        [ensure_project(n, ROOT / "hls_projects") for n in DEFAULT_PROJECTS]
    rows = []
    for p in projects:
        for emitter in EMITTERS:
            print(f"bench: {p} ({emitter}) ...", file=sys.stderr)
            rows.append(bench_emitter(p, emitter, args))
    print_tables(rows)


if __name__ == "__main__":
    main()
