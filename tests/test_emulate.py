"""flow.arith.emulate against hls4ml's C simulation: every output element must be identical (zero differing bits).

Compiled C-sim builds are cached per module (module-scoped fixtures), each costs one g++ build (~7 s).
Inputs are quantized to the input type first so the comparison starts from identical values.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from conftest import shared_model, uniform_weights
from equivalence import assert_emulator_equals_csim, assert_trace_equals_emulator, normal_inputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qmodels import conv_model, dense_model, qb

from flow.arith import fxp
from flow.arith.emulate import emulate
from flow.core.errors import FlowError
from flow.hls.convert import build_graph, csim_predict, derive_hls_config
from flow.keras.env import keras, qkeras_objects, set_seed
from flow.spec import Hardware

INPUT_TYPE = "ap_fixed<10,3>"


def _compiled(make, io_type: str, tmp_path_factory, strategy: str = "Latency"):
    set_seed(3)
    model = make()
    uniform_weights(model, 11)
    hw = Hardware(io_type=io_type, strategy=strategy)
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp(f"{make.__name__}_{io_type}"))
    graph.compile()
    return model, graph


@pytest.fixture(scope="module", params=["io_parallel", "io_stream"])
def dense_graph(request, tmp_path_factory):
    return _compiled(dense_model, request.param, tmp_path_factory)


@pytest.fixture(scope="module", params=["io_parallel", "io_stream"])
def conv_graph(request, tmp_path_factory):
    return _compiled(conv_model, request.param, tmp_path_factory)


def test_dense_bit_exact(dense_graph):
    _, graph = dense_graph
    x = normal_inputs((6,), 3000, seed=1, input_type=INPUT_TYPE)
    em = assert_emulator_equals_csim(graph, x, chunk=97)
    names = [t.name for t in em.traces]
    assert names == ["x_in", "d1", "a1", "d2", "a2", "d3"]
    a1 = em.traces[2]
    assert a1.type == "ap_ufixed<4,1,AP_RND_CONV,AP_SAT>"  # QKeras quantized_relu's result type, from the graph
    assert a1.n_overflow > 0 and a1.observed_max == a1.type_max == 1.875 and a1.type_min == 0.0
    assert em.overflows["a1"] == a1.n_overflow
    for t in em.traces:
        assert t.values.shape[0] == len(x)
        assert t.type_min <= t.observed_min and t.observed_max <= t.type_max


def test_conv_bit_exact(conv_graph, monkeypatch):
    _, graph = conv_graph
    x = normal_inputs((8, 8, 2), 600, seed=2, input_type=INPUT_TYPE)
    em = assert_emulator_equals_csim(graph, x, chunk=97)
    assert {"c1", "p1", "c2", "d3"} <= {t.name for t in em.traces}
    import flow.arith.emulate
    import flow.arith.numpy_ops

    monkeypatch.setattr(flow.arith.numpy_ops, "MAX_PRODUCT_ELEMENTS", 700)  # many small product blocks
    monkeypatch.setattr(flow.arith.emulate, "MAX_WORK_ELEMENTS", 5000)     # and small batches
    assert np.array_equal(emulate(graph, x).outputs, em.outputs)


def test_batches_on_threads_give_the_serial_results(conv_graph, monkeypatch):
    """Outputs, traces and every cast record (in order) are the same on 1 and 4 threads."""
    import flow.arith.emulate

    _, graph = conv_graph
    x = normal_inputs((8, 8, 2), 700, seed=5, input_type=INPUT_TYPE)
    runs = []
    for threads in (1, 4):
        monkeypatch.setattr(flow.arith.emulate, "emulator_threads", lambda n=threads: n)
        runs.append(emulate(graph, x, trace=True, chunk=61))
    serial, threaded = runs
    assert np.array_equal(serial.outputs, threaded.outputs)
    assert serial.casts == threaded.casts and serial.overflows == threaded.overflows
    assert all(np.array_equal(a.values, b.values) for a, b in zip(serial.traces, threaded.traces))
    assert serial.casts and sum(c.values for c in serial.casts if c.layer == "c1" and c.role == "accum") > 0


def test_dense_traces_to_rtl_equal_to_the_emulator(dense_graph):
    assert assert_trace_equals_emulator(dense_graph[1], seed=1) > 0


def test_conv_traces_to_rtl_equal_to_the_emulator(conv_graph):
    assert assert_trace_equals_emulator(conv_graph[1], n=1000, seed=2) > 0


def test_traces_empty_unless_requested(dense_graph):
    _, graph = dense_graph
    x = normal_inputs((6,), 50, seed=4, input_type=INPUT_TYPE)
    em = emulate(graph, x)
    assert em.traces == [] and set(em.overflows) == {"x_in", "d1", "a1", "d2", "a2", "d3"}


def test_single_flipped_weight_bit_is_detected(dense_graph):
    """The comparison can fail: flip the LSB of one weight in the graph the emulator reads (the compiled
    C simulation keeps the original weights) and the outputs must differ."""
    _, graph = dense_graph
    x = normal_inputs((6,), 500, seed=5, input_type=INPUT_TYPE)
    want = csim_predict(graph, x)
    d3 = next(lay for lay in graph.get_layers() if lay.name == "d3")
    a2 = emulate(graph, x, upto="a2").outputs  # inputs of d3
    i = int(np.argmax(np.count_nonzero(a2, axis=0)))  # an input that is non-zero for many samples
    var = d3.weights["weight"]
    saved = var.data.copy()
    wt = fxp.type_from_hls(var.type.precision)
    mantissa, _ = fxp.from_float(np.array([saved[i, 1]], dtype=np.float64), wt)
    try:
        var.data = saved.copy()
        var.data[i, 1] = float(fxp.to_float(mantissa ^ 1, wt.fractional)[0])  # flip the least significant bit
        got = emulate(graph, x).outputs
    finally:
        var.data = saved
    changed = np.nonzero(np.any(got != want, axis=0))[0].tolist()
    assert changed == [1]  # exactly the output fed by the flipped weight
    assert np.array_equal(emulate(graph, x).outputs, want)  # restored: bit-exact again


def test_mnist_third_party_model(tmp_path_factory):
    """hls4ml example-models' QKeras MNIST MLP with its own HLSConfig (Vivado, io_parallel, Resource strategy
    with reuse 112 and power-of-two weights in the first QDense). Every layer, softmax included, is compared
    with hls4ml's own C-sim trace (tests/test_emulate_softmax.py compares the full output on more inputs)."""
    K = keras()
    model = K.models.model_from_json(shared_model("qkeras_mnist_dense.json").read_text(), custom_objects=qkeras_objects())
    model.load_weights(str(shared_model("qkeras_mnist_dense_weights.h5")))
    cfg = yaml.safe_load(shared_model("qkeras_mnist_dense_config.yml").read_text())["HLSConfig"]
    names = [layer.name for layer in model.layers]
    for name in names:
        cfg.setdefault("LayerName", {}).setdefault(name, {})["Trace"] = True
    hw = Hardware(backend="Vivado", io_type="io_parallel", strategy=cfg["Model"]["Strategy"])
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp("mnist"))
    dense2 = next(lay for lay in graph.get_layers() if lay.name == "q_dense_2")
    assert type(dense2.weights["weight"].type.precision).__name__.endswith("ExponentPrecisionType")
    assert dense2.get_attr("strategy").lower() == "resource"
    graph.compile()
    x = normal_inputs((784,), 1500, seed=6, input_type="ap_fixed<16,6>", scale=1.0)
    final, trace = graph.trace(np.ascontiguousarray(x))
    np.testing.assert_array_equal(np.asarray(final).reshape(len(x), -1), csim_predict(graph, x))
    compared = []
    for name in names[1:]:
        got = emulate(graph, x, upto=name).outputs
        want = np.asarray(trace[name], dtype=np.float64).reshape(len(x), -1)
        assert int(np.count_nonzero(got != want)) == 0, name
        compared.append(name)
    assert compared == ["q_activation_2", "q_dense_2", "q_activation_3", "q_dense_3", "activation_3"]
    assert type(next(lay for lay in graph.get_layers() if lay.name == "activation_3")).__name__.endswith("Softmax")
    assert np.array_equal(emulate(graph, x).outputs, np.asarray(final).reshape(len(x), -1))


