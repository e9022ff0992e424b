"""Issue 22's two refusals: float models ending in softmax under hls4ml's default precision ``ap_fixed<16,6>``.

`hlsflow rtl` refused both (the gate named the softmax: 575 of 10,000 and 19,820 of 20,000 outputs differed)
although the emulator equalled the C simulation. The class of the bug: the stable softmax takes the maximum of
its inputs, and for logits whose interval needs more than 32 bits (a Dense + folded BatchNormalization with a
small variance, a Conv2D model with large weights: ``ap_fixed<36,16>``-class results) that maximum is an MSB
multiplexer wider than 32 bits. da4ml 0.6's C++ interpreter, which the gate used to run the netlist, wraps such a
signed op with a 32-bit type minimum and returns a negative result plus ``2**w``; the netlist (and the Verilog
written from it) was right. The gate now runs :func:`flow.arith.netlist_eval.predict` (tests/test_netlist_eval.py).

Models of the same shape and types as the two in the issue, with seeded weights: the traced netlist equals the
emulator (the gate `hlsflow rtl` runs), the C++ interpreter indeed differs on them (so these tests fail with the
old gate), and the emulator equals the C simulation.
"""

from __future__ import annotations

import numpy as np
import pytest

from flow.arith.emulate import emulate
from flow.arith.equivalence import check_netlist
from flow.arith.netlist_eval import CPP_EXACT_BITS, max_width
from flow.arith.trace import trace_graph
from flow.arith.types import full_range_inputs, parse_type
from flow.hls.convert import build_graph, csim_predict, derive_hls_config
from flow.keras.env import keras, set_seed
from flow.spec import Hardware

PRECISION = "ap_fixed<16,6>"  # hls4ml's default, what `hlsflow convert --precision` gives every float layer


def bn_mlp_softmax():
    """Dense + BatchNormalization MLP ending BatchNormalization -> softmax (issue: 16 inputs, 5 classes)."""
    K = keras()
    inp = K.Input((16,), name="x_in")
    h = K.layers.Dense(32, name="fc1")(inp)
    h = K.layers.BatchNormalization(name="bn1")(h)
    h = K.layers.Activation("relu", name="relu1")(h)
    h = K.layers.Dense(5, name="fc2")(h)
    h = K.layers.BatchNormalization(name="bn2")(h)
    return K.Model(inp, K.layers.Activation("softmax", name="softmax")(h))


def small_cnn_softmax():
    """A small Conv2D model ending Dense(activation='softmax') (graph layer ``dense_1_softmax``, 10 classes)."""
    K = keras()
    inp = K.Input((10, 10, 1), name="x_in")
    h = K.layers.Conv2D(4, (3, 3), activation="relu", name="c1")(inp)
    h = K.layers.MaxPooling2D((2, 2), name="p1")(h)
    h = K.layers.Flatten(name="f")(h)
    h = K.layers.Dense(8, activation="relu", name="dense")(h)
    return K.Model(inp, K.layers.Dense(10, activation="softmax", name="dense_1")(h))


# (model, weight range, BatchNormalization moving variance range): small variances scale the logits up, as
# a trained model's BatchNormalization does; large conv/dense weights do the same in the CNN
MODELS = {"bn_mlp": (bn_mlp_softmax, 1.0, (0.001, 0.011)), "small_cnn": (small_cnn_softmax, 3.0, None)}


def with_weights(make, scale: float, variance: tuple[float, float] | None):
    set_seed(8)
    model = make()
    rng = np.random.default_rng(12)
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            new = [rng.uniform(-scale, scale, w.shape).astype(np.float32) for w in ws]
            if variance is not None and type(layer).__name__ == "BatchNormalization":  # gamma, beta, mean, variance
                new[3] = rng.uniform(*variance, ws[3].shape).astype(np.float32)
            layer.set_weights(new)
    return model


@pytest.fixture(scope="module", params=list(MODELS))
def graph(request, tmp_path_factory):
    make, scale, variance = MODELS[request.param]
    model = with_weights(make, scale, variance)
    hw = Hardware()
    return build_graph(model, derive_hls_config(model, hw, PRECISION), hw, tmp_path_factory.mktemp(request.param))


@pytest.fixture(scope="module")
def netlist(graph):
    from da4ml.trace import comb_trace

    traced = trace_graph(graph)
    return traced, comb_trace(traced.inputs, traced.outputs, keep_dead_inputs=True)


def test_the_gate_finds_the_traced_netlist_equal_to_the_emulator(graph, netlist):
    traced, comb = netlist
    result = check_netlist(graph, traced, comb, samples=2000, seed=0)
    assert result.differing_outputs == 0 and result.outputs == 2000 * traced.n_outputs


def test_da4mls_cpp_interpreter_differs_on_these_netlists(graph, netlist):
    """Why the gate refused: the netlist has signed ops wider than 32 bits, and the C++ interpreter gets them
    wrong (this is what the two models reproduce)."""
    traced, comb = netlist
    assert max_width(comb) > CPP_EXACT_BITS
    x = full_range_inputs(traced.input_type, traced.input_shape, 2000, 0)
    want = emulate(graph, x).outputs
    assert np.count_nonzero(comb.predict(x.reshape(len(x), -1)) != want) > 0


def test_the_emulator_equals_the_c_simulation(graph):
    graph.compile()
    x = full_range_inputs(parse_type(PRECISION), tuple(graph.get_input_variables()[0].shape), 500, seed=3)
    assert int(np.count_nonzero(emulate(graph, x).outputs != csim_predict(graph, x))) == 0
