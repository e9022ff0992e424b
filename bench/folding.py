"""Does folding pay? The pre-trace estimate (flow/rtl/budget.py) against Yosys ``synth_xilinx`` LUTs per reuse factor.

For every model and reuse factor R: a project (the jet MLP converted with a hand-written hls4ml config YAML of the
kind users keep: ``ap_fixed<16,6>`` everywhere, ``ReuseFactor: R``, ``Strategy: Resource``; the digits MLP and CNN
from ``hlsflow run models/<name>.yaml`` with the RTL stage off, folded by ``--reuse-factor R``), ``hlsflow rtl``
(unrolled at R = 1, ``stream`` for the io_stream CNN, else ``folded``), then Yosys 0.23 ``synth_xilinx -flatten``
alone (flow.physical.estimate.xilinx_estimate). One row per point: model, R, estimated LUTs, Yosys LUTs (and FF, DSP,
BRAM), estimate / Yosys, Yosys LUTs / Yosys LUTs at R = 1.

    python3 bench/folding.py [--models jet_mlp,digits_mlp,digits_cnn] [--reuse 1,4,16] [--work DIR] [--cached]
                             [--out FILE.json]

``--work`` keeps the projects, their RTL and each point's Yosys result (``<project>/xilinx.json``): a second run
reuses them, measures only what is missing and recomputes every estimate. Yosys runs under ``nice``; on two
shared cores the jet MLP at R = 4 took 46 minutes and R = 1 did not finish within 55 (load average 13-15).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "models"
sys.path.insert(0, str(ROOT))

JET_CONFIG = """Backend: Vivado
IOType: io_parallel
ClockPeriod: 5
HLSConfig:
  Model:
    Precision: ap_fixed<16,6>
    ReuseFactor: {reuse}
    Strategy: Resource
"""


def base_project(model: str, reuse: int, work: Path) -> Path:
    """The project of ``model`` a point starts from (made once: per R for the jet MLP, whose config carries R)."""
    from flow.commands.pipeline import convert_existing, run

    if model == "jet_mlp":
        path = work / f"jet_mlp_R{reuse}" / "project"
        if not (path / "project.json").is_file():
            path.parent.mkdir(parents=True, exist_ok=True)
            (path.parent / "config.yml").write_text(JET_CONFIG.format(reuse=reuse))
            convert_existing(SHARED / "KERAS_3layer.json", path, config_path=path.parent / "config.yml", samples=200)
        return path
    import yaml

    path = work / model / "out" / model
    if not (path / "project.json").is_file():
        spec = yaml.safe_load((ROOT / "models" / f"{model}.yaml").read_text())
        spec["rtl"] = {"enabled": False}
        (work / model).mkdir(parents=True, exist_ok=True)
        (work / model / "spec.yaml").write_text(yaml.safe_dump(spec))
        run(work / model / "spec.yaml", work / model / "out")
    return path


def point(model: str, reuse: int, work: Path, cached_only: bool = False) -> dict | None:
    """Estimate, generate and synthesize one (model, R) point; the RTL and Yosys's counts (``xilinx.json`` in the
    project) are kept in ``work`` and reused, the estimate is always computed anew."""
    from flow.hls.project import rebuild
    from flow.rtl.budget import estimate, layer_sizes
    from flow.physical.estimate import xilinx_estimate
    from flow.rtl.generate import rtl_project

    base = base_project(model, reuse, work)
    project = base if model == "jet_mlp" else work / f"{model}_R{reuse}" / "project"
    if project != base and not (project / "project.json").is_file():
        shutil.copytree(base, project)
    with tempfile.TemporaryDirectory() as tmp:
        _, graph, _ = rebuild(project, Path(tmp) / "hls")
        sizes, other = layer_sizes(graph)
    est = estimate(sizes, other, {s.name: reuse for s in sizes})
    if not (project / "rtl" / "port_map.json").is_file():
        stream = model == "digits_cnn"
        rtl_project(project, reuse_factor=None if model == "jet_mlp" else reuse,
                    architecture="auto" if stream or reuse == 1 else "folded")
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    cached = project / "xilinx.json"
    if cached_only and not cached.is_file():
        return None
    if not cached.is_file():
        cached.write_text(json.dumps(xilinx_estimate(project / "rtl", pm["verilog"], pm["top"], timeout=3600),
                                     indent=1) + "\n")
    y = json.loads(cached.read_text())
    return {"model": model, "reuse": reuse, "architecture": pm["architecture"], "estimate_luts": est.luts,
            "estimate_registers": est.registers, "adders": est.adders, "multiplications": est.multiplications,
            **{k: y["xilinx"][k] for k in ("LUT", "FF", "DSP", "BRAM", "CARRY", "MUXF")},
            "synth_seconds": y["seconds"]["synth_xilinx"]}


def table(rows: list[dict]) -> str:
    base = {r["model"]: r["LUT"] for r in rows if r["reuse"] == 1}
    out = ["| model | R | architecture | estimate LUTs | Yosys LUTs | FF | DSP | BRAM | estimate / Yosys "
           "| LUTs / R=1 |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ratio = f"{r['LUT'] / base[r['model']]:.2f}" if r["model"] in base else "-"
        out.append(f"| {r['model']} | {r['reuse']} | {r['architecture']} | {r['estimate_luts']:,} | {r['LUT']:,} | "
                   f"{r['FF']:,} | {r['DSP']} | {r['BRAM']} | {r['estimate_luts'] / max(r['LUT'], 1):.2f} | {ratio} |")
    return "\n".join(out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="jet_mlp,digits_mlp,digits_cnn")
    ap.add_argument("--reuse", default="1,4,16", help="reuse factors (the CNN: 1 and 4 only, its dense has 10 outputs)")
    ap.add_argument("--work", type=Path, help="folder for the projects and cached results (default: a temporary one)")
    ap.add_argument("--out", type=Path, help="also write the rows as JSON")
    ap.add_argument("--cached", action="store_true", help="with --work: only the points Yosys has already measured")
    args = ap.parse_args()
    os.nice(5)
    work = args.work or Path(tempfile.mkdtemp(prefix="folding-"))
    rows = []
    for model in args.models.split(","):
        for r in (int(x) for x in args.reuse.split(",")):
            if model == "digits_cnn" and r > 4:
                continue
            row = point(model, r, work, args.cached)
            if row is None:
                print(f"{model} R={r}: no Yosys result in {work} yet (--cached)", flush=True)
                continue
            rows.append(row)
            print(table(rows[-1:]).splitlines()[-1], flush=True)
    print(table(rows))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
