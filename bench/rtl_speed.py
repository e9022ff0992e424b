"""Vendor-free RTL figures per model, side by side with hls4ml on the same model, in one run.

For each project (a copy in a temporary folder, so the project's own ``rtl/`` is left alone):

* our flow: RTL generation (da4ml trace + pipelining + Verilog + Verilator lint) seconds, da4ml's
  adder-cost estimate, latency (cycles), a trace check (da4ml's interpreter of the traced netlist ==
  the emulator on N full-range inputs, 0 differing outputs or the bench fails), Yosys ``synth_xilinx``
  LUT/FF, and cocotb simulation on Verilator and Icarus: build seconds and simulated samples per
  second (every output bit checked against the emulator; a mismatch fails the bench);
* hls4ml on the same model: the ``distributed_arithmetic`` strategy's adder cost (da4ml's estimate,
  summed over the Dense/Conv kernels hls4ml hands to it) and conversion seconds; the Latency-strategy
  C simulation: compile seconds and samples per second of ``predict`` on the same inputs.

Ratios at the end: Verilator vs Icarus samples/s, Verilator vs hls4ml C simulation samples/s, and our
whole-network cost vs hls4ml's kernel-only DA cost (ours also holds activations and requantization).

    python3 bench/rtl_speed.py [--projects P ...] [--verilator-samples 10000] [--icarus-samples 300]
                               [--trace-samples 5000] [--no-yosys] [--yosys-max-cost 50000]

Missing default projects are made first (``hlsflow run`` of the shipped digits specs, ``hlsflow
convert`` of ``../shared/models/qkeras_mnist_dense``), which takes a few minutes.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
sys.path.insert(0, str(ROOT))

from flow.arith.emulate import emulate  # noqa: E402
from flow.arith.types import parse_type  # noqa: E402
from flow.hls.convert import build_graph, csim_predict, write_and_compile  # noqa: E402
from flow.hls.project import load_meta, rebuild  # noqa: E402
from flow.keras.model_io import load_model  # noqa: E402
from flow.rtl.generate import rtl_project  # noqa: E402
from flow.sim.project import sim_project  # noqa: E402
from flow.spec import Hardware  # noqa: E402
from flow.verify import full_range_inputs  # noqa: E402

DEFAULT_PROJECTS = ["digits_mlp", "digits_cnn", "qkeras_mnist_dense"]


def ensure_project(name: str, root: Path) -> Path:
    """``root/name``; the three default projects are made when missing."""
    project = root / name
    if (project / "project.json").is_file():
        return project
    print(f"bench: making {project} ...", file=sys.stderr)
    if name.startswith("digits_"):
        import yaml

        from flow.pipeline import run

        spec = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text())
        spec["rtl"] = {"enabled": False}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(spec))
            run(path, root)
    elif name == "qkeras_mnist_dense":
        from flow.pipeline import convert_existing

        convert_existing(SHARED / "qkeras_mnist_dense.json", project, input_type="ap_fixed<16,6>", samples=200)
    else:
        raise SystemExit(f"bench: {project} is not an hlsflow project (make it with hlsflow run/convert)")
    return project


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def trace_check(project: Path, output_layer: str | None, n: int) -> int:
    """Differing outputs between da4ml's interpreter of the traced netlist and the emulator (n inputs)."""
    from da4ml.trace import comb_trace

    from flow.arith.trace import trace_graph

    with tempfile.TemporaryDirectory() as tmp:
        _, graph, _ = rebuild(project, Path(tmp) / "hls")
        traced = trace_graph(graph, output_layer)
        comb = comb_trace(traced.inputs, traced.outputs, keep_dead_inputs=True)
        x = full_range_inputs(traced.input_type, traced.input_shape, n, seed=11)
        want = emulate(graph, x, upto=output_layer).outputs
        got = comb.predict(x.reshape(n, -1))
    return int(np.sum(got != want))


def hls4ml_figures(project: Path, n: int) -> dict:
    """hls4ml on the project's model: DA-strategy kernel cost, Latency C-sim compile time and speed."""
    meta = load_meta(project)
    model = load_model(project / meta["model"])
    hw = Hardware(**meta["hardware"])
    da_cfg = copy.deepcopy(meta["hls_config"])
    da_cfg["Model"]["Strategy"] = "distributed_arithmetic"
    for layer in da_cfg.get("LayerName", {}).values():
        if "Strategy" in layer:
            layer["Strategy"] = "distributed_arithmetic"
    out: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            graph, t = timed(lambda: build_graph(model, da_cfg, hw, Path(tmp) / "da"))
            costs = [lay.attributes.get("da_kernel_cost") for lay in graph.get_layers()]
            out["da_cost"] = float(sum(c for c in costs if c is not None))
            out["da_convert_s"] = t
        except Exception as exc:  # noqa: BLE001 - a strategy hls4ml refuses is a figure too
            out["da_error"] = f"{type(exc).__name__}: {exc}"[:80]
        graph = build_graph(model, meta["hls_config"], hw, Path(tmp) / "lat")
        _, out["csim_compile_s"] = timed(lambda: write_and_compile(graph))
        shape = tuple(int(d) for d in model.input_shape[1:])
        x = full_range_inputs(parse_type(meta["input_type"]), shape, n, seed=12)
        _, t = timed(lambda: csim_predict(graph, x))
        out["csim_samples_per_s"] = n / t
    return out


