"""Sweep throughput: points per hour with 1 and 2 workers, the scaling ratio, and time per stage of a point.

Runs the shipped sweep (``models/digits_sweep.yaml``, 49 points) from scratch, once with
``--workers 1`` and once with ``--workers 2``, each as ``python -m flow sweep`` in a fresh output
folder, timed from start to exit (worker start-up, TensorFlow import and the report included).
``--bits 2 4 6 8`` keeps only those values on every axis (a 16-point subset) for a quicker run.
Per-stage times come from the points' own records (``seconds`` of each trial). CPU seconds (all
processes of a run) and a calibration of the parallelism the machine offers at that moment (a fixed
pure-Python loop run in 1 process, then in 2 at once: 2.0 on two idle cores, 1.0 when other jobs take
a core) are printed beside each run, because on a shared machine they explain the scaling.

``--ptq`` also runs the same points as a post-training-quantization sweep (``mode: ptq``: the base
spec's float baseline trained once by the parent process, each point quantized from it) right after
each QAT run with the same number of workers, and prints QAT and PTQ points per hour side by side.

    python3 bench/sweep_speed.py [--bits 2 4 6 8] [--workers 1 2] [--ptq] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from flow.sweep.config import load_sweep  # noqa: E402
from flow.sweep.workers import is_computed, open_storage, open_study, storage_url  # noqa: E402

SHIPPED = ROOT / "models" / "digits_sweep.yaml"


def sweep_file(folder: Path, bits: list[int] | None, mode: str = "qat") -> Path:
    """The shipped sweep, with every axis restricted to ``bits`` when given (base path made absolute),
    as a QAT sweep or (``mode='ptq'``) a PTQ sweep of the same points."""
    raw = yaml.safe_load(SHIPPED.read_text())
    raw["base"] = str((SHIPPED.parent / raw["base"]).resolve())
    if bits:
        raw["axes"] = {name: [v for v in values if v in bits] for name, values in raw["axes"].items()}
    if mode != "qat":
        raw["mode"] = mode
    path = folder / f"digits_sweep_{mode}.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run(path: Path, out: Path, workers: int) -> tuple[float, float]:
    """Wall time and CPU time (s, all processes) of one complete ``hlsflow sweep`` from an empty output folder."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "flow", "sweep", str(path), "--out", str(out), "--workers",
                           str(workers), "--no-progress"], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"sweep with {workers} worker(s) failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


_SPIN = "import time\nt = time.perf_counter()\ns = 0\nfor i in range(10_000_000): s += i\nprint(time.perf_counter() - t)"


def parallelism() -> float:
    """2 x (time of a fixed loop alone) / (its mean time with two copies at once): the cores free now."""
    alone = float(subprocess.run([sys.executable, "-c", _SPIN], capture_output=True, text=True).stdout)
    pair = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True) for _ in range(2)]
    both = [float(p.communicate()[0]) for p in pair]
    return 2 * alone / statistics.mean(both)


def point_seconds(path: Path, out: Path) -> list[dict[str, float]]:
    sweep = load_sweep(path)
    study = open_study(open_storage(storage_url(None, out / sweep.name / "sweep.db"), sweep.heartbeat), sweep,
                       create=False)
    return [t.user_attrs["figures"]["seconds"] for t in sorted(study.get_trials(), key=lambda t: t.number)
            if is_computed(t)]


