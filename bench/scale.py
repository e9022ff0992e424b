"""How the flow's steps scale with the model (issue 22): seconds per step, from a small MLP to one million weights.

For each model, the hlsflow commands run one after the other, each as its own process, in a temporary folder:
``hlsflow convert`` (with the C-simulation build and run it records), ``hlsflow verify``, ``hlsflow rtl`` (unrolled,
and folded with ``--reuse-factor`` for the MLPs; ``--check-samples`` inputs through the gate) and ``hlsflow sim
--simulator verilator``. Per step: wall seconds and the CPU seconds of the step's processes (the machine is shared:
CPU seconds move less with the load), the exit code, and from what the command printed: the C-simulation build's
seconds (convert), the tracing and lint seconds (rtl: its progress lines).

Models (float ones converted with ``--precision 'ap_fixed<16,6>'``):

* ``digits_mlp``: the shipped spec's QKeras network (64-32-10), seeded and untrained, at the spec's input type;
* ``jet_mlp``: the jet-tagging MLP 16-64-32-32-5 (``../shared/models/KERAS_3layer.json``; skipped when absent);
* ``conv1d``: input 128x8, Conv1D 64 filters k=5 + ReLU, Conv1D 64 k=3 + ReLU, Flatten, Dense 64, Dense 5
  (515,077 weights; ``bench/csim_compile.py``'s model);
* ``mlp_1m``: 16x500x500x500x500x500x5 (1,013,005 weights), random seeded weights; ``--quick`` skips it.

    nice -n 10 python3 bench/scale.py [--quick] [--models digits_mlp conv1d] [--reuse-factor 16]
        [--sim-samples 200] [--check-samples 200] [--timeout 1800] [--json] [--keep DIR]

A step that fails or runs past ``--timeout`` is reported as such and the model's later steps are skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.csim_compile import conv1d_model, mlp_model  # noqa: E402

SHARED = ROOT.parent / "shared" / "models"
FLOAT_PRECISION = "ap_fixed<16,6>"
MODELS = ("digits_mlp", "jet_mlp", "conv1d", "mlp_1m")
FOLDED = {"jet_mlp", "mlp_1m"}  # also traced folded (--reuse-factor)


def digits_model(folder: Path) -> tuple[Path, list[str]]:
    """The shipped digits MLP spec's QKeras network, seeded (untrained), saved as .h5; convert's extra args."""
    from flow.keras import network
    from flow.keras.env import set_seed
    from flow.spec import load_spec

    spec = load_spec(ROOT / "models" / "digits_mlp.yaml")
    set_seed(3)
    path = folder / "digits_mlp.h5"
    network.build_model(spec, quantized=True).save(path)
    return path, ["--input-type", str(spec.input_type)]


def make_model(name: str, folder: Path) -> tuple[Path, list[str]] | None:
    """The model file of ``name`` and the extra ``hlsflow convert`` arguments, or None when it is unavailable."""
    if name == "digits_mlp":
        return digits_model(folder)
    if name == "jet_mlp":
        path = SHARED / "KERAS_3layer.json"
        return (path, ["--precision", FLOAT_PRECISION]) if path.exists() else None
    model = conv1d_model(128, 8, 64) if name == "conv1d" else mlp_model(16, 500, 5)
    path = folder / f"{name}.h5"
    model.save(path)
    return path, ["--precision", FLOAT_PRECISION]


def run_step(args: list[str], timeout: float) -> dict:
    """``python3 -m flow ARGS``: wall and CPU seconds (of the step's processes), exit code, its stderr+stdout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    try:
        proc = subprocess.run([sys.executable, "-m", "flow", *args], cwd=ROOT, env=env, capture_output=True,
                              text=True, timeout=timeout)
        rc, text = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as exc:
        rc, text = "timeout", (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(
            errors="replace")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"rc": rc, "wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(cpu, 1), "text": text}


def phase_seconds(text: str, pattern: str) -> float | None:
    """Seconds of the first progress line ``hlsflow rtl: <pattern>: N.N s`` (None: not printed, under 2 s)."""
    m = re.search(rf"hlsflow rtl: {pattern}: (\d+\.\d) s", text)
    return float(m.group(1)) if m else None


def csim_seconds(project: Path) -> float | None:
    """The C-simulation build's seconds as convert recorded them in report.json (None when not recorded)."""
    try:
        report = json.loads((project / "report.json").read_text())
    except (OSError, ValueError):
        return None
    csim = report.get("csim") or {}
    value = csim.get("compile_seconds")
    return float(value) if isinstance(value, (int, float)) else None


def bench_model(name: str, folder: Path, a: argparse.Namespace) -> list[dict]:
    made = make_model(name, folder)
    if made is None:
        return [{"model": name, "skipped": "model file not found"}]
    path, extra = made
    project = folder / f"p_{name}"
    rows: list[dict] = []
    convert = run_step(["convert", str(path), "--out", str(project), *extra], a.timeout)
    verify = run_step(["verify", str(project)], a.timeout) if convert["rc"] == 0 else None
    base = {"model": name, "convert_s": convert["wall_s"], "convert_cpu_s": convert["cpu_s"],
            "convert_rc": convert["rc"], "csim_build_s": csim_seconds(project),
            "verify_s": verify and verify["wall_s"], "verify_cpu_s": verify and verify["cpu_s"],
            "verify_rc": verify and verify["rc"]}
    archs = ["unrolled"] + ([f"folded R={a.reuse_factor}"] if name in FOLDED else [])
    if name == "mlp_1m" and not a.unrolled_1m:
        archs = archs[1:]
    for arch in archs:
        row = dict(base, architecture=arch)
        rows.append(row)
        if convert["rc"] != 0:
            row["error"] = convert["text"].strip().splitlines()[-1:]
            continue
        fold = ["--architecture", "folded", "--reuse-factor", str(a.reuse_factor)] if arch != "unrolled" else []
        rtl = run_step(["rtl", str(project), "--check-samples", str(a.check_samples), *fold], a.timeout)
        row.update(rtl_s=rtl["wall_s"], rtl_cpu_s=rtl["cpu_s"], rtl_rc=rtl["rc"],
                   trace_s=phase_seconds(rtl["text"], r"tracing \d+ layers(?: into \w+ units)?"),
                   lint_s=phase_seconds(rtl["text"], r"linting with Verilator"))
        if rtl["rc"] != 0:
            row["error"] = rtl["text"].strip().splitlines()[-1:]
            continue
        sim = run_step(["sim", str(project), "--simulator", "verilator", "--samples", str(a.sim_samples)],
                       a.timeout)
        row.update(sim_s=sim["wall_s"], sim_cpu_s=sim["cpu_s"], sim_rc=sim["rc"])
        if sim["rc"] != 0:
            row["error"] = sim["text"].strip().splitlines()[-1:]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    ap.add_argument("--quick", action="store_true", help="skip the one-million-weight MLP")
    ap.add_argument("--unrolled-1m", action="store_true", help="also trace the 1M-weight MLP unrolled")
    ap.add_argument("--reuse-factor", type=int, default=16)
    ap.add_argument("--check-samples", type=int, default=200)
    ap.add_argument("--sim-samples", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per step")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--keep", type=Path, help="work here (default: a temporary folder, removed)")
    a = ap.parse_args()
    models = [m for m in a.models if not (a.quick and m == "mlp_1m")]
    root = a.keep or Path(tempfile.mkdtemp(prefix="scale_bench_"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        for name in models:
            for row in bench_model(name, root, a):
                print(json.dumps(row) if a.json else "  ".join(f"{k}={v}" for k, v in row.items()), flush=True)
    finally:
        if a.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
