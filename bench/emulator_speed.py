"""Emulator speed vs hls4ml's C simulation, measured side by side in one run.

For each model and input count: hls4ml write + compile + predict, hls4ml predict alone (already compiled),
and the numpy emulator (the first call of a process loads its compiled loops from numba's disk cache, or compiles
them the first time ever, so it is timed separately); the table ends with the ratios, of wall seconds and of
CPU seconds (this process and its children, e.g. g++), which on a machine shared with other jobs say what the
work costs when the wall seconds only say what one waited. Every emulator run is also checked
against the C simulation (the bench fails on any differing output). Peak memory of the emulator on 1M inputs
is measured in a child process (ru_maxrss).

    python3 bench/emulator_speed.py [--sizes 10000 100000] [--million] [--json]
    python3 bench/emulator_speed.py --model FILE [--weights W.h5] [--config hls4ml.yml] [--input-type T] \\
        [--backend B] [--io-type IO] --sizes 10000 --json

The built-in models: the jet-tagging MLP (../shared/models/KERAS_3layer, 6-bit weights, 16-bit data), the
shipped digits CNN (io_stream), and a 28x28 MNIST-size QKeras CNN (two Conv2D + MaxPooling2D, io_stream) whose
accumulators are hls4ml's default ``ap_fixed<16,6>``, so every product is rounded into the accumulator.
``--json`` prints one JSON object per row with ``model``, ``inputs``, ``compile_predict_s``, ``predict_s``,
``emulator_s``, ``differing_outputs``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
sys.path.insert(0, str(ROOT))

from flow.arith.emulate import emulate  # noqa: E402
from flow.arith.types import full_range_inputs, parse_type  # noqa: E402
from flow.hls.convert import build_graph, csim_predict, derive_hls_config, write_and_compile  # noqa: E402
from flow.spec import Hardware  # noqa: E402


def jet_tagger():
    """KERAS_3layer (16-64-32-32-5 float MLP) with 6-bit weights ap_fixed<6,2>, 16-bit data ap_fixed<16,6>."""
    from flow.keras.model_io import load_model

    model = load_model(SHARED / "KERAS_3layer.json")
    hw = Hardware(backend="Vivado")
    cfg = derive_hls_config(model, hw, "ap_fixed<16,6>")
    for layer in cfg["LayerName"].values():
        if "weight" in layer.get("Precision", {}):
            layer["Precision"]["weight"] = "ap_fixed<6,2>"
    return "jet MLP (KERAS_3layer, 6-bit w)", model, cfg, hw, "ap_fixed<16,6>"


def digits_cnn():
    """The shipped digits CNN spec's network (untrained weights: speed does not depend on values)."""
    from flow.keras import network
    from flow.keras.env import set_seed
    from flow.spec import load_spec

    spec = load_spec(ROOT / "models" / "digits_cnn.yaml")
    set_seed(1)
    model = network.build_model(spec, quantized=True)
    return "digits CNN (io_stream)", model, derive_hls_config(model, spec.hardware, spec.input_type), spec.hardware, \
        spec.input_type


def mnist_cnn():
    """28x28x1 -> QConv2D(8, 3x3) ReLU -> MaxPool 2 -> QConv2D(16, 3x3) ReLU -> MaxPool 2 -> QDense(10), 8-bit
    weights and activations, io_stream, every accum_t set to hls4ml's default ap_fixed<16,6> (products have
    15 and 13 fractional bits, the accumulators 10: every product is rounded)."""
    from qkeras import QActivation, QConv2D, QDense, quantized_bits, quantized_relu

    from flow.keras.env import keras, set_seed

    K = keras()
    set_seed(2)
    qb = quantized_bits(8, 0, alpha=1)
    inp = K.Input((28, 28, 1), name="x_in")
    h = QConv2D(8, (3, 3), kernel_quantizer=qb, bias_quantizer=qb, name="c1")(inp)
    h = QActivation(quantized_relu(8, 2), name="r1")(h)
    h = K.layers.MaxPooling2D((2, 2), name="p1")(h)
    h = QConv2D(16, (3, 3), kernel_quantizer=qb, bias_quantizer=qb, name="c2")(h)
    h = QActivation(quantized_relu(8, 2), name="r2")(h)
    h = K.layers.MaxPooling2D((2, 2), name="p2")(h)
    h = K.layers.Flatten(name="f")(h)
    model = K.Model(inp, QDense(10, kernel_quantizer=qb, bias_quantizer=qb, name="d1")(h))
    hw = Hardware(backend="Vitis", io_type="io_stream")
    cfg = derive_hls_config(model, hw, "ap_ufixed<8,0>")
    for name in ("c1", "c2", "d1"):
        cfg["LayerName"][name].setdefault("Precision", {})["accum"] = "ap_fixed<16,6>"
    return "MNIST 28x28 CNN (io_stream, accum <16,6>)", model, cfg, hw, "ap_ufixed<8,0>"


def user_model(args: argparse.Namespace):
    """``--model FILE``: the model, its hls4ml config (``--config``, else derived from its quantizers with
    ``--input-type``), as ``hlsflow convert`` reads them."""
    from flow.keras.model_io import load_model
    from flow.spec import read_yaml

    model = load_model(args.model, args.weights)
    hw = Hardware(backend=args.backend, io_type=args.io_type)
    if args.config is not None:
        cfg = read_yaml(args.config, "config file")["HLSConfig"]
        in_name = model.layers[0].name
        in_type = args.input_type or cfg.get("LayerName", {}).get(in_name, {}).get("Precision", {}).get(
            "result", "ap_fixed<16,6>")
    else:
        in_type = args.input_type or "ap_fixed<16,6>"
        cfg = derive_hls_config(model, hw, in_type)
    return str(args.model), model, cfg, hw, in_type


