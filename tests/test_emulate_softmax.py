"""flow.arith.emulate's Softmax against hls4ml's C simulation: every output element must be identical.

Softmax is emulated table for table (``init_exp_table``/``init_invert_table`` of nnet_activation.h), so
these tests compare the whole model output, softmax included, with zero differing elements.
Compiled C-sim builds are cached per module (module-scoped fixtures); each costs one g++ build.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import shared_model, uniform_weights
from equivalence import assert_emulator_equals_csim, assert_trace_equals_emulator, normal_inputs
from qmodels import qb

from flow.arith import fxp, tables
from flow.arith.emulate import emulate
from flow.arith.layers import softmax as softmax_layer
from flow.arith.types import FixedType, parse_type
from flow.core.errors import FlowError
from flow.hls.convert import build_graph, csim_predict, derive_hls_config
from flow.keras.env import keras, qkeras_objects, set_seed
from flow.spec import Hardware

INPUT_TYPE = "ap_fixed<10,3>"


def softmax_model():
    from qkeras import QActivation, QDense, quantized_relu

    K = keras()
    inp = K.Input((6,), name="x_in")
    h = K.layers.Dense(8, name="d1")(inp)
    h = QActivation(quantized_relu(6, 2), name="a1")(h)
    h = QDense(5, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="d2")(h)
    h = K.layers.Activation("softmax", name="sm")(h)
    return K.Model(inp, h)


def _compiled(io_type: str, tmp_path_factory, implementation: str | None = None):
    set_seed(3)
    model = uniform_weights(softmax_model(), 17, 2)  # wide logit spread, saturating tables
    hw = Hardware(io_type=io_type)
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    if implementation is not None:
        cfg["LayerName"]["sm"]["Implementation"] = implementation
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp(f"softmax_{io_type}_{implementation}"))
    graph.compile()
    return graph


@pytest.fixture(scope="module", params=["io_parallel", "io_stream"])
def default_graph(request, tmp_path_factory):
    return _compiled(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def latency_graph(tmp_path_factory):
    return _compiled("io_parallel", tmp_path_factory, implementation="latency")


def _softmax_layer(graph):
    return next(lay for lay in graph.get_layers() if lay.class_name == "Softmax")


def test_default_softmax_bit_exact(default_graph):
    graph = default_graph
    layer = _softmax_layer(graph)
    assert layer.get_attr("implementation") == "stable"  # hls4ml's default
    x = normal_inputs((6,), 3000, seed=1, input_type=INPUT_TYPE)
    em = assert_emulator_equals_csim(graph, x, chunk=193)
    y = em.outputs
    assert len(np.unique(y)) > 100  # a real softmax output, not a constant
    assert np.all(y >= 0)
    # Plausibility of hls4ml's approximation (not a C-sim comparison): the invert table is addressed by the
    # top 10 of 18 bits of the sum (steps of 0.25), so rows sum to 1 only within ~25 %; the argmax is kept.
    sums = y.sum(axis=1)
    assert np.all((sums > 0.7) & (sums < 1.35)) and np.median(np.abs(sums - 1)) < 0.1
    logits = emulate(graph, x, upto="d2").outputs
    top = np.argmax(y, axis=1) == np.argmax(logits, axis=1)
    assert top.mean() > 0.97


def test_latency_softmax_bit_exact(latency_graph):
    assert _softmax_layer(latency_graph).get_attr("implementation") == "latency"
    x = normal_inputs((6,), 3000, seed=2, input_type=INPUT_TYPE)
    assert_emulator_equals_csim(latency_graph, x, chunk=193)


def test_extreme_inputs_bit_exact(default_graph):
    """Inputs at the type's limits: saturated logits, ties for the maximum, huge spreads."""
    t = parse_type(INPUT_TYPE)
    rng = np.random.default_rng(3)
    x = rng.choice([t.min_value, t.max_value, 0.0, t.step, -t.step], size=(800, 6))
    assert_emulator_equals_csim(default_graph, x, chunk=193)


# Softmax (stable and latency) and the sigmoid/tanh tables, traced: the emulator's bits.
def test_stable_softmax_traces_to_rtl_equal_to_the_emulator(default_graph):
    assert assert_trace_equals_emulator(default_graph, n=1000, seed=5) > 0


def test_latency_softmax_traces_to_rtl_equal_to_the_emulator(latency_graph):
    assert assert_trace_equals_emulator(latency_graph, n=1000, seed=5) > 0


def test_sigmoid_tanh_trace_to_rtl_equal_to_the_emulator(lut_graph):
    assert assert_trace_equals_emulator(lut_graph, n=1000, seed=5) > 0


