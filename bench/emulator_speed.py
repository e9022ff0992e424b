"""Emulator speed vs hls4ml's C simulation, measured side by side in one run.

For each model and input count: hls4ml write + compile + predict, hls4ml predict alone (already
compiled), and the numpy emulator; the table ends with the ratios. Every emulator run is also
checked against the C simulation (0 differing outputs, or the bench fails). Peak memory of the
emulator on 1M inputs is measured in a child process (ru_maxrss).

    python3 bench/emulator_speed.py [--sizes 10000 100000] [--million]
"""

from __future__ import annotations

import argparse
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
from flow.arith.types import parse_type  # noqa: E402
from flow.hls.convert import (  # noqa: E402
    build_graph,
    csim_predict,
    derive_hls_config,
    write_and_compile,
)
from flow.spec import Hardware  # noqa: E402
from flow.verify import full_range_inputs  # noqa: E402


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


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def bench_model(make, sizes: list[int]) -> list[tuple]:
    name, model, cfg, hw, in_type = make()
    t = parse_type(in_type)
    shape = tuple(int(d) for d in model.input_shape[1:])
    rows = []
    for n in sizes:
        x = full_range_inputs(t, shape, n, seed=n)
        with tempfile.TemporaryDirectory() as tmp:
            graph = build_graph(model, cfg, hw, Path(tmp) / "hls")
            (_, t_compile) = timed(lambda: write_and_compile(graph))
            csim, t_pred = timed(lambda: csim_predict(graph, x))
            emu, t_emu = timed(lambda: emulate(graph, x))
        diff = int(np.sum(emu.outputs != csim))
        if diff:
            raise SystemExit(f"{name}: emulator differs from C simulation on {diff} outputs")
        rows.append((name, n, t_compile + t_pred, t_pred, t_emu, diff))
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
    args = p.parse_args()
    rows = []
    for make in (jet_tagger, digits_cnn):
        rows += bench_model(make, args.sizes)
    print(f"\n{'model':34} {'inputs':>8} {'compile+predict s':>18} {'predict s':>10} {'emulator s':>11} "
          f"{'x vs comp+pred':>15} {'x vs predict':>13} {'diff':>5}")
    for name, n, tcp, tp, te, diff in rows:
        print(f"{name:34} {n:>8} {tcp:>18.2f} {tp:>10.2f} {te:>11.2f} {tcp / te:>15.1f} {tp / te:>13.2f} {diff:>5}")
    if args.million:
        print("\nemulator, jet MLP, 1,000,000 inputs:", peak_memory_million())


if __name__ == "__main__":
    main()
