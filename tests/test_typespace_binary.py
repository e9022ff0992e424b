"""The binary layer descriptions over the type space: numpy and symbolic executions agree on every output.

Hypothesis draws hls4ml layers of the kinds binary networks bring (as hls4ml's graph holds them: real precision
objects, weights as the C simulation loads them): BatchNormalizationQuantizedTanh (binary and ternary, thresholds of
the input type, per element or per channel), the binary_tanh / ternary_tanh activations (io_parallel and io_stream;
xnor, ``ap_int<2>`` and fixed result types), and Dense with binary (xnor) or fixed data and binary, ``uint<1>``,
ternary or fixed weights (the weight_binary, data_binary, both_binary, weight_ternary and mult products, and the
``acc * 2 - n_in`` result of 1-bit data and weights) and Conv1D of binary data (padded), with any input,
accumulator and result type; a configuration the emulator refuses must be refused by both executors alike. Each layer runs on
the numpy executor (the emulator) and on the symbolic one (da4ml; its netlist run by the exact interpreter) over
every input code (up to 12 input bits) or the extremes and random codes: the outputs must be equal bit for bit.
No graph is built, so the default run draws 200 layers (a few seconds); the heavy twin 2,000.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from equivalence import both_executors
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from flow.arith.layers import binary, dense
from flow.arith.target import Target
from flow.arith.types import FixedType, from_hls_precision
from flow.core.errors import FlowError

BASE = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
ROUNDING = ("TRN", "TRN_ZERO", "RND", "RND_ZERO", "RND_MIN_INF", "RND_INF", "RND_CONV")
OVERFLOW = ("WRAP", "SAT", "SAT_ZERO", "SAT_SYM")
EXHAUSTIVE_BITS, N_RANDOM = 12, 300


class Layer:
    """What the layer descriptions read of an hls4ml graph layer: attributes, weights, input and output variables."""

    def __init__(self, class_name: str, attrs: dict, weights: dict, in_precision, out_precision, n: Any) -> None:
        self.name, self.class_name, self.attrs = "layer", class_name, attrs
        self.weights = {k: SimpleNamespace(data=np.asarray(d), type=SimpleNamespace(precision=p))
                        for k, (d, p) in weights.items()}
        self.inp = SimpleNamespace(type=SimpleNamespace(precision=in_precision))
        self.out = SimpleNamespace(type=SimpleNamespace(precision=out_precision), shape=list(np.atleast_1d(n)))

    def __repr__(self) -> str:
        weights = {k: (v.data.tolist(), str(v.type.precision)) for k, v in self.weights.items()}
        attrs = {k: (str(v.precision) if isinstance(v, SimpleNamespace) else v) for k, v in self.attrs.items()}
        return (f"{self.class_name}({attrs}, weights={weights}, in={self.inp.type.precision}, "
                f"out={self.out.type.precision})")

    def get_attr(self, key, default=None):
        return self.attrs.get(key, default)

    def get_input_variable(self):
        return self.inp

    def get_output_variable(self):
        return self.out


def fixed(draw, min_width: int, max_width: int, modes: bool = True):
    from hls4ml.model.types import FixedPrecisionType

    w = draw(st.integers(min_width, max_width))
    r, o = (draw(st.sampled_from(ROUNDING)), draw(st.sampled_from(OVERFLOW))) if modes else ("TRN", "WRAP")
    return FixedPrecisionType(w, draw(st.integers(-2, w + 2)), draw(st.booleans()), r, o)


def xnor():
    from hls4ml.model.types import XnorPrecisionType

    return XnorPrecisionType()


def integer(width: int, signed: bool):
    from hls4ml.model.types import IntegerPrecisionType

    return IntegerPrecisionType(width, signed)


def values(draw, precision, shape) -> np.ndarray:
    """Values of ``precision`` (codes drawn over its whole range), as the graph holds weights."""
    t = from_hls_precision(precision)
    codes = np.array(draw(st.lists(st.integers(t.min_code, t.max_code), min_size=int(np.prod(shape)),
                                   max_size=int(np.prod(shape))))).reshape(shape)
    return codes.astype(np.float64) * t.step


@st.composite
def threshold_layers(draw):
    n = draw(st.integers(1, 6))
    in_p = fixed(draw, 1, 20, modes=False)
    n_filt = draw(st.sampled_from([-1] + [d for d in range(1, n + 1) if n % d == 0]))
    quantize = draw(st.sampled_from([2, 3]))
    size = n if n_filt == -1 else n_filt
    keys = ("threshold",) if quantize == 2 else ("threshold_hi", "threshold_lo")
    out_p = xnor() if quantize == 2 else integer(2, True)
    return Layer("BatchNormalizationQuantizedTanh", {"quantize": quantize, "n_filt": n_filt},
                 {k: (values(draw, in_p, (size,)), in_p) for k in keys}, in_p, out_p, n), (n,)


@st.composite
def activation_layers(draw):
    n = draw(st.integers(1, 6))
    act = draw(st.sampled_from(binary.ACTIVATIONS))
    in_p = fixed(draw, 1, 20)
    if act == "binary_tanh":
        out_p = draw(st.sampled_from([xnor(), integer(1, False), integer(2, True), fixed(draw, 1, 8)]))
    else:
        out_p = draw(st.sampled_from([integer(2, True), fixed(draw, 1, 8)]))
    return Layer("Activation", {"activation": act}, {}, in_p, out_p, n), (n,)


@st.composite
def dense_layers(draw):
    n_in, n_out = draw(st.integers(1, 6)), draw(st.integers(1, 4))
    in_p = draw(st.sampled_from(["xnor", "uint1", "fixed"]))
    in_p = {"xnor": xnor(), "uint1": integer(1, False)}.get(in_p) or fixed(draw, 1, 10)
    w_p = draw(st.sampled_from(["xnor", "uint1", "ternary", "fixed"]))
    w_p = {"xnor": xnor(), "uint1": integer(1, False), "ternary": integer(2, True)}.get(w_p) or fixed(draw, 1, 8, False)
    b_p = draw(st.sampled_from([xnor(), fixed(draw, 1, 10, False)]))
    w = values(draw, w_p, (n_in, n_out))
    if from_hls_precision(w_p).min_code == -2:  # ternary weights hold -1, 0, 1
        w = np.clip(w, -1, 1)
    attrs = {"n_in": n_in, "n_out": n_out, "accum_t": SimpleNamespace(precision=fixed(draw, 1, 16)),
             "strategy": "latency"}
    return Layer("Dense", attrs, {"weight": (w, w_p), "bias": (values(draw, b_p, (n_out,)), b_p)}, in_p,
                 fixed(draw, 1, 16), n_out), (n_in,)


@st.composite
def conv_layers(draw):
    """Conv1D of binary data: width 2-5, 1-2 channels, kernel 1-3, stride 1-2, padding 0-1 on each side."""
    width, cin, cout = draw(st.integers(2, 5)), draw(st.integers(1, 2)), draw(st.integers(1, 3))
    kernel, stride = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    pad_left, pad_right = draw(st.integers(0, 1)), draw(st.integers(0, 1))
    kernel = min(kernel, width + pad_left + pad_right)
    out_width = (width + pad_left + pad_right - kernel) // stride + 1
    in_p = draw(st.sampled_from([xnor(), integer(1, False)]))
    w_p = draw(st.sampled_from([xnor(), integer(2, True), fixed(draw, 1, 6, False)]))
    w = values(draw, w_p, (kernel, cin, cout))
    if from_hls_precision(w_p).min_code == -2:
        w = np.clip(w, -1, 1)
    b_p = fixed(draw, 1, 8, False)
    attrs = {"n_chan": cin, "n_filt": cout, "filt_width": kernel, "stride_width": stride, "out_width": out_width,
             "pad_left": pad_left, "pad_right": pad_right, "accum_t": SimpleNamespace(precision=fixed(draw, 1, 16)),
             "strategy": "latency"}
    return Layer("Conv1D", attrs, {"weight": (w, w_p), "bias": (values(draw, b_p, (cout,)), b_p)}, in_p,
                 fixed(draw, 1, 16), (out_width, cout)), (width, cin)


def codes_of(t: FixedType, shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Every combination of the codes of ``t`` in a sample of ``shape`` when they have at most EXHAUSTIVE_BITS bits,
    else its extremes and N_RANDOM uniform draws; (N, *shape)."""
    return _flat_codes(t, int(np.prod(shape)), seed).reshape(-1, *shape)


