"""The issue's proofs of the sequential RTL architectures on real models (heavy: run with ``-m heavy``):

* the third-party jet-tagging MLP 16-64-32-32-5 (``../shared/models/KERAS_3layer``, 6-bit weights
  ``ap_fixed<6,2>``, 16-bit data, softmax) at reuse factor 1 (unrolled), 4, 16 and 64;
* a 28x28 MNIST-size QKeras CNN (two Conv2D + MaxPooling2D, io_stream, every accumulator hls4ml's default
  ``ap_fixed<16,6>``, so every product is rounded) as a pixel stream, its Dense tail folded (reuse factor 400);

each on Verilator and Icarus with 2,000 samples (test data none: full-range random inputs), random valid gaps,
back-pressure and a mid-stream reset, every output bit against the emulator, and the measured latency and
initiation interval equal to the declared ones; and the digits CNN (shipped spec, io_stream, 3 epochs) as a
pixel stream, with the same checks (tests/test_rtl_sim_cnn.py runs it bit-exact in CI).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml
from conftest import shared_model
from hdl import assert_bit_exact, needs_icarus, needs_verilator
from qmodels import trained_rtl_project

from flow.commands.pipeline import convert_existing
from flow.commands.rtl_command import rtl_project
from flow.hls.convert import derive_hls_config
from flow.sim.sim_project import sim_project
from flow.spec import Hardware

SAMPLES = 2000
pytestmark = pytest.mark.heavy


def _convert(tmp, model_file, cfg, hw, name):
    (tmp / "cfg.yml").write_text(yaml.safe_dump({"Backend": hw.backend, "IOType": hw.io_type, "HLSConfig": cfg}))
    convert_existing(model_file, tmp / name, config_path=tmp / "cfg.yml", samples=200)
    return tmp / name


@pytest.fixture(scope="module")
def jet_base(tmp_path_factory):
    """KERAS_3layer converted with 6-bit weights ap_fixed<6,2>, data ap_fixed<16,6> (bench/emulator_speed.py's)."""
    from flow.keras.model_io import load_model

    jet = shared_model("KERAS_3layer.json")
    hw = Hardware(backend="Vivado")
    cfg = derive_hls_config(load_model(jet), hw, "ap_fixed<16,6>")
    for layer in cfg["LayerName"].values():
        if "weight" in layer.get("Precision", {}):
            layer["Precision"]["weight"] = "ap_fixed<6,2>"
    return _convert(tmp_path_factory.mktemp("jet"), jet, cfg, hw, "jet")


@pytest.fixture(scope="module", params=[1, 4, 16, 64], ids=lambda r: f"R{r}")
def jet_project(request, jet_base, tmp_path_factory):
    project = tmp_path_factory.mktemp(f"jet_r{request.param}") / "jet"
    shutil.copytree(jet_base, project)
    rtl_project(project, yosys=False, reuse_factor=request.param)
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    assert pm["architecture"] == ("unrolled" if request.param == 1 else "folded")
    return project


@pytest.fixture(scope="module")
def mnist_project(tmp_path_factory):
    """bench/emulator_speed.py's mnist_cnn() (seeded weights), io_stream, accumulators ap_fixed<16,6>, the Dense
    tail at ReuseFactor 400 (one product per cycle per output as the pixels of the last pooling stream in)."""
    from bench.emulator_speed import mnist_cnn

    tmp = tmp_path_factory.mktemp("mnist")
    _, model, cfg, hw, _ = mnist_cnn()
    model.save(tmp / "mnist.h5")
    cfg["LayerName"]["d1"]["ReuseFactor"] = 400
    project = _convert(tmp, tmp / "mnist.h5", cfg, hw, "mnist")
    rtl_project(project, yosys=False)
    return project


def _check(project, simulator, seed):
    s = sim_project(project, simulator, samples=SAMPLES, seed=seed)
    assert_bit_exact(s, SAMPLES)
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    assert s["latency_cycles"]["measured"] == pm["latency_cycles"]
    assert s["throughput_samples_per_cycle"] == pytest.approx(1 / pm["initiation_interval"])


@needs_verilator
def test_jet_mlp_equals_emulator_on_verilator(jet_project):
    _check(jet_project, "verilator", 11)


@needs_icarus
def test_jet_mlp_equals_emulator_on_icarus(jet_project):
    _check(jet_project, "icarus", 12)


@needs_verilator
def test_mnist_cnn_stream_equals_emulator_on_verilator(mnist_project):
    pm = json.loads((mnist_project / "rtl" / "port_map.json").read_text())
    assert pm["architecture"] == "stream" and pm["input"]["beats"] == 784
    _check(mnist_project, "verilator", 13)


@needs_icarus
def test_mnist_cnn_stream_equals_emulator_on_icarus(mnist_project):
    _check(mnist_project, "icarus", 14)


@pytest.fixture(scope="module")
def digits_cnn_project(tmp_path_factory):
    project = trained_rtl_project(tmp_path_factory.mktemp("digits_cnn"), "digits_cnn", epochs=3)
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    assert pm["architecture"] == "stream" and pm["input"]["beats"] == 64
    return project


@needs_verilator
def test_digits_cnn_stream_equals_emulator_on_verilator(digits_cnn_project):
    _check(digits_cnn_project, "verilator", 15)


@needs_icarus
def test_digits_cnn_stream_equals_emulator_on_icarus(digits_cnn_project):
    _check(digits_cnn_project, "icarus", 16)


def test_jet_reuse_factors_are_the_requested_ones(jet_project):
    pm = json.loads((jet_project / "rtl" / "port_map.json").read_text())
    if pm["architecture"] == "folded":
        used = {k: v["used"] for k, v in pm["reuse_factors"].items()}
        r = pm["reuse_factor_override"]
        # every layer at R except where R is not a valid fold of it (32 x 5 at 64 -> 80, the closest)
        assert all(u == r for k, u in used.items() if k != "output_softmax"), used
        assert pm["initiation_interval"] == max(used.values())
    assert np.isfinite(pm["latency_cycles"])
