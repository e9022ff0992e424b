"""Generated RTL on real simulators (cocotb): every output bit equals the emulator.

Each test drives test data and full-range random inputs with random valid gaps, random back-pressure
and a reset in mid-stream (flow/sim/runner.py, sim/axis_tb.py).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hdl import assert_bit_exact, needs_icarus, needs_verilator
from qmodels import trained_rtl_project

from flow.sim.sim_project import sim_project


@pytest.fixture(scope="module")
def mlp_project(tmp_path_factory):
    return trained_rtl_project(tmp_path_factory.mktemp("rtl_mlp"), "digits_mlp", epochs=2)


@needs_icarus
def test_digits_mlp_rtl_equals_emulator_on_icarus(mlp_project):
    s = sim_project(mlp_project, "icarus", samples=2000, seed=1)
    assert_bit_exact(s, 2000)
    assert s["latency_cycles"]["measured"] == json.loads((mlp_project / "rtl" / "port_map.json").read_text())[
        "latency_cycles"]
    assert "float" in s["rtl_vs_reference"] and "qkeras" in s["rtl_vs_reference"]
    assert s["rtl_vs_reference"]["qkeras"]["argmax_agreement"] > 0.5
    assert (mlp_project / s["junit"]).is_file()


@needs_icarus
def test_one_flipped_adder_in_the_netlist_is_caught(mlp_project, tmp_path):
    """Turn one adder of the first weight layer into a subtractor (one changed bit of a weight's
    shift-and-add network): the testbench must report mismatching samples."""
    mutant = tmp_path / "mutant"
    shutil.copytree(mlp_project, mutant, ignore=shutil.ignore_patterns("sim_build"))
    stage0 = next((mutant / "rtl").glob("*_stage0.v"))
    text = stage0.read_text()
    # the levelized emitter (flow/rtl/emit.py) writes an adder as `v<i> = <a> + <b>;`
    m = re.search(r"\n\s+v\d+ = [^;]+? (\+) [^;']+;", text)  # an adder of two ops, not of a constant
    assert m, "no adder found in the first stage"
    stage0.write_text(text[:m.start(1)] + "-" + text[m.end(1):])
    s = sim_project(mutant, "icarus", samples=200, seed=1)
    assert not s["ok"]
    assert s["rtl_vs_emulator"]["mismatching_samples"] > 0


@needs_icarus
def test_da4ml_emitter_rtl_equals_emulator_on_icarus(mlp_project, tmp_path):
    """`hlsflow rtl --emitter da4ml` (da4ml's generator: one module instance per op) stays bit-exact."""
    from flow.commands.rtl_command import rtl_project

    project = tmp_path / "da4ml"
    shutil.copytree(mlp_project, project, ignore=shutil.ignore_patterns("rtl", "sim_build"))
    rtl_project(project, latency_cutoff=5.0, yosys=False, emitter="da4ml")
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    assert pm["emitter"] == "da4ml" and any(f.endswith("_shift_adder.v") for f in pm["verilog"])
    assert_bit_exact(sim_project(project, "icarus", samples=200, seed=3), 200)


@needs_verilator
@pytest.mark.slow
def test_digits_mlp_rtl_equals_emulator_on_verilator(mlp_project):
    assert_bit_exact(sim_project(mlp_project, "verilator", samples=2000, seed=2), 2000)
