"""flow.arith.emulate's remaining layers (issue 3) against hls4ml's C simulation, layer by layer, on every bit.

Four small functional models hold one or several layer kinds each, so that few g++ builds cover many layers:

* ``mixed2d`` (Vitis, io_parallel and io_stream): Conv2D, a standalone BatchNormalization (after an
  activation, so hls4ml cannot fuse it), ZeroPadding2D, AveragePooling2D (3x3: the division truncates),
  LeakyReLU, ThresholdedReLU, Add/Subtract/Multiply/Average/Maximum/Minimum, Concatenate, ReLU(max_value),
  GlobalAveragePooling2D (with a rounding, saturating accumulator set in the config), GlobalMaxPooling2D,
  Concatenate of vectors, Dense, hard_sigmoid.
* ``mixed1d`` (Vitis, io_parallel and io_stream): Conv1D (valid and same), QKeras leaky quantized_relu,
  MaxPooling1D (with a narrow wrapping accumulator), ZeroPadding1D, quantized_tanh (hls4ml's hard_tanh),
  QBatchNormalization, AveragePooling1D (rounding accumulator), Flatten, Dense, Reshape (a Repack layer in
  io_stream), GlobalAverage/MaxPooling1D, Concatenate.
* ``padded_pool`` (Vitis, io_parallel only: hls4ml's io_stream pooling takes no padding): Max and Average
  pooling with ``padding='same'`` and stride != pool size, a 1x1 (pointwise) Conv2D, GlobalMaxPooling2D,
  Concatenate of vectors.
* ``integer_relu`` (Vitis, io_parallel): ``quantized_relu(N, N)`` activations, which hls4ml types
  ``ap_uint<N>`` (also traced to RTL with da4ml and compared with the emulator).

Each model is compiled once (module-scoped fixture) *with hls4ml's tracing*, and ``graph.trace`` returns every
layer's C-simulated output, so each test compares one layer's output (all samples, every element) with the
emulator's. Inputs: 400 samples drawn uniformly from every code of the input type ``ap_fixed<10,3>``.
The Catapult backend (``ac_fixed``) is checked on a Dense and a Conv2D model.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from equivalence import assert_trace_equals_emulator
from qmodels import conv_model, qb

from flow.arith import hls_layer
from flow.arith.emulate import emulate
from flow.arith.layers import activations, pooling
from flow.arith.ops import Tensor
from flow.arith.types import parse_type
from flow.commands import verify
from flow.core.errors import FlowError
from flow.hls.convert import build_graph, csim_predict, derive_hls_config
from flow.keras.env import keras, set_seed
from flow.spec import Hardware

INPUT_TYPE = "ap_fixed<10,3>"
N_SAMPLES = 400


def full_range_inputs(shape: tuple[int, ...], n: int, seed: int, input_type: str = INPUT_TYPE) -> np.ndarray:
    """``n`` samples, every element drawn uniformly from all codes of ``input_type`` (its full range)."""
    return verify.full_range_inputs(parse_type(input_type), shape, n, seed)


def randomize_weights(model, seed: int, scales: dict[str, float] | None = None) -> None:
    """Weights uniform in [-s, s] (s = 1 unless ``scales`` names the layer); batch-norm variances positive."""
    rng = np.random.default_rng(seed)
    scales = scales or {}
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        if "BatchNormalization" in type(layer).__name__:
            names = [w.name for w in layer.weights]
            ws = [rng.uniform(0.3, 2.0, w.shape) if "variance" in n else rng.uniform(-1.0, 1.0, w.shape)
                  for w, n in zip(ws, names)]
        else:
            s = scales.get(layer.name, 1.0)
            ws = [rng.uniform(-s, s, w.shape) for w in ws]
        layer.set_weights([w.astype(np.float32) for w in ws])


# ---------------------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------------------


def mixed2d_model():
    from qkeras import QActivation, QConv2D, QDense, quantized_relu

    K = keras()
    L = K.layers
    inp = K.Input((8, 8, 2), name="x_in")
    h = QConv2D(3, (3, 3), kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c1")(inp)  # 6x6x3
    h = QActivation(quantized_relu(6, 2), name="a1")(h)
    h = L.BatchNormalization(name="bn")(h)  # after an activation: not fused, hls4ml's nnet::normalize
    h = L.ZeroPadding2D(((1, 2), (2, 1)), name="zp")(h)  # 9x9x3
    h = L.AveragePooling2D((3, 3), name="ap")(h)  # 3x3x3, divides by 9
    lk = L.LeakyReLU(0.3, name="lk")(h)
    th = L.ThresholdedReLU(0.25, name="th")(h)
    add = L.Add(name="add")([lk, th])
    sub = L.Subtract(name="sub")([lk, th])
    mul = L.Multiply(name="mul")([lk, th])
    avg = L.Average(name="avg")([add, sub])
    mx = L.Maximum(name="mx")([mul, avg])
    mn = L.Minimum(name="mn")([mul, add])
    h = L.Concatenate(name="cat")([mx, mn])  # 3x3x6
    h = L.ReLU(max_value=0.25, name="rmax")(h)
    h = L.Concatenate(name="gcat")([L.GlobalAveragePooling2D(name="gap")(h), L.GlobalMaxPooling2D(name="gmx")(h)])
    h = QDense(4, kernel_quantizer=qb(8, 3), bias_quantizer=qb(8, 3), name="d")(h)  # weights up to +-6
    h = L.Activation("hard_sigmoid", name="hs")(h)
    return K.Model(inp, h)


def mixed2d_config(cfg: dict) -> None:
    # a narrow rounding/saturating accumulator: io_parallel adds each input to it, io_stream casts first
    cfg["LayerName"]["gap"]["Precision"]["accum"] = "ap_fixed<12,5,AP_RND_CONV,AP_SAT>"


def mixed1d_model():
    from qkeras import QActivation, QBatchNormalization, QConv1D, QDense, quantized_relu, quantized_tanh

    K = keras()
    L = K.layers
    inp = K.Input((16, 3), name="x_in")
    h = QConv1D(4, 3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c1")(inp)  # 14x4
    h = QActivation(quantized_relu(7, 2, negative_slope=0.25), name="lrelu")(h)
    h = L.MaxPooling1D(2, name="mp")(h)  # 7x4
    h = L.ZeroPadding1D((1, 1), name="zp")(h)  # 9x4
    h = QConv1D(4, 3, padding="same", kernel_quantizer=qb(5), bias_quantizer=qb(5), name="c2")(h)  # 9x4
    h = QActivation(quantized_tanh(6, 0, symmetric=True), name="htanh")(h)
    h = QBatchNormalization(name="qbn")(h)
    h = L.AveragePooling1D(3, name="ap")(h)  # 3x4
    h = L.Flatten(name="fl")(h)
    h = QDense(6, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1), name="d")(h)
    h = L.Reshape((3, 2), name="rs")(h)
    h = L.Concatenate(name="gcat")([L.GlobalAveragePooling1D(name="gap")(h), L.GlobalMaxPooling1D(name="gmx")(h)])
    return K.Model(inp, h)


def mixed1d_config(cfg: dict) -> None:
    names = cfg["LayerName"]
    # narrow accumulators: wrapping max (io_parallel: max then cast; io_stream: cast then max) and a rounding,
    # saturating average (io_parallel: sequential sum; io_stream: balanced tree of casts)
    names["mp"]["Precision"]["accum"] = "ap_fixed<7,2>"
    names["ap"]["Precision"]["accum"] = "ap_fixed<9,2,AP_RND_ZERO,AP_SAT>"


def padded_pool_model():
    from qkeras import QActivation, QConv2D, quantized_relu

    K = keras()
    L = K.layers
    inp = K.Input((7, 7, 2), name="x_in")
    a0 = QActivation(quantized_relu(5, 2), name="a0")(inp)  # unsigned
    mp = L.MaxPooling2D((2, 2), padding="same", name="mp")(a0)  # 4x4x2, padded edge windows
    c1 = QConv2D(3, (2, 2), kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c1")(inp)  # 6x6x3, signed
    ap = L.AveragePooling2D((3, 3), strides=(2, 2), padding="same", name="ap")(c1)  # 3x3x3, 4/6/9 cells
    c2 = QConv2D(2, (1, 1), kernel_quantizer=qb(6), bias_quantizer=qb(6), name="c2")(ap)  # hls4ml: pointwise
    gmx = L.GlobalMaxPooling2D(name="gmx")(c2)
    h = L.Concatenate(name="cat")([L.Flatten(name="fl")(mp), gmx])
    return K.Model(inp, h)


def integer_relu_model():
    """``quantized_relu(N, N)``: no fractional bits, so hls4ml types these activations ``ap_uint<N>`` (an
    integer type: truncation and wrap-around, where QKeras rounds and clips)."""
    from qkeras import QActivation, QDense, quantized_relu

    K = keras()
    inp = K.Input((6,), name="x_in")
    h = QDense(8, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d1")(inp)
    h = QActivation(quantized_relu(3, 3), name="a1")(h)  # ap_uint<3>: d1's outputs reach past 7 and wrap
    h = QDense(5, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d2")(h)
    h = QActivation(quantized_relu(4, 4), name="a2")(h)  # ap_uint<4>
    h = QDense(3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h)
    return K.Model(inp, h)


# ---------------------------------------------------------------------------------------------------------
# compiled, traced builds (one g++ build each)
# ---------------------------------------------------------------------------------------------------------


@dataclass
class Built:
    model: Any
    graph: Any
    x: np.ndarray
    final: np.ndarray  # C-sim output (N, n_out)
    traces: dict[str, np.ndarray]  # C-sim output of every traced layer, (N, -1)

    def layer(self, name: str):
        return next(lay for lay in self.graph.get_layers() if lay.name == name)


def build_traced(make, shape, io_type: str, tmp_path_factory, configure=None, backend: str = "Vitis",
                 seed: int = 11, scales: dict[str, float] | None = None) -> Built:
    set_seed(3)
    model = make()
    randomize_weights(model, seed, scales)
    hw = Hardware(backend=backend, io_type=io_type)
    cfg = derive_hls_config(model, hw, INPUT_TYPE)
    for layer_cfg in cfg["LayerName"].values():
        layer_cfg["Trace"] = True
    if configure is not None:
        configure(cfg)
    graph = build_graph(model, cfg, hw, tmp_path_factory.mktemp(f"{make.__name__}_{backend}_{io_type}"))
    x = full_range_inputs(shape, N_SAMPLES, seed=7)
    final, traces = graph.trace(np.ascontiguousarray(x))  # compiles (with tracing) once
    return Built(model, graph, x, np.asarray(final, dtype=np.float64).reshape(len(x), -1),
                 {k: np.asarray(v, dtype=np.float64).reshape(len(x), -1) for k, v in traces.items()})


@pytest.fixture(scope="module", params=["io_parallel", "io_stream"])
def mixed2d(request, tmp_path_factory):
    return build_traced(mixed2d_model, (8, 8, 2), request.param, tmp_path_factory, mixed2d_config,
                        seed=20, scales={"d": 6.0})


@pytest.fixture(scope="module", params=["io_parallel", "io_stream"])
def mixed1d(request, tmp_path_factory):
    return build_traced(mixed1d_model, (16, 3), request.param, tmp_path_factory, mixed1d_config)


@pytest.fixture(scope="module")
def padded_pool(tmp_path_factory):
    return build_traced(padded_pool_model, (7, 7, 2), "io_parallel", tmp_path_factory)


@pytest.fixture(scope="module")
def integer_relu(tmp_path_factory):
    return build_traced(integer_relu_model, (6,), "io_parallel", tmp_path_factory, scales={"d1": 2.0})


_EMULATED: dict[int, Any] = {}


def emulated(built: Built):
    """The emulator's run on the build's inputs, with traces (cached per build)."""
    if id(built) not in _EMULATED:
        _EMULATED[id(built)] = emulate(built.graph, built.x, trace=True, chunk=150)  # chunking must not matter
    return _EMULATED[id(built)]


def assert_layer_exact(built: Built, name: str) -> np.ndarray:
    """The emulator's output of layer ``name`` equals hls4ml's C-sim trace on every element; returns it."""
    want = built.traces[name]
    tr = next(t for t in emulated(built).traces if t.name == name)
    got = tr.values.reshape(len(built.x), -1)
    assert got.shape == want.shape, name
    diff = int(np.count_nonzero(got != want))
    assert diff == 0, f"{name}: {diff} of {want.size} values differ"
    return got


def class_of(built: Built, name: str) -> str:
    return built.layer(name).class_name


# ---------------------------------------------------------------------------------------------------------
# mixed2d
# ---------------------------------------------------------------------------------------------------------


def test_mixed2d_full_output_bit_exact(mixed2d):
    got = emulated(mixed2d).outputs
    assert np.array_equal(got, mixed2d.final)
    assert np.array_equal(got, csim_predict(mixed2d.graph, mixed2d.x))  # the plain (untraced) entry point too
    assert len(np.unique(got)) > 50


def test_standalone_batchnorm_bit_exact(mixed2d):
    assert class_of(mixed2d, "bn") == "BatchNormalization"
    y = assert_layer_exact(mixed2d, "bn")
    assert (y < 0).any() and (y > 0).any()


def test_zeropadding2d_bit_exact(mixed2d):
    assert class_of(mixed2d, "zp") == "ZeroPadding2D"
    y = assert_layer_exact(mixed2d, "zp").reshape(-1, 9, 9, 3)
    assert np.all(y[:, 0] == 0) and np.all(y[:, :, -1] == 0)


def test_average_pooling2d_bit_exact(mixed2d):
    layer = mixed2d.layer("ap")
    assert layer.get_attr("pool_op") == "Average"
    acc, inp = hls_layer.attr_type(layer, "accum_t"), hls_layer.ftype(layer, layer.get_input_variable().type.precision, "")
    assert (acc.width, acc.integer) == (inp.width + 8, inp.integer + 4)  # hls4ml: e = ceil(log2(9)) = 4 more
    y = assert_layer_exact(mixed2d, "ap")
    assert (y < 0).any()  # negative averages: the division truncates toward zero


def test_leaky_relu_bit_exact(mixed2d):
    layer = mixed2d.layer("lk")
    assert layer.class_name == "ParametrizedActivation" and layer.get_attr("activation") == "LeakyReLU"
    assert str(hls_layer.attr_type(layer, "param_t")) == "ap_ufixed<8,-1>"  # 0.3 is held as 0.298828125
    y = assert_layer_exact(mixed2d, "lk")
    assert (y < 0).any() and (y > 0).any()


def test_thresholded_relu_bit_exact(mixed2d):
    assert mixed2d.layer("th").get_attr("activation") == "ThresholdedReLU"
    y = assert_layer_exact(mixed2d, "th")
    x = mixed2d.traces["ap"]
    assert (x > 0).any() and ((x > 0) & (x <= 0.25)).any()  # inputs on both sides of theta = 0.25
    assert np.array_equal(y != 0, x > 0.25)


@pytest.mark.parametrize("name", ["add", "sub", "mul", "avg", "mx", "mn"])
def test_merge_bit_exact(mixed2d, name):
    layer = mixed2d.layer(name)
    assert layer.class_name == "Merge"
    assert layer.get_attr("op").lower() == {"add": "add", "sub": "subtract", "mul": "multiply", "avg": "average",
                                           "mx": "maximum", "mn": "minimum"}[name]
    y = assert_layer_exact(mixed2d, name)
    assert len(np.unique(y)) > 20


def test_concatenate_bit_exact(mixed2d):
    assert class_of(mixed2d, "cat") == "Concatenate"
    y = assert_layer_exact(mixed2d, "cat").reshape(-1, 3, 3, 6)
    mx, mn = (mixed2d.traces[n].reshape(-1, 3, 3, 3) for n in ("mx", "mn"))
    # channels of the first input, then of the second (values cast to the concatenation's wider type)
    assert np.array_equal(y[..., :3], mx) and np.array_equal(y[..., 3:], mn)


def test_relu_max_value_is_plain_relu_in_hls4ml(mixed2d):
    """hls4ml 1.3's Keras-2 parser turns ``ReLU(max_value=0.25)`` into a plain ``nnet::relu`` (the cap is
    dropped); the emulator reproduces what hls4ml builds, so values above 0.25 appear."""
    assert mixed2d.layer("rmax").get_attr("activation").lower() == "relu"
    y = assert_layer_exact(mixed2d, "rmax")
    assert (y > 0.25).any() and (y >= 0).all()


def test_global_average_pooling2d_bit_exact(mixed2d):
    layer = mixed2d.layer("gap")
    assert layer.class_name == "GlobalPooling2D"
    assert str(hls_layer.attr_type(layer, "accum_t")) == "ap_fixed<12,5,AP_RND_CONV,AP_SAT>"
    assert_layer_exact(mixed2d, "gap")


def test_global_max_pooling2d_bit_exact(mixed2d):
    assert class_of(mixed2d, "gmx") == "GlobalPooling2D" and mixed2d.layer("gmx").get_attr("pool_op") == "Max"
    assert_layer_exact(mixed2d, "gmx")
    assert_layer_exact(mixed2d, "gcat")  # vectors concatenated


def test_hard_sigmoid_bit_exact(mixed2d):
    layer = mixed2d.layer("hs")
    assert layer.class_name == "HardActivation" and layer.get_attr("activation") == "hard_sigmoid"
    y = assert_layer_exact(mixed2d, "hs")
    assert (y == 0).any() and (y == 1).any() and ((y > 0) & (y < 1)).any()  # both clips and the slope


def test_clone_layers_in_io_stream(mixed2d):
    """io_stream: hls4ml inserts Clone layers for tensors used twice; they are emulated as copies."""
    clones = [lay for lay in mixed2d.graph.get_layers() if lay.class_name == "Clone"]
    io_type = mixed2d.graph.config.get_config_value("IOType")
    assert (len(clones) > 0) == (io_type == "io_stream")
    names = [t.name for t in emulated(mixed2d).traces]
    assert all(c.name in names for c in clones)


# ---------------------------------------------------------------------------------------------------------
# mixed1d
# ---------------------------------------------------------------------------------------------------------


def test_mixed1d_full_output_bit_exact(mixed1d):
    got = emulated(mixed1d).outputs
    assert np.array_equal(got, mixed1d.final)
    assert len(np.unique(got)) > 50


@pytest.mark.parametrize("name", ["c1", "c2"])
def test_conv1d_bit_exact(mixed1d, name):
    assert class_of(mixed1d, name) == "Conv1D"
    y = assert_layer_exact(mixed1d, name)
    assert len(np.unique(y)) > 100


def test_qkeras_leaky_relu_bit_exact(mixed1d):
    layer = mixed1d.layer("lrelu")
    assert layer.class_name == "ParametrizedActivation" and layer.get_attr("activation") == "leaky_relu"
    y = assert_layer_exact(mixed1d, "lrelu")
    assert (y < 0).any() and (y > 0).any()


def test_max_pooling1d_wrapping_accumulator_bit_exact(mixed1d):
    """accum_t ap_fixed<7,2> wraps: io_parallel takes the maximum then casts, io_stream casts then takes it."""
    assert class_of(mixed1d, "mp") == "Pooling1D" and mixed1d.layer("mp").get_attr("pool_op") == "Max"
    assert_layer_exact(mixed1d, "mp")
    em = emulated(mixed1d)
    assert next(t for t in em.traces if t.name == "mp").n_overflow == 0  # the wrap is in accum_t, not result_t


def test_zeropadding1d_bit_exact(mixed1d):
    assert class_of(mixed1d, "zp") == "ZeroPadding1D"
    y = assert_layer_exact(mixed1d, "zp").reshape(-1, 9, 4)
    assert np.all(y[:, 0] == 0) and np.all(y[:, -1] == 0)


def test_hard_tanh_bit_exact(mixed1d):
    layer = mixed1d.layer("htanh")
    assert layer.class_name == "HardActivation" and layer.get_attr("activation") == "hard_tanh"
    assert str(hls_layer.out_type(layer)) == "ap_fixed<6,1,AP_RND_CONV,AP_SAT_SYM>"
    y = assert_layer_exact(mixed1d, "htanh")
    assert y.min() == -(1 - 2.0**-5) and y.max() == 1 - 2.0**-5  # -1 saturates symmetrically


def test_qbatchnorm_bit_exact(mixed1d):
    assert class_of(mixed1d, "qbn") == "BatchNormalization"
    assert_layer_exact(mixed1d, "qbn")


def test_average_pooling1d_rounding_accumulator_bit_exact(mixed1d):
    layer = mixed1d.layer("ap")
    assert layer.get_attr("pool_op") == "Average"
    assert str(hls_layer.attr_type(layer, "accum_t")) == "ap_fixed<9,2,AP_RND_ZERO,AP_SAT>"
    assert_layer_exact(mixed1d, "ap")


def test_dense_reshape_global_pooling1d_bit_exact(mixed1d):
    assert class_of(mixed1d, "gap") == class_of(mixed1d, "gmx") == "GlobalPooling1D"
    for name in ("d", "gap", "gmx", "gcat"):
        assert_layer_exact(mixed1d, name)
    # io_stream: hls4ml replaces the Reshape by a Repack layer
    rs = next(t for t in emulated(mixed1d).traces if t.name in ("rs", "repack_rs"))
    assert rs.values.shape == (N_SAMPLES, 3, 2)


# ---------------------------------------------------------------------------------------------------------
# padded pooling (io_parallel)
# ---------------------------------------------------------------------------------------------------------


def test_padded_max_pooling_bit_exact(padded_pool):
    """``padding='same'`` max pooling of an unsigned input: hls4ml pads with a word whose top bit is set, which
    for ap_ufixed<5,2> is +2.0, so edge windows return at least 2.0 (Keras pads with -inf); reproduced."""
    layer = padded_pool.layer("mp")
    assert (layer.get_attr("pad_bottom"), layer.get_attr("pad_right")) == (1, 1)
    y = assert_layer_exact(padded_pool, "mp").reshape(-1, 4, 4, 2)
    assert np.all(y[:, -1] >= 2.0) and np.all(y[:, :, -1] >= 2.0)
    assert (y[:, :3, :3] < 2.0).any()


def test_padded_average_pooling_bit_exact(padded_pool):
    """3x3 windows, stride 2, ``padding='same'``: the sum is divided by the 4, 6 or 9 cells inside the image."""
    layer = padded_pool.layer("ap")
    assert layer.get_attr("pool_op") == "Average" and not layer.get_attr("count_pad")
    assert_layer_exact(padded_pool, "ap")


def test_pointwise_conv2d_bit_exact(padded_pool):
    """A 1x1 Conv2D, which hls4ml turns into its PointwiseConv2D layer."""
    assert type(padded_pool.layer("c2")).__name__.endswith("PointwiseConv2D")
    assert_layer_exact(padded_pool, "c2")


def test_global_max_pooling2d_and_vector_concatenate_bit_exact(padded_pool):
    assert class_of(padded_pool, "gmx") == "GlobalPooling2D"
    assert_layer_exact(padded_pool, "gmx")
    assert np.array_equal(emulated(padded_pool).outputs, padded_pool.final)


# ---------------------------------------------------------------------------------------------------------
# integer activation types (quantized_relu(N, N) -> ap_uint<N>)
# ---------------------------------------------------------------------------------------------------------


def test_integer_relu_is_emulated_as_ap_ufixed_n_n_bit_exact(integer_relu):
    from hls4ml.model.types import IntegerPrecisionType

    for name, bits in (("a1", 3), ("a2", 4)):
        precision = integer_relu.layer(name).get_output_variable().type.precision
        assert isinstance(precision, IntegerPrecisionType) and precision.definition_cpp() == f"ap_uint<{bits}>"
        assert str(hls_layer.out_type(integer_relu.layer(name))) == f"ap_ufixed<{bits},{bits}>"
        assert_layer_exact(integer_relu, name)
    assert emulated(integer_relu).overflows["a1"] > 0  # values past 7 wrapped, as in the C simulation
    assert np.array_equal(emulated(integer_relu).outputs, integer_relu.final)


# Every layer model of this file, traced by the symbolic executor, computes the emulator's bits.
def test_mixed2d_traces_to_rtl_equal_to_the_emulator(mixed2d):
    assert assert_trace_equals_emulator(mixed2d.graph, n=1000, seed=3) > 0


def test_mixed1d_traces_to_rtl_equal_to_the_emulator(mixed1d):
    assert assert_trace_equals_emulator(mixed1d.graph, n=1000, seed=3) > 0


def test_padded_pool_traces_to_rtl_equal_to_the_emulator(padded_pool):
    assert assert_trace_equals_emulator(padded_pool.graph, n=1000, seed=3) > 0


def test_integer_relu_traces_to_rtl_equal_to_the_emulator(integer_relu):
    assert assert_trace_equals_emulator(integer_relu.graph, n=1000, seed=3) > 0


# ---------------------------------------------------------------------------------------------------------
# the comparisons can fail
# ---------------------------------------------------------------------------------------------------------

def _perturbed_layer(built: Built, layer_name: str, monkeypatch, module, attr: str, fake) -> np.ndarray:
    """Emulate with ``module.<attr>`` (a layer description's helper) replaced by ``fake(real)``; returns that
    layer's output."""
    monkeypatch.setattr(module, attr, fake(getattr(module, attr)))
    em = emulate(built.graph, built.x, trace=True)
    return next(t for t in em.traces if t.name == layer_name).values.reshape(len(built.x), -1)


def floor_division(real):
    """A wrong pooling division for the emulator only: floor instead of truncation toward zero."""
    return lambda ops, x, n: Tensor(np.floor_divide(x.data, np.asarray(n)), x.frac, x.t)


def test_average_with_floor_division_is_caught(mixed1d, monkeypatch):
    """The comparison can fail: an average divided with floor (not truncation toward zero) differs. (With
    hls4ml's inferred accumulator, 2*ceil(log2(n)) bits wider, and a truncating output type the two agree, so
    this uses mixed1d's narrow accumulator.)"""
    got = _perturbed_layer(mixed1d, "ap", monkeypatch, pooling, "div_trunc", floor_division)
    assert np.count_nonzero(got != mixed1d.traces["ap"]) > 0


def test_leaky_alpha_one_lsb_off_is_caught(mixed2d, monkeypatch):
    got = _perturbed_layer(mixed2d, "lk", monkeypatch, activations, "const_code",
                           lambda real: (lambda layer, value, t: real(layer, value, t) + (layer.name == "lk")))
    assert np.count_nonzero(got != mixed2d.traces["lk"]) > 0


def test_max_pool_padded_with_type_minimum_is_caught(padded_pool, monkeypatch):
    """Padding an unsigned max pool with 0 (what Keras means) instead of hls4ml's top-bit word differs."""
    got = _perturbed_layer(padded_pool, "mp", monkeypatch, pooling, "pad_code",
                           lambda real: (lambda t, op: 0 if op == "Max" else real(t, op)))
    assert np.count_nonzero(got != padded_pool.traces["mp"]) > 0


# ---------------------------------------------------------------------------------------------------------
# Catapult (ac_fixed)
# ---------------------------------------------------------------------------------------------------------


def catapult_dense_model():
    from qkeras import QActivation, QDense, quantized_relu

    K = keras()
    inp = K.Input((6,), name="x_in")
    h = QDense(7, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d1")(inp)
    h = QActivation(quantized_relu(4, 1), name="a1")(h)
    h = QDense(5, kernel_quantizer=qb(5), bias_quantizer=qb(5), name="d2")(h)
    h = keras().layers.Activation("relu", name="a2")(h)
    h = QDense(3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h)
    return K.Model(inp, h)


def catapult_dense_config(cfg: dict) -> None:
    names = cfg["LayerName"]
    # non-default ac_fixed modes: AC_RND_INF/AC_SAT_SYM result, saturating AC_TRN_ZERO accumulator,
    # AC_RND_ZERO/AC_SAT_ZERO activation
    names["d2"]["Precision"]["result"] = "ap_fixed<9,3,AP_RND_INF,AP_SAT_SYM>"
    names["d2"]["Precision"]["accum"] = "ap_fixed<11,3,AP_TRN_ZERO,AP_SAT>"
    names.setdefault("a2", {}).setdefault("Precision", {})["result"] = "ap_ufixed<5,1,AP_RND_ZERO,AP_SAT_ZERO>"


CATAPULT_CASES = [
    pytest.param("dense", "io_parallel", id="dense-io_parallel"),
    pytest.param("conv", "io_stream", id="conv-io_stream"),
    pytest.param("dense", "io_stream", id="dense-io_stream", marks=pytest.mark.slow),
    pytest.param("conv", "io_parallel", id="conv-io_parallel", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("kind,io_type", CATAPULT_CASES)
def test_catapult_bit_exact(kind, io_type, tmp_path_factory):
    """Catapult's C simulation (ac_fixed types, its own nnet_utils) vs the emulator, every layer."""
    if kind == "dense":
        built = build_traced(catapult_dense_model, (6,), io_type, tmp_path_factory, catapult_dense_config,
                             backend="Catapult")
        d2 = built.layer("d2")
        assert str(hls_layer.out_type(d2)) == "ap_fixed<9,3,AP_RND_INF,AP_SAT_SYM>"
        assert "AC_RND_INF" in d2.get_output_variable().type.precision.definition_cpp()
    else:
        built = build_traced(conv_model, (8, 8, 2), io_type, tmp_path_factory, backend="Catapult")
    assert type(built.layer("x_in")).__name__.startswith("Catapult")
    em = emulate(built.graph, built.x, trace=True)
    assert np.array_equal(em.outputs, built.final)
    compared = 0
    for t in em.traces:
        if t.name in built.traces:
            want = built.traces[t.name]
            assert int(np.count_nonzero(t.values.reshape(want.shape) != want)) == 0, t.name
            compared += 1
    assert compared >= 5
    assert sum(em.overflows.values()) > 0  # saturation happens somewhere: the modes are exercised
    assert assert_trace_equals_emulator(built.graph, n=1000, seed=4) > 0


# ---------------------------------------------------------------------------------------------------------
# unsupported layers are named
# ---------------------------------------------------------------------------------------------------------


def _graph(model, tmp_path_factory, backend: str = "Vitis", io_type: str = "io_parallel"):
    hw = Hardware(backend=backend, io_type=io_type)
    return build_graph(model, derive_hls_config(model, hw, INPUT_TYPE), hw, tmp_path_factory.mktemp("unsupported"))


def test_unsupported_elu_is_named(tmp_path_factory):
    K = keras()
    inp = K.Input((4,), name="x_in")
    h = K.layers.Dense(3, name="d1")(inp)
    h = K.layers.ELU(name="elu")(h)
    graph = _graph(K.Model(inp, h), tmp_path_factory)
    with pytest.raises(FlowError, match="'elu' of class .*ELU.* is not supported by the emulator"):
        emulate(graph, np.zeros((2, 4)))


def test_depthwise_conv2d_is_refused(tmp_path_factory):
    """DepthwiseConv2D is a subclass of hls4ml's Conv2D with different arithmetic: refused, not mis-emulated."""
    K = keras()
    inp = K.Input((5, 5, 2), name="x_in")
    h = K.layers.DepthwiseConv2D((3, 3), name="dw")(inp)
    graph = _graph(K.Model(inp, h), tmp_path_factory)
    with pytest.raises(FlowError, match="'dw' of class DepthwiseConv2D"):
        emulate(graph, np.zeros((2, 5, 5, 2)))


@pytest.mark.parametrize("layer_kind,match", [
    ("sigmoid", "'sg'.*activation 'sigmoid'.*Catapult"),
    ("batchnorm", "'bn'.*BatchNormalization.*Catapult"),
    ("avgpool", "'ap'.*Catapult.*Average"),
])
def test_catapult_unverified_layers_raise(tmp_path_factory, layer_kind, match):
    """On Catapult, layers whose ac_fixed templates differ (ac_math sigmoid, ac_fixed average) or were not
    checked are refused with the layer's name."""
    K = keras()
    L = K.layers
    inp = K.Input((5, 5, 2), name="x_in")
    h = L.Conv2D(2, (2, 2), name="c")(inp)
    if layer_kind == "sigmoid":
        h = L.Activation("sigmoid", name="sg")(h)
    elif layer_kind == "batchnorm":
        h = L.ReLU(name="r")(h)
        h = L.BatchNormalization(name="bn")(h)
    else:
        h = L.AveragePooling2D((2, 2), name="ap")(h)
    graph = _graph(K.Model(inp, h), tmp_path_factory, backend="Catapult")
    with pytest.raises(FlowError, match=match):
        emulate(graph, np.zeros((2, 5, 5, 2)))
