"""Sequential RTL architectures (flow/rtl/architecture.py, sequential.py): folded layers (reuse factor) and streaming
CNNs (line buffers), traced from the layer descriptions and bit-exact to the emulator.

Two levels of proof: the composition gate (every traced kernel, run by da4ml's interpreter in the order and on
the slices, ROM words and windows the units give it, against the emulator; no simulator), then cocotb on
Verilator and Icarus with gaps, back-pressure and a mid-stream reset, including one flipped ROM word and one
moved line-buffer tap, which the testbench must catch. The large models of the issue are in
tests/test_rtl_reuse_heavy.py.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import yaml
from conftest import assert_one_error_line, uniform_weights
from hdl import assert_bit_exact, needs_icarus, needs_verilator
from qmodels import conv_model, dense_model, qb

from flow.arith.numpy_ops import NumpyOps
from flow.arith.ops import Tensor
from flow.arith.symbolic_ops import SymbolicOps
from flow.arith.types import parse_type
from flow.commands.pipeline import convert_existing
from flow.core import tools
from flow.core.errors import FlowError
from flow.hls.convert import build_graph, derive_hls_config
from flow.keras.env import keras, set_seed
from flow.rtl.architecture import Fold, Window, closest_reuse, fold_shapes, reuse_factors, trace_architecture
from flow.rtl.compose import check_composition
from flow.rtl.sequential import choose_architecture
from flow.sim.sim_project import sim_project
from flow.spec import Hardware


def _graph(tmp, make, io_type="io_parallel", configure=None, seed=4, input_type="ap_fixed<8,3>"):
    set_seed(seed)
    model = uniform_weights(make(), seed)
    hw = Hardware(backend="Vitis", io_type=io_type)
    cfg = derive_hls_config(model, hw, input_type)
    if configure:
        configure(cfg)
    return build_graph(model, cfg, hw, tmp / "hls")


# ----------------------------------------------------------------------------- the step kernel


@pytest.mark.parametrize("acc", ["ap_fixed<22,8>", "ap_fixed<12,4>", "ap_fixed<10,3,AP_RND,AP_SAT>",
                                 "ap_fixed<9,2,AP_RND_CONV,AP_SAT_SYM>"])
def test_one_step_with_variable_weights_equals_the_numpy_dot(acc):
    """``dot`` with a weight matrix and bias of variables (one folded step): da4ml's interpreter of the traced
    netlist equals the numpy executor's ``dot`` with those codes as constants, for exact, rounding and
    saturating (in-order) accumulators, on random codes of every input."""
    from da4ml.trace import comb_trace

    acc_t, x_t, w_t = parse_type(acc), parse_type("ap_fixed<8,3>"), parse_type("ap_fixed<6,1>")
    ops = SymbolicOps()
    x, w, b = ops.variables(x_t, (3,)), ops.variables(w_t, (3, 4)), ops.variables(acc_t, (4,))
    y = ops.dot(x, w, b, acc_t, True)
    ins = np.concatenate([x.data.ravel(), w.data.ravel(), b.data.ravel()])
    comb = comb_trace(ops.array(Tensor(ins, 0)), ops.array(y), keep_dead_inputs=True)
    rng = np.random.default_rng(1)
    n = 400
    xc = rng.integers(x_t.min_code, x_t.max_code + 1, (n, 3))
    wc = rng.integers(w_t.min_code, w_t.max_code + 1, (n, 3, 4))
    bc = rng.integers(acc_t.min_code, acc_t.max_code + 1, (n, 4))
    got = comb.predict(np.concatenate([xc * 2.0 ** -x_t.fractional, wc.reshape(n, -1) * 2.0 ** -w_t.fractional,
                                       bc * 2.0 ** -acc_t.fractional], axis=1))
    nops = NumpyOps()
    want = np.array([nops.dot(Tensor(xc[k][None], x_t.fractional, x_t), nops.const(wc[k], w_t.fractional),
                              nops.const(bc[k], acc_t.fractional), acc_t).data[0] for k in range(n)])
    assert np.array_equal(got, want * 2.0 ** -acc_t.fractional)


@pytest.mark.parametrize("n_in,n_out,chunk,group,expected", [
    (16, 64, 16, 1, {1: (16, 64), 2: (8, 64), 4: (4, 64), 16: (1, 64), 64: (1, 16), 32: (1, 32), 1024: (1, 1)}),
    (400, 10, 16, 25, {25: (16, 10), 50: (8, 10), 100: (4, 10), 200: (2, 10), 400: (1, 10)}),
])
def test_fold_shapes_give_inputs_and_outputs_per_step(n_in, n_out, chunk, group, expected):
    shapes = fold_shapes(n_in, n_out, chunk, group)
    for r, (ki, ko) in expected.items():
        assert shapes[r] == (ki, ko) and (n_in // ki) * (n_out // ko) == r
    if group > 1:  # chunked streams: every step covers all outputs, the inputs of one beat
        assert all(ko == n_out and chunk % ki == 0 for ki, ko in shapes.values())


def test_an_invalid_reuse_factor_becomes_the_closest_valid_one():
    """32 inputs x 5 outputs: R = (32 / ki) * (5 / ko) for ki | 32, ko | 5; a tie goes to the smaller one."""
    valid = list(fold_shapes(32, 5, 32, 1))
    assert sorted(valid) == [1, 2, 4, 5, 8, 10, 16, 20, 32, 40, 80, 160]
    assert closest_reuse(64, valid) == 80 and closest_reuse(3, valid) == 2 and closest_reuse(5, valid) == 5


# ----------------------------------------------------------------------------- composition gate


def _config_reuse(per_layer: dict[str, int]):
    def configure(cfg):
        for name, r in per_layer.items():
            cfg["LayerName"][name]["ReuseFactor"] = r
    return configure


@pytest.mark.parametrize("per_layer", [{"d1": 2, "d2": 7, "d3": 5}, {"d1": 42, "d2": 35, "d3": 15},
                                       {"d1": 3, "d2": 1, "d3": 3}])
def test_folded_mlp_composes_to_the_emulator(per_layer, tmp_path):
    """Per-layer ReuseFactor from the hls4ml config: input slices, output blocks and both at once."""
    graph = _graph(tmp_path, dense_model, configure=_config_reuse(per_layer))
    kind, reuse = choose_architecture(graph)
    assert kind == "folded" and reuse == per_layer
    arch = trace_architecture(graph, reuse, stream=False)
    folds = {u.layer: u for u in arch.units if isinstance(u, Fold)}
    assert {k: f.reuse for k, f in folds.items()} == {k: r for k, r in per_layer.items() if r > 1}
    for f in folds.values():
        assert f.multipliers == f.n_in * f.n_out // f.reuse
    assert check_composition(graph, arch, 1500).differing_outputs == 0


def test_saturating_accumulators_fold_in_the_latency_order(tmp_path):
    """accum_t saturates and its partial sums do overflow: the folded steps add in index order, as hls4ml's
    Latency template does, so the result is still the emulator's."""
    def configure(cfg):
        _config_reuse({"d1": 3, "d2": 7, "d3": 5})(cfg)
        for name in ("d1", "d2", "d3"):
            cfg["LayerName"][name]["Precision"]["accum"] = "ap_fixed<6,2,AP_RND,AP_SAT>"
    graph = _graph(tmp_path, dense_model, configure=configure)
    from flow.arith.emulate import emulate
    from flow.arith.types import full_range_inputs

    x = full_range_inputs(parse_type("ap_fixed<8,3>"), (6,), 1000, 2)
    casts = [c for c in emulate(graph, x).casts if c.role == "accum"]
    assert sum(c.overflowed for c in casts) > 0  # the accumulators really saturate
    arch = trace_architecture(graph, reuse_factors(graph), stream=False)
    assert check_composition(graph, arch, 1000).differing_outputs == 0


