"""``python -m flow.physical.calibrate``: measure da4ml's delay units in ns per target and rewrite the table.

Each calibration net (small seeded QKeras Dense nets, :data:`NETS`) is generated at every cutoff of
:data:`CUTOFFS`, then measured on every target: FPGA parts by Yosys ``synth_ecp5`` + nextpnr-ecp5
post-route (critical path = 1000 / Fmax), cell libraries by OpenSTA (data arrival + setup at 5 ns).
:func:`flow.rtl.timing.fit` gives each target's ``overhead_ns`` and ``ns_per_unit``; the table
(:data:`flow.rtl.timing.TABLE`, shipped in the package) keeps every measured point.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from flow.rtl.port_map import PortMap
from flow.rtl.timing import TABLE, fit, load_table

CUTOFFS = (1, 2, 3, 5, 8)     # da4ml cutoffs measured per net
NETS = ((8, 6, 3, 4), (16, 8, 4, 6))  # (inputs, hidden, outputs, weight bits) of the calibration nets


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
    from flow.core.targets import FPGA_PARTS, fpga_part
    from flow.physical import fpga
    from flow.rtl.generate import generate

    points: dict[str, list[dict[str, Any]]] = {t: [] for t in targets}
    with tempfile.TemporaryDirectory(prefix="hlsflow-calibrate-") as tmp:
        root = Path(tmp)
        for net in NETS:
            tag = "x".join(map(str, net[:3])) + f"_w{net[3]}"
            graph = calibration_graph(*net, root / tag)
            for c in CUTOFFS:
                rtl = root / tag / f"rtl_c{c}"
                pm = generate(graph, rtl, f"cal_{tag}", latency_cutoff=float(c), run_lint=False)
                units = pm.stage_delay_units
                for t in targets:
                    work = root / tag / f"{t}_c{c}"
                    t0 = time.perf_counter()
                    if t in FPGA_PARTS:
                        part = fpga_part(t)
                        syn = fpga.synthesize(rtl, list(pm.verilog), pm.top, work, part)
                        r = fpga.place_and_route(work, syn["netlist_json"], part, 200.0)
                        if r["fmax_stage"] != "post-route":
                            continue
                        ns, how = 1000.0 / r["fmax_mhz"], "nextpnr post-route 1000/Fmax"
                    else:
                        ns, how = _asic_min_period(rtl, pm, t, work), "OpenSTA data arrival + setup"
                    points[t].append({"net": tag, "cutoff": c, "stages": pm.pipeline_stages, "stage_units": units,
                                      "critical_ns": round(ns, 4), "measured_by": how,
                                      "seconds": round(time.perf_counter() - t0, 1)})
                    print(f"calibrate: {t} {tag} cutoff {c}: {units:g} units, {ns:.3f} ns", file=sys.stderr)
    table: dict[str, Any] = {"command": "python -m flow.physical.calibrate", "cutoffs": list(CUTOFFS),
                             "nets": ["x".join(map(str, n[:3])) + f"_w{n[3]}" for n in NETS], "targets": {}}
    old = load_table(out).get("targets", {}) if out.is_file() else {}
    table["targets"] = {k: v for k, v in old.items() if k not in targets}
    for t, pts in points.items():
        a, b = fit([(p["stage_units"], p["critical_ns"]) for p in pts])
        table["targets"][t] = {"overhead_ns": a, "ns_per_unit": b, "points": pts}
    out.write_text(json.dumps(table, indent=2) + "\n")
    return table


def _asic_min_period(rtl: Path, pm: PortMap, library: str, work: Path) -> float:
    from flow.core import tools
    from flow.physical import asic

    lib_path = tools.library_file(library)
    lib = asic.read_liberty(lib_path)
    period = 5.0
    syn = asic.synthesize(rtl, list(pm.verilog), pm.top, lib_path, work, period)
    nl = asic.sta_netlist(syn["netlist_json"], pm.top, lib)
    r = asic.run_sta(work, nl, lib, pm.top, pm.clock, period)
    return period - r["slack_ns"]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m flow.physical.calibrate", description=__doc__.split("\n")[0])
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
