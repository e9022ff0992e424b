"""The port map as a record (flow/rtl/port_map.py): ``PortMap.load`` checks ``port_map.json`` and names the file
and the key it refuses; ``to_json`` gives the file's JSON back key for key; the typed fields are the file's
values; the unrolled and the folded core write their keys through one function (``port_map_record``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import tiny_graph

from flow.core.errors import FlowError
from flow.rtl.port_map import Port, PortMap, port_map_record
from flow.rtl.words import Field

DUT = Path(__file__).parent / "data" / "axis_dut"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> dict[str, tuple[Path, PortMap]]:
    """RTL folders of the tiny model (6 -> Dense 4 -> ReLU -> Dense 3), unrolled and folded (reuse factor 2):
    architecture -> (folder, the port map the generator returned)."""
    from flow.rtl.generate import generate
    from flow.rtl.sequential import choose_architecture, generate_sequential

    tmp = tmp_path_factory.mktemp("port_map")
    graph = tiny_graph(tmp)
    out = {"unrolled": (tmp / "unrolled", generate(graph, tmp / "unrolled", "tiny", latency_cutoff=2.0,
                                                   run_lint=False, check_samples=50))}
    kind, reuse = choose_architecture(graph, "folded", 2)
    out[kind] = (tmp / kind, generate_sequential(graph, tmp / kind, "tiny", kind, reuse, run_lint=False,
                                                 check_samples=50))
    return out


def _copy(tmp_path: Path, edit=None) -> Path:
    """The hand-written DUT folder copied to ``tmp_path``, its port map's JSON passed through ``edit``."""
    shutil.copy(DUT / "axis_dut.v", tmp_path)
    data = json.loads((DUT / "port_map.json").read_text())
    if edit is not None:
        data = edit(data)
    (tmp_path / "port_map.json").write_text(data if isinstance(data, str) else json.dumps(data))
    return tmp_path


@pytest.mark.parametrize("architecture", ["unrolled", "folded"])
def test_load_then_to_json_gives_back_the_file(generated, architecture):
    rtl, _ = generated[architecture]
    on_disk = json.loads((rtl / "port_map.json").read_text())
    back = PortMap.load(rtl).to_json()
    assert back == on_disk
    assert list(back) == list(on_disk)


@pytest.mark.parametrize("architecture", ["unrolled", "folded"])
def test_writing_a_loaded_port_map_gives_the_same_bytes(generated, architecture, tmp_path):
    rtl, _ = generated[architecture]
    PortMap.load(rtl).write(tmp_path)
    assert (tmp_path / "port_map.json").read_bytes() == (rtl / "port_map.json").read_bytes()


@pytest.mark.parametrize("architecture", ["unrolled", "folded"])
def test_the_generator_returns_the_port_map_it_wrote(generated, architecture):
    rtl, returned = generated[architecture]
    assert returned == PortMap.load(rtl)


def test_the_typed_fields_are_the_values_of_the_file():
    pm = PortMap.load(DUT)
    data = json.loads((DUT / "port_map.json").read_text())
    assert (pm.top, pm.verilog, pm.latency_cycles, pm.initiation_interval) == (
        data["top"], tuple(data["verilog"]), data["latency_cycles"], data["initiation_interval"])
    assert (pm.clock, pm.reset, pm.reset_active_high, pm.reset_synchronous) == (
        data["clock"], data["reset"], data["reset_active_high"], data["reset_synchronous"])
    for port, section in ((pm.input, data["input"]), (pm.output, data["output"])):
        assert port.tdata_width == section["tdata_width"] and port.beats == section.get("beats", 1)
        assert port.fields == tuple(Field(f["name"], f["lsb"], f["width"], f["signed"], f["integer_bits"], f["type"])
                                    for f in section["fields"])


def test_keys_the_file_leaves_out_take_the_documented_defaults():
    pm = PortMap.from_json({"top": "t", "verilog": [], "input": {"tdata_width": 4, "fields": [
        {"lsb": 0, "width": 4, "signed": False, "integer_bits": 4}]}, "output": {"tdata_width": 1, "fields": [
            {"lsb": 0, "width": 1, "signed": False, "integer_bits": 1}]}})
    assert (pm.architecture, pm.clock, pm.reset, pm.reset_active_high, pm.reset_synchronous) == (
        "unrolled", "clk", "rst", True, True)
    assert (pm.latency_cycles, pm.initiation_interval, pm.pipeline_stages, pm.latency_cutoff) == (None, 1, None, None)
    assert (pm.stage_delay_units, pm.lint_clean, pm.output_layer) == (None, None, None)
    assert pm.input == Port((Field("[0]", 0, 4, False, 4),), 4, 1)