def _flat_codes(t: FixedType, n: int, seed: int) -> np.ndarray:
    if t.width * n <= EXHAUSTIVE_BITS:
        axes = [np.arange(t.min_code, t.max_code + 1)] * n
        return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, n)
    rng = np.random.default_rng(seed)
    edges = np.array([[t.min_code] * n, [t.max_code] * n, [0] * n, [min(t.max_code, 1)] * n])
    return np.concatenate([edges, rng.integers(t.min_code, t.max_code, size=(N_RANDOM, n), endpoint=True)])


def check(layer: Layer, shape: tuple[int, ...], fn, target: Target) -> str:
    """Both executors on every (or many) input codes: equal outputs, or the same refusal by both."""
    from flow.arith.ops import OpsError
    from flow.arith.symbolic_ops import SymbolicOps

    t = from_hls_precision(layer.inp.type.precision)
    try:
        a, s = both_executors(lambda ops, x: fn(layer, [x], ops, target), [t], [codes_of(t, shape, 0)])
    except (FlowError, OpsError) as exc:
        ops = SymbolicOps()
        with pytest.raises(type(exc), match=re.escape(str(exc).split(":")[0])):
            fn(layer, [ops.variables(t, shape)], ops, target)
        return "refused"
    assert a.shape == s.shape and a.tolist() == s.tolist()
    return "compared"


