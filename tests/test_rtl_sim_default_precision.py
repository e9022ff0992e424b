"""Float Keras models converted with hls4ml's default precision ``ap_fixed<16,6>`` for everything, including the
accumulators, so that every product (10 + 10 fractional bits) is rounded into ``accum_t`` (10): the RTL traced
from the one layer description equals the emulator on every bit on Verilator and Icarus (cocotb, gaps,
back-pressure, mid-stream reset). The third-party jet-tagging MLP (16-64-32-32-5) is the heavy case."""

from __future__ import annotations

import pytest
from conftest import shared_model, uniform_weights
from hdl import assert_bit_exact, needs_icarus, needs_verilator

from flow.commands.pipeline import convert_existing
from flow.commands.rtl_command import rtl_project
from flow.keras.env import keras, set_seed
from flow.sim.sim_project import sim_project

PRECISION = "ap_fixed<16,6>"


def conv1d_model():
    K = keras()
    inp = K.Input((12, 2), name="x_in")
    h = K.layers.Conv1D(4, 3, activation="relu", name="c1")(inp)
    h = K.layers.Flatten(name="f")(h)
    return K.Model(inp, K.layers.Dense(3, name="d1")(h))


def cnn_model():
    K = keras()
    inp = K.Input((8, 8, 1), name="x_in")
    h = K.layers.Conv2D(3, (3, 3), activation="relu", name="c1")(inp)
    h = K.layers.MaxPooling2D((2, 2), name="p1")(h)
    h = K.layers.Flatten(name="f")(h)
    return K.Model(inp, K.layers.Dense(4, name="d1")(h))


def default_precision_project(tmp, make) -> object:
    """The model with seeded random weights, saved as .h5, `hlsflow convert --precision ap_fixed<16,6>`,
    then `hlsflow rtl` (no Yosys)."""
    set_seed(8)
    model = uniform_weights(make(), 12)
    path = tmp / f"{make.__name__}.h5"
    model.save(path)
    project = tmp / make.__name__
    report = convert_existing(path, project, precision=PRECISION, samples=200)
    assert report["emulator_vs_csim"]["equal_outputs"] == report["emulator_vs_csim"]["outputs"]
    rtl_project(project, latency_cutoff=5.0, yosys=False)
    return project


@pytest.fixture(scope="module", params=[conv1d_model, cnn_model], ids=["conv1d", "cnn"])
def project(request, tmp_path_factory):
    return default_precision_project(tmp_path_factory.mktemp("default_precision"), request.param)


@needs_verilator
@pytest.mark.slow
def test_rtl_equals_emulator_on_verilator(project):
    assert_bit_exact(sim_project(project, "verilator", samples=2000, seed=7), 2000)


@needs_icarus
@pytest.mark.slow
def test_rtl_equals_emulator_on_icarus(project):
    assert_bit_exact(sim_project(project, "icarus", samples=2000, seed=8), 2000)


@pytest.fixture(scope="module")
def jet_project(tmp_path_factory):
    """The third-party jet-tagging MLP (KERAS_3layer: 16-64-32-32-5, softmax) under ap_fixed<16,6>."""
    project = tmp_path_factory.mktemp("jet_default") / "KERAS_3layer"
    convert_existing(shared_model("KERAS_3layer.json"), project, precision=PRECISION, samples=200)
    rtl_project(project, latency_cutoff=5.0, yosys=False)
    return project


@needs_verilator
@pytest.mark.heavy
def test_jet_mlp_rtl_equals_emulator_on_verilator(jet_project):
    assert_bit_exact(sim_project(jet_project, "verilator", samples=2000, seed=9), 2000)


@needs_icarus
@pytest.mark.heavy
def test_jet_mlp_rtl_equals_emulator_on_icarus(jet_project):
    assert_bit_exact(sim_project(jet_project, "icarus", samples=2000, seed=10), 2000)
