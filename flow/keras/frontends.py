"""Which Keras a model needs, and the worker process that runs a command in that Keras.

Three front ends, one per kind of model file:

- ``keras2``: Keras 2 models (tf_keras 2.21) and QKeras 0.9, the training path. This process's own
  environment: :mod:`flow.keras.env` sets ``TF_USE_LEGACY_KERAS=1`` and lets hls4ml see Keras 2.
- ``keras3``: Keras 3 models (``.keras`` files, Keras 3 JSON or ``.h5``), including QKeras v3 (PyPI
  ``qkeras-v3``, the Keras-3 fork of QKeras).
- ``hgq2``: Keras 3 models made with HGQ2 (PyPI ``hgq2``).

QKeras 0.9, ``qkeras-v3`` and ``hgq2`` all install a top-level package named ``qkeras`` (hgq2's is a
compatibility shim), so no two of them can share one ``site-packages`` or one Python process. The two
Keras-3 front ends therefore live in *overlays*: folders with only that package
(``pip install --no-deps --target``, pinned in ``pyproject.toml`` under ``[tool.hlsflow.overlays]``,
installed by ``scripts/setup.sh`` through ``python -m flow.keras.frontends install``), put first on
``PYTHONPATH`` of a worker process that re-runs the same ``hlsflow`` command with
``HLSFLOW_FRONTEND=<kind>``. Everything else (TensorFlow 2.21, Keras 3.15, hls4ml, numpy) is the main
environment's. hls4ml 1.3 picks its Keras-3 frontend from ``keras.__version__``; in a worker ``keras`` is
Keras 3 and never swapped.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError, ToolMissing

ENV_VAR = "HLSFLOW_FRONTEND"
OVERLAYS_VAR = "HLSFLOW_OVERLAYS"
MARKER = "hlsflow-overlay.json"


@dataclass(frozen=True)
class Frontend:
    """A front end: its Keras major version, the overlay it needs (None: the main environment), and what it reads."""

    name: str
    keras_major: int
    overlay: str | None
    reads: str


FRONTENDS = {
    "keras2": Frontend("keras2", 2, None, "Keras 2 (tf_keras) and QKeras 0.9 models"),
    "keras3": Frontend("keras3", 3, "qkeras-v3", "Keras 3 models, including QKeras v3 (qkeras-v3)"),
    "hgq2": Frontend("hgq2", 3, "hgq2", "Keras 3 models made with HGQ2"),
}


def current() -> Frontend:
    """The front end of this process (``HLSFLOW_FRONTEND``, default ``keras2``)."""
    name = os.environ.get(ENV_VAR, "keras2")
    if name not in FRONTENDS:
        raise FlowError(f"{ENV_VAR}={name!r}: unknown front end (known: {', '.join(FRONTENDS)})")
    return FRONTENDS[name]


def overlays_root() -> Path:
    """Folder holding the overlays (``HLSFLOW_OVERLAYS``, default ``<sys.prefix>/share/hlsflow/overlays``)."""
    return Path(os.environ.get(OVERLAYS_VAR) or Path(sys.prefix) / "share" / "hlsflow" / "overlays")


def overlay_dir(overlay: str) -> Path:
    return overlays_root() / overlay


# ---- which front end a model file needs -------------------------------------------------------------------------

def _modules(config: Any) -> set[str]:
    """Every ``module`` value in a (Keras 3) serialized config, recursively."""
    found: set[str] = set()
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("module"), str):
                found.add(item["module"])
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return found


def _kind_of(keras_version: str | None, config: Any, path: Path) -> str:
    """``keras2``/``keras3``/``hgq2`` from a saved model's Keras version and config."""
    modules = _modules(config)
    hgq = any(m == "hgq" or m.startswith("hgq.") for m in modules)
    qkeras = any(m == "qkeras" or m.startswith("qkeras.") for m in modules)
    major = str(keras_version or "").split(".")[0]
    if major == "3" or (not major and modules):
        if hgq and qkeras:
            raise FlowError(f"{path}: mixes HGQ2 and QKeras v3 layers; hlsflow loads one of them per model")
        return "hgq2" if hgq else "keras3"
    return "keras2"


