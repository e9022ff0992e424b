"""Shared test helpers and fixtures: one-line error checks, the CLI run in-process, corpus models (tests/corpus.py)
saved with their hls4ml configs."""

from __future__ import annotations

import hashlib
import json
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Third-party models (hls4ml's public example models; not shipped): ../shared/models beside the clone, or the
# folder named by HLSFLOW_SHARED_MODELS (point it at a missing folder to run the suite as a fresh clone would).
SHARED_MODELS = Path(os.environ.get("HLSFLOW_SHARED_MODELS", ROOT.parent / "shared" / "models"))


def shared_model(name: str) -> Path:
    """``SHARED_MODELS/name``; the calling test (or fixture, and the tests using it) is skipped, with the reason,
    when the file is not there (a fresh clone without ../shared)."""
    path = SHARED_MODELS / name
    if not path.is_file():
        pytest.skip(f"third-party test data {path} not found (see tests/conftest.py SHARED_MODELS)")
    return path


_PROGRESS = re.compile(r"^(\[\d+/\d+\] |  )")  # stage banners and indented progress lines of flow.commands.pipeline


def error_lines(stderr: str) -> list[str]:
    """The lines of a command's stderr that are not progress (stage banners, indented progress)."""
    return [line for line in stderr.splitlines() if line.strip() and not _PROGRESS.match(line)]


def assert_one_error_line(stderr: str, command: str | None) -> str:
    """The single `hlsflow COMMAND: ...` line of ``stderr`` (no traceback, no internal error, nothing else);
    ``command`` None: any command (or none, for an argument error before one is known)."""
    lines = error_lines(stderr)
    assert "Traceback" not in stderr, stderr
    assert len(lines) == 1, stderr
    head = re.match(r"hlsflow( [a-z]+)?: ", lines[0])
    assert head and (command is None or head.group(0) == f"hlsflow {command}: "), stderr
    assert ": internal error: " not in lines[0], stderr
    return lines[0]


MARK = "HLSFLOW_FAULT_TEST"  # set only for the command under test; every descendant inherits it


def marked_processes(mark: str) -> dict[int, str]:
    """Live (not zombie) processes whose environment has ``MARK=mark``: pid -> command name."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            proc_stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if f"{MARK}={mark}".encode() in env.split(b"\0") and proc_stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found[int(entry)] = proc_stat.split("(", 1)[1].rsplit(")", 1)[0]
    return found


def tree_digest(folder: Path) -> str:
    """sha256 over every entry under ``folder`` (hidden ones too): relative path, type, mode bits, file bytes and
    symlink target; ``folder``'s own mode too. Equal digests: nothing was created, removed, changed or chmod-ed."""
    h = hashlib.sha256(f"{stat.S_IMODE(folder.stat().st_mode):o}".encode())
    for root, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(dirs + files):
            path = Path(root) / name
            st = path.lstat()
            h.update(f"\0{path.relative_to(folder)}\0{st.st_mode:o}\0".encode())
            if stat.S_ISLNK(st.st_mode):
                h.update(os.readlink(path).encode())
            elif stat.S_ISREG(st.st_mode):
                h.update(path.read_bytes())
    return h.hexdigest()


def uniform_weights(model: Any, seed: int, scale: float = 1.0) -> Any:
    """``model`` with every weight drawn uniformly from ``[-scale, scale]`` (``numpy.random.default_rng(seed)``,
    layer by layer in order): weights over the whole quantizer range, so products, sums and clipping all happen."""
    import numpy as np

    rng = np.random.default_rng(seed)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in ws])
    return model


def tiny_graph(folder: Path) -> Any:
    """The hls4ml graph of a 6 -> QDense 4 -> quantized_relu(6, 2) -> QDense 3 model (5-bit weights and biases,
    ``ap_fixed<8,3>`` inputs, Vitis, seed 5) written under ``folder / "tiny"``: two traced Dense layers, built in
    seconds."""
    from flow.keras.env import keras, set_seed  # first: sets up Keras 2 before QKeras is imported
    # isort: split
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    from flow.hls.convert import build_graph, derive_hls_config
    from flow.spec import Hardware

    K = keras()
    set_seed(5)
    inp = K.Input((6,), name="x_in")
    h = QDense(4, kernel_quantizer=quantized_bits(5, 0, alpha=1), bias_quantizer=quantized_bits(5, 0, alpha=1),
               name="d1")(inp)
    h = QActivation(quantized_relu(6, 2), name="r1")(h)
    out = QDense(3, kernel_quantizer=quantized_bits(5, 0, alpha=1), bias_quantizer=quantized_bits(5, 0, alpha=1),
                 name="d2")(h)
    model = K.Model(inp, out)
    hw = Hardware(backend="Vitis")
    return build_graph(model, derive_hls_config(model, hw, "ap_fixed<8,3>"), hw, folder / "tiny")