def test_unsupported_layer_is_named(tmp_path_factory):
    K = keras()
    inp = K.Input((4,), name="x_in")
    h = K.layers.Dense(3, name="d1")(inp)
    h = K.layers.PReLU(name="prelu")(h)  # (LeakyReLU is emulated since; tests/test_emulate_layers.py)
    model = K.Model(inp, h)
    hw = Hardware()
    graph = build_graph(model, derive_hls_config(model, hw, INPUT_TYPE), hw, tmp_path_factory.mktemp("prelu"))
    with pytest.raises(FlowError, match="'prelu' of class PReLU, activation 'PReLU'"):
        emulate(graph, np.zeros((2, 4)))


def test_unsupported_activation_is_named(tmp_path_factory):
    """A table activation the emulator does not reproduce (softplus) is refused, naming layer and function."""
    K = keras()
    inp = K.Input((4,), name="x_in")
    h = K.layers.Dense(3, name="d1")(inp)
    h = K.layers.Activation("softplus", name="sp")(h)
    model = K.Model(inp, h)
    hw = Hardware()
    graph = build_graph(model, derive_hls_config(model, hw, INPUT_TYPE), hw, tmp_path_factory.mktemp("softplus"))
    with pytest.raises(FlowError, match="'sp'.*activation 'softplus' is not supported"):
        emulate(graph, np.zeros((2, 4)))


