"""The flow spec: shipped specs load; every kind of bad input names the file and the field."""

from pathlib import Path

import pytest

from flow.core.errors import FlowError
from flow.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]

GOOD = """
name: tiny
dataset: {source: digits, input_shape: [64], scale: 0.0625}
quantization:
  input_type: ap_ufixed<8,1>
  default: {weight_bits: 6, weight_integer: 0}
model:
  layers:
    - {type: dense, name: fc1, units: 8, activation: relu}
    - {type: dense, name: fc2, units: 10}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "spec.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(FlowError) as exc:
        load_spec(write(tmp_path, text))
    return str(exc.value)


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_shipped_specs_load(name):
    spec = load_spec(ROOT / "models" / f"{name}.yaml")
    assert spec.name == name
    assert spec.input_type == "ap_ufixed<8,1>"


def test_defaults_fill_in_hardware_and_training(tmp_path):
    spec = load_spec(write(tmp_path, GOOD))
    assert spec.hardware.backend == "Vitis"
    assert spec.hardware.io_type == "io_parallel"
    assert spec.training.seed == 1
    assert spec.layers[0].quant.weight_bits == 6


def test_per_layer_override_applies_to_that_layer_only(tmp_path):
    spec = load_spec(write(tmp_path, GOOD.replace(
        "  default: {weight_bits: 6, weight_integer: 0}",
        "  default: {weight_bits: 6, weight_integer: 0}\n  layers: {fc2: {weight_bits: 4}}")))
    assert spec.layers[0].quant.weight_bits == 6
    assert spec.layers[1].quant.weight_bits == 4


def test_malformed_yaml_names_the_file(tmp_path):
    msg = error_of(tmp_path, "name: [unclosed\n")
    assert "spec.yaml" in msg and "malformed YAML" in msg


def test_missing_spec_file_is_reported(tmp_path):
    with pytest.raises(FlowError, match="spec file not found"):
        load_spec(tmp_path / "nope.yaml")


def test_unknown_top_level_field_lists_allowed_fields(tmp_path):
    msg = error_of(tmp_path, GOOD + "colour: blue\n")
    assert "`colour`" in msg and "unknown field" in msg and "hardware" in msg


def test_unknown_layer_type_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("type: dense, name: fc1", "type: lstm, name: fc1"))
    assert "model.layers[0].type" in msg and "lstm" in msg


def test_unknown_layer_field_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("units: 8,", "units: 8, kernel: 3,"))
    assert "model.layers[0].kernel" in msg


def test_zero_bits_are_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("weight_bits: 6", "weight_bits: 0"))
    assert "quantization.default.weight_bits" in msg and ">= 1" in msg


def test_integer_bits_above_total_bits_are_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("weight_integer: 0", "weight_integer: 6"))
    assert "quantization.default.weight_integer" in msg and "sign" in msg


def test_input_type_with_more_integer_than_total_bits_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("ap_ufixed<8,1>", "ap_fixed<4,6>"))
    assert "quantization.input_type" in msg and "integer bits" in msg


def test_unknown_quantizer_name_is_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("weight_integer: 0}", "weight_integer: 0, weight_quantizer: 'binary(1)'}"))
    assert "weight_quantizer" in msg and "quantized_bits" in msg


def test_override_for_a_layer_that_does_not_exist(tmp_path):
    msg = error_of(tmp_path, GOOD.replace(
        "  default: {weight_bits: 6, weight_integer: 0}",
        "  default: {weight_bits: 6, weight_integer: 0}\n  layers: {fc9: {weight_bits: 4}}"))
    assert "quantization.layers.fc9" in msg and "fc1, fc2" in msg


def test_missing_data_file_is_reported(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("source: digits", "source: missing.npz"))
    assert "dataset.source" in msg and "not found" in msg


def test_softmax_only_on_the_last_layer(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("activation: relu", "activation: softmax"))
    assert "model.layers[0].activation" in msg


def test_duplicate_layer_names_are_rejected(tmp_path):
    msg = error_of(tmp_path, GOOD.replace("name: fc2", "name: fc1"))
    assert "unique" in msg and "fc1" in msg


def test_bad_backend_lists_the_choices(tmp_path):
    msg = error_of(tmp_path, GOOD + "hardware: {backend: Quartus}\n")
    assert "hardware.backend" in msg and "Vitis, Vivado, Catapult" in msg


def test_rtl_samples_per_simulator_and_physical_targets(tmp_path):
    spec = load_spec(write(tmp_path, GOOD + "rtl: {samples: {icarus: 300}, fpga: ecp5-85k, asic: osu018}\n"))
    assert spec.rtl.samples_for("icarus") == 300 and spec.rtl.samples_for("verilator") == 2000
    assert (spec.rtl.fpga, spec.rtl.asic, spec.rtl.latency_cutoff, spec.rtl.yosys) == ("ecp5-85k", "osu018", None, False)


@pytest.mark.parametrize("rtl, field", [("{samples: {questa: 10}}", "rtl.samples.questa"),
                                        ("{fpga: xc7a35t}", "rtl.fpga"), ("{asic: sky130}", "rtl.asic")])
def test_bad_rtl_physical_fields_are_named(tmp_path, rtl, field):
    assert field in error_of(tmp_path, GOOD + f"rtl: {rtl}\n")