def fake_project(folder: Path, rtl: bool = False) -> Path:
    """A folder with a well-formed ``project.json`` (and ``rtl/port_map.json`` with ``rtl``): what hlsflow's
    ownership checks accept as its own, without the cost of a real project (commands refused up front never
    read further)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "project.json").write_text(json.dumps({"model": "qkeras_model.h5", "hls_config": {"Model": {}},
                                                     "hardware": {}, "input_type": "ap_fixed<8,3>"}))
    if rtl:
        (folder / "rtl").mkdir(exist_ok=True)
        (folder / "rtl" / "port_map.json").write_text(json.dumps({"top": "net_axis"}))
    return folder


@pytest.fixture
def hlsflow(capsys) -> Callable[..., tuple[int, Any, str]]:
    """Run ``hlsflow ARGS...`` in-process; returns ``(exit code, JSON printed on stdout or None, stderr)``."""
    from flow.commands.cli import main

    def run(*args: Any) -> tuple[int, Any, str]:
        capsys.readouterr()  # drop what earlier steps (e.g. a lazily built fixture) printed
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        start = out.find("{")
        return code, json.loads(out[start:]) if start >= 0 else None, err

    return run


def whole_way(hlsflow: Callable[..., tuple[int, Any, str]], model: Path, project: Path, *convert_args: Any) -> dict:
    """``hlsflow convert`` -> ``verify`` -> ``rtl`` -> ``sim`` (Icarus) of ``model`` into ``project`` (200/300/500/200
    samples); asserts that each exits 0 and that both exact checks hold: emulator == C simulation on every output
    (convert's report and verify), RTL == emulator on every bit (200 samples). Every command's JSON, by command."""
    out = {}
    for command, args in (("convert", [model, "--out", project, "--samples", 200, *convert_args]),
                          ("verify", [project, "--samples", 300]),
                          ("rtl", [project, "--check-samples", 500]),
                          ("sim", [project, "--simulator", "icarus", "--samples", 200])):
        code, out[command], err = hlsflow(command, *args)
        assert code == 0, (command, err[-2000:])
    report = json.loads((project / "report.json").read_text())
    assert report["emulator_vs_csim"]["equal_outputs"] == report["emulator_vs_csim"]["outputs"] > 0
    assert out["verify"]["emulator_vs_csim"]["differing_outputs"] == 0
    rtl = out["sim"]["rtl_vs_emulator"]
    assert rtl["samples"] == 200 and rtl["differing_bits"] == 0 and rtl["mismatching_samples"] == 0
    return out


@pytest.fixture(scope="module")
def corpus_files(tmp_path_factory) -> Callable[[str], tuple[Path, Path]]:
    """``corpus_files(name)``: the corpus model saved as users save it and its hls4ml config YAML (built once per module)."""
    from corpus import BY_NAME, materialize

    made: dict[str, tuple[Path, Path]] = {}

    def get(name: str) -> tuple[Path, Path]:
        if name not in made:
            made[name] = materialize(BY_NAME[name], tmp_path_factory.mktemp(name))
        return made[name]

    return get


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> tuple[Path, dict]:
    """A small QKeras model (6 -> QDense 4 -> quantized_relu -> QDense 3) saved three ways (``m.h5``, ``m.keras``,
    ``m.json`` + ``m_weights.h5``) in one folder, and the hls4ml config hls4ml itself writes for it."""
    from flow.keras.env import keras  # first: sets up Keras 2 before QKeras is imported
    # isort: split
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    from flow.hls.convert import derive_hls_config
    from flow.spec import Hardware

    k = keras()
    folder = tmp_path_factory.mktemp("model")
    inp = k.Input((6,), name="x")
    h = QDense(4, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
               name="fc1")(inp)
    h = QActivation(quantized_relu(6, 2), name="relu1")(h)
    model = k.Model(inp, QDense(3, kernel_quantizer=quantized_bits(6, 0, alpha=1),
                                bias_quantizer=quantized_bits(6, 0, alpha=1), name="fc2")(h))
    model.save(folder / "m.h5")
    model.save(folder / "m.keras")
    (folder / "m.json").write_text(model.to_json())
    model.save_weights(folder / "m_weights.h5")
    config = {"Backend": "Vitis", "IOType": "io_parallel", "ClockPeriod": 5,
              "HLSConfig": derive_hls_config(model, Hardware(), "ap_fixed<8,3>")}
    return folder, json.loads(json.dumps(config))


@pytest.fixture(scope="module")
def small_project(small_model, tmp_path_factory) -> Path:
    """``small_model``'s ``m.h5`` converted (inputs ``ap_fixed<8,3>``, 50 C-sim samples): a project without rtl/."""
    from flow.commands.pipeline import convert_existing

    out = tmp_path_factory.mktemp("project") / "p"
    convert_existing(small_model[0] / "m.h5", out, input_type="ap_fixed<8,3>", samples=50)
    return out