def test_the_unrolled_core_states_its_pipeline(generated):
    _, pm = generated["unrolled"]
    assert pm.architecture == "unrolled" and pm.initiation_interval == 1
    assert pm.latency_cycles == pm.pipeline_stages + 1 and pm.latency_cutoff == 2.0
    assert pm.stage_delay_units == pm.record["timing"]["stage_delay_units"]
    assert pm.input.tdata_width == 6 * 8 and len(pm.output.fields) == 3


def test_the_folded_core_states_its_reuse_factors_and_no_pipeline_stages(generated):
    _, pm = generated["folded"]
    assert pm.architecture == "folded" and pm.pipeline_stages is None
    assert {k: v["used"] for k, v in pm.record["reuse_factors"].items()} == {"d1": 2, "d2": 2}


def test_with_entries_replaces_a_key_in_place_and_adds_one_at_the_end():
    pm = PortMap.load(DUT)
    keys = list(pm.to_json())
    new = pm.with_entries(latency_cycles=9, yosys={"cells": 1})
    assert new.latency_cycles == 9 and list(new.to_json()) == [*keys, "yosys"]
    assert pm.latency_cycles == 3  # the record it came from is unchanged


def test_the_record_puts_the_architecture_details_after_the_emitter_and_omits_what_is_not_given():
    rec = port_map_record(top="t", verilog=["t.v"], memories=["b.mem", "a.mem"], architecture="folded",
                          latency_cycles=5, initiation_interval=2, latency_cutoff=None, emitter="levelized",
                          output_layer="d2", input={}, output={}, da4ml={}, timing={}, equivalence={},
                          details={"units": []})
    assert list(rec) == ["top", "verilog", "memories", "clock", "reset", "reset_active_high", "reset_synchronous",
                         "architecture", "latency_cycles", "initiation_interval", "latency_cutoff", "emitter",
                         "units", "output_layer", "input", "output", "da4ml", "timing", "equivalence"]
    assert rec["memories"] == ["a.mem", "b.mem"]


def _drop(key):
    return lambda d: {k: v for k, v in d.items() if k != key}


def _set(key, value):
    return lambda d: d | {key: value}


def _overlap(d):
    d["output"]["fields"][1]["lsb"] = d["output"]["fields"][0]["lsb"]
    return d


@pytest.mark.parametrize("edit, message", [
    (lambda d: "{", r"port_map\.json: not valid JSON"),
    (lambda d: [1, 2], r"port_map\.json: not a JSON object"),
    (_drop("top"), r"port_map\.json: missing 'top'"),
    (_drop("verilog"), r"port_map\.json: missing 'verilog'"),
    (_drop("input"), r"port_map\.json: missing 'input'"),
    (_drop("output"), r"port_map\.json: missing 'output'"),
    (_set("verilog", ["axis_dut.v", "gone.v"]), r"port_map\.json: verilog file gone\.v not found"),
    (_set("verilog", "axis_dut.v"), r"port_map\.json: 'verilog' must be a list"),
    (_set("top", None), r"port_map\.json: 'top' must be the top module's name"),
    (_set("latency_cycles", "3"), r"port_map\.json: 'latency_cycles' must be an int"),
    (_set("reset_active_high", 1), r"port_map\.json: 'reset_active_high' must be a bool"),
    (_set("input", 8), r"port_map\.json: input: must be an object"),
    (_overlap, r"port_map\.json: output\.fields\[1\] \(y\[1\]\): overlaps another field"),
])
def test_a_bad_port_map_is_refused_naming_the_file_and_the_key(tmp_path, edit, message):
    rtl = _copy(tmp_path, edit)
    with pytest.raises(FlowError, match=message) as err:
        PortMap.load(rtl)
    assert str(rtl / "port_map.json") in str(err.value) and "\n" not in str(err.value)


def test_a_missing_port_map_names_the_command_that_makes_it(tmp_path):
    with pytest.raises(FlowError, match=r"port_map\.json: not found \(generate the RTL first: hlsflow rtl"):
        PortMap.load(tmp_path)
