"""``hlsflow`` command line: one subcommand per job; errors print one line and exit non-zero."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from flow import __version__
from flow.errors import FlowError, ToolMissing

EXIT_BAD_INPUT = 2
EXIT_TOOL_MISSING = 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="hlsflow", description=__doc__)
    p.add_argument("--version", action="version", version=f"hlsflow {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    r = sub.add_parser("run", help="train (float + QKeras QAT), convert with hls4ml, C-simulate, report")
    r.add_argument("spec", type=Path, help="flow spec YAML, e.g. models/digits_mlp.yaml")
    r.add_argument("--out", type=Path, default=Path("hls_projects"), help="output root (default: hls_projects)")

    c = sub.add_parser("convert", help="convert an existing Keras/QKeras model to an HLS project and C-simulate it")
    c.add_argument("model", type=Path, help=".h5, .keras, or Keras .json (weights from --weights or <stem>_weights.h5)")
    c.add_argument("--weights", type=Path, help="weights .h5 for a Keras .json model")
    c.add_argument("--config", type=Path, help="hls4ml config YAML (HLSConfig, Backend, Part, IOType, ...)")
    c.add_argument("--out", type=Path, help="project folder (default: hls_projects/<model name>)")
    c.add_argument("--precision", help="default precision for layers without QKeras quantizers, e.g. 'ap_fixed<16,6>'")
    c.add_argument("--input-type", help="input type, e.g. 'ap_fixed<16,6>' (inputs are quantized to it)")
    c.add_argument("--backend", choices=("Vitis", "Vivado", "Catapult"), default="Vitis")
    c.add_argument("--io-type", choices=("io_parallel", "io_stream"), default="io_parallel")
    c.add_argument("--samples", type=int, default=1000, help="random inputs for the C-sim check (default 1000)")

    s = sub.add_parser("synth", help="run the vendor HLS tool on a project, if it is installed")
    s.add_argument("project", type=Path, help="hls_projects/<name> (or its hls/ folder)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "run":
            from flow.pipeline import run

            report = run(args.spec, args.out)
            out = Path(args.out) / report["name"]
            exact = {"csim_vs_qkeras": report["csim_vs_qkeras"]["exact_fraction"],
                     "emulator_vs_csim": report["emulator_vs_csim"]["exact_fraction"]}
            print(json.dumps({"project": str(out), "accuracy": report["accuracy"], "exact_fraction": exact}, indent=2))
            print(f"report: {out / 'report.md'}", file=sys.stderr)
            if min(exact.values()) < 1.0:
                print("hlsflow run: outputs differ between stages (see report.md); exit 1", file=sys.stderr)
                return 1
            return 0
        if args.command == "convert":
            from flow.pipeline import convert_existing
            from flow.spec import Hardware

            if args.samples < 1:
                raise FlowError(f"--samples must be >= 1, got {args.samples}")
            out = args.out or Path("hls_projects") / args.model.stem
            report = convert_existing(args.model, out, args.config, args.weights, args.precision, args.input_type,
                                      Hardware(backend=args.backend, io_type=args.io_type), args.samples)
            print(json.dumps({"project": str(out), "csim_vs_keras": report["csim_vs_keras"]}, indent=2))
            return 0
        if args.command == "synth":
            from flow.synth import synth

            print(json.dumps(synth(args.project), indent=2, default=str))
            return 0
    except ToolMissing as exc:
        print(f"hlsflow {args.command}: {exc}", file=sys.stderr)
        return EXIT_TOOL_MISSING
    except FlowError as exc:
        print(f"hlsflow {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"hlsflow {args.command}: interrupted; no partial output was kept", file=sys.stderr)
        return 130
    return 0
