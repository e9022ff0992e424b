"""Accuracy against hardware size for the two kinds of pruning, on the shipped digits MLP and CNN, in one run.

For each model (``models/<name>.yaml``, trained as shipped) and each pruning variant:

* ``none``: the spec without ``pruning``;
* ``magnitude 0.5``: unstructured magnitude pruning to 50 % zero weights (``pruning: {sparsity: 0.5}``),
  layers keep their width;
* ``neurons F`` for each ``--fractions`` F: neuron pruning of every hidden Dense/Conv layer
  (``pruning: {method: neurons, fraction: F, finetune_epochs: E, rounds: R}``);

the bench runs ``hlsflow run`` (RTL stage off), then the vendor-free RTL of the project with Yosys
(``flow.commands.rtl_command.rtl_project(..., yosys=True)``) and prints one table row: the widths of the pruned
layers, non-zero weights and biases (quantized, from the hls4ml graph), test accuracy of the bit-exact emulator (and the number
of emulator outputs that differ from hls4ml's C simulation, which must be 0), BOPs
(``flow.sweep.evaluate.bit_operations``), the RTL latency (cycles) and the Yosys ``synth_xilinx`` LUT
count; then each variant's LUTs and BOPs as a ratio of the unpruned model's.

    python3 bench/pruning.py [--models digits_mlp digits_cnn] [--fractions 0.25 0.5]
                             [--finetune-epochs 10] [--rounds 1] [--no-yosys] [--keep DIR]

Yosys on the unpruned digits MLP takes minutes; the whole bench about 20 minutes on 2 cores. Each
run's own output goes to ``<DIR>/<model>-<variant>.log``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flow.hls.project import rebuild  # noqa: E402
from flow.commands.pipeline import run  # noqa: E402
from flow.commands.run_report import graph_weight_stats  # noqa: E402
from flow.commands.rtl_command import rtl_project  # noqa: E402
from flow.sweep.evaluate import bit_operations  # noqa: E402


def variants(fractions: list[float], finetune_epochs: int, rounds: int) -> list[tuple[str, dict | None]]:
    """``(label, pruning section)`` of every variant; None = no pruning."""
    out: list[tuple[str, dict | None]] = [("none", None), ("magnitude 0.5", {"sparsity": 0.5, "start_epoch": 2})]
    out += [(f"neurons {f:g}", {"method": "neurons", "fraction": f, "finetune_epochs": finetune_epochs,
                                 "rounds": rounds}) for f in fractions]
    return out


def measure(model: str, label: str, pruning: dict | None, work: Path, yosys: bool) -> dict:
    """One variant: ``hlsflow run``, then RTL (+ Yosys); its figures."""
    spec = yaml.safe_load((ROOT / "models" / f"{model}.yaml").read_text())
    spec.pop("pruning", None)
    if pruning is not None:
        spec["pruning"] = pruning
    cutoff = spec.get("rtl", {}).get("latency_cutoff", 5.0)
    spec["rtl"] = {"enabled": False}
    stem = f"{model}-{label.replace(' ', '-')}"
    path = work / f"{stem}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    t0 = time.perf_counter()
    with open(work / f"{stem}.log", "w") as log, contextlib.redirect_stderr(log), contextlib.redirect_stdout(log):
        report = run(path, work / stem)
        project = work / stem / model
        rtl = rtl_project(project, cutoff, yosys=yosys)
        with tempfile.TemporaryDirectory() as tmp:
            _, graph, _ = rebuild(project, Path(tmp) / "hls")
            bops = bit_operations(graph)["bops"]
            stats = graph_weight_stats(graph)
    widths = {x["layer"]: x["after"] for x in (report.get("neuron_pruning") or {}).get("layers", [])}
    layers = [layer for layer in spec["model"]["layers"] if layer["type"] in ("dense", "conv2d")][:-1]
    emu = report["emulator_vs_csim"]
    return {
        "model": model, "pruning": label,
        "widths": " / ".join(f"{layer['name']} {widths.get(layer['name'], layer.get('units', layer.get('filters')))}"
                             for layer in layers),
        "parameters_nonzero": stats["weights"] - stats["zero_weights"], "parameters": stats["weights"],
        "accuracy": report["accuracy"]["emulator"], "emulator_vs_csim_differing": emu["outputs"] - emu["equal_outputs"],
        "bops": bops, "latency_cycles": rtl["latency_cycles"],
        "luts": rtl["yosys"]["xilinx"]["LUT"] if yosys else None,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def table(rows: list[dict]) -> str:
    lines = ["| model | pruning | hidden widths | non-zero parameters | accuracy (emulator, test) | emulator vs C-sim "
             "differing outputs | BOPs | latency (cycles) | Yosys LUTs (synth_xilinx) | LUTs vs none | BOPs vs none |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for r in rows:
        if r["pruning"] == "none":
            base[r["model"]] = r
        b = base.get(r["model"])
        lut = "-" if r["luts"] is None else f"{r['luts']:,}"
        lut_ratio = "-" if r["luts"] is None or b is None else f"{r['luts'] / b['luts']:.2f}x"
        bops_ratio = "-" if b is None else f"{r['bops'] / b['bops']:.2f}x"
        lines.append(f"| {r['model']} | {r['pruning']} | {r['widths']} | {r['parameters_nonzero']:,} of {r['parameters']:,} "
                     f"| {100 * r['accuracy']:.2f} % | {r['emulator_vs_csim_differing']} | {r['bops']:,} | "
                     f"{r['latency_cycles']} | {lut} | {lut_ratio} | {bops_ratio} |")
    return "\n".join(lines)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", default=["digits_mlp", "digits_cnn"])
    p.add_argument("--fractions", nargs="+", type=float, default=[0.25, 0.5])
    p.add_argument("--finetune-epochs", type=int, default=10)
    p.add_argument("--rounds", type=int, default=1)
    p.add_argument("--no-yosys", action="store_true", help="skip Yosys (no LUT figures)")
    p.add_argument("--keep", type=Path, help="keep the projects and logs in this folder")
    args = p.parse_args()
    with contextlib.ExitStack() as stack:
        work = args.keep or Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="hlsflow-bench-pruning-")))
        work.mkdir(parents=True, exist_ok=True)
        rows = []
        for model in args.models:
            for label, pruning in variants(args.fractions, args.finetune_epochs, args.rounds):
                print(f"bench: {model} {label} ...", file=sys.stderr, flush=True)
                rows.append(measure(model, label, pruning, work, not args.no_yosys))
                print(f"bench: {model} {label}: " + json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(table(rows))
    return 1 if any(r["emulator_vs_csim_differing"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
