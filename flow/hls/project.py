"""A project folder's own record of how its hls4ml graph was made, so later commands can rebuild it.

``project.json`` holds the model file (relative to the project), the hls4ml HLSConfig that was
used, the hardware target and the input type. Rebuilding the graph from them gives the same
types and weights as the written HLS project (hls4ml's conversion is deterministic).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from flow.errors import FlowError
from flow.spec import Hardware

META = "project.json"


def save_meta(work: Path, model_file: str, hls_config: dict, hardware: Hardware, input_type: str) -> None:
    """Write ``project.json`` into the (staging) project folder ``work``."""
    meta = {"model": model_file, "hls_config": hls_config, "hardware": hardware.__dict__, "input_type": input_type}
    (work / META).write_text(json.dumps(meta, indent=2) + "\n")


def load_meta(project: Path) -> dict[str, Any]:
    path = Path(project) / META
    if not path.is_file():
        raise FlowError(f"{project}: not an hlsflow project (no {META}); make one with `hlsflow run` or `hlsflow convert`")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FlowError(f"{path}: corrupt project record: {exc}") from None


def rebuild(project: Path, output_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Load the project's model and rebuild its hls4ml graph to write into ``output_dir``.

    Returns ``(model, graph, meta)``; nothing is written until the caller writes or compiles.
    """
    from flow.hls.convert import build_graph
    from flow.keras.model_io import load_model

    meta = load_meta(project)
    model = load_model(Path(project) / meta["model"])
    graph = build_graph(model, meta["hls_config"], Hardware(**meta["hardware"]), output_dir)
    return model, graph, meta
