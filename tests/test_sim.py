"""flow.sim: tdata packing, and the cocotb testbench (sim/) on a hand-written AXI4-Stream DUT.

The DUT (tests/data/axis_dut/) is a 3-stage global-stall pipeline with signed, unsigned and
wider-than-64-bit fixed-point fields; its expected outputs come from `reference()` below, written
from the field definitions in its header comment. Each simulation test runs a few hundred samples
with random valid gaps, random back-pressure and a reset in the middle of the stream. Variants of
the DUT (made by editing one line of a copy) must be caught: a flipped constant bit, a pipeline that
ignores back-pressure, a reset that leaves samples in flight.

Simulator tests skip only when the simulator is not installed (flow.core.tools.find). The first Verilator
build on a machine also compiles Verilator's runtime (~35 s, then cached in ~/.cache/hlsflow).
"""

from __future__ import annotations

import json
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from flow.core import tools
from flow.core.errors import FlowError
from flow.rtl import words as tdata
from flow.rtl.port_map import PortMap
from flow.rtl.words import Field
from flow.sim import runner

DUT = Path(__file__).parent / "data" / "axis_dut"
K = 0x9A3C57E12B6D - (1 << 48)  # the DUT's 48-bit signed constant
N_SAMPLES = 300


def reference(x: np.ndarray) -> np.ndarray:
    """The DUT's outputs as codes: y0 = a*b, y1 = a + c (a aligned to c's 8 fractional bits),
    y2 = e*K (88 bits, Python ints), y3 = b + d (d aligned to b's 4 fractional bits)."""
    a, b, c, d, e = (x[:, i].astype(object) for i in range(5))
    return np.stack([a * b, a * 8 + c, e * K, b + d * 16], axis=1)


def random_codes(fields: list[Field], n: int, seed: int) -> np.ndarray:
    """``n`` samples, each field drawn from all of its codes; the first rows hold the extremes."""
    rng = np.random.default_rng(seed)
    cols = []
    for f in fields:
        col = np.array([int(v) for v in rng.integers(f.lo, f.hi, size=n, endpoint=True, dtype=np.int64)]
                       if f.fits_int64 else [int(rng.integers(0, 1 << 62)) << (f.width - 62) for _ in range(n)],
                       dtype=object)
        col = col.copy()
        col[:4] = [f.lo, f.hi, 0, f.lo + 1][:min(4, n)]
        cols.append(col)
    return np.stack(cols, axis=1)


def needs(simulator: str) -> None:
    tool = "verilator" if simulator == "verilator" else "iverilog"
    if tools.find(tool) is None:
        pytest.skip(f"{tool} is not installed (scripts/setup.sh installs it)")


