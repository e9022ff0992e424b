"""The two executors of the one layer description agree on every bit, and the numpy one equals C simulation.

Every small layer model of the test suite is traced and compared with the emulator in its own file
(``test_traces_to_rtl_equal_to_the_emulator`` in tests/test_emulate*.py, for both io types and, where the
emulator supports it, the Catapult backend). This file holds the cases that once drifted between two copies of
the arithmetic: an io_stream max pooling whose ``accum_t`` is narrower than its input (hls4ml casts every value
to ``accum_t`` before the maximum in io_stream, after it in io_parallel), accumulators that round or saturate
every product, and Conv1D.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import uniform_weights
from equivalence import assert_trace_equals_emulator
from qmodels import qb

from flow.arith.emulate import emulate
from flow.arith.types import full_range_inputs, parse_type
from flow.hls.convert import build_graph, csim_predict, derive_hls_config
from flow.keras.env import keras, set_seed
from flow.spec import Hardware

INPUT_TYPE = "ap_fixed<8,3>"


def narrow_pool_model():
    from qkeras import QActivation, QConv2D, QDense, quantized_relu

    K = keras()
    inp = K.Input((9, 9, 1), name="x_in")
    h = QConv2D(3, (2, 2), kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="c1")(inp)
    h = QActivation(quantized_relu(8, 4), name="r1")(h)
    h = K.layers.MaxPooling2D((3, 3), name="p1")(h)
    h = K.layers.Flatten(name="f")(h)
    return K.Model(inp, QDense(4, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="d1")(h))


def narrow_pool_config(cfg: dict) -> None:
    cfg["LayerName"]["p1"].setdefault("Precision", {})["accum"] = "ap_ufixed<5,2,AP_TRN,AP_SAT>"


def rounding_accumulator_model():
    from qkeras import QActivation, QConv1D, QDense, quantized_relu

    K = keras()
    inp = K.Input((12, 2), name="x_in")
    h = QConv1D(4, 3, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="c1")(inp)
    h = QActivation(quantized_relu(7, 3), name="r1")(h)
    h = K.layers.Flatten(name="f")(h)
    return K.Model(inp, QDense(3, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="d1")(h))


def rounding_accumulator_config(accum: str):
    def configure(cfg: dict) -> None:
        for name in ("c1", "d1"):
            cfg["LayerName"][name].setdefault("Precision", {})["accum"] = accum
    return configure


CASES = [
    pytest.param(narrow_pool_model, (9, 9, 1), narrow_pool_config, io, id=f"narrow_max_pool-{io}")
    for io in ("io_parallel", "io_stream")
] + [
    pytest.param(rounding_accumulator_model, (12, 2), rounding_accumulator_config(acc), "io_parallel",
                 id=f"conv1d-{acc}")
    for acc in ("ap_fixed<12,6>", "ap_fixed<12,4,AP_RND,AP_WRAP>", "ap_fixed<10,3,AP_RND_CONV,AP_SAT>")
]


@pytest.mark.parametrize("make,shape,configure,io_type", CASES)
def test_numpy_equals_csim_and_trace_equals_numpy(make, shape, configure, io_type, tmp_path):
    set_seed(5)
    model = uniform_weights(make(), 9, 1.5)
    hw = Hardware(backend="Vitis", io_type=io_type)
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    configure(cfg)
    graph = build_graph(model, cfg, hw, tmp_path / "prj")
    graph.compile()
    x = full_range_inputs(parse_type(INPUT_TYPE), shape, 2000, seed=1)
    em = emulate(graph, x)
    assert int(np.count_nonzero(em.outputs != csim_predict(graph, x))) == 0
    assert assert_trace_equals_emulator(graph, n=2000, seed=1) == em.outputs.size
