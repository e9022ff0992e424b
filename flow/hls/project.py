"""A project folder's own record of how its hls4ml graph was made, so later commands can rebuild it.

``project.json`` holds the model file (relative to the project), the hls4ml HLSConfig that was
used, the hardware target and the input type, the front end that reads the model (``frontend``:
``keras2``, ``keras3`` or ``hgq2``, see :mod:`flow.keras.frontends`; absent in older projects: ``keras2``)
and, when the model needs them, the user's custom-objects file copied into the project
(``custom_objects``). Rebuilding the graph from them gives the same types and weights as the written
HLS project (hls4ml's conversion is deterministic).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from flow.arith.types import FixedType
from flow.core.errors import FlowError
from flow.data import load_dataset
from flow.spec import Hardware, load_spec

META = "project.json"
CUSTOM_OBJECTS_FILE = "custom_objects.py"


def save_meta(work: Path, model_file: str, hls_config: dict, hardware: Hardware, input_type: str,
              frontend: str = "keras2", custom_objects: Path | None = None,
              record: dict[str, Any] | None = None) -> None:
    """Write ``project.json`` into the (staging) project folder ``work``; copy ``custom_objects`` into it.
    ``record``: how to reopen a model that is not a Keras model (:func:`flow.hls.model_files.model_record`)."""
    meta = {"model": model_file, "hls_config": hls_config, "hardware": hardware.__dict__, "input_type": input_type,
            "frontend": frontend}
    meta.update({k: v for k, v in (record or {}).items() if not (k == "source" and v == "keras")})
    if custom_objects is not None:
        (work / CUSTOM_OBJECTS_FILE).write_bytes(Path(custom_objects).read_bytes())
        meta["custom_objects"] = CUSTOM_OBJECTS_FILE
    (work / META).write_text(json.dumps(meta, indent=2) + "\n")


def load_meta(project: Path) -> dict[str, Any]:
    """The project record ``PROJECT/project.json``: the one check every project command (``verify``, ``emulate``,
    ``rtl``, ``sim``, ``ip``) makes first; FlowError naming the folder or the file when it is not a project."""
    project = Path(project)
    path = project / META
    if not project.is_dir():
        raise FlowError(f"{project}: project folder not found" if not project.exists()
                        else f"{project}: not an hlsflow project (a file, not a project folder)")
    if not path.is_file():
        raise FlowError(f"{project}: not an hlsflow project (no {META}); make one with `hlsflow run` or "
                        "`hlsflow convert`")
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FlowError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise FlowError(f"{path}: cannot read ({exc.strerror})") from None
    if not isinstance(meta, dict):
        raise FlowError(f"{path}: not a project record (a JSON object), got {type(meta).__name__}")
    return meta


def rebuild(project: Path, output_dir: Path) -> tuple[Any, Any, dict[str, Any]]:
    """Load the project's model and rebuild its hls4ml graph to write into ``output_dir``.

    Returns ``(model, graph, meta)``; nothing is written until the caller writes or compiles.
    """
    from flow.hls.convert import build_graph
    from flow.hls.model_files import reopen

    meta = load_meta(project)
    path = Path(project) / META
    for key in ("model", "hls_config", "hardware", "input_type"):
        if key not in meta:
            raise FlowError(f"{path}: field `{key}` is missing")
    if not isinstance(meta["hardware"], dict):
        raise FlowError(f"{path}: field `hardware` must be a mapping")
    from flow.hls.config_check import check_hls_config

    check_hls_config(path, meta["hls_config"], "hls_config")
    for key in ("model", "input_type"):
        if not isinstance(meta[key], str):
            raise FlowError(f"{path}: field `{key}` must be a string, got {meta[key]!r}")
    if meta.get("custom_objects") is not None and not isinstance(meta["custom_objects"], str):
        raise FlowError(f"{path}: field `custom_objects` must be a file name, got {meta['custom_objects']!r}")
    from flow.arith.types import parse_type

    try:
        parse_type(meta["input_type"])
    except (ValueError, TypeError) as exc:
        raise FlowError(f"{path}: field `input_type`: {exc}") from None
    try:
        hardware = Hardware(**meta["hardware"])
    except TypeError as exc:
        raise FlowError(f"{path}: field `hardware`: {exc}") from None
    custom = meta.get("custom_objects")
    model = reopen(Path(project), meta, Path(project) / custom if custom else None)
    try:
        graph = build_graph(model, meta["hls_config"], hardware, output_dir)
    except FlowError as exc:  # hls4ml refused a setting of the recorded config
        raise FlowError(f"{path}: field `hls_config`: {exc}") from None
    return model, graph, meta


def project_test_data(project: Path, input_type: FixedType, n: int) -> np.ndarray:
    """Up to ``n`` test samples from the project's spec, or an empty array when it has none."""
    spec_file = project / "spec.yaml"
    if not spec_file.is_file():
        return np.zeros((0,))
    spec = load_spec(spec_file)
    return load_dataset(spec.dataset, input_type, spec.training.seed).x_test[:n].astype(np.float64)