def variant(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """A copy of the DUT folder with source text replaced (each old text must occur exactly once)."""
    out = tmp_path / "dut_variant"
    shutil.copytree(DUT, out)
    src = out / "axis_dut.v"
    text = src.read_text()
    for old, new in edits:
        assert text.count(old) == 1, f"{old!r} must occur once in axis_dut.v"
        text = text.replace(old, new)
    src.write_text(text)
    return out


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    in_fields = PortMap.load(DUT).input.fields
    x = random_codes(in_fields, N_SAMPLES, seed=11)
    return x, reference(x)


# ----------------------------------------------------------------------------- packing

def test_pack_places_each_field_at_its_bits_in_twos_complement():
    fields = [Field("s4", 0, 4, True, 2), Field("u3", 4, 3, False, 3), Field("s70", 7, 70, True, 10)]
    codes = np.array([[-1, 5, -(1 << 69)], [7, 0, (1 << 69) - 1], [-8, 7, -1]], dtype=object)
    words = tdata.pack(codes, fields)
    assert words[0] == 0b1111 | (5 << 4) | ((1 << 69) << 7)
    assert words[1] == 7 | (((1 << 69) - 1) << 7)
    assert words[2] == 0b1000 | (7 << 4) | (((1 << 70) - 1) << 7)
    assert tdata.unpack(words, fields).tolist() == codes.tolist()


@settings(max_examples=60, deadline=None)
@example(widths=[(63, True), (64, True), (64, False), (1, True), (65, True)], gaps=[0, 1, 0, 0, 0, 0], seed=0)
@given(widths=st.lists(st.tuples(st.integers(1, 100), st.booleans()), min_size=1, max_size=6),
       gaps=st.lists(st.integers(0, 9), min_size=6, max_size=6), seed=st.integers(0, 2**31))
def test_pack_unpack_round_trip(widths, gaps, seed):
    fields, lsb = [], 0
    for k, (w, signed) in enumerate(widths):
        lsb += gaps[k]
        fields.append(Field(f"f{k}", lsb, w, signed, 1))
        lsb += w
    rng = np.random.default_rng(seed)
    codes = np.empty((7, len(fields)), dtype=object)
    for k, f in enumerate(fields):
        codes[:, k] = [f.lo, f.hi, 0] + [f.lo + int(rng.integers(0, 1 << 62)) % (f.hi - f.lo + 1) for _ in range(4)]
    words = tdata.pack(codes, fields, lsb + 3)
    assert all(0 <= w < (1 << (lsb + 3)) for w in words)
    back = tdata.unpack(words, fields, lsb + 3)
    assert back.tolist() == codes.tolist()
    rows = tdata.pack_bytes(codes, fields, lsb + 3)
    assert tdata.rows_to_words(rows) == words
    if all(f.fits_int64 for f in fields):
        assert back.dtype == np.int64


def test_pack_rejects_codes_outside_the_field():
    fields = [Field("x[0]", 0, 4, True, 1, "ap_fixed<4,1>"), Field("x[1]", 4, 4, False, 1, "ap_ufixed<4,1>")]
    with pytest.raises(FlowError, match=r"x\[0\].*\[-8, 7\]"):
        tdata.pack(np.array([[8, 0]]), fields)
    with pytest.raises(FlowError, match=r"x\[1\]"):
        tdata.pack(np.array([[0, -1]]), fields)


def test_values_and_codes_convert_exactly_and_off_grid_values_are_rejected():
    fields = [Field("y[0]", 0, 8, True, 3, "ap_fixed<8,3>"), Field("y[1]", 8, 6, False, 2, "ap_ufixed<6,2>")]
    values = np.array([[-4.0, 3.9375], [3.96875, 0.0], [-0.03125, 0.0625]])
    codes = tdata.values_to_codes(values, fields)
    assert codes.tolist() == [[-128, 63], [127, 0], [-1, 1]]
    assert np.array_equal(tdata.codes_to_values(codes, fields), values)
    with pytest.raises(FlowError, match=r"y\[0\].*not on the grid"):
        tdata.values_to_codes(np.array([[0.01, 0.0]]), fields)
    with pytest.raises(FlowError, match=r"y\[1\]"):
        tdata.values_to_codes(np.array([[0.0, 4.0]]), fields)


def test_port_map_with_overlapping_fields_is_rejected(tmp_path):
    pm = json.loads((DUT / "port_map.json").read_text())
    pm["output"]["fields"][1]["lsb"] = 10
    shutil.copy(DUT / "axis_dut.v", tmp_path)
    (tmp_path / "port_map.json").write_text(json.dumps(pm))
    with pytest.raises(FlowError, match=r"output.*y\[1\].*overlaps"):
        PortMap.load(tmp_path)


def test_reference_model_agrees_with_the_packed_layout(data):
    """The reference's codes fit the DUT's output fields (so a simulation mismatch is the DUT's)."""
    x, y = data
    port = PortMap.load(DUT).output
    out_fields, out_w = port.fields, port.tdata_width
    assert tdata.unpack(tdata.pack(y, out_fields, out_w), out_fields, out_w).tolist() == y.tolist()


# ----------------------------------------------------------------------------- simulation

@pytest.fixture(scope="module")
def build_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sim")


@pytest.fixture(scope="module")
def passing(build_root, data):
    """One clean run per simulator, shared by the tests that read it (and its build reused)."""
    runs = {}

    def run(simulator: str) -> runner.SimResult:
        needs(simulator)
        if simulator not in runs:
            x, y = data
            runs[simulator] = runner.run_cocotb(DUT, x, y, simulator, seed=5, build_dir=build_root / simulator,
                                             junit=build_root / f"{simulator}.junit.xml")
        return runs[simulator]

    return run


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_dut_matches_every_bit_under_gaps_backpressure_and_reset(passing, data, simulator):
    r = passing(simulator)
    assert r.passed, r.first_mismatches
    assert (r.samples, r.mismatching_samples, r.differing_bits) == (N_SAMPLES, 0, 0)
    assert (r.missing_outputs, r.extra_outputs, r.stall_violations) == (0, 0, 0)
    assert r.reset_midstream and r.resent_after_reset > 0, "the reset must hit samples in flight"
    assert r.gaps and r.backpressure
    assert r.latency_cycles == r.latency_cycles_declared == 3
    assert r.throughput_samples_per_cycle == 1.0
    assert r.cycles > N_SAMPLES, "gaps and back-pressure must cost cycles"
    assert r.samples_per_second > 0 and r.build_seconds >= 0
    assert r.received_codes.tolist() == data[1].tolist()


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_testbench_reports_progress_for_the_progress_bar(passing, build_root, simulator):
    passing(simulator)
    progress = json.loads((build_root / simulator / "progress.json").read_text())
    assert progress["total"] == N_SAMPLES
    assert 0 <= progress["done"] <= N_SAMPLES


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_junit_xml_is_written_for_ci(passing, simulator):
    r = passing(simulator)
    suites = ET.parse(r.junit).getroot().findall("testsuite")
    cases = [c for s in suites for c in s.findall("testcase")]
    assert [c.get("name") for c in cases] == ["axis_stream"]
    assert not cases[0].findall("failure") and not cases[0].findall("error")


@pytest.mark.parametrize("simulator", ["icarus", "verilator"])
def test_one_wrong_expected_bit_is_reported_with_sample_and_field(passing, build_root, data, simulator):
    passing(simulator)  # reuse its build
    x, y = data
    wrong = y.copy()
    wrong[123, 3] = int(wrong[123, 3]) ^ 0b100  # y[3]: unsigned 8-bit field
    r = runner.run_cocotb(DUT, x, wrong, simulator, seed=5, build_dir=build_root / simulator,
                       junit=build_root / f"{simulator}.wrong.junit.xml")
    assert not r.passed
    assert (r.mismatching_samples, r.differing_bits) == (1, 1)
    assert r.first_mismatches == [{"index": 123, "field": "y[3]", "got": int(y[123, 3]),
                                   "expected": int(wrong[123, 3])}]
    assert r.cocotb_failures == 1
    failure = ET.parse(r.junit).getroot().find(".//testcase/failure")
    assert failure is not None


def test_flipped_constant_bit_in_the_dut_is_caught(tmp_path, data):
    needs("icarus")
    x, y = data
    bad = variant(tmp_path, ("48'sh9A3C57E12B6D", "48'sh9A3C57E12B6C"))
    r = runner.run_cocotb(bad, x, y, "icarus", seed=5, build_dir=tmp_path / "build")
    assert not r.passed
    nonzero_e = sum(int(v) != 0 for v in x[:, 4])
    assert r.mismatching_samples == nonzero_e, "every sample with e != 0 differs in y[2] = e*K"
    assert {m["field"] for m in r.first_mismatches} == {"y[2]"}
    for m in r.first_mismatches:  # K became K - 1, so y[2] = e*K became e*K - e
        assert m["got"] - m["expected"] == -int(x[m["index"], 4])


def test_dut_that_ignores_backpressure_is_caught(tmp_path, data):
    needs("icarus")
    x, y = data
    bad = variant(tmp_path, ("wire en = !v2 || m_axis_tready;", "wire en = 1'b1;"))
    r = runner.run_cocotb(bad, x, y, "icarus", seed=5, build_dir=tmp_path / "build")
    assert not r.passed
    assert r.stall_violations > 0
    assert r.missing_outputs > 0 or r.mismatching_samples > 0
    # without back-pressure the same DUT is indistinguishable from a correct one
    ok = runner.run_cocotb(bad, x, y, "icarus", seed=5, build_dir=tmp_path / "build", backpressure=False)
    assert ok.passed and ok.stall_violations == 0


def test_reset_that_leaves_samples_in_flight_is_caught(tmp_path, data):
    needs("icarus")
    x, y = data
    # v1/v2 get power-up values instead of a reset: in-flight samples survive a reset
    bad = variant(tmp_path, ("            v1 <= 1'b0;\n            v2 <= 1'b0;\n", ""),
                  ("    reg v0, v1, v2;\n", "    reg v0, v1, v2;\n    initial begin v1 = 1'b0; v2 = 1'b0; end\n"))
    r = runner.run_cocotb(bad, x, y, "icarus", seed=5, build_dir=tmp_path / "build")
    assert not r.passed and r.resent_after_reset > 0
    assert r.extra_outputs > 0 or r.mismatching_samples > 0
    ok = runner.run_cocotb(bad, x, y, "icarus", seed=5, build_dir=tmp_path / "build", reset_midstream=False)
    assert ok.passed


def test_inputs_that_do_not_fit_the_port_map_are_rejected(tmp_path, data):
    needs("icarus")
    x, y = data
    with pytest.raises(FlowError, match="5 fields"):
        runner.run_cocotb(DUT, x[:, :4], y, "icarus", seed=0, build_dir=tmp_path)
    with pytest.raises(FlowError, match=r"x\[1\]"):
        runner.run_cocotb(DUT, np.where(np.arange(5) == 1, 64, x), y, "icarus", seed=0, build_dir=tmp_path)


def test_unknown_simulator_is_a_flow_error(tmp_path, data):
    x, y = data
    with pytest.raises(FlowError, match="verilator, icarus"):
        runner.run_cocotb(DUT, x, y, "modelsim", seed=0, build_dir=tmp_path)


def test_cli_sim_without_rtl_names_the_port_map(tmp_path, capsys):
    needs("icarus")
    from flow.commands.cli import main

    (tmp_path / "project.json").write_text("{}")
    assert main(["sim", str(tmp_path), "--simulator", "icarus", "--samples", "10"]) == 2
    err = capsys.readouterr().err
    assert "port_map.json" in err and "hlsflow rtl" in err


# ----------------------------------------------------------------------------- hlsflow sim, end to end

def small_qkeras_model():
    from qkeras import QActivation, QDense, quantized_bits, quantized_relu

    from flow.keras.env import keras, set_seed  # first: it makes tf.keras Keras 2 before QKeras loads

    set_seed(3)
    K = keras()
    inp = K.Input((6,), name="x_in")
    h = QDense(7, kernel_quantizer=quantized_bits(6, 0, alpha=1), bias_quantizer=quantized_bits(6, 0, alpha=1),
               name="d1")(inp)
    h = QActivation(quantized_relu(5, 2), name="a1")(h)
    h = QDense(3, kernel_quantizer=quantized_bits(5, 0, alpha=1), bias_quantizer=quantized_bits(5, 0, alpha=1),
               name="d2")(h)
    return K.Model(inp, h)


@pytest.mark.slow
def test_hlsflow_sim_checks_generated_rtl_against_the_emulator_and_the_qkeras_model(tmp_path, capsys):
    from flow.commands.rtl_command import rtl_project
    needs("icarus")
    from flow.commands.cli import main
    from flow.commands.pipeline import convert_existing

    model = small_qkeras_model()
    model.save(tmp_path / "small.h5")
    project = tmp_path / "prj"
    convert_existing(tmp_path / "small.h5", project, input_type="ap_fixed<10,3>", samples=20)
    rtl_project(project, yosys=False)

    assert main(["sim", str(project), "--simulator", "icarus", "--samples", "300", "--seed", "2"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary == json.loads((project / "rtl" / "sim_icarus.json").read_text())
    assert summary["ok"] and summary["samples"]["total"] == 300
    assert summary["rtl_vs_emulator"]["differing_bits"] == summary["rtl_vs_emulator"]["mismatching_samples"] == 0
    assert summary["rtl_vs_reference"]["qkeras"]["exact_fraction"] == 1.0
    assert summary["latency_cycles"]["measured"] == summary["latency_cycles"]["declared"]
    assert (project / summary["junit"]).is_file()

    # a port map that puts two output fields in each other's place must fail (exit 1)
    pm_file = project / "rtl" / "port_map.json"
    pm = json.loads(pm_file.read_text())
    f0, f1 = pm["output"]["fields"][0], pm["output"]["fields"][1]
    f0["lsb"], f1["lsb"] = f1["lsb"], f0["lsb"]
    pm_file.write_text(json.dumps(pm))
    assert main(["sim", str(project), "--simulator", "icarus", "--samples", "100"]) == 1
    bad = json.loads(capsys.readouterr().out)
    assert not bad["ok"] and bad["rtl_vs_emulator"]["mismatching_samples"] > 0