def print_ptq_comparison(qat: dict, ptq: dict, n: int) -> None:
    """QAT vs PTQ side by side: whole-run points per hour (PTQ's includes training the float baseline once)
    and the median seconds of one point after each worker's first (which pays TensorFlow's warm-up)."""
    print("\n| workers | QAT wall (s) | PTQ wall (s) | QAT points/hour | PTQ points/hour | QAT s/point (median) "
          "| PTQ s/point (median) | PTQ speed-up per point |")
    print("|---|---|---|---|---|---|---|---|")
    for w in ptq:
        q_med = statistics.median(s["total"] for s in qat[w][3][1:] or qat[w][3])
        p_med = statistics.median(s["total"] for s in ptq[w][3][1:] or ptq[w][3])
        print(f"| {w} | {qat[w][0]:.0f} | {ptq[w][0]:.0f} | {3600 * n / qat[w][0]:.0f} | {3600 * n / ptq[w][0]:.0f} "
              f"| {q_med:.3f} | {p_med:.3f} | {q_med / p_med:.1f}x |")
    w0 = min(ptq)
    secs = ptq[w0][3]
    rest = secs[1:] or secs
    total = statistics.median(s["total"] for s in rest)
    print(f"\nTime per stage of one PTQ point ({w0} worker(s), median over the {len(rest)} points after the first):\n")
    print("| stage | median (s) | share |")
    print("|---|---|---|")
    for stage in (k for k in secs[0] if k != "total"):
        med = statistics.median(s.get(stage, 0.0) for s in rest)
        print(f"| {stage} | {med:.3f} | {100 * med / total:.0f} % |")
    print(f"| total | {total:.3f} | 100 % |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bits", type=int, nargs="*", help="keep only these values on every axis (default: all 49 points)")
    ap.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--ptq", action="store_true", help="also run the points as a PTQ sweep and compare")
    ap.add_argument("--keep", type=Path, help="keep each run's output in DIR/w<N>/ (default: a temporary folder)")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="hlsflow-sweep-bench-"))
    path = sweep_file(tmp, args.bits)
    ptq_path = sweep_file(tmp, args.bits, "ptq") if args.ptq else None
    sweep = load_sweep(path)
    n = sweep.space_size
    print(f"sweep: {SHIPPED.relative_to(ROOT)}{' restricted to ' + str(args.bits) if args.bits else ''}: {n} points, "
          f"{sweep.base_raw['training']['epochs']} epochs each; {os.cpu_count()} CPUs; "
          f"load average before: {os.getloadavg()[0]:.2f}", flush=True)
    def measure(sweep_path: Path, tag: str, w: int) -> tuple:
        """One run of ``sweep_path`` with ``w`` workers: (wall s, CPU s, cores free before, s per point)."""
        out = (args.keep / f"{tag}w{w}") if args.keep else tmp / f"{tag}w{w}"
        shutil.rmtree(out, ignore_errors=True)
        free = parallelism()
        wall, cpu = run(sweep_path, out, w)
        print(f"  {w} worker(s){', PTQ' if tag else ''}: {n} points in {wall:.0f} s, {cpu:.0f} CPU s; cores free "
              f"before: {free:.2f}; load average after: {os.getloadavg()[0]:.2f}", flush=True)
        return wall, cpu, free, point_seconds(sweep_path, out)

    results, ptq_results = {}, {}
    for w in args.workers:
        results[w] = measure(path, "", w)
        if ptq_path is not None:
            ptq_results[w] = measure(ptq_path, "ptq_", w)

    print("\n| workers | points | wall time (s) | points per hour | scaling vs 1 worker | CPU s per point "
          "| cores free (calibration) |")
    print("|---|---|---|---|---|---|---|")
    base = results.get(1)
    for w, (wall, cpu, free, _) in results.items():
        ratio = f"{base[0] / wall:.2f}x" if base else "n/a"
        print(f"| {w} | {n} | {wall:.0f} | {3600 * n / wall:.0f} | {ratio} | {cpu / n:.1f} | {free:.2f} |")

    w0 = min(results)
    secs = results[w0][3]
    stages = [k for k in secs[0] if k != "total"]
    print(f"\nTime per stage of one point ({w0} worker(s), median over the {len(secs) - 1} points after the first; "
          f"the first point also pays TensorFlow's warm-up: {secs[0]['total']:.1f} s):\n")
    print("| stage | median (s) | share |")
    print("|---|---|---|")
    rest = secs[1:] or secs
    total = statistics.median(s["total"] for s in rest)
    for stage in stages:
        med = statistics.median(s.get(stage, 0.0) for s in rest)
        print(f"| {stage} | {med:.3f} | {100 * med / total:.0f} % |")
    print(f"| total | {total:.3f} | 100 % |")
    if ptq_results:
        print_ptq_comparison(results, ptq_results, n)
    shutil.rmtree(tmp, ignore_errors=True)  # the sweep file (and the outputs unless --keep put them elsewhere)


if __name__ == "__main__":
    main()