def _target(draw) -> Target:
    return Target("Vitis", draw(st.sampled_from(["io_parallel", "io_stream"])))


@st.composite
def cases(draw):
    kind = draw(st.sampled_from(["thresholds", "activation", "dense", "conv"]))
    strategy = {"thresholds": threshold_layers, "activation": activation_layers, "dense": dense_layers,
                "conv": conv_layers}[kind]
    layer, shape = draw(strategy())
    return kind, layer, shape, _target(draw)


FNS = {"thresholds": binary.batchnorm_quantized_tanh, "activation": binary.binary_activation, "dense": dense.dense,
       "conv": dense.conv1d}


def run_case(case) -> None:
    kind, layer, shape, target = case
    outcome = check(layer, shape, FNS[kind], target)
    what = layer.attrs.get("activation") or layer.attrs.get("quantize") or type(layer.inp.type.precision).__name__
    event(f"{kind}: {what}: {outcome}")


@settings(BASE, max_examples=200)
@given(case=cases())
def test_binary_layers_run_equal_on_both_executors(case):
    run_case(case)


@pytest.mark.heavy
@settings(BASE, max_examples=2000)
@given(case=cases())
def test_binary_layers_run_equal_on_both_executors_heavy(case):
    run_case(case)


@pytest.mark.parametrize("data, weights, expected", [
    ([1, 1, 0], [1, 0, 0], [1]),    # +1*+1 + +1*-1 + -1*-1 = 1
    ([0, 0, 0], [1, 1, 1], [-3]),
    ([1, 0, 1], [1, 0, 1], [3]),
], ids=["mixed", "all_disagree", "all_agree"])
def test_the_1_bit_codes_mean_plus_and_minus_one_in_a_binary_dense(data, weights, expected):
    """Code 1 is +1 and code 0 is -1: a both_binary Dense gives the +-1 dot product (nnet_mult.h's acc*2 - n_in)."""
    from hls4ml.model.types import FixedPrecisionType

    wide = FixedPrecisionType(8, 8, True)
    layer = Layer("Dense", {"n_in": 3, "n_out": 1, "accum_t": SimpleNamespace(precision=wide), "strategy": "latency"},
                  {"weight": (np.array(weights).reshape(3, 1), xnor()), "bias": (np.zeros(1), xnor())}, xnor(), wide, 1)
    a, s = both_executors(lambda ops, x: dense.dense(layer, [x], ops, Target("Vitis", "io_parallel")),
                          [FixedType.binary()], [np.array([data])])
    assert a.ravel().tolist() == s.ravel().tolist() == expected
