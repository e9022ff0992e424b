"""Generated RTL of the third-party QKeras MNIST MLP (../shared/models) on real simulators (cocotb): every
output bit equals the emulator, under random valid gaps, random back-pressure and a mid-stream
reset (flow/sim/runner.py, sim/axis_tb.py)."""

from __future__ import annotations

import pytest
from conftest import shared_model
from hdl import assert_bit_exact, needs_icarus, needs_verilator

from flow.sim.sim_project import sim_project


@pytest.fixture(scope="module")
def qkeras_mnist_project(tmp_path_factory):
    """The third-party QKeras MNIST MLP (784-20-10, power-of-two weights in the first layer, softmax
    as lookup tables), converted with 16-bit inputs, and its RTL."""
    from flow.commands.pipeline import convert_existing
    from flow.commands.rtl_command import rtl_project

    project = tmp_path_factory.mktemp("rtl_qmnist") / "qkeras_mnist_dense"
    convert_existing(shared_model("qkeras_mnist_dense.json"), project, input_type="ap_fixed<16,6>", samples=50)
    rtl_project(project, latency_cutoff=5.0, yosys=False)
    return project


@needs_verilator
@pytest.mark.heavy  # 95 s of Verilator build and run; the default run keeps the Icarus subset below
def test_qkeras_mnist_dense_rtl_equals_emulator_on_verilator(qkeras_mnist_project):
    assert_bit_exact(sim_project(qkeras_mnist_project, "verilator", samples=2000, seed=5), 2000)


@needs_icarus
@pytest.mark.slow
def test_qkeras_mnist_dense_rtl_equals_emulator_on_icarus_subset(qkeras_mnist_project):
    """Icarus simulated this 11,000-adder netlist at about 2 samples/s with da4ml's module-per-op stages (34 with
    the levelized ones, bench/icarus_speed.py); the default run still takes 100
    samples (64 measured without gaps, then 36 under gaps, back-pressure and the mid-stream reset);
    the 2,000-sample run is the `heavy` test below."""
    assert_bit_exact(sim_project(qkeras_mnist_project, "icarus", samples=100, seed=6), 100)


@needs_icarus
@pytest.mark.heavy
def test_qkeras_mnist_dense_rtl_equals_emulator_on_icarus(qkeras_mnist_project):
    assert_bit_exact(sim_project(qkeras_mnist_project, "icarus", samples=2000, seed=6), 2000)