def bench_project(project: Path, args: argparse.Namespace) -> dict:
    row: dict = {"model": project.name}
    with tempfile.TemporaryDirectory(prefix="rtl-bench-") as tmp:
        work = Path(tmp) / project.name
        shutil.copytree(project, work, ignore=shutil.ignore_patterns("rtl", "hls", "ip"))
        summary = rtl_project(work, latency_cutoff=args.latency_cutoff, yosys=False)
        pm = json.loads((work / "rtl" / "port_map.json").read_text())
        if not args.no_yosys and pm["da4ml"]["cost_estimate"] <= args.yosys_max_cost:
            from flow.rtl.estimate import yosys_estimate

            summary["yosys"] = yosys_estimate(work / "rtl", pm["verilog"], pm["top"])
        row |= {"gen_s": summary["generate_seconds"], "latency": summary["latency_cycles"],
                "lint": summary["lint_clean"], "cost": pm["da4ml"]["cost_estimate"],
                "bits": f"{pm['input']['tdata_width']}->{pm['output']['tdata_width']}"}
        if "yosys" in summary:
            x = summary["yosys"]["xilinx"]
            row |= {"lut": x["LUT"], "ff": x["FF"], "yosys_s": summary["yosys"]["seconds"]["synth_xilinx"]}
        diffs = trace_check(work, pm.get("output_layer"), args.trace_samples)
        if diffs:
            raise SystemExit(f"{project.name}: traced netlist differs from the emulator on {diffs} outputs")
        row["trace_checked"] = args.trace_samples
        for sim, n in (("verilator", args.verilator_samples), ("icarus", args.icarus_samples)):
            s = sim_project(work, sim, samples=n, seed=5)
            if not s["ok"]:
                raise SystemExit(f"{project.name}: {sim} RTL differs from the emulator: {s['rtl_vs_emulator']}")
            row[sim] = {"build_s": s["simulator"]["build_seconds"], "sps": s["simulator"]["samples_per_second"],
                        "n": n}
    row |= hls4ml_figures(project, args.csim_samples)
    return row


def _f(v, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def print_table(rows: list[dict]) -> None:
    head = ("| model | in->out bits | RTL gen s | da4ml cost | latency (cycles) | trace == emulator | Yosys LUT | "
            "Yosys FF | Verilator build s | Verilator samples/s | Icarus build s | Icarus samples/s | "
            "hls4ml DA kernel cost | hls4ml C-sim compile s | hls4ml C-sim samples/s |")
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        v, i = r["verilator"], r["icarus"]
        da = _f(r.get("da_cost")) if "da_error" not in r else f"refused ({r['da_error']})"
        print(f"| {r['model']} | {r['bits']} | {r['gen_s']:.1f} | {_f(r['cost'])} | {r['latency']} | "
              f"0 of {r['trace_checked']:,} inputs | {_f(r.get('lut'))} | {_f(r.get('ff'))} | "
              f"{v['build_s']:.1f} | {v['sps']:,.0f} ({v['n']:,}, 0 bits differ) | {i['build_s']:.1f} | "
              f"{i['sps']:,.1f} ({i['n']:,}, 0 bits differ) | {da} | {r['csim_compile_s']:.1f} | "
              f"{r['csim_samples_per_s']:,.0f} |")
    print()
    print("| model | Verilator / Icarus samples/s | Verilator / hls4ml C-sim samples/s | "
          "our cost / hls4ml DA kernel cost |")
    print("|---|---|---|---|")
    for r in rows:
        ratio = r["cost"] / r["da_cost"] if r.get("da_cost") else None
        print(f"| {r['model']} | {r['verilator']['sps'] / r['icarus']['sps']:,.0f}x | "
              f"{r['verilator']['sps'] / r['csim_samples_per_s']:.2f}x | {_f(ratio, '{:.2f}x')} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--projects", nargs="+", help=f"project folders (default: hls_projects/{{{','.join(DEFAULT_PROJECTS)}}})")
    ap.add_argument("--verilator-samples", type=int, default=10000)
    ap.add_argument("--icarus-samples", type=int, default=300)
    ap.add_argument("--trace-samples", type=int, default=5000)
    ap.add_argument("--csim-samples", type=int, default=10000)
    ap.add_argument("--latency-cutoff", type=float, default=5.0)
    ap.add_argument("--no-yosys", action="store_true", help="skip the Yosys estimate (minutes on large models)")
    ap.add_argument("--yosys-max-cost", type=float, default=50000,
                    help="skip Yosys for netlists whose da4ml cost is above this (digits MLP: ~27,000, 8 min)")
    args = ap.parse_args()
    projects = [Path(p) for p in args.projects] if args.projects else \
        [ensure_project(n, ROOT / "hls_projects") for n in DEFAULT_PROJECTS]
    rows = []
    for p in projects:
        print(f"bench: {p} ...", file=sys.stderr)
        rows.append(bench_project(p, args))
    print_table(rows)


if __name__ == "__main__":
    main()
