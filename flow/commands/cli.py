"""``hlsflow`` command line: one subcommand per job; errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

from flow import __version__
from flow.core.errors import FlowError, NotBitExact, ToolMissing
from flow.core.outputs import check_writable_parent
from flow.core.signals import exit_code, interruption, terminate_like_interrupt
from flow.core.simulators import SIMULATORS
from flow.core.targets import FPGA_PARTS
from flow.core.tools import LIBRARIES
from flow.hls.compare import skip_reason
from flow.hls.csim_build import DEFAULT_TIMEOUT_S as DEFAULT_CSIM_TIMEOUT_S
from flow.ip.testbench import TESTBENCH_SIMULATORS

EXIT_NOT_BIT_EXACT = 1
EXIT_BAD_INPUT = 2
EXIT_TOOL_MISSING = 3
EXIT_INTERNAL = 4
PROJECT_COMMANDS = ("verify", "emulate", "rtl", "sim", "ip")  # take an existing project folder (project.json)
INPUT_FILES = {  # per command: (argument, what it is) of the files it reads
    "run": (("spec", "spec file"),),
    "sweep": (("sweep", "sweep file"),),
    "convert": (("model", "model file"), ("weights", "weights file"), ("config", "config file"),
                ("custom_objects", "custom-objects file"), ("torch_module", "PyTorch module file")),
    "emulate": (("input", "input file"),),
}
TRACEBACK_VAR = "HLSFLOW_TRACEBACK"  # set to 1: an internal error shows its traceback instead of one line


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, ``hlsflow COMMAND: error: ...``, exit 2 (no usage block)."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, low: float, inclusive: bool = True, high: float | None = None) -> Callable[[str], Any]:
    """An argparse type: ``kind`` (int or float) within [low, high] (``inclusive=False``: above ``low``), finite."""

    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        ok = math.isfinite(value) and (value >= low if inclusive else value > low) and (high is None or value <= high)
        if not ok:
            bound = f">= {low}" if inclusive else f"> {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}" + (f" and <= {high}" if high is not None else "")
                                             + f", got {text}")
        return value

    return parse


COUNT = _number(int, 1)          # samples, vectors, workers, reuse factor: at least 1
SEED = _number(int, 0)           # numpy seeds are non-negative
INDEX = _number(int, 0)          # a trial number
NANOSECONDS = _number(float, 0, inclusive=False)  # a clock period
CUTOFF = _number(float, 0)       # a da4ml latency cutoff (0 = combinational)
FRACTION = _number(float, 0, high=1)  # an accuracy
SECONDS = _number(float, 0, inclusive=False)  # a time budget


CSIM_TIMEOUT_HELP = (f"seconds the C-simulation build (g++) may take (default {DEFAULT_CSIM_TIMEOUT_S:g}); past them it is "
                     "stopped, the flow goes on with the emulator, and the report says the C-simulation check is "
                     "pending until `hlsflow verify PROJECT` completes it")
FORCE_HELP = ("replace an existing output that hlsflow did not make (without it, only hlsflow's own projects, RTL, "
              "IP and sweep folders are replaced; never the working directory or a folder holding an input)")


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog="hlsflow", description=__doc__)
    p.add_argument("--version", action="version", version=f"hlsflow {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train (float + QKeras QAT), convert with hls4ml, C-simulate, report")
    r.add_argument("spec", type=Path, help="flow spec YAML, e.g. models/digits_mlp.yaml")
    r.add_argument("--out", type=Path, default=Path("hls_projects"), help="output root (default: hls_projects)")
    r.add_argument("--force", action="store_true", help=FORCE_HELP)
    r.add_argument("--csim-timeout", type=SECONDS, default=DEFAULT_CSIM_TIMEOUT_S, metavar="SECONDS",
                   help=CSIM_TIMEOUT_HELP)

    from flow.hls.model_files import SOURCES

    c = sub.add_parser("convert", help="convert an existing model (Keras/QKeras/HGQ, ONNX/QONNX, PyTorch) to an HLS "
                                       "project and C-simulate it",
                       description="Model formats: " + "; ".join(f"{k}: {v}" for k, v in SOURCES.items()))
    c.add_argument("model", type=Path, help=".h5, .keras, Keras .json (weights from --weights or <stem>_weights.h5), "
                                            ".onnx (float ONNX or QONNX), or a PyTorch .pt/.pth")
    c.add_argument("--weights", type=Path, help="weights .h5 for a Keras .json model")
    c.add_argument("--config", type=Path, help="hls4ml config YAML (HLSConfig, Backend, Part, IOType, ...)")
    c.add_argument("--out", type=Path, help="project folder (default: hls_projects/<model name>)")
    c.add_argument("--force", action="store_true", help=FORCE_HELP)
    c.add_argument("--precision", help="default precision for layers without QKeras quantizers, e.g. 'ap_fixed<16,6>'")
    c.add_argument("--input-type", help="input type, e.g. 'ap_fixed<16,6>' (inputs are quantized to it)")
    c.add_argument("--backend", choices=("Vitis", "Vivado", "Catapult"), default="Vitis")
    c.add_argument("--io-type", choices=("io_parallel", "io_stream"), default="io_parallel")
    c.add_argument("--samples", type=COUNT, default=1000, help="random inputs for the C-sim check (default 1000)")
    c.add_argument("--csim-timeout", type=SECONDS, default=DEFAULT_CSIM_TIMEOUT_S, metavar="SECONDS",
                   help=CSIM_TIMEOUT_HELP)
    c.add_argument("--custom-objects", type=Path, metavar="MODULE.py",
                   help="Python file defining the model's own layers/objects: a module-level `custom_objects` "
                        "dict, or classes registered with Keras's register_keras_serializable; copied into the project")
    c.add_argument("--input-shape", metavar="C,H,W",
                   help="PyTorch models: one sample's shape as the module takes it (channels first), e.g. 16 or 1,28,28")
    c.add_argument("--torch-module", type=Path, metavar="MODULE.py",
                   help="PyTorch state dicts: Python file with a module-level `model` (torch.nn.Module) or "
                        "`build_model()`; copied into the project")

    e = sub.add_parser("emulate", help="bit-exact numpy emulation of a project on inputs from a .npy file")
    e.add_argument("project", type=Path, help="hls_projects/<name>")
    e.add_argument("--input", type=Path, required=True, help=".npy inputs, batch first (float; quantized to the input type)")
    e.add_argument("--output", type=Path, required=True, help=".npy file for the outputs (float64, batch first)")
    e.add_argument("--trace", action="store_true",
                   help="also write every layer's output (<output>.trace.npz) and a range plot (<output>.layers.png)")
    e.add_argument("--force", action="store_true",
                   help="replace existing output files (without it, emulate never overwrites a file; never the --input)")

    v = sub.add_parser("verify", help="emulator vs hls4ml C simulation (and the model) on N inputs; exit 1 on any difference")
    v.add_argument("project", type=Path, help="hls_projects/<name>")
    v.add_argument("--samples", type=COUNT, default=1000, help="inputs: test data first, then random full-range (default 1000)")
    v.add_argument("--seed", type=SEED, default=0)
    v.add_argument("--write-exact-config", type=Path, metavar="FILE.yml",
                   help="write an hls4ml config with every precision from the QKeras quantizers and exact accumulators")
    v.add_argument("--force", action="store_true",
                   help="replace an existing --write-exact-config file that a previous run did not write")
    v.add_argument("--allow-skip", action="store_true",
                   help="accept a project the emulator cannot run (a layer it has no description for): the C-sim "
                        "vs model check alone decides; or a C simulation not built within --csim-timeout: the "
                        "emulator vs model check alone decides (default: exit 1)")
    v.add_argument("--csim-timeout", type=SECONDS, default=None, metavar="SECONDS",
                   help="seconds the C-simulation build (g++) may take (default: no limit); past them the check is "
                        "pending and verify exits 1 unless --allow-skip")
    v.add_argument("--error-bound", metavar="B",
                   help="float models: error bound for the per-layer precision advice, absolute ('0.01') or in LSBs "
                        "of the output type ('2lsb'); default 1lsb")

    from flow.rtl.emit import EMITTERS
    from flow.spec import ARCHITECTURES

    rt = sub.add_parser("rtl", help="vendor-free Verilog (da4ml) with an AXI4-Stream wrapper and lint; "
                                    "FPGA/ASIC timing, area and power on request")
    rt.add_argument("project", type=Path, help="hls_projects/<name>")
    rt.add_argument("--force", action="store_true", help="replace PROJECT/rtl even if it is not an hlsflow RTL folder")
    rt.add_argument("--latency-cutoff", type=CUTOFF, default=None,
                    help="explicit da4ml pipelining budget per stage (its logic-delay units; 0 = one combinational "
                         "stage); default: the cut that meets the clock period on the timing target")
    rt.add_argument("--clock-period", type=NANOSECONDS, help="clock period in ns (default: the project's hardware.clock_period)")
    rt.add_argument("--fpga", choices=sorted(FPGA_PARTS),
                    help="place and route on this part (Yosys synth_ecp5 + nextpnr-ecp5): Fmax, slack, utilisation")
    rt.add_argument("--asic", choices=sorted(LIBRARIES),
                    help="synthesize to this cell library (Yosys + OpenSTA): area, critical path, WNS/TNS, power, nJ/inference")
    rt.add_argument("--no-route", action="store_true", help="with --fpga: stop after placement (post-place Fmax estimate)")
    rt.add_argument("--upto", help="stop at this layer (e.g. the logits before a softmax); default: the whole graph")
    rt.add_argument("--yosys", action="store_true", help="also the Yosys generic synth / synth_xilinx cell counts (minutes)")
    rt.add_argument("--no-yosys", action="store_true", help=argparse.SUPPRESS)  # the default since physical figures
    rt.add_argument("--check-samples", type=COUNT, default=2000,
                    help="full-range inputs on which the traced netlist must equal the emulator before any RTL is "
                         "written (default 2000); exit 1 on a difference")
    rt.add_argument("--reuse-factor", type=COUNT, metavar="R",
                    help="reuse factor of every Dense/Conv layer (overrides the project's hardware.reuse_factor and "
                         "per-layer ReuseFactor): about n_in*n_out/R shared multipliers, a new sample every R cycles")
    rt.add_argument("--architecture", choices=ARCHITECTURES, default="auto",
                    help="auto (default): stream for io_stream CNNs (line buffers, one pixel per beat), folded when a "
                         "reuse factor is above 1, else unrolled (one sample per clock); with --max-luts or --fpga: "
                         "the smallest reuse factor estimated to fit that budget")
    rt.add_argument("--max-luts", type=COUNT, metavar="N",
                    help="LUT budget (Yosys synth_xilinx LUTs, as estimated before tracing): with --architecture auto "
                         "and no --reuse-factor, fold to the smallest reuse factor estimated to fit (exit 2 naming "
                         "the cost when none does); an explicit architecture is kept, with a warning. Default with "
                         "--fpga: that part's LUTs")
    rt.add_argument("--emitter", choices=EMITTERS, default=EMITTERS[0],
                    help="stage modules as one always block per stage, every op inline (levelized, the default: "
                         "fast on Icarus) or da4ml's own generator (one module instance per op)")

    sm = sub.add_parser("sim", help="cocotb simulation of PROJECT/rtl: every output bit vs the emulator; exit 1 on any difference")
    sm.add_argument("project", type=Path, help="hls_projects/<name> (with rtl/ from `hlsflow rtl`)")
    sm.add_argument("--simulator", choices=SIMULATORS, required=True)
    sm.add_argument("--samples", type=COUNT, default=2000, help="inputs: test data first, then random full-range (default 2000)")
    sm.add_argument("--seed", type=SEED, default=0, help="seed of the random inputs, gaps and back-pressure")

    ip = sub.add_parser("ip", help="self-contained IP-core folder: RTL, FuseSoC core, testbench, vectors, datasheet; "
                                   "exit 1 if its testbench fails")
    ip.add_argument("project", type=Path, help="hls_projects/<name> (with rtl/ from `hlsflow rtl`)")
    ip.add_argument("--out", type=Path, help="IP folder (default: PROJECT/ip); an existing folder is replaced only "
                                             "if it is a previous hlsflow IP folder (or with --force)")
    ip.add_argument("--force", action="store_true", help=FORCE_HELP)
    ip.add_argument("--vectors", type=COUNT, default=1000,
                    help="test vectors: test data first, then random full-range (default 1000)")
    ip.add_argument("--seed", type=SEED, default=0, help="seed of the random vectors")
    ip.add_argument("--simulators", nargs="+", default=list(TESTBENCH_SIMULATORS[:1]), metavar="SIM",
                    help=f"run the plain testbench on these: {', '.join(TESTBENCH_SIMULATORS)} (default "
                         f"{TESTBENCH_SIMULATORS[0]}); the summary states build and run seconds and samples/s of each")
    ip.add_argument("--full-rate", action="store_true",
                    help="run the testbench with +full_rate: valid on every cycle, no back-pressure (throughput)")
    ip.add_argument("--verilator-opt", default="O1", choices=["O0", "O1", "O2", "O3"],
                    help="g++ optimisation of the Verilator model (default O1, as the FuseSoC core's; O3 builds "
                         "slower and runs faster)")

    s = sub.add_parser("synth", help="run the vendor HLS tool on a project, if it is installed")
    s.add_argument("project", type=Path, help="hls_projects/<name> (or its hls/ folder)")

    w = sub.add_parser("sweep", help="bit-width sweep: many points in parallel, resumable, Pareto report")
    w.add_argument("sweep", type=Path, help="sweep YAML, e.g. models/digits_sweep.yaml")
    w.add_argument("--out", type=Path, default=Path("sweeps"), help="output root (default: sweeps)")
    w.add_argument("--force", action="store_true", help=FORCE_HELP)
    w.add_argument("--storage", help="database URL shared by workers, e.g. postgresql://user@host/db "
                                     "(default: SQLite file <out>/<name>/sweep.db)")
    w.add_argument("--workers", type=COUNT, default=1, help="local worker processes (default 1)")
    w.add_argument("--retry-failed", action="store_true", help="run points that failed with an error again")
    w.add_argument("--report-only", action="store_true", help="do not run points; report what is stored")
    w.add_argument("--export-best", type=Path, metavar="OUT.yaml",
                   help="write the chosen point as a spec for `hlsflow run`: the lowest-BOPs point within "
                        "1 point of accuracy of the best (or see --min-accuracy, --trial)")
    w.add_argument("--min-accuracy", type=FRACTION, help="with --export-best: lowest accuracy allowed (0..1)")
    w.add_argument("--trial", type=INDEX, help="with --export-best: export this trial's point")
    w.add_argument("--rtl-cost", choices=("none", "pareto", "all"), default="none",
                   help="add RTL cost figures for these points: latency (cycles, ns), ECP5-85k LUT4/FF/Fmax after "
                        "place-and-route, OSU 0.18 um area/power/nJ per inference (minutes per point)")
    w.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def _emulate(args: argparse.Namespace) -> int:
    import numpy as np

    from flow.arith.emulate import emulate
    from flow.arith.types import parse_type, quantize
    from flow.core.outputs import claim_file
    from flow.core.staging import scratch_dir, written_atomically
    from flow.hls.project import rebuild

    if not args.input.is_file():
        raise FlowError(f"{args.input}: input file not found")
    outputs = [args.output]
    if args.trace:
        stem = args.output.with_suffix("")
        outputs += [Path(f"{stem}.trace.npz"), Path(f"{stem}.layers.png")]
    for path in outputs:
        claim_file(path, args.force, inputs=(args.input,), shown=f"--output {path}" if path == args.output else None)
    try:
        x = np.load(args.input, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise FlowError(f"{args.input}: cannot read .npy: {exc}") from None
    with scratch_dir("emulate") as tmp:
        model, graph, meta = rebuild(args.project, Path(tmp) / "hls")
    shape = tuple(int(d) for d in model.input_shape[1:])
    if x.ndim < 1 or int(np.prod(x.shape[1:])) != int(np.prod(shape)):
        raise FlowError(f"{args.input}: samples have shape {tuple(x.shape[1:])}, the model takes {shape}")
    t = parse_type(meta["input_type"])
    xq = quantize(x.reshape(len(x), *shape), t)
    changed = int(np.sum(xq != x.reshape(xq.shape)))
    if changed:
        print(f"hlsflow emulate: {changed} input values were not representable in {t} and were quantized",
              file=sys.stderr)
    result = emulate(graph, xq, trace=args.trace)
    with written_atomically(args.output) as tmp, open(tmp, "wb") as f:
        np.save(f, result.outputs)
    rows = [{"layer": k, "overflows": v} for k, v in result.overflows.items()]
    if args.trace:
        from flow.commands.plots import plot_layer_ranges

        with written_atomically(outputs[1]) as tmp, open(tmp, "wb") as f:
            np.savez(f, **{t.name: t.values for t in result.traces})
        with written_atomically(outputs[2]) as tmp:
            plot_layer_ranges(result.traces, tmp)
        rows = [{"layer": t.name, "type": t.type, "overflows": t.n_overflow, "observed": [t.observed_min, t.observed_max],
                 "type_range": [t.type_min, t.type_max]} for t in result.traces]
    print(json.dumps({"outputs": str(args.output), "samples": len(x), "layers": rows}, indent=2))
    return 0


def _sim(args: argparse.Namespace) -> int:
    from flow.sim.sim_project import sim_project

    summary = sim_project(args.project, args.simulator, args.samples, args.seed)
    print(json.dumps(summary, indent=2, default=str))
    return 0 if summary["ok"] else 1


def _ip(args: argparse.Namespace) -> int:
    from flow.ip.package import ip_project

    summary = ip_project(args.project, args.out, args.vectors, args.seed, args.simulators, args.full_rate,
                         f"-{args.verilator_opt}", force=args.force)
    print(json.dumps(summary, indent=2, default=str))
    return 0 if summary["ok"] else 1


def _one_line(exc: Exception | str) -> str:
    """An error message on one line (a library's message may span several)."""
    return " | ".join(line.strip() for line in str(exc).splitlines() if line.strip())


def _frontend_for(args: argparse.Namespace) -> str:
    """The front end (:mod:`flow.keras.frontends`) the command's model needs."""
    from flow.keras import frontends

    if args.command == "convert":
        return frontends.detect(args.model) if args.model.is_file() else frontends.current().name
    if args.command in ("verify", "emulate", "rtl", "sim", "ip"):
        return frontends.project_frontend(args.project)
    return "keras2"  # run, sweep (QKeras training), synth (no model)


def check_paths(args: argparse.Namespace) -> None:
    """What the command line names, checked before any work: a project command's folder is an hlsflow project
    (:func:`flow.hls.project.load_meta`); where the command writes (``--out``, ``--output``, ``PROJECT/rtl``),
    the nearest existing folder is a folder this user can write into."""
    for attr, what in INPUT_FILES.get(args.command, ()):
        file = getattr(args, attr)
        if file is not None and not file.is_file():
            raise FlowError(f"{file}: {what} " + ("is a folder, not a file" if file.is_dir() else "not found"))
    if args.command in PROJECT_COMMANDS:
        from flow.hls.project import load_meta

        load_meta(args.project)
    targets = [("--out", getattr(args, "out", None))]
    for flag in ("--output", "--write-exact-config", "--export-best"):  # files the command writes
        file = getattr(args, flag[2:].replace("-", "_"), None)
        if file is not None:
            if file.is_dir():
                raise FlowError(f"{flag} {file}: is a folder; give a file name")
            targets.append((flag, file))
    if args.command in ("rtl", "sim"):
        targets = [("PROJECT", args.project / "rtl")]
    elif args.command == "ip" and args.out is None:
        targets = [("PROJECT", args.project / "ip")]
    for flag, out in targets:
        if out is not None:  # run and sweep write OUT/<name>: OUT itself must be (or become) a writable folder
            target = Path(out) / "<name>" if args.command in ("run", "sweep") and flag == "--out" else Path(out)
            check_writable_parent(target.resolve(), f"{flag} {out}")


def _os_error_line(exc: OSError) -> str:
    """An OSError as ``PATH: reason`` (what the user can act on), without Python's class name."""
    where = exc.filename if exc.filename is not None else ""
    reason = exc.strerror or str(exc)
    return f"{where}: {reason}" if where else reason


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args, extra = build_parser().parse_known_args(argv)
    except SystemExit as exc:  # a bad argument (one line, exit 2), --help or --version (exit 0)
        return exc.code if isinstance(exc.code, int) else EXIT_BAD_INPUT
    if extra:
        print(f"hlsflow {args.command}: error: unrecognized arguments: {' '.join(extra)} "
              f"(see hlsflow {args.command} --help)", file=sys.stderr)
        return EXIT_BAD_INPUT
    with terminate_like_interrupt():
        return _main(args, argv)


def _main(args: argparse.Namespace, argv: list[str]) -> int:
    try:
        from flow.core import procs
        from flow.keras import frontends

        check_paths(args)
        procs.guard_children()
        frontend = _frontend_for(args)
        if frontend != frontends.current().name:
            if frontends.current().name != "keras2":
                raise FlowError(f"this model needs the {frontend} front end, but this worker runs "
                                f"{frontends.current().name}")
            return frontends.run_in_worker(frontend, argv)
        if args.command == "run":
            from flow.commands.pipeline import pending_line, run

            report = run(args.spec, args.out, force=args.force, csim_timeout=args.csim_timeout)
            out = Path(args.out) / report["name"]
            pending = pending_line("run", report)
            exact = {"csim_vs_qkeras": report["csim_vs_qkeras"].get("exact_fraction", "pending"),
                     "emulator_vs_csim": report["emulator_vs_csim"].get("exact_fraction", "pending")}
            if pending is not None:
                exact["emulator_vs_qkeras"] = report["emulator_vs_qkeras"].get("exact_fraction")
            print(json.dumps({"project": str(out), "accuracy": report["accuracy"], "exact_fraction": exact}, indent=2))
            print(f"report: {out / 'report.md'}", file=sys.stderr)
            if pending is not None:
                print(pending, file=sys.stderr)
            sims = (report.get("rtl") or {}).get("simulation", {})
            if sims:
                print(json.dumps({"rtl": {k: {"mismatching_samples": v["rtl_vs_emulator"]["mismatching_samples"],
                                              "ok": v["ok"]} for k, v in sims.items()}}, indent=2))
            if any(not v["ok"] for v in sims.values()):
                print("hlsflow run: the RTL differs from the emulator (see report.md); exit 1", file=sys.stderr)
                return 1
            if min((v for v in exact.values() if isinstance(v, float)), default=1.0) < 1.0:
                print("hlsflow run: outputs differ between stages (see report.md); exit 1", file=sys.stderr)
                return 1
            return 0
        if args.command == "convert":
            from flow.commands.pipeline import convert_existing, pending_line
            from flow.spec import Hardware

            out = args.out or Path("hls_projects") / args.model.stem
            report = convert_existing(args.model, out, args.config, args.weights, args.precision, args.input_type,
                                      Hardware(backend=args.backend, io_type=args.io_type), args.samples,
                                      custom_objects=args.custom_objects, input_shape=args.input_shape,
                                      module_file=args.torch_module, force=args.force, csim_timeout=args.csim_timeout)
            print(json.dumps({"project": str(out), "csim_vs_keras": report["csim_vs_keras"]}
                             | ({"emulator_vs_keras": report["emulator_vs_keras"]} if "emulator_vs_keras" in report
                                else {}), indent=2))
            pending = pending_line("convert", report)
            if pending is not None:
                print(pending, file=sys.stderr)
            reason = skip_reason(report["emulator_vs_csim"])
            if reason is not None:
                print(f"hlsflow convert: warning: {args.model}: emulator not run: {reason}; `hlsflow verify` fails on "
                      "this project unless --allow-skip", file=sys.stderr)
            return 0
        if args.command == "emulate":
            return _emulate(args)
        if args.command == "verify":
            from flow.commands.verify import verify

            summary = verify(args.project, args.samples, args.seed, args.write_exact_config, args.error_bound,
                             force=args.force, allow_skip=args.allow_skip, csim_timeout=args.csim_timeout)
            print(json.dumps(summary, indent=2))
            if "pending" in summary["emulator_vs_csim"]:
                print(f"hlsflow verify: {args.project}: C simulation pending: g++ {summary['csim']['opt_level']} did "
                      f"not finish within {args.csim_timeout:g} s and was stopped; "
                      + ("accepted (--allow-skip): the emulator vs model check decided" if args.allow_skip else
                         "exit 1 (run again with a larger --csim-timeout or none)"), file=sys.stderr)
            reason = skip_reason(summary["emulator_vs_csim"])
            if reason is not None:
                print(f"hlsflow verify: {args.project}: emulator vs C simulation not checked: {reason}; "
                      + ("accepted (--allow-skip)" if args.allow_skip else
                         "exit 1 (--allow-skip accepts the C-sim vs model check alone)"), file=sys.stderr)
            return 0 if summary["ok"] else 1
        if args.command == "rtl":
            from flow.commands.rtl_command import rtl_project

            print(json.dumps(rtl_project(args.project, args.latency_cutoff, args.upto, args.yosys and not args.no_yosys,
                                         fpga=args.fpga, asic=args.asic, clock_period=args.clock_period,
                                         route=not args.no_route, check_samples=args.check_samples,
                                         emitter=args.emitter, reuse_factor=args.reuse_factor,
                                         architecture=args.architecture, force=args.force,
                                         max_luts=args.max_luts, fit_fpga=True),
                             indent=2, default=str))
            return 0
        if args.command == "sweep":
            from flow.sweep.run import cli_sweep

            return cli_sweep(args)
        if args.command == "sim":
            return _sim(args)
        if args.command == "ip":
            return _ip(args)
        if args.command == "synth":
            from flow.hls.synth import synth

            print(json.dumps(synth(args.project), indent=2, default=str))
            return 0
    except NotBitExact as exc:
        print(f"hlsflow {args.command}: {exc}", file=sys.stderr)
        return EXIT_NOT_BIT_EXACT
    except ToolMissing as exc:
        print(f"hlsflow {args.command}: {_one_line(exc)}", file=sys.stderr)
        return EXIT_TOOL_MISSING
    except FlowError as exc:
        print(f"hlsflow {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as exc:
        print(f"hlsflow {args.command}: {interruption(exc)}; no partial output was kept", file=sys.stderr)
        return exit_code(exc)
    except OSError as exc:  # a path the user gave cannot be read or written (a folder without permission, ...)
        print(f"hlsflow {args.command}: error: {_one_line(_os_error_line(exc))}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # a bug: one line naming it, the traceback on request
        if os.environ.get(TRACEBACK_VAR) == "1":
            raise
        print(f"hlsflow {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug in hlsflow; "
              f"{TRACEBACK_VAR}=1 shows the traceback)", file=sys.stderr)
        return EXIT_INTERNAL
    return 0
