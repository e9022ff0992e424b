"""da4ml's delay units in nanoseconds, per target: the table that turns a clock period into a pipeline cut.

da4ml's ``to_pipeline(comb, latency_cutoff)`` cuts the traced logic into stages of at most
``latency_cutoff`` of its delay units (an estimate of adder levels: each operation's ``latency`` is the
longest path from the inputs in these units). A stage's register-to-register delay on a target is
modelled as ``overhead_ns + ns_per_unit * units``, where ``units`` is the stage's span (the largest
output latency minus the smallest input latency inside the stage). The two numbers per target are a
least-squares fit to measured critical paths of small nets pipelined at several cutoffs:

* FPGA parts (``ecp5-85k``): post-route Fmax of nextpnr-ecp5 (:mod:`flow.rtl.fpga`), critical path = 1000 / Fmax;
* cell libraries (``osu018``): OpenSTA's minimum period (data arrival + setup) at the clock target.

The table ships as ``flow/rtl/calibration.json``; ``python -m flow.rtl.calibrate`` measures it again
(a few minutes on 2 cores) and rewrites it. :func:`choose_cutoff` picks the largest cutoff whose
predicted stage delay fits the clock period; the physical flow then confirms it by place-and-route.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow.errors import FlowError

TABLE = Path(__file__).with_name("calibration.json")
DEFAULT_TARGET = "ecp5-85k"   # the timing target when a run names neither an FPGA part nor a cell library
CUTOFFS = (1, 2, 3, 5, 8)     # da4ml cutoffs measured per net
NETS = ((8, 6, 3, 4), (16, 8, 4, 6))  # (inputs, hidden, outputs, weight bits) of the calibration nets


@dataclass(frozen=True)
class Choice:
    """A pipeline cut for a clock period: the cutoff (da4ml units), the stage delay it predicts (ns)."""

    cutoff: float
    predicted_ns: float
    meets: bool
    target: str


def load_table(path: Path = TABLE) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise FlowError(f"{path}: the delay calibration table is missing or unreadable "
                        "(remake it with: python -m flow.rtl.calibrate)") from None


def model(target: str, table: dict[str, Any] | None = None) -> tuple[float, float]:
    """(overhead_ns, ns_per_unit) of ``target``; FlowError naming the calibrated targets otherwise."""
    targets = (table or load_table())["targets"]
    if target not in targets:
        raise FlowError(f"no delay calibration for target {target!r}; calibrated: {', '.join(sorted(targets))}")
    t = targets[target]
    return float(t["overhead_ns"]), float(t["ns_per_unit"])


def predicted_ns(units: float, target: str, table: dict[str, Any] | None = None) -> float:
    a, b = model(target, table)
    return a + b * units


def choose_cutoff(period_ns: float, target: str, comb_units: float, table: dict[str, Any] | None = None) -> Choice:
    """The largest whole cutoff (>= 1) whose predicted stage delay fits ``period_ns`` on ``target``.

    ``comb_units``: the whole combinational net's latency in da4ml units; a cutoff at or above it means
    one stage. When even one unit per stage does not fit, the cutoff is 1 (the deepest cut) and
    ``meets`` is False.
    """
    a, b = model(target, table)
    fit = math.floor((period_ns - a) / b + 1e-9) if b > 0 else comb_units
    cutoff = float(max(1, min(fit, max(1, math.ceil(comb_units)))))
    pred = a + b * min(cutoff, comb_units)
    return Choice(cutoff, round(pred, 3), pred <= period_ns, target)


def stage_units(stages: list[Any]) -> float:
    """The largest stage span in da4ml units (output latency minus input latency within a stage)."""
    spans = []
    for s in stages:
        out = [x for x in s.out_latency] or [0.0]
        inp = [x for x in s.inp_latency] or [0.0]
        spans.append(max(out) - min(inp))
    return float(max(spans)) if spans else 0.0


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``ns = a + b * units`` (a >= 0)."""
    n = len(points)
    if n < 2:
        raise FlowError("calibration needs at least two measured points")
    mx = sum(u for u, _ in points) / n
    my = sum(t for _, t in points) / n
    sxx = sum((u - mx) ** 2 for u, _ in points)
    b = sum((u - mx) * (t - my) for u, t in points) / sxx if sxx else my / max(mx, 1e-9)
    a = my - b * mx
    if a < 0:
        a, b = 0.0, sum(u * t for u, t in points) / sum(u * u for u, _ in points)
    return round(a, 4), round(b, 4)


