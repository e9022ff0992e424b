"""Where hls4ml's C-simulation compile time goes on large io_parallel models, per g++ optimization level.

For each model: the hls4ml project is written once (hls4ml's default precision ``ap_fixed<16,6>``, io_parallel,
Vivado backend, random seeded weights), then its ``build_lib.sh`` is run once per level with ``-O3`` replaced
(``-O0``, ``-O1``, ``-O2``, ``-O3``), every g++ under ``/usr/bin/time -v``: wall seconds and peak resident memory of
the firmware (``myproject.cpp``) and the bridge (``myproject_bridge.cpp``) compiles. Each level's library then
predicts the same inputs (drawn uniformly from every code of the input type; ``predict_s``) and its outputs are
compared bit for bit with those of the first level run (``differing_outputs_vs_first``): a level with any differing
output is out.

    nice -n 10 python3 bench/csim_compile.py --model conv1d --length 128 --levels 0 1 3 --samples 1000 --timeout 900
    nice -n 10 python3 bench/csim_compile.py --model mlp --width 500 --depth 3 --json

Prints one row per (model, level); ``--json`` prints JSON objects instead.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flow.core import procs  # noqa: E402
from flow.arith.types import full_range_inputs, parse_type  # noqa: E402
from flow.hls.convert import build_graph, csim_predict, derive_hls_config  # noqa: E402
from flow.spec import Hardware  # noqa: E402

INPUT_TYPE = "ap_fixed<16,6>"


def conv1d_model(length: int, channels: int, filters: int) -> object:
    """Float Conv1D(filters, 5) -> Conv1D(filters, 3) -> Flatten -> Dense 64 -> Dense 5 on (length, channels)."""
    from flow.keras.env import keras, set_seed

    K = keras()
    set_seed(0)
    x_in = K.layers.Input((length, channels), name="x")
    x = K.layers.Conv1D(filters, 5, activation="relu", name="conv1")(x_in)
    x = K.layers.Conv1D(filters, 3, activation="relu", name="conv2")(x)
    x = K.layers.Flatten(name="flat")(x)
    x = K.layers.Dense(64, activation="relu", name="fc1")(x)
    return K.Model(x_in, K.layers.Dense(5, name="out")(x))


def mlp_model(inputs: int, width: int, depth: int) -> object:
    """Float MLP ``inputs`` x ``width``^``depth`` x 5 (ReLU)."""
    from flow.keras.env import keras, set_seed

    K = keras()
    set_seed(0)
    x_in = K.layers.Input((inputs,), name="x")
    x = x_in
    for i in range(depth):
        x = K.layers.Dense(width, activation="relu", name=f"fc{i}")(x)
    return K.Model(x_in, K.layers.Dense(5, name="out")(x))


def timings(path: Path) -> list[tuple[float, int]]:
    """(wall s, peak RSS MiB) of each command ``/usr/bin/time -v -a`` logged to ``path``, in order."""
    text = path.read_text()
    walls = [_seconds(m) for m in re.findall(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text)]
    rss = [int(m) // 1024 for m in re.findall(r"Maximum resident set size \(kbytes\): (\d+)", text)]
    return list(zip(walls, rss))


def _seconds(text: str) -> float:
    parts = [float(p) for p in text.split(":")]
    return sum(p * 60 ** i for i, p in enumerate(reversed(parts)))


def build(project: Path, level: str, timeout: float) -> dict:
    """Run the project's build_lib.sh at ``-O<level>``; the library is kept as ``lib-O<level>.so``."""
    script = (project / "build_lib.sh").read_text().replace('CFLAGS="-O3 ', f'CFLAGS="-O{level} ')
    log = project / f"time-O{level}.txt"
    log.unlink(missing_ok=True)
    script = script.replace("${CC} ${CFLAGS}", f"/usr/bin/time -v -a -o {log} ${{CC}} ${{CFLAGS}}")
    t0 = time.perf_counter()
    try:
        proc = procs.run(["bash", "-c", script, "build_lib.sh"], cwd=project, capture_output=True, text=True,
                         timeout=timeout)  # on timeout the whole group (bash, g++, cc1plus) is killed
    except subprocess.TimeoutExpired:
        return {"level": f"-O{level}", "timeout_s": timeout}
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"-O{level} build failed:\n{proc.stdout}\n{proc.stderr}")
    lib = next((project / "firmware").glob("myproject-*.so"))
    kept = project / f"lib-O{level}.so"
    shutil.move(lib, kept)
    steps = timings(log)
    return {"level": f"-O{level}", "total_s": round(wall, 1), "firmware_s": steps[0][0], "firmware_mib": steps[0][1],
            "bridge_s": steps[1][0], "bridge_mib": steps[1][1], "lib": str(kept)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("conv1d", "mlp"), required=True)
    ap.add_argument("--length", type=int, default=128)
    ap.add_argument("--channels", type=int, default=8)
    ap.add_argument("--filters", type=int, default=32)
    ap.add_argument("--inputs", type=int, default=16)
    ap.add_argument("--width", type=int, default=500)
    ap.add_argument("--depth", type=int, default=3)
    ap.add_argument("--levels", nargs="+", default=["3", "2", "1", "0"])
    ap.add_argument("--samples", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, help="write the project here (default: a temporary folder)")
    a = ap.parse_args()
    if a.model == "conv1d":
        model = conv1d_model(a.length, a.channels, a.filters)
        name = f"Conv1D ({a.length},{a.channels}) {a.filters}f"
    else:
        model = mlp_model(a.inputs, a.width, a.depth)
        name = f"MLP {a.inputs}x{a.width}^{a.depth}x5"
    hw = Hardware(backend="Vivado", io_type="io_parallel")
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    root = a.keep or Path(tempfile.mkdtemp(prefix="csim_bench_"))
    project = root / "hls"
    if project.exists():
        shutil.rmtree(project)
    graph = build_graph(model, cfg, hw, project)
    t0 = time.perf_counter()
    graph.write()
    write_s = time.perf_counter() - t0
    weights = int(model.count_params())
    x = full_range_inputs(parse_type(INPUT_TYPE), tuple(model.input_shape[1:]), a.samples, seed=0)
    rows, reference = [], None
    for level in a.levels:
        row = {"model": name, "weights": weights, "write_s": round(write_s, 1), **build(project, level, a.timeout)}
        if "lib" in row:
            graph._top_function_lib = ctypes.cdll.LoadLibrary(row.pop("lib"))
            t0 = time.perf_counter()
            y = csim_predict(graph, x)
            row["predict_s"] = round(time.perf_counter() - t0, 1)
            if reference is None:
                reference = y
            row["differing_outputs_vs_first"] = int(np.sum(y.view(np.uint64) != reference.view(np.uint64)))
        rows.append(row)
        print(json.dumps(row) if a.json else "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    if a.keep is None:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
