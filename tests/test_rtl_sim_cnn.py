"""Generated RTL of the digits CNN (shipped spec, 3 training epochs, pruned) on real simulators (cocotb): every
output bit equals the emulator, under random valid gaps, random back-pressure and a mid-stream
reset (flow/sim/runner.py, sim/axis_tb.py)."""

from __future__ import annotations

import pytest
from hdl import assert_bit_exact, needs_icarus, needs_verilator
from qmodels import trained_rtl_project

from flow.sim.sim_project import sim_project


@pytest.fixture(scope="module")
def cnn_project(tmp_path_factory):
    return trained_rtl_project(tmp_path_factory.mktemp("rtl_cnn"), "digits_cnn", epochs=3)


@needs_icarus
@pytest.mark.slow
def test_digits_cnn_rtl_equals_emulator_on_icarus(cnn_project):
    assert_bit_exact(sim_project(cnn_project, "icarus", samples=2000, seed=3), 2000)


@needs_verilator
@pytest.mark.slow
def test_digits_cnn_rtl_equals_emulator_on_verilator(cnn_project):
    assert_bit_exact(sim_project(cnn_project, "verilator", samples=2000, seed=4), 2000)
