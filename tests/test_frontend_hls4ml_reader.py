"""Keras files whose layer classes only hls4ml's own reader knows (BinaryDense, TernaryDense, HGQ 1
FixedPointQuantizer proxies) go convert -> verify -> rtl -> sim with zero differing bits; the model-side
comparison is reported as unavailable with its reason, and `--custom-objects` brings it back."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import reader_models
from conftest import assert_one_error_line, whole_way

UNAVAILABLE = "converted with hls4ml's own file reader"
MODELS = {
    "binary": lambda folder: reader_models.binary_or_ternary(folder, "binary"),
    "ternary": lambda folder: reader_models.binary_or_ternary(folder, "ternary"),
    "hgq1_proxy": reader_models.hgq1_proxy,
    "binary_whole_h5": lambda folder: reader_models.as_whole_h5(reader_models.binary_or_ternary(folder, "binary")),
}
DEFAULT_RUN = ("hgq1_proxy",)  # the others: -m heavy


@pytest.fixture(scope="module")
def reader_file(tmp_path_factory):
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = MODELS[name](tmp_path_factory.mktemp(name))
        return made[name]

    return get


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in DEFAULT_RUN else pytest.mark.heavy) for n in MODELS])
def test_a_file_only_hls4ml_reads_goes_to_verified_rtl(hlsflow, reader_file, tmp_path, name):
    out = whole_way(hlsflow, reader_file(name), tmp_path / name)
    report = json.loads((tmp_path / name / "report.json").read_text())
    for record in (report["csim_vs_keras"], out["verify"]["csim_vs_model"], out["sim"]["rtl_vs_reference"]["model"]):
        assert UNAVAILABLE in record["unavailable"]


def test_the_heterogeneous_quantizer_stays_a_layer_of_its_own(hlsflow, reader_file, tmp_path):
    code, _, err = hlsflow("convert", reader_file("hgq1_proxy"), "--out", tmp_path / "p", "--samples", 50)
    assert code == 0, err
    types = {t["layer"]: t for t in json.loads((tmp_path / "p" / "report.json").read_text())["types"]}
    assert types["q1"]["class"] == "FixedPointQuantizer"  # per-element bits: not fusible into fc1
    assert "q_in" not in types and types["x"]["result"].startswith("fixed<8,3")  # per-tensor: fused into the input


def test_the_reason_names_the_classes_keras_lacks(hlsflow, reader_file, tmp_path):
    code, summary, _ = hlsflow("convert", reader_file("binary"), "--out", tmp_path / "p", "--samples", 20)
    assert code == 0
    assert "BinaryDense" in summary["csim_vs_keras"]["unavailable"] and "--custom-objects" in \
        summary["csim_vs_keras"]["unavailable"]


BINARY_DENSE = '''
import keras


class BinaryDense(keras.layers.Dense):
    """The file's layer, as its author's code would define it (a Dense holding +-1 weights)."""


custom_objects = {"BinaryDense": BinaryDense}
'''


def test_custom_objects_bring_the_model_side_back(hlsflow, reader_file, tmp_path):
    module = tmp_path / "binary_layers.py"
    module.write_text(BINARY_DENSE)
    code, summary, err = hlsflow("convert", reader_file("binary"), "--out", tmp_path / "p", "--samples", 100,
                                 "--custom-objects", module)
    assert code == 0, err
    assert "unavailable" not in summary["csim_vs_keras"] and summary["csim_vs_keras"]["outputs"] == 300


def _with_second_layer(reader_file, folder: Path, stem: str, change) -> Path:
    """The binary MLP's JSON with ``change(layer)`` applied to its second layer, saved as ``folder/stem.json``
    beside a copy of its weights."""
    source = reader_file("binary")
    arch = json.loads(source.read_text())
    arch["config"]["layers"][1] = change(arch["config"]["layers"][1])
    bad = folder / f"{stem}.json"
    bad.write_text(json.dumps(arch))
    (folder / f"{stem}_weights.h5").write_bytes(source.with_name("binary_mlp_weights.h5").read_bytes())
    return bad


def test_a_class_neither_keras_nor_hls4ml_knows_is_one_line(hlsflow, reader_file, tmp_path, capsys):
    bad = _with_second_layer(reader_file, tmp_path, "acme", lambda layer: {**layer, "class_name": "AcmeDense"})
    code, _, err = hlsflow("convert", bad, "--out", tmp_path / "p")
    line = assert_one_error_line(err, "convert")
    assert code == 2 and "'AcmeDense'" in line and "--custom-objects" in line and "acme.json" in line
    assert not (tmp_path / "p").exists()


def test_a_layer_the_emulator_cannot_express_is_one_line_naming_it(hlsflow, reader_file, tmp_path):
    garnet = {"class_name": "GarNet", "config": {
        "name": "gar1", "simplified": True, "output_activation": None, "input_format": "xn", "collapse": "mean",
        "mean_by_nvert": True, "quantize_transforms": False, "n_aggregators": 4, "n_filters": 6, "n_propagate": 4}}
    bad = _with_second_layer(reader_file, tmp_path, "garnet", lambda layer: garnet)
    code, _, err = hlsflow("convert", bad, "--out", tmp_path / "p")
    line = assert_one_error_line(err, "convert")
    assert code == 2 and "layer 'gar1'" in line and "GarNet" in line and "garnet.json" in line
    assert not (tmp_path / "p").exists()
