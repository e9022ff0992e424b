"""Vendor HLS synthesis, when the vendor tool is installed: run the project's own TCL and read its report."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from flow.core import procs
from flow.core.errors import FlowError, ToolMissing

# backend -> (tool looked up on PATH, command run in the HLS project folder)
TOOLS: dict[str, tuple[str, list[str]]] = {
    "Vitis": ("vitis-run", ["vitis-run", "--mode", "hls", "--tcl", "build_prj.tcl"]),
    "Vivado": ("vivado_hls", ["vivado_hls", "-f", "build_prj.tcl", "csim=0 synth=1 cosim=0 export=0"]),
    "Catapult": ("catapult", ["catapult", "-shell", "-file", "build_prj.tcl"]),
}


def hls_dir_of(project: Path) -> Path:
    """The HLS project folder: ``PROJECT/hls`` for a flow project, or PROJECT itself."""
    for cand in (project / "hls", project):
        if (cand / "hls4ml_config.yml").is_file():
            return cand
    raise FlowError(f"{project}: not an hlsflow/hls4ml project (no hls4ml_config.yml in it or in hls/)")


def synth(project: Path) -> dict[str, Any]:
    """Run vendor synthesis for the project's backend; FlowError with a one-line reason when the tool is missing."""
    hls = hls_dir_of(Path(project))
    # the file holds hls4ml's own YAML tags (!keras_model), so read the one top-level key we need
    match = re.search(r"^Backend:\s*(\S+)", (hls / "hls4ml_config.yml").read_text(), re.MULTILINE)
    backend = match.group(1) if match else "Vitis"
    if backend not in TOOLS:
        raise FlowError(f"{hls}: backend {backend!r} has no synthesis support here; supported: {', '.join(TOOLS)}")
    tool, cmd = TOOLS[backend]
    if shutil.which(tool) is None:
        raise ToolMissing(f"{backend} synthesis needs `{tool}` on PATH, and it is not installed on this machine")
    proc = procs.run(cmd, cwd=hls, capture_output=True, text=True)
    (hls / "synth.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise FlowError(f"{tool} failed with exit code {proc.returncode}; see {hls / 'synth.log'}")
    from flow.keras.env import hls4ml_sees_keras2

    with hls4ml_sees_keras2() as hls4ml:
        reader = hls4ml.report.read_vivado_report if backend != "Catapult" else hls4ml.report.read_catapult_report
        return {"backend": backend, "tool": tool, "report": reader(str(hls))}