def timed(fn):
    """``(result, wall seconds, CPU seconds of this process and its children)``: on a shared machine the CPU
    seconds say what the work costs, the wall seconds what a user waits."""
    import resource

    def cpu() -> float:
        s, c = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    c0, t0 = cpu(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, cpu() - c0


def bench_model(spec, sizes: list[int]) -> list[dict]:
    name, model, cfg, hw, in_type = spec
    t = parse_type(in_type)
    shape = tuple(int(d) for d in model.input_shape[1:])
    rows = []
    for n in sizes:
        x = full_range_inputs(t, shape, n, seed=n)
        with tempfile.TemporaryDirectory() as tmp:
            graph = build_graph(model, cfg, hw, Path(tmp) / "hls")
            _, t_first, _ = timed(lambda: emulate(graph, x))  # loads the compiled loops (numba's disk cache)
            _, t_compile, c_compile = timed(lambda: write_and_compile(graph))
            csim, t_pred, c_pred = timed(lambda: csim_predict(graph, x))
            emu, t_emu, c_emu = timed(lambda: emulate(graph, x))
        diff = int(np.sum(emu.outputs != csim))
        rows.append({"model": name, "inputs": n, "compile_predict_s": round(t_compile + t_pred, 3),
                     "predict_s": round(t_pred, 3), "emulator_s": round(t_emu, 3),
                     "emulator_first_call_s": round(t_first, 3), "compile_predict_cpu_s": round(c_compile + c_pred, 3),
                     "predict_cpu_s": round(c_pred, 3), "emulator_cpu_s": round(c_emu, 3), "differing_outputs": diff})
        if diff:
            print(json.dumps(rows[-1]))
            raise SystemExit(f"{name}: emulator differs from C simulation on {diff} outputs")
    return rows


def peak_memory_million() -> str:
    code = (
        "import sys, resource; sys.path.insert(0, %r); sys.argv=['x'];"
        "import bench.emulator_speed as b; from flow.arith.emulate import emulate; from flow.arith.types import parse_type;"
        "import tempfile, pathlib;"
        "name, m, cfg, hw, it = b.jet_tagger(); g = b.build_graph(m, cfg, hw, pathlib.Path(tempfile.mkdtemp()));"
        "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss;"
        "x = b.full_range_inputs(parse_type(it), (16,), 1_000_000, 1); e = emulate(g, x);"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, base / 1024)" % str(ROOT)
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        return f"failed: {out.stderr.strip().splitlines()[-1]}"
    peak, base = (float(v) for v in out.stdout.split())
    return f"peak RSS {peak:.0f} MiB (of which {base:.0f} MiB before the inputs: TensorFlow, hls4ml)"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--million", action="store_true", help="also measure peak memory for 1M inputs")
    p.add_argument("--json", action="store_true", help="one JSON object per row instead of the table")
    p.add_argument("--model", type=Path, help="bench this model instead of the built-in ones")
    p.add_argument("--weights", type=Path)
    p.add_argument("--config", type=Path, help="hls4ml config YAML (HLSConfig)")
    p.add_argument("--input-type", help="input type, e.g. 'ap_fixed<16,6>'")
    p.add_argument("--backend", default="Vitis")
    p.add_argument("--io-type", default="io_parallel")
    p.add_argument("--only", nargs="+", choices=("jet", "digits_cnn", "mnist_cnn"), help="built-in models to run")
    args = p.parse_args()
    builtins = {"jet": jet_tagger, "digits_cnn": digits_cnn, "mnist_cnn": mnist_cnn}
    specs = [user_model(args)] if args.model else [builtins[k]() for k in (args.only or builtins)]
    rows = []
    for spec in specs:
        rows += bench_model(spec, args.sizes)
    if args.json:
        for r in rows:
            print(json.dumps(r))
    else:
        print(f"\n{'model':42} {'inputs':>7} {'comp+pred s':>11} {'predict s':>9} {'emulator s':>10} "
              f"{'(1st call)':>10} {'x vs c+p':>8} {'x vs pred':>9} {'CPU s c+p / pred / emu':>24} "
              f"{'CPU x vs c+p':>12} {'diff':>4}")
        for r in rows:
            tcp, tp, te = r["compile_predict_s"], r["predict_s"], r["emulator_s"]
            ccp, cp, ce = r["compile_predict_cpu_s"], r["predict_cpu_s"], r["emulator_cpu_s"]
            print(f"{r['model']:42} {r['inputs']:>7} {tcp:>11.2f} {tp:>9.2f} {te:>10.3f} "
                  f"{r['emulator_first_call_s']:>10.3f} {tcp / te:>8.1f} {tp / te:>9.1f} "
                  f"{f'{ccp:.1f} / {cp:.1f} / {ce:.2f}':>24} {ccp / ce:>12.1f} {r['differing_outputs']:>4}")
    if args.million:
        print("\nemulator, jet MLP, 1,000,000 inputs:", peak_memory_million())


if __name__ == "__main__":
    main()
