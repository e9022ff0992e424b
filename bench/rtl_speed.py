"""Vendor-free RTL figures per model, side by side with hls4ml on the same model, in one run.

For each project (a copy in a temporary folder, so the project's own ``rtl/`` is left alone):

* our flow: RTL generation (da4ml trace + pipelining + Verilog + Verilator lint) seconds, da4ml's
  adder-cost estimate, latency (cycles), a trace check (da4ml's interpreter of the traced netlist ==
  the emulator on N full-range inputs, 0 differing outputs or the bench fails), Yosys ``synth_xilinx``
  LUT/FF, and cocotb simulation on Verilator and Icarus: build seconds and simulated samples per
  second (every output bit checked against the emulator; a mismatch fails the bench);
* the IP core's plain Verilog testbench (``hlsflow ip --simulators S --full-rate --verilator-opt O3``: every
  output word checked, no cocotb, valid on every cycle and no back-pressure) on Verilator (``--tb-samples``,
  g++ ``--tb-opt``) and Icarus (``--icarus-samples``): build seconds, samples/s and cycles/s of the run (a
  cocotb testbench pays a Python callback per clock, which bounds a streaming core's samples/s);
* hls4ml on the same model: the ``distributed_arithmetic`` strategy's adder cost (da4ml's estimate,
  summed over the Dense/Conv kernels hls4ml hands to it) and conversion seconds; the Latency-strategy
  C simulation: compile seconds and samples per second of ``predict`` on the same inputs.

Ratios at the end: Verilator vs Icarus samples/s, Verilator vs hls4ml C simulation samples/s, and our
whole-network cost vs hls4ml's kernel-only DA cost (ours also holds activations and requantization).

    python3 bench/rtl_speed.py [--projects P ...] [--verilator-samples 10000] [--icarus-samples 300]
                               [--trace-samples 5000] [--no-yosys] [--yosys-max-cost 50000]

Missing default projects are made first (``hlsflow run`` of the shipped digits specs, ``hlsflow
convert`` of ``../shared/models/qkeras_mnist_dense``), which takes a few minutes.

``--architectures`` measures the RTL architectures of issue 12 instead (one row per model and reuse factor):
the jet-tagging MLP (``../shared/models/KERAS_3layer``, 6-bit weights, as ``bench/emulator_speed.py``'s) at
``hlsflow rtl --reuse-factor`` 1, 4, 16, 64, the shipped digits CNN as a pixel stream, and the 28x28 MNIST-size
QKeras CNN of ``bench/emulator_speed.py`` as a pixel stream with its Dense tail at reuse factor 400: Yosys
``synth_xilinx`` LUT/FF/DSP/BRAM and seconds, latency and II, both simulators, hls4ml's DA kernel cost and
C-simulation speed; ``--plot FILE`` draws LUTs and throughput against the reuse factor.

    python3 bench/rtl_speed.py --architectures [--reuse 1 4 16 64] [--plot docs/rtl_reuse.png]
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
from flow.commands.rtl_command import rtl_project  # noqa: E402
from flow.sim.sim_project import sim_project  # noqa: E402
from flow.spec import Hardware  # noqa: E402
from flow.commands.verify import full_range_inputs  # noqa: E402

DEFAULT_PROJECTS = ["digits_mlp", "digits_cnn", "qkeras_mnist_dense"]
ARCH_PROJECTS = ["jet_mlp", "digits_cnn", "mnist_cnn"]  # --architectures


def _convert_with(model, cfg: dict, hw: Hardware, project: Path, path: Path) -> None:
    """``hlsflow convert`` of ``model`` (saved at ``path`` unless it is that file already) with hls4ml config ``cfg``."""
    import yaml

    from flow.commands.pipeline import convert_existing

    with tempfile.TemporaryDirectory() as tmp:
        cfg_file = Path(tmp) / "cfg.yml"
        cfg_file.write_text(yaml.safe_dump({"Backend": hw.backend, "IOType": hw.io_type, "HLSConfig": cfg}))
        if model is not None:
            model.save(path)
        convert_existing(path, project, config_path=cfg_file, samples=200)


def ensure_project(name: str, root: Path) -> Path:
    """``root/name``; the three default projects are made when missing."""
    project = root / name
    if (project / "project.json").is_file():
        return project
    print(f"bench: making {project} ...", file=sys.stderr)
    if name.startswith("digits_"):
        import yaml

        from flow.commands.pipeline import run

        spec = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text())
        spec["rtl"] = {"enabled": False}
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"{name}.yaml"
            path.write_text(yaml.safe_dump(spec))
            run(path, root)
    elif name == "qkeras_mnist_dense":
        from flow.commands.pipeline import convert_existing

        convert_existing(SHARED / "qkeras_mnist_dense.json", project, input_type="ap_fixed<16,6>", samples=200)
    elif name == "jet_mlp":
        import bench.emulator_speed as es

        _, _, cfg, hw, _ = es.jet_tagger()
        _convert_with(None, cfg, hw, project, SHARED / "KERAS_3layer.json")
    elif name == "mnist_cnn":
        import bench.emulator_speed as es

        _, model, cfg, hw, _ = es.mnist_cnn()
        cfg["LayerName"]["d1"]["ReuseFactor"] = 400  # the Dense tail: one product per output per cycle
        root.mkdir(parents=True, exist_ok=True)
        _convert_with(model, cfg, hw, project, root / "mnist_cnn.h5")
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


def bench_project(project: Path, args: argparse.Namespace, reuse: int | None = None,
                  hls4ml: dict | None = None) -> dict:
    """One row: ``reuse`` is ``hlsflow rtl --reuse-factor`` (None: the project's own); ``hls4ml``: its figures when
    already measured for this project."""
    row: dict = {"model": project.name, "reuse": reuse}
    with tempfile.TemporaryDirectory(prefix="rtl-bench-") as tmp:
        work = Path(tmp) / project.name
        shutil.copytree(project, work, ignore=shutil.ignore_patterns("rtl", "hls", "ip"))
        summary = rtl_project(work, latency_cutoff=args.latency_cutoff, yosys=False, reuse_factor=reuse)
        pm = json.loads((work / "rtl" / "port_map.json").read_text())
        if not args.no_yosys and (pm["architecture"] != "unrolled" or pm["da4ml"]["cost_estimate"] <= args.yosys_max_cost):
            from flow.physical.estimate import yosys_estimate

            summary["yosys"] = yosys_estimate(work / "rtl", pm["verilog"], pm["top"])
        row |= {"gen_s": summary["generate_seconds"], "latency": summary["latency_cycles"],
                "ii": summary["initiation_interval"], "architecture": pm["architecture"],
                "lint": summary["lint_clean"], "cost": pm["da4ml"]["cost_estimate"],
                "bits": f"{pm['input']['tdata_width']}->{pm['output']['tdata_width']}",
                "reuse_used": {k: v["used"] for k, v in pm.get("reuse_factors", {}).items()}}
        if "yosys" in summary:
            x = summary["yosys"]["xilinx"]
            row |= {"lut": x["LUT"], "ff": x["FF"], "dsp": x["DSP"], "bram": x["BRAM"],
                    "yosys_s": summary["yosys"]["seconds"]["synth_xilinx"]}
        if pm["architecture"] == "unrolled":
            diffs = trace_check(work, pm.get("output_layer"), args.trace_samples)
            if diffs:
                raise SystemExit(f"{project.name}: traced netlist differs from the emulator on {diffs} outputs")
            row["trace_checked"] = args.trace_samples
        else:  # the composition gate rtl_project ran: the kernels composed as the units compose them
            row["trace_checked"] = pm["equivalence"]["kernels_composed_vs_emulator"]["samples"]
        for sim, n in (("verilator", args.verilator_samples), ("icarus", args.icarus_samples)):
            s = sim_project(work, sim, samples=n, seed=5)
            if not s["ok"]:
                raise SystemExit(f"{project.name}: {sim} RTL differs from the emulator: {s['rtl_vs_emulator']}")
            if s["latency_cycles"]["measured"] != pm["latency_cycles"] or abs(
                    s["throughput_samples_per_cycle"] * pm["initiation_interval"] - 1) > 1e-9:
                raise SystemExit(f"{project.name}: {sim} measured latency/throughput {s['latency_cycles']} / "
                                 f"{s['throughput_samples_per_cycle']} differ from the declared ones")
            row[sim] = {"build_s": s["simulator"]["build_seconds"], "sps": s["simulator"]["samples_per_second"],
                        "n": n}
        row["plain_tb"] = plain_testbenches(work, args)
    row |= hls4ml if hls4ml is not None else hls4ml_figures(project, args.csim_samples)
    return row


def plain_testbenches(project: Path, args: argparse.Namespace) -> dict:
    """The IP core's plain Verilog testbench (``hlsflow ip --full-rate --verilator-opt O3``: every output word
    against the emulator's, no cocotb, valid on every cycle) on Verilator and Icarus: build seconds and
    samples/s of the run."""
    from flow.ip.package import ip_project

    out = {}
    for sim, n in (("verilator", args.tb_samples), ("icarus", args.icarus_samples)):
        summary = ip_project(project, project / f"ip_{sim}", vectors=n, seed=5, simulators=[sim], full_rate=True,
                             verilator_opt=args.tb_opt)
        run = summary["testbenches"].get(sim)
        if run is None or not run["passed"]:
            raise SystemExit(f"{project.name}: plain testbench on {sim}: {run['line'] if run else 'not run'}")
        out[sim] = {"build_s": run["timing"]["build_seconds"], "sps": run["timing"]["samples_per_second"],
                    "cps": run["timing"].get("cycles_per_second"), "n": n}
    return out


def _tb(r: dict) -> str:
    """The plain-testbench cells: Verilator build s | samples/s | Icarus build s | samples/s."""
    v, i = r["plain_tb"]["verilator"], r["plain_tb"]["icarus"]
    return (f"{v['build_s']:.1f} | {v['sps']:,.0f} ({v['n']:,}; {_f(v['cps'])} cycles/s) | {i['build_s']:.1f} | "
            f"{i['sps']:,.1f} ({i['n']:,}) |")


TB_HEAD = ("plain TB at full rate: Verilator build s | Verilator samples/s | Icarus build s | Icarus samples/s |")


def _f(v, fmt: str = "{:,.0f}") -> str:
    return "-" if v is None else fmt.format(v)


def print_table(rows: list[dict]) -> None:
    head = ("| model | in->out bits | RTL gen s | da4ml cost | latency (cycles) | trace == emulator | Yosys LUT | "
            "Yosys FF | Verilator build s | Verilator samples/s | Icarus build s | Icarus samples/s | "
            "hls4ml DA kernel cost | hls4ml C-sim compile s | hls4ml C-sim samples/s | " + TB_HEAD)
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        v, i = r["verilator"], r["icarus"]
        da = _f(r.get("da_cost")) if "da_error" not in r else f"refused ({r['da_error']})"
        print(f"| {r['model']} | {r['bits']} | {r['gen_s']:.1f} | {_f(r['cost'])} | {r['latency']} | "
              f"0 of {r['trace_checked']:,} inputs | {_f(r.get('lut'))} | {_f(r.get('ff'))} | "
              f"{v['build_s']:.1f} | {v['sps']:,.0f} ({v['n']:,}, 0 bits differ) | {i['build_s']:.1f} | "
              f"{i['sps']:,.1f} ({i['n']:,}, 0 bits differ) | {da} | {r['csim_compile_s']:.1f} | "
              f"{r['csim_samples_per_s']:,.0f} | {_tb(r)}")
    print()
    print("| model | Verilator / Icarus samples/s | Verilator / hls4ml C-sim samples/s | "
          "our cost / hls4ml DA kernel cost |")
    print("|---|---|---|---|")
    for r in rows:
        ratio = r["cost"] / r["da_cost"] if r.get("da_cost") else None
        print(f"| {r['model']} | {r['verilator']['sps'] / r['icarus']['sps']:,.0f}x | "
              f"{r['verilator']['sps'] / r['csim_samples_per_s']:.2f}x | {_f(ratio, '{:.2f}x')} |")


def print_architectures(rows: list[dict]) -> None:
    """The issue-12 table: one row per model and reuse factor, then LUT ratios against the unrolled row."""
    head = ("| model | architecture | reuse factor (used per layer) | latency (cycles) | II (cycles) | Yosys LUT | FF | "
            "DSP | BRAM | Yosys s | RTL gen s | kernels == emulator | Verilator build s | Verilator samples/s | "
            "Icarus build s | Icarus samples/s | kernel cost (da4ml) | hls4ml DA kernel cost | hls4ml C-sim samples/s | "
            + TB_HEAD)
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        v, i = r["verilator"], r["icarus"]
        used = ", ".join(f"{k} {u}" for k, u in r["reuse_used"].items()) or "-"
        da = _f(r.get("da_cost")) if "da_error" not in r else "refused"
        print(f"| {r['model']} | {r['architecture']} | {r['reuse'] or 'project'} ({used}) | {r['latency']} | {r['ii']} | "
              f"{_f(r.get('lut'))} | {_f(r.get('ff'))} | {_f(r.get('dsp'))} | {_f(r.get('bram'))} | "
              f"{_f(r.get('yosys_s'), '{:.0f}')} | {r['gen_s']:.1f} | 0 of {r['trace_checked']:,} inputs differ | "
              f"{v['build_s']:.1f} | {v['sps']:,.0f} ({v['n']:,}, 0 bits differ) | {i['build_s']:.1f} | "
              f"{i['sps']:,.1f} ({i['n']:,}, 0 bits differ) | {_f(r['cost'])} | {da} | {_f(r.get('csim_samples_per_s'))} | "
              f"{_tb(r)}")
    print()
    print("| model | reuse factor | LUT / LUT at reuse factor 1 | throughput (samples/cycle) | our kernel cost / hls4ml DA |")
    print("|---|---|---|---|---|")
    base = {r["model"]: r.get("lut") for r in rows if r["reuse"] == 1}
    for r in rows:
        ratio = r["lut"] / base[r["model"]] if base.get(r["model"]) and r.get("lut") else None
        da = r["cost"] / r["da_cost"] if r.get("da_cost") else None
        print(f"| {r['model']} | {r['reuse'] or 'project'} | {_f(ratio, '{:.3f}')} | {1 / r['ii']:.4g} | "
              f"{_f(da, '{:.2f}x')} |")


def plot_reuse(rows: list[dict], path: Path) -> None:
    """LUTs (and DSPs) and throughput against the reuse factor, one line per model with several rows."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.8))
    for model in sorted({r["model"] for r in rows}):
        rs = sorted((r for r in rows if r["model"] == model and r["reuse"] and r.get("lut")), key=lambda r: r["reuse"])
        if len(rs) < 2:
            continue
        x = [r["reuse"] for r in rs]
        a.plot(x, [r["lut"] for r in rs], "o-", label=f"{model} LUT")
        a.plot(x, [r["dsp"] for r in rs], "s--", label=f"{model} DSP")
        b.plot(x, [1 / r["ii"] for r in rs], "o-", label=model)
    for ax, title in ((a, "Yosys synth_xilinx"), (b, "throughput (samples per clock cycle)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("reuse factor")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main_architectures(args: argparse.Namespace) -> None:
    rows = []
    root = ROOT / "hls_projects"
    for name in args.projects or ARCH_PROJECTS:
        project = ensure_project(name, root) if "/" not in name else Path(name)
        hls = {} if args.no_hls4ml else hls4ml_figures(project, args.csim_samples)
        for reuse in (args.reuse if project.name == "jet_mlp" else [None]):  # the CNNs: their own factors
            print(f"bench: {project} reuse factor {reuse} ...", file=sys.stderr)
            rows.append(bench_project(project, args, reuse, hls))
            print(json.dumps(rows[-1], default=str), file=sys.stderr)
    print_architectures(rows)
    if args.plot:
        plot_reuse(rows, args.plot)
        print(f"\nplot: {args.plot}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--projects", nargs="+", help=f"project folders (default: hls_projects/{{{','.join(DEFAULT_PROJECTS)}}})")
    ap.add_argument("--verilator-samples", type=int, default=10000)
    ap.add_argument("--icarus-samples", type=int, default=300, help="samples on Icarus (cocotb and the plain testbench)")
    ap.add_argument("--tb-samples", type=int, default=2000, help="vectors of the plain testbench on Verilator")
    ap.add_argument("--tb-opt", default="-O3", help="g++ optimisation of the plain testbench's Verilator model "
                                                    "(write --tb-opt=-O1)")
    ap.add_argument("--trace-samples", type=int, default=5000)
    ap.add_argument("--csim-samples", type=int, default=10000)
    ap.add_argument("--latency-cutoff", type=float, default=5.0)
    ap.add_argument("--no-yosys", action="store_true", help="skip the Yosys estimate (minutes on large models)")
    ap.add_argument("--yosys-max-cost", type=float, default=50000,
                    help="skip Yosys for netlists whose da4ml cost is above this (digits MLP: ~27,000, 8 min)")
    ap.add_argument("--no-hls4ml", action="store_true", help="--architectures: skip hls4ml's DA cost and C simulation")
    ap.add_argument("--architectures", action="store_true", help="the table of issue 12 (see the module docstring)")
    ap.add_argument("--reuse", type=int, nargs="+", default=[1, 4, 16, 64], help="reuse factors (--architectures)")
    ap.add_argument("--plot", type=Path, help="--architectures: PNG of LUTs and throughput against the reuse factor")
    args = ap.parse_args()
    if args.architectures:
        main_architectures(args)
        return
    projects = [Path(p) for p in args.projects] if args.projects else \
        [ensure_project(n, ROOT / "hls_projects") for n in DEFAULT_PROJECTS]
    rows = []
    for p in projects:
        print(f"bench: {p} ...", file=sys.stderr)
        rows.append(bench_project(p, args))
    print_table(rows)


if __name__ == "__main__":
    main()