def test_tables_match_first_entries():
    """Spot values of the tables as C++ builds them: exp(-0) = 1, 1/0.25 = 4, index 0 of the invert
    table is 1/0 = +inf, saturated to the table type's maximum."""
    t = FixedType(18, 8, True, "RND", "SAT")
    norm = parse_type("ap_ufixed<15,6>")
    exp_tab = tables.exp_table(norm, 10, np.float32(1.0), True, t)
    assert exp_tab[0] == 1 << t.fractional  # exp(-0) = 1
    inv = tables.invert_table(t, 10, t)
    assert inv[0] == fxp.type_range(t)[1]  # 1/0 saturates
    assert fxp.to_float(inv[1:2], t.fractional)[0] == 4.0  # index 1: mantissa 1 << 8, value 2**-2, 1/x = 4


def test_unsupported_implementation_is_named(tmp_path_factory):
    model = softmax_model()
    hw = Hardware()
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    cfg["LayerName"]["sm"]["Implementation"] = "argmax"
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp("argmax"))
    with pytest.raises(FlowError, match="'sm'.*implementation 'argmax'"):
        emulate(graph, np.zeros((2, 6)))


@pytest.fixture(scope="module")
def mnist_graph(tmp_path_factory):
    K = keras()
    model = K.models.model_from_json(shared_model("qkeras_mnist_dense.json").read_text(), custom_objects=qkeras_objects())
    model.load_weights(str(shared_model("qkeras_mnist_dense_weights.h5")))
    cfg = yaml.safe_load(shared_model("qkeras_mnist_dense_config.yml").read_text())["HLSConfig"]
    hw = Hardware(backend="Vivado", io_type="io_parallel", strategy=cfg["Model"]["Strategy"])
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp("mnist_softmax"))
    graph.compile()
    return graph


def test_mnist_third_party_full_output_bit_exact(mnist_graph):
    """hls4ml example-models' QKeras MNIST MLP with its own HLSConfig (Vivado; softmax Stable, table_size
    1024, exp/inv tables ap_fixed<18,8,AP_RND,AP_SAT>): the full output, softmax included."""
    layer = _softmax_layer(mnist_graph)
    assert layer.get_attr("implementation") == "stable"
    cfg = softmax_layer.softmax_config(layer)
    assert (cfg.exp_table_size, cfg.inv_table_size) == (1024, 1024)
    for t in (cfg.exp_table_t, cfg.inv_table_t):
        assert str(t) == "ap_fixed<18,8,AP_RND,AP_SAT>"
    x = normal_inputs((784,), 2500, seed=6, input_type="ap_fixed<16,6>", scale=1.0)
    em = assert_emulator_equals_csim(mnist_graph, x, chunk=193)
    assert len(np.unique(np.argmax(em.outputs, axis=1))) > 3


def test_softmax_comparison_can_fail(default_graph, monkeypatch):
    """Flip the LSB of every invert-table entry in the emulator only: the outputs must then differ."""
    x = normal_inputs((6,), 300, seed=7, input_type=INPUT_TYPE)
    want = csim_predict(default_graph, x)
    real = softmax_layer.invert_table
    monkeypatch.setattr(softmax_layer, "invert_table", lambda *a: real(*a) ^ 1)
    assert np.count_nonzero(emulate(default_graph, x).outputs != want) > 0


def lut_model():
    from qkeras import QDense

    K = keras()
    inp = K.Input((6,), name="x_in")
    h = QDense(8, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="d1")(inp)
    h = K.layers.Activation("tanh", name="th")(h)
    h = QDense(4, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="d2")(h)
    h = K.layers.Activation("sigmoid", name="sg")(h)
    return K.Model(inp, h)


@pytest.fixture(scope="module", params=["io_parallel", "io_stream"])
def lut_graph(request, tmp_path_factory):
    set_seed(4)
    model = uniform_weights(lut_model(), 23, 2)
    hw = Hardware(io_type=request.param)
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    # a non-default table on the tanh: smaller, coarser, rounding and saturating
    cfg["LayerName"]["th"]["TableSize"] = 256
    cfg["LayerName"]["th"].setdefault("Precision", {})["table"] = "ap_fixed<10,2,AP_RND,AP_SAT>"
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp(f"lut_{request.param}"))
    graph.compile()
    return graph


def test_sigmoid_tanh_bit_exact(lut_graph):
    layers = {lay.name: lay for lay in lut_graph.get_layers()}
    assert int(layers["th"].get_attr("table_size")) == 256 and int(layers["sg"].get_attr("table_size")) == 1024
    x = normal_inputs((6,), 3000, seed=8, scale=3.0, input_type=INPUT_TYPE)
    em = assert_emulator_equals_csim(lut_graph, x, chunk=193)
    th = next(t for t in em.traces if t.name == "th")
    d1 = next(t for t in em.traces if t.name == "d1")
    assert d1.observed_min < -4 and d1.observed_max > 4  # both clipped ends of the tanh table are used
    assert len(np.unique(th.values)) > 50 and len(np.unique(em.outputs)) > 100
