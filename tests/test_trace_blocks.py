"""Large constant matrices are solved in tiles (issue 22): da4ml's CMVM solver takes time far beyond linear in the
weights it is given at once, so ``flow.arith.symbolic_ops.cmvm_blocks`` cuts a matrix of more than
``CMVM_BLOCK_WEIGHTS`` weights into tiles of ``CMVM_BLOCK_ROWS`` x ``CMVM_BLOCK_COLS`` whose partial sums an adder
tree adds. The tiled netlist must equal the emulator bit for bit; small matrices stay one tile (their RTL is what it
was before the rule). The positions of a convolution whose inputs have the same ranges share one solution."""

from __future__ import annotations

import da4ml.cmvm
import numpy as np
import pytest
from conftest import tiny_graph
from da4ml.trace import comb_trace

from flow.arith import netlist_eval, symbolic_ops
from flow.arith.emulate import emulate
from flow.arith.netlist_eval import predict
from flow.arith.trace import trace_graph
from flow.arith.types import full_range_inputs


@pytest.fixture(scope="module", name="tiny_graph")
def tiny_graph_fixture(tmp_path_factory):
    """6 -> Dense 4 -> ReLU -> Dense 3 (conftest.tiny_graph)."""
    return tiny_graph(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(name="solved_shapes")
def solved_shapes_fixture(monkeypatch) -> list[tuple[int, int]]:
    """The shape of every constant matrix handed to da4ml's solver, in call order."""
    shapes: list[tuple[int, int]] = []
    solve = da4ml.cmvm.solve

    def recording(kernel, *args, **kwargs):
        shapes.append(tuple(kernel.shape))
        return solve(kernel, *args, **kwargs)

    monkeypatch.setattr(da4ml.cmvm, "solve", recording)
    return shapes


@pytest.fixture(name="tiles_of_four_by_two")
def tiles_fixture(monkeypatch) -> None:
    """The size rule forced low: every matrix above one weight is cut into tiles of 4 inputs x 2 outputs."""
    monkeypatch.setattr(symbolic_ops, "CMVM_BLOCK_WEIGHTS", 1)
    monkeypatch.setattr(symbolic_ops, "CMVM_BLOCK_ROWS", 4)
    monkeypatch.setattr(symbolic_ops, "CMVM_BLOCK_COLS", 2)


def _differing_outputs(graph, seed: int = 3, samples: int = 2000) -> int:
    traced = trace_graph(graph)
    comb = comb_trace(traced.inputs, traced.outputs, keep_dead_inputs=True)
    x = full_range_inputs(traced.input_type, traced.input_shape, samples, seed)
    want = emulate(graph, x).outputs
    got = predict(comb, x.reshape(len(x), -1))
    assert got.shape == want.shape
    return int(np.count_nonzero(got != want))


@pytest.mark.parametrize("n_in, n_out, rows, cols", [
    (6, 4, [(0, 6)], [(0, 4)]),
    (64, 32, [(0, 64)], [(0, 32)]),                              # the digits MLP's first layer
    (64, 64, [(0, 64)], [(0, 64)]),                              # CMVM_BLOCK_WEIGHTS exactly
    (65, 64, [(0, 32), (32, 64), (64, 65)], [(0, 64)]),
    (100, 130, [(0, 32), (32, 64), (64, 96), (96, 100)], [(0, 64), (64, 128), (128, 130)]),
])
def test_a_matrix_is_one_tile_up_to_the_threshold_and_tiled_above_it(n_in, n_out, rows, cols):
    assert symbolic_ops.CMVM_BLOCK_WEIGHTS == 4096
    assert symbolic_ops.cmvm_blocks(n_in, n_out) == (rows, cols)


def test_small_layers_are_solved_whole(tiny_graph, solved_shapes):
    trace_graph(tiny_graph)
    assert solved_shapes == [(6, 4), (4, 3)]


def test_forced_tiles_are_what_the_solver_is_given(tiny_graph, solved_shapes, tiles_of_four_by_two):
    trace_graph(tiny_graph)
    assert solved_shapes == [(4, 2), (2, 2), (4, 2), (2, 2), (4, 2), (4, 1)]


def test_the_tiled_netlist_equals_the_emulator_bit_for_bit(tiny_graph, tiles_of_four_by_two):
    assert _differing_outputs(tiny_graph) == 0


def test_the_tiled_netlist_differs_when_a_weight_changes(tiny_graph, tiles_of_four_by_two):
    """The comparison above can fail: the traced netlist of one weight changed by one LSB is compared with the
    emulator of the unchanged graph."""
    dense = [lay for lay in tiny_graph.get_layers() if lay.class_name == "Dense"][0]
    w = dense.weights["weight"]
    old = np.array(w.data, copy=True)
    step = 2.0 ** -(w.type.precision.width - w.type.precision.integer)
    traced_changed = old.copy()
    traced_changed.flat[5] += -step if old.flat[5] > 0 else step
    try:
        w.data = traced_changed
        traced = trace_graph(tiny_graph)
    finally:
        w.data = old
    comb = comb_trace(traced.inputs, traced.outputs, keep_dead_inputs=True)
    x = full_range_inputs(traced.input_type, traced.input_shape, 2000, 3)
    assert int(np.count_nonzero(predict(comb, x) != emulate(tiny_graph, x).outputs)) > 0


@pytest.fixture(scope="module", name="conv1d_graph")
def conv1d_graph_fixture(tmp_path_factory):
    """corpus.qkeras_conv1d: 32x2 -> QConv1D 4 k=3 (30 positions) -> ReLU -> MaxPooling1D -> Dense 3, io_parallel."""
    from corpus import qkeras_conv1d

    from flow.hls.convert import build_graph, derive_hls_config
    from flow.keras.env import set_seed
    from flow.spec import Hardware

    set_seed(4)
    model = qkeras_conv1d()
    hw = Hardware(backend="Vitis")
    return build_graph(model, derive_hls_config(model, hw, "ap_fixed<8,3>"), hw,
                       tmp_path_factory.mktemp("conv1d") / "c")


def test_the_positions_of_a_convolution_share_one_solution(conv1d_graph, solved_shapes):
    trace_graph(conv1d_graph)
    assert solved_shapes == [(6, 4), (60, 3)]


def test_a_convolution_with_a_shared_solution_equals_the_emulator_bit_for_bit(conv1d_graph):
    assert _differing_outputs(conv1d_graph) == 0


def test_the_exact_interpreter_gives_a_wide_product_exactly_from_int64_codes():
    """The gates' interpreter (``netlist_eval.predict``) reads inputs as int64 codes when they fit (the folded
    1M-weight MLP's gate took minutes on Python-int codes): a 40-bit product of two ``ap_fixed<20,10>`` inputs,
    past da4ml's exact C++ width, equals the product computed in float64 (exact at 40 bits)."""
    from da4ml.trace import FixedVariableArray

    x = FixedVariableArray.from_kif(np.ones(2, int), np.full(2, 9), np.full(2, 10))
    comb = comb_trace(x._vars, [x._vars[0] * x._vars[1], x._vars[0] + x._vars[1]])
    assert not netlist_eval.cpp_is_exact(comb)
    codes = np.random.default_rng(0).integers(-2 ** 19, 2 ** 19, (500, 2))
    codes[:4] = [[-2 ** 19, -2 ** 19], [2 ** 19 - 1, -2 ** 19], [2 ** 19 - 1, 2 ** 19 - 1], [0, -1]]
    values = codes * 2.0 ** -10
    want = np.stack([values[:, 0] * values[:, 1], values[:, 0] + values[:, 1]], axis=1)
    assert np.array_equal(netlist_eval.predict(comb, values), want)
