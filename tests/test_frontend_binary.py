"""Binary networks (Brevitas bipolar activations and weights exported to QONNX: ``BipolarQuant`` nodes; QKeras
networks with binary and ternary activations: hls4ml's xnor types, its binary products and its
BatchNormalizationQuantizedTanh thresholds) go convert -> verify -> rtl -> sim with zero differing bits; C simulation == model where the model is
bit-accurate by design (every QONNX parameter quantized; QKeras)."""

from __future__ import annotations

from pathlib import Path

import frontend_models
import pytest
from conftest import whole_way

pytest.importorskip("torch")
pytest.importorskip("brevitas")
pytest.importorskip("qonnx")

DEFAULT_RUN = ("brevitas_binary_mlp",)  # the BatchNorm-threshold network: -m heavy
BIT_ACCURATE = {"brevitas_binary_mlp", "qkeras_bnn", "qkeras_bnn_stream", "qkeras_binary_act", "qkeras_binary_cnn"}
# the layer descriptions each model must reach: (hls4ml layer class, product or activation it selects)
REACHES = {
    "brevitas_binary_mlp": {"weight_binary", "data_binary", "both_binary", "binary_tanh"},
    "brevitas_bnn": {"weight_binary", "both_binary", "normalize_binary_tanh"},
    "qkeras_bnn": {"weight_binary", "both_binary", "weight_ternary", "normalize_binary_tanh", "normalize_ternary_tanh"},
    "qkeras_bnn_stream": {"weight_binary", "both_binary", "weight_ternary", "normalize_binary_tanh",
                          "normalize_ternary_tanh", "io_stream"},
    "qkeras_binary_act": {"binary_tanh", "weight_binary"},
    "qkeras_binary_cnn": {"conv_2d_cl", "weight_binary", "normalize_binary_tanh", "both_binary"},
}
# inputs in ap_fixed<8,2>: hls4ml's default accumulators (ap_fixed<16,6>) then hold every sum of the QKeras models
NARROW = ["--input-type", "ap_fixed<8,2>"]
EXTRA = {"qkeras_bnn": NARROW, "qkeras_bnn_stream": [*NARROW, "--io-type", "io_stream"], "qkeras_binary_act": NARROW,
         "qkeras_binary_cnn": NARROW}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            folder = tmp_path_factory.mktemp(name)
            build = frontend_models.BINARY_BUILDERS.get(name)
            made[name] = build(folder) if build else _qkeras_file(name, folder)
        return made[name]

    return get


def _qkeras_file(name: str, folder: Path) -> Path:
    from qmodels import binary_activation_model, binary_cnn_model, binary_model

    path = folder / f"{name}.h5"
    {"qkeras_bnn": binary_model, "qkeras_bnn_stream": binary_model, "qkeras_binary_act": binary_activation_model,
     "qkeras_binary_cnn": binary_cnn_model, "qkeras_negative_bn": lambda: binary_model(negative_scale=True),
     "qkeras_ternary_alone": lambda: binary_activation_model(ternary_first=True)}[name]().save(path)
    return path


def _firmware_text(project: Path) -> str:
    firmware = project / "hls" / "firmware"
    return (firmware / "parameters.h").read_text() + (firmware / "myproject.cpp").read_text()


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in DEFAULT_RUN else pytest.mark.heavy) for n in REACHES])
def test_a_binary_network_goes_to_rtl_that_equals_the_emulator_bit_for_bit(hlsflow, model_file, tmp_path, name):
    project = tmp_path / name
    out = whole_way(hlsflow, model_file(name), project, *EXTRA.get(name, []))
    firmware = _firmware_text(project)
    for what in REACHES[name]:
        assert what in firmware, what
    model_side = out["verify"]["csim_vs_model"]
    if name.startswith("brevitas"):
        assert model_side["reference"] == "qonnx executor"
    else:
        assert model_side["model_is_qkeras"] is True
    assert model_side["must_match"] == (name in BIT_ACCURATE)
    if name in BIT_ACCURATE:
        assert model_side["differing_outputs"] == 0 and model_side["outputs"] == 900
        key = "model" if name.startswith("brevitas") else "qkeras"
        assert out["sim"]["rtl_vs_reference"][key]["exact_fraction"] == 1.0


def test_a_binary_dense_after_thresholds_keeps_the_signs_of_its_weights(hlsflow, model_file, tmp_path):
    """hls4ml's quantize_dense_output quantizes the 0/1 codes of such a layer a second time (every code 1); the
    project holds ``w >= 0`` of the model's weights instead."""
    from qonnx.core.modelwrapper import ModelWrapper
    from qonnx.util.cleanup import cleanup_model

    path = model_file("brevitas_bnn")
    code, _, err = hlsflow("convert", path, "--out", tmp_path / "p", "--samples", 20)
    assert code == 0, err
    model = cleanup_model(ModelWrapper(str(path)))
    bipolar = [n for n in model.graph.node
               if n.op_type == "BipolarQuant" and model.get_initializer(n.input[0]) is not None]
    expected = {tuple((model.get_initializer(n.input[0]) >= 0).astype(int).T.ravel()) for n in bipolar}
    stored = set()
    for txt in (tmp_path / "p" / "hls" / "firmware" / "weights").glob("w*.txt"):
        stored.add(tuple(int(v) for v in txt.read_text().split(",")))
    assert expected <= stored
    assert len({codes for codes in expected if len(set(codes)) > 1}) == len(expected)  # not all one sign


def test_a_ternary_activation_hls4ml_writes_no_code_for_is_named(hlsflow, model_file, tmp_path):
    """hls4ml 1.3 emits no C++ call for its TernaryTanh layer (QKeras ternary without a BatchNormalization before
    it): convert says so in one warning naming the layer, and verify fails rather than compare garbage."""
    code, _, err = hlsflow("convert", model_file("qkeras_ternary_alone"), "--out", tmp_path / "p", "--samples", 20,
                           *NARROW)
    assert code == 0, err
    warning = [line for line in err.splitlines() if "emulator not run" in line]
    assert len(warning) == 1 and "layer 't1' (TernaryTanh)" in warning[0] and "no C++ call" in warning[0]
    assert "nnet::ternary_tanh" not in _firmware_text(tmp_path / "p")
    code, _, _ = hlsflow("verify", tmp_path / "p", "--samples", 20)
    assert code != 0


def test_a_negative_batchnorm_scale_before_a_binary_activation_is_one_line(hlsflow, model_file, tmp_path):
    """hls4ml's thresholds x >= -bias/scale assume a positive scale: a QKeras model with a negative one is refused
    (the QONNX twin is in tests/test_frontend_onnx_torch.py's refusal table)."""
    from conftest import assert_one_error_line

    path = model_file("qkeras_negative_bn")
    code, _, err = hlsflow("convert", path, "--out", tmp_path / "p", *NARROW)
    line = assert_one_error_line(err, "convert")
    assert code == 2 and "layer 'bn1' (BatchNormalization): scale -" in line and "channel 0" in line
    assert not (tmp_path / "p").exists()