def detect(path: str | Path) -> str:
    """The front end a model file needs (``keras2``, ``keras3`` or ``hgq2``), read from the file itself.

    ``.keras``: ``metadata.json`` (``keras_version``) and ``config.json`` of the zip; ``.h5``: the
    ``keras_version`` and ``model_config`` attributes; ``.json``: its ``keras_version`` and layer
    modules; ``.onnx``, ``.pt``/``.pth``: ``keras2`` (hls4ml's ONNX and PyTorch converters run in this process,
    :mod:`flow.hls.model_files`). A file that is none of these, or is damaged, raises FlowError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise FlowError(f"{path}: model file not found")
    suffix = path.suffix.lower()
    if suffix in (".onnx", ".pt", ".pth"):  # ONNX/QONNX, PyTorch: hls4ml's own converters, in this process
        return "keras2"
    if suffix == ".keras":
        try:
            with zipfile.ZipFile(path) as z:
                names = set(z.namelist())
                meta = json.loads(z.read("metadata.json")) if "metadata.json" in names else {}
                config = json.loads(z.read("config.json")) if "config.json" in names else None
        except (zipfile.BadZipFile, OSError, ValueError, KeyError, EOFError) as exc:
            raise FlowError(f"{path}: not a readable .keras file (a zip with config.json): {exc}") from None
        if config is None:
            raise FlowError(f"{path}: not a .keras model: the zip has no config.json")
        if not isinstance(meta, dict):
            raise FlowError(f"{path}: metadata.json is not a JSON object")
        return _kind_of(meta.get("keras_version"), config, path)
    if suffix in (".h5", ".hdf5"):
        import h5py

        try:
            with h5py.File(path, "r") as f:
                version = f.attrs.get("keras_version")
                raw = f.attrs.get("model_config")
        except Exception as exc:  # noqa: BLE001 - h5py raises OSError and others for damaged files
            raise FlowError(f"{path}: not a readable HDF5 model file: {exc}") from None
        version = version.decode() if isinstance(version, bytes) else version
        if raw is None:
            return "keras3" if str(version or "").startswith("3") else "keras2"
        try:
            config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        except ValueError as exc:
            raise FlowError(f"{path}: its model_config attribute is not JSON: {exc}") from None
        return _kind_of(version, config, path)
    if suffix == ".json":
        try:
            config = json.loads(path.read_text())
        except (UnicodeDecodeError, ValueError) as exc:
            raise FlowError(f"{path}: not a Keras model JSON: {exc}") from None
        if not isinstance(config, dict):
            raise FlowError(f"{path}: not a Keras model JSON (expected an object with class_name and config)")
        return _kind_of(config.get("keras_version"), config, path)
    raise FlowError(f"{path}: unsupported model file; use .h5, .keras, a Keras .json with weights, .onnx, "
                    f"or a PyTorch .pt/.pth")


def project_frontend(project: str | Path) -> str:
    """The front end recorded in ``PROJECT/project.json`` (``keras2`` for projects that predate the field)."""
    path = Path(project) / "project.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return current().name  # a missing or damaged record: the command itself reports it
    name = meta.get("frontend", "keras2") if isinstance(meta, dict) else "keras2"
    if name not in FRONTENDS:
        raise FlowError(f"{path}: field frontend: unknown front end {name!r} (known: {', '.join(FRONTENDS)})")
    return name


# ---- the worker -------------------------------------------------------------------------------------------------

def require_overlay(frontend: Frontend) -> Path | None:
    """The overlay folder of ``frontend`` (None for the main environment), or ToolMissing saying how to install it."""
    if frontend.overlay is None:
        return None
    folder = overlay_dir(frontend.overlay)
    if not (folder / MARKER).is_file():
        raise ToolMissing(f"the {frontend.name} front end ({frontend.reads}) is not installed: run scripts/setup.sh "
                          f"(it installs {frontend.overlay} into {folder})")
    return folder


def worker_env(frontend: Frontend) -> dict[str, str]:
    """os.environ for a process of ``frontend``: its overlay first on PYTHONPATH, then this hlsflow's source."""
    env = dict(os.environ)
    env[ENV_VAR] = frontend.name
    env.pop("TF_USE_LEGACY_KERAS", None)  # set by flow.keras.env in a Keras-2 parent; Keras 3 must not see it
    import flow

    paths = [str(Path(flow.__file__).resolve().parents[1])]
    folder = require_overlay(frontend)
    if folder is not None:
        paths.insert(0, str(folder))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


def run_in_worker(name: str, argv: list[str]) -> int:
    """Run ``hlsflow argv`` in a worker process of front end ``name``; its stdout/stderr are this process's."""
    from flow.core import procs

    env = worker_env(FRONTENDS[name])
    sys.stdout.flush()
    sys.stderr.flush()
    return procs.run([sys.executable, "-m", "flow", *argv], env=env, stdout=sys.stdout, stderr=sys.stderr).returncode


# ---- installing the overlays (scripts/setup.sh) -------------------------------------------------------------

def pinned_overlays(pyproject: Path) -> dict[str, str]:
    """``{overlay: requirement}`` from ``[tool.hlsflow.overlays]`` of ``pyproject.toml``."""
    import tomllib

    data = tomllib.loads(pyproject.read_text())
    return dict(data["tool"]["hlsflow"]["overlays"])


def install(pyproject: Path) -> None:
    """Install every pinned overlay not yet installed at its pinned version (idempotent)."""
    from flow.core import procs

    for overlay, requirement in pinned_overlays(pyproject).items():
        folder = overlay_dir(overlay)
        marker = folder / MARKER
        if marker.is_file() and json.loads(marker.read_text()).get("requirement") == requirement:
            continue
        print(f"setup: installing {requirement} into {folder}", file=sys.stderr)
        tmp = folder.with_name(folder.name + ".installing")
        shutil.rmtree(tmp, ignore_errors=True)
        procs.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                   "--root-user-action=ignore", "--no-deps", "--target", str(tmp), requirement], check=True)
        (tmp / MARKER).write_text(json.dumps({"requirement": requirement}) + "\n")
        shutil.rmtree(folder, ignore_errors=True)
        tmp.rename(folder)


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "install":
        install(Path(sys.argv[2]))
    else:
        raise SystemExit("usage: python -m flow.keras.frontends install PYPROJECT.toml")