ROUND = st.sampled_from(["AP_" + m for m in fxp.ROUNDING_MODES])
OVER = st.sampled_from(["AP_" + m for m in fxp.OVERFLOW_MODES])


@st.composite
def fixed_type(draw, signed: bool):
    width = draw(st.integers(2, 18))
    integer = draw(st.integers(1 if signed else 0, min(width, 8)))
    return f"ap_{'' if signed else 'u'}fixed<{width},{integer},{draw(ROUND)},{draw(OVER)}>"


@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(
    weight_bits=st.integers(2, 12),
    dense_result=fixed_type(signed=True),
    act_result=st.one_of(fixed_type(signed=True), fixed_type(signed=False)),
    accum=st.one_of(st.none(), fixed_type(signed=True)),
    io_type=st.sampled_from(["io_parallel", "io_stream"]),
)
def test_property_dense_modes_bit_exact(tmp_path_factory, weight_bits, dense_result, act_result, accum, io_type):
    """Random widths (2-18 bits) with rounding/overflow modes on the Dense result, the ReLU result and
    (sometimes) the accumulator, set through the hls_config; emulator == C-sim on every element."""
    from qkeras import QDense

    K = keras()
    set_seed(5)
    inp = K.Input((5,), name="x_in")
    h = QDense(4, kernel_quantizer=qb(weight_bits, 1), bias_quantizer=qb(weight_bits, 1), name="dq")(inp)
    h = K.layers.Activation("relu", name="act")(h)
    model = K.Model(inp, h)
    uniform_weights(model, weight_bits)
    hw = Hardware(io_type=io_type)
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    cfg["LayerName"]["dq"]["Precision"]["result"] = dense_result
    if accum is not None:
        cfg["LayerName"]["dq"]["Precision"]["accum"] = accum
    cfg["LayerName"].setdefault("act", {}).setdefault("Precision", {})["result"] = act_result
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp("prop"))
    layers = {lay.name: lay for lay in graph.get_layers()}
    assert str(fxp.type_from_hls(layers["act"].get_output_variable().type.precision)).replace(" ", "") in (
        act_result.replace(",AP_TRN,AP_WRAP", ""), act_result
    )
    graph.compile()
    x = normal_inputs((5,), 2000, seed=weight_bits, scale=3.0, input_type=INPUT_TYPE)
    assert_emulator_equals_csim(graph, x, chunk=97)
