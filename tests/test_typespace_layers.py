"""Layer configurations over the type space: a softmax as hls4ml's configs set it, on both executors.

A float ``Dense -> softmax`` model (the Dense gives the softmax its input type) is converted with hypothesis-drawn
configs: the Dense result type (width 2 to 40, integer bits from -2 to width + 2, signed or not), the softmax
``Implementation`` (stable, latency, argmax, legacy), ``TableSize`` (64 to 2048), the ``exp_table``,
``inv_table``, ``inv_inp`` and ``accum`` types (8 to 20 bits, any rounding and overflow mode), io_parallel and
io_stream, Vivado and Vitis. The traced netlist must equal the emulator on full-range inputs (0 differing
outputs), or both executors must refuse the configuration with the same FlowError naming the layer (argmax and
legacy are not emulated; a table larger than its address type), or the trace refuses a value too wide for
da4ml. Building an hls4ml graph per example costs about a second, so the default run draws few; the heavy twin
many. The numpy side against hls4ml's C simulation: three configurations compiled (``test_the_emulator_equals
the_c_simulation``).
"""

from __future__ import annotations

import numpy as np
import pytest
from equivalence import assert_trace_equals_emulator
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flow.arith.emulate import emulate
from flow.arith.trace import trace_graph
from flow.arith.types import full_range_inputs, parse_type
from flow.core.errors import FlowError
from flow.hls.convert import build_graph, csim_predict, derive_hls_config
from flow.keras.env import keras, set_seed
from flow.spec import Hardware

INPUT_TYPE = "ap_fixed<10,4>"
BASE = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
ROUNDING = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOW = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")


@st.composite
def hls_types(draw, min_width: int, max_width: int, modes: bool = True) -> str:
    w = draw(st.integers(min_width, max_width))
    i = draw(st.integers(-2, w + 2))
    u = "" if draw(st.booleans()) else "u"
    if not modes:
        return f"ap_{u}fixed<{w},{i}>"
    return f"ap_{u}fixed<{w},{i},AP_{draw(st.sampled_from(ROUNDING))},AP_{draw(st.sampled_from(OVERFLOW))}>"


@st.composite
def softmax_configs(draw) -> dict:
    return {
        "n": draw(st.integers(2, 6)),
        "logit_t": draw(hls_types(2, 40, modes=False)),
        "Implementation": draw(st.sampled_from(["stable", "latency", "stable", "latency", "argmax", "legacy"])),
        "TableSize": draw(st.sampled_from([64, 128, 256, 512, 1024, 2048])),
        "Precision": {k: draw(hls_types(8, 20)) for k in ("exp_table", "inv_table", "inv_inp", "accum")},
        "io_type": draw(st.sampled_from(["io_parallel", "io_stream"])),
        "backend": draw(st.sampled_from(["Vivado", "Vitis"])),
        "seed": draw(st.integers(0, 2**16)),
    }


def softmax_graph(cfg: dict, out_dir):
    K = keras()
    set_seed(1)
    inp = K.Input((4,), name="x_in")
    h = K.layers.Dense(cfg["n"], name="d")(inp)
    model = K.Model(inp, K.layers.Activation("softmax", name="sm")(h))
    rng = np.random.default_rng(cfg["seed"])
    model.get_layer("d").set_weights([rng.uniform(-4, 4, w.shape).astype(np.float32)
                                      for w in model.get_layer("d").get_weights()])
    hw = Hardware(backend=cfg["backend"], io_type=cfg["io_type"])
    conf = derive_hls_config(model, hw, INPUT_TYPE)
    conf["LayerName"]["d"].setdefault("Precision", {})["result"] = cfg["logit_t"]
    sm = conf["LayerName"]["sm"]
    sm["Implementation"], sm["TableSize"] = cfg["Implementation"], cfg["TableSize"]
    sm.setdefault("Precision", {}).update(cfg["Precision"])
    return build_graph(model, conf, hw, out_dir)


def outcome(run) -> tuple[str, str]:
    try:
        run()
    except FlowError as exc:
        return "refused", str(exc)
    return "ran", ""