def calibration_graph(n_in: int, hidden: int, n_out: int, bits: int, tmp: Path, seed: int = 3) -> Any:
    """A small seeded (untrained) QKeras Dense net converted to an hls4ml graph: the calibration's nets."""
    from flow.keras.env import keras, set_seed

    K = keras()  # before QKeras: sets up Keras 2 and imports TensorFlow quietly
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    from flow.hls.convert import build_graph, derive_hls_config
    from flow.spec import Hardware

    set_seed(seed)
    q = quantized_bits(bits, 0, alpha=1)
    inp = K.Input((n_in,), name="x_in")
    h = QDense(hidden, kernel_quantizer=q, bias_quantizer=q, name="d1")(inp)
    h = QActivation(quantized_relu(6, 3), name="a1")(h)
    h = QDense(n_out, kernel_quantizer=q, bias_quantizer=q, name="d2")(h)
    model_ = K.Model(inp, h)
    hw = Hardware()
    return build_graph(model_, derive_hls_config(model_, hw, "ap_fixed<8,3>"), hw, tmp / "hls")


def measure(targets: list[str], out: Path = TABLE) -> dict[str, Any]:
    """Generate each calibration net at every cutoff, measure it on every target, fit, write the table."""
    from flow.rtl import fpga
    from flow.rtl.generate import generate
    from flow.sim.words import load_port_map

    points: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    with tempfile.TemporaryDirectory(prefix="hlsflow-calibrate-") as tmp:
        root = Path(tmp)
        for net in NETS:
            tag = "x".join(map(str, net[:3])) + f"_w{net[3]}"
            graph = calibration_graph(*net, root / tag)
            for c in CUTOFFS:
                rtl = root / tag / f"rtl_c{c}"
                pm = generate(graph, rtl, f"cal_{tag}", latency_cutoff=float(c), run_lint=False)
                pm = load_port_map(rtl)
                units = pm["timing"]["stage_delay_units"]
                for t in targets:
                    work = root / tag / f"{t}_c{c}"
                    t0 = time.perf_counter()
                    if t in fpga.PARTS:
                        part = fpga.part(t)
                        syn = fpga.synthesize(rtl, pm["verilog"], pm["top"], work, part)
                        r = fpga.place_and_route(work, syn["netlist_json"], part, 200.0)
                        if r["fmax_stage"] != "post-route":
                            continue
                        ns, how = 1000.0 / r["fmax_mhz"], "nextpnr post-route 1000/Fmax"
                    else:
                        ns, how = _asic_min_period(rtl, pm, t, work), "OpenSTA data arrival + setup"
                    points[t].append({"net": tag, "cutoff": c, "stages": pm["pipeline_stages"], "stage_units": units,
                                      "critical_ns": round(ns, 4), "measured_by": how,
                                      "seconds": round(time.perf_counter() - t0, 1)})
                    print(f"calibrate: {t} {tag} cutoff {c}: {units:g} units, {ns:.3f} ns", file=sys.stderr)
    table: dict[str, Any] = {"command": "python -m flow.rtl.calibrate", "cutoffs": list(CUTOFFS),
                             "nets": ["x".join(map(str, n[:3])) + f"_w{n[3]}" for n in NETS], "targets": {}}
    old = load_table(out).get("targets", {}) if out.is_file() else {}
    table["targets"] = {k: v for k, v in old.items() if k not in targets}
    for t, pts in points.items():
        a, b = fit([(p["stage_units"], p["critical_ns"]) for p in pts])
        table["targets"][t] = {"overhead_ns": a, "ns_per_unit": b, "points": pts}
    out.write_text(json.dumps(table, indent=2) + "\n")
    return table


def _asic_min_period(rtl: Path, pm: dict[str, Any], library: str, work: Path) -> float:
    from flow import tools
    from flow.rtl import asic

    lib_path = tools.library_file(library)
    lib = asic.read_liberty(lib_path)
    period = 5.0
    syn = asic.synthesize(rtl, pm["verilog"], pm["top"], lib_path, work, period)
    nl = asic.sta_netlist(syn["netlist_json"], pm["top"], lib)
    r = asic.run_sta(work, nl, lib, pm["top"], pm.get("clock", "clk"), period)
    return period - r["slack_ns"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flow.rtl.calibrate", description=__doc__.split("\n")[0])
    p.add_argument("--targets", default="ecp5-85k,osu018", help="comma-separated FPGA parts / cell libraries")
    p.add_argument("--out", type=Path, default=TABLE, help=f"table to write (default {TABLE})")
    args = p.parse_args(argv)
    table = measure([t.strip() for t in args.targets.split(",") if t.strip()], args.out)
    for t, v in table["targets"].items():
        print(f"{t}: stage delay = {v['overhead_ns']} ns + {v['ns_per_unit']} ns x da4ml units "
              f"({len(v['points'])} points)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