def test_a_saturating_accumulator_in_another_order_is_refused_naming_the_layer(tmp_path):
    """Resource strategy (hls4ml adds in another order) with a saturating accum_t: no folded step is traced."""
    def configure(cfg):
        _config_reuse({"d1": 3})(cfg)
        cfg["LayerName"]["d1"]["Strategy"] = "Resource"
        cfg["LayerName"]["d1"]["Precision"]["accum"] = "ap_fixed<6,2,AP_RND,AP_SAT>"
    graph = _graph(tmp_path, dense_model, configure=configure)
    with pytest.raises(FlowError, match=r"layer 'd1'.*saturates.*Latency strategy"):
        trace_architecture(graph, reuse_factors(graph), stream=False)


def same_stride_model():
    from qkeras import QActivation, QConv2D, QDense, quantized_relu

    K = keras()
    inp = K.Input((9, 7, 2), name="x_in")
    h = QConv2D(3, (3, 3), strides=(2, 2), padding="same", kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c1")(inp)
    h = QActivation(quantized_relu(5, 2), name="a1")(h)
    h = K.layers.AveragePooling2D((2, 2), name="p1")(h)
    h = K.layers.Flatten(name="f1")(h)
    return K.Model(inp, QDense(4, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h))


def conv1d_model():
    from qkeras import QActivation, QConv1D, QDense, quantized_relu

    K = keras()
    inp = K.Input((12, 2), name="x_in")
    h = QConv1D(4, 3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c1")(inp)
    h = QActivation(quantized_relu(6, 2), name="a1")(h)
    h = K.layers.MaxPooling1D(2, name="p1")(h)
    h = K.layers.Flatten(name="f1")(h)
    return K.Model(inp, QDense(3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h))


@pytest.mark.parametrize("make,per_layer", [
    (conv_model, {}), (conv_model, {"c1": 3, "c2": 4, "d3": 9}), (same_stride_model, {}),
    (same_stride_model, {"c1": 2, "d3": 2}), (conv1d_model, {"c1": 6, "d3": 5}),
], ids=["conv", "conv-folded", "same-stride2-avgpool", "same-stride2-folded", "conv1d-folded"])
def test_streaming_cnn_composes_to_the_emulator(make, per_layer, tmp_path):
    """io_stream CNNs: line-buffer windows (padding, stride 2, 1-D), one kernel per layer, folded or not."""
    graph = _graph(tmp_path, make, "io_stream", _config_reuse(per_layer))
    kind, reuse = choose_architecture(graph)
    assert kind == "stream"
    arch = trace_architecture(graph, reuse, stream=True)
    assert sum(isinstance(u, Window) for u in arch.units) >= 2
    assert {u.layer for u in arch.units if isinstance(u, Fold)} == {k for k, r in per_layer.items() if r > 1}
    assert check_composition(graph, arch, 1500).differing_outputs == 0


def test_a_wrong_rom_word_fails_the_composition_gate(tmp_path):
    """The gate can fail: one weight code of one ROM word changed by one LSB."""
    from flow.core.errors import NotBitExact

    graph = _graph(tmp_path, dense_model, configure=_config_reuse({"d1": 2}))
    arch = trace_architecture(graph, reuse_factors(graph), stream=False)
    fold = next(u for u in arch.units if isinstance(u, Fold))
    fold.weights = fold.weights.copy()
    fold.weights.flat[4] += 1 if fold.weights.flat[4] < fold.w_t.max_code else -1
    with pytest.raises(NotBitExact, match="composed, differ from the emulator"):
        check_composition(graph, arch, 500)


# ----------------------------------------------------------------------------- projects, CLI, cocotb


def _project(tmp, make, io_type, per_layer, name):
    """The model saved as .h5 with its hls4ml config (per-layer ReuseFactor), `hlsflow convert`."""
    set_seed(4)
    model = uniform_weights(make(), 4)
    hw = Hardware(backend="Vitis", io_type=io_type)
    cfg = derive_hls_config(model, hw, "ap_fixed<8,3>")
    _config_reuse(per_layer)(cfg)
    (tmp / "cfg.yml").write_text(yaml.safe_dump({"Backend": "Vitis", "IOType": io_type, "HLSConfig": cfg}))
    model.save(tmp / f"{name}.h5")
    convert_existing(tmp / f"{name}.h5", tmp / name, config_path=tmp / "cfg.yml", samples=100)
    return tmp / name


@pytest.fixture(scope="module")
def folded_project(tmp_path_factory):
    from flow.commands.rtl_command import rtl_project

    tmp = tmp_path_factory.mktemp("folded")
    project = _project(tmp, dense_model, "io_parallel", {"d1": 3, "d2": 7, "d3": 5}, "mlp")
    rtl_project(project, yosys=False)
    return project


@pytest.fixture(scope="module")
def stream_project(tmp_path_factory):
    from flow.commands.rtl_command import rtl_project

    tmp = tmp_path_factory.mktemp("stream")
    project = _project(tmp, conv_model, "io_stream", {"c2": 4, "d3": 9}, "cnn")
    rtl_project(project, yosys=False)
    return project


def _port_map(project):
    return json.loads((project / "rtl" / "port_map.json").read_text())


def test_port_map_states_reuse_factors_latency_and_initiation_interval(folded_project, stream_project):
    pm = _port_map(folded_project)
    assert pm["architecture"] == "folded" and pm["lint"]["clean"], pm["lint"]
    assert pm["reuse_factors"] == {n: {"requested": r, "used": r} for n, r in (("d1", 3), ("d2", 7), ("d3", 5))}
    assert pm["initiation_interval"] == 7 and pm["multipliers"] == 42 // 3 + 35 // 7 + 15 // 5
    assert pm["latency_cycles"] == sum(u["latency_cycles"] for u in pm["units"])  # a chain without queueing
    s = _port_map(stream_project)
    assert s["architecture"] == "stream" and s["lint"]["clean"], s["lint"]
    assert s["input"]["beats"] == 64 and s["input"]["tdata_width"] == 2 * 8 and s["output"]["beats"] == 1
    fifos = [u for u in s["units"] if u["kind"] == "fifo"]
    assert fifos and all(u["depth"] >= max(2, u["peak_occupancy"] + 1) for u in fifos)
    assert [u["kind"] for u in s["units"]].count("line buffer") == 3


def test_reuse_factor_on_the_command_line_overrides_the_project(folded_project, hlsflow, tmp_path):
    project = tmp_path / "p"
    shutil.copytree(folded_project, project)
    code, out, err = hlsflow("rtl", project, "--reuse-factor", "6", "--no-yosys")
    assert code == 0, err
    assert out["architecture"] == "folded"
    pm = _port_map(project)
    # d1 (6 in): 6; d2 (7 in x 5 out): 5 or 7 closest -> 5; d3 (5 x 3): 5
    assert {k: v["used"] for k, v in pm["reuse_factors"].items()} == {"d1": 6, "d2": 5, "d3": 5}
    assert pm["reuse_factor_override"] == 6


@pytest.mark.parametrize("args,match", [
    (["--reuse-factor", "0"], "argument --reuse-factor: must be >= 1, got 0"),
    (["--architecture", "unrolled", "--reuse-factor", "4"], "needs a sequential architecture"),
])
def test_bad_reuse_arguments_give_one_line(folded_project, hlsflow, args, match):
    code, _, err = hlsflow("rtl", folded_project, "--no-yosys", *args)
    assert code == 2
    assert match in assert_one_error_line(err, "rtl")


def _sim_checks(project, simulator, samples, seed):
    s = sim_project(project, simulator, samples=samples, seed=seed)
    assert_bit_exact(s, samples)
    pm = _port_map(project)
    assert s["latency_cycles"]["measured"] == pm["latency_cycles"]  # declared latency, measured
    assert s["throughput_samples_per_cycle"] == pytest.approx(1 / pm["initiation_interval"])  # declared II
    return s


@needs_verilator
def test_folded_mlp_equals_emulator_on_verilator(folded_project):
    _sim_checks(folded_project, "verilator", 2000, 1)


@needs_icarus
def test_folded_mlp_equals_emulator_on_icarus(folded_project):
    _sim_checks(folded_project, "icarus", 2000, 2)


@needs_verilator
def test_streaming_cnn_equals_emulator_on_verilator(stream_project):
    _sim_checks(stream_project, "verilator", 2000, 3)


@needs_icarus
def test_streaming_cnn_equals_emulator_on_icarus(stream_project):
    _sim_checks(stream_project, "icarus", 300, 4)


def _mutant(project, tmp_path):
    mutant = tmp_path / "mutant"
    shutil.copytree(project, mutant, ignore=shutil.ignore_patterns("sim_build"))
    return mutant


@needs_verilator
def test_one_flipped_rom_word_is_caught(folded_project, tmp_path):
    """One bit of one weight word of a folded layer's ROM ($readmemh file) flipped: samples differ."""
    mutant = _mutant(folded_project, tmp_path)
    rom = next((mutant / "rtl").glob("*_fold_d2_rom.mem"))
    lines = rom.read_text().split()
    lines[3] = format(int(lines[3], 16) ^ 1, f"0{len(lines[3])}x")
    rom.write_text("\n".join(lines) + "\n")
    s = sim_project(mutant, "verilator", samples=300, seed=1)
    assert not s["ok"] and s["rtl_vs_emulator"]["mismatching_samples"] > 0


@needs_verilator
def test_one_moved_line_buffer_tap_is_caught(stream_project, tmp_path):
    """One tap of the first line buffer reads the pixel next to the one it should: samples differ. The tap is
    channel 1's centre (channel 0's centre weights of this model quantize to 0 in every filter, so moving that
    tap would change no output: an equivalent mutant, not a miss)."""
    mutant = _mutant(stream_project, tmp_path)
    win = next((mutant / "rtl").glob("*_win_c1.v"))
    text = win.read_text()
    m = re.search(r"= sr\[(\d+):(\d+)\];  // tap \(c=1, dy=1, dx=1\)", text)
    assert m, "no tap (c=1, dy=1, dx=1) in the line buffer"
    width = 2 * 8  # one pixel: 2 channels of ap_fixed<8,3>
    hi, lo = int(m.group(1)) + width, int(m.group(2)) + width  # the pixel pushed one step earlier
    win.write_text(text[:m.start()] + f"= sr[{hi}:{lo}];  // tap (c=1, dy=1, dx=1)" + text[m.end():])
    s = sim_project(mutant, "verilator", samples=300, seed=1)
    assert not s["ok"] and s["rtl_vs_emulator"]["mismatching_samples"] > 0


@needs_icarus
def test_ip_datasheet_states_architecture_reuse_latency_and_initiation_interval(stream_project, tmp_path):
    """``hlsflow ip`` of a streaming core with folded layers: its own testbench passes, and the datasheet states
    the architecture, the reuse factor of each folded layer, the latency and II of the port map, beats per sample."""
    from flow.ip.package import ip_project

    pm = _port_map(stream_project)
    summary = ip_project(stream_project, tmp_path / "ip", vectors=50, seed=3)
    assert summary["ok"] and summary["testbench"]["passed"], summary["testbench"]
    md = (tmp_path / "ip" / "datasheet.md").read_text()
    used = {k: v["used"] for k, v in pm["reuse_factors"].items()}
    assert f"reuse factors `c2` {used['c2']}, `d3` {used['d3']} (9 requested)" in md
    assert f"| latency | {pm['latency_cycles']} cycles (last input beat to last output beat of a sample)" in md
    assert f"| initiation interval | {pm['initiation_interval']} cycles between samples when not stalled |" in md
    assert f"| beats per sample | {pm['input']['beats']} in, 1 out |" in md
    assert "| `win_c1` | line buffer | `c1` |" in md


@pytest.mark.skipif(tools.find("yosys") is None, reason="Yosys is not installed (apt-get install yosys)")
def test_fold_units_select_input_slices_and_output_blocks_without_shifters(folded_project, stream_project):
    """A fold steps through input slices and output blocks with constant bit ranges: Yosys makes a variable
    part-select a shifter (the jet MLP's fc1 at reuse factor 64 cost 14,873 LUTs that way)."""
    from flow.core import procs

    checked = 0
    for project in (folded_project, stream_project):
        rtl, pm = project / "rtl", _port_map(project)
        for unit in (u for u in pm["units"] if u["kind"] == "folded product"):
            if unit["inputs_per_step"] * unit["outputs_per_step"] == 0:
                continue
            top = f"{pm['top'].removesuffix('_axis')}_{unit['name']}"
            script = (f"read_verilog {' '.join(pm['verilog'])}; hierarchy -top {top}; proc; "
                      "select -assert-none t:$shiftx t:$shift t:$shl t:$shr t:$sshl t:$sshr")
            out = procs.run([tools.require("yosys"), "-q", "-p", script], cwd=rtl, capture_output=True, text=True)
            assert out.returncode == 0, f"{top}: {(out.stdout + out.stderr)[-600:]}"
            checked += 1
    assert checked >= 3