def check_softmax(cfg: dict, tmp_path_factory) -> None:
    graph = softmax_graph(cfg, tmp_path_factory.mktemp("sm"))
    x = full_range_inputs(parse_type(INPUT_TYPE), (4,), 8, 0)
    emu = outcome(lambda: emulate(graph, x))
    trc = outcome(lambda: trace_graph(graph))
    if emu[0] == "refused":
        assert trc[0] == "refused" and trc[1].split(" (")[0] == emu[1].split(" (")[0], (emu, trc)
        assert trc[1].startswith("sm") or "'sm'" in trc[1] or "sm:" in trc[1], trc
        event(f"both refuse: {emu[1].split(': ', 1)[-1][:40]}")
        return
    if trc[0] == "refused":  # only a value beyond da4ml's exact widths may stop the trace
        assert "bits" in trc[1] and "at most" in trc[1], trc
        event("trace refuses a value too wide for da4ml")
        return
    assert assert_trace_equals_emulator(graph, n=300, seed=cfg["seed"]) == 300 * cfg["n"]
    event(f"compared: {cfg['Implementation']}")


@settings(BASE, max_examples=8)
@given(cfg=softmax_configs())
def test_softmax_configs_trace_equal_to_the_emulator(cfg, tmp_path_factory):
    check_softmax(cfg, tmp_path_factory)


@pytest.mark.heavy
@settings(BASE, max_examples=150)
@given(cfg=softmax_configs())
def test_softmax_configs_trace_equal_to_the_emulator_heavy(cfg, tmp_path_factory):
    check_softmax(cfg, tmp_path_factory)


CSIM_SAMPLE = [
    {"n": 5, "logit_t": "ap_fixed<36,16>", "Implementation": "stable", "TableSize": 1024, "io_type": "io_parallel",
     "backend": "Vitis", "seed": 3, "Precision": {"exp_table": "ap_fixed<18,8,AP_RND,AP_SAT>",
                                                  "inv_table": "ap_fixed<18,8,AP_RND,AP_SAT>",
                                                  "inv_inp": "ap_fixed<18,8,AP_RND,AP_SAT>",
                                                  "accum": "ap_fixed<18,8,AP_RND,AP_SAT>"}},
    {"n": 4, "logit_t": "ap_ufixed<12,3>", "Implementation": "latency", "TableSize": 256, "io_type": "io_stream",
     "backend": "Vivado", "seed": 4, "Precision": {"exp_table": "ap_fixed<14,6,AP_RND_CONV,AP_SAT_SYM>",
                                                   "inv_table": "ap_ufixed<12,5,AP_TRN_ZERO,AP_WRAP>",
                                                   "inv_inp": "ap_fixed<16,7,AP_RND_ZERO,AP_SAT_ZERO>",
                                                   "accum": "ap_fixed<17,9,AP_RND_INF,AP_SAT>"}},
    {"n": 6, "logit_t": "ap_fixed<20,-1>", "Implementation": "stable", "TableSize": 512, "io_type": "io_parallel",
     "backend": "Vivado", "seed": 5, "Precision": {"exp_table": "ap_ufixed<10,2,AP_RND_MIN_INF,AP_SAT>",
                                                   "inv_table": "ap_fixed<20,10,AP_RND,AP_SAT_ZERO>",
                                                   "inv_inp": "ap_ufixed<9,4,AP_RND,AP_WRAP>",
                                                   "accum": "ap_ufixed<11,4,AP_TRN,AP_SAT>"}},
]


@pytest.mark.parametrize("cfg", CSIM_SAMPLE, ids=["default_types_36_bit_logits", "latency_stream_odd_modes",
                                                  "stable_negative_integer_bits"])
def test_the_emulator_equals_the_c_simulation_and_the_trace(cfg, tmp_path):
    graph = softmax_graph(cfg, tmp_path / "prj")
    graph.compile()
    x = full_range_inputs(parse_type(INPUT_TYPE), (4,), 1000, seed=cfg["seed"])
    assert int(np.count_nonzero(emulate(graph, x).outputs != csim_predict(graph, x))) == 0
    assert assert_trace_equals_emulator(graph, n=1000, seed=cfg["seed"]) == 1000 * cfg["n"]
