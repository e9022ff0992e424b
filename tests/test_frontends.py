"""Keras 3, QKeras v3 and HGQ2 models (`.keras` files) through convert -> verify -> rtl -> sim.

The models are built by `tests/keras3_models.py` in Keras-3 worker environments (QKeras v3 and HGQ2
cannot be imported beside QKeras 0.9, which this test process has); every command goes through
`flow.commands.cli.main`, which runs it in the worker its model needs.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import assert_one_error_line

from flow.commands.cli import EXIT_BAD_INPUT, main
from flow.core import procs
from flow.keras import frontends

HERE = Path(__file__).resolve().parent
BUILT_IN = {"keras3": ["qkeras_v3_mlp", "qkeras_v3_cnn", "keras3_float_softmax"],
            "hgq2": ["hgq2_mlp", "hgq2_cnn", "hgq2_mlp_heterogeneous"]}
# the flags a user passes: a QKeras v3 model has no input quantizer (declare the input type), a float model
# needs a precision; an HGQ2 model's input quantizer gives hls4ml the input type
FLAGS = {"qkeras_v3_mlp": ["--input-type", "ap_fixed<8,3>"], "qkeras_v3_cnn": ["--input-type", "ap_fixed<8,3>"],
         "keras3_float_softmax": ["--precision", "ap_fixed<16,6>"], "hgq2_mlp": [], "hgq2_cnn": [],
         "hgq2_mlp_heterogeneous": []}


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("keras3_models")
    for kind, names in BUILT_IN.items():
        result = procs.run([sys.executable, str(HERE / "keras3_models.py"), str(out), *names],
                           env=frontends.worker_env(frontends.FRONTENDS[kind]), capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
    return out


def cli_json(capsys, *argv: str) -> tuple[int, dict]:
    """Run `hlsflow argv` in-process; its exit code and the JSON it printed (the last JSON document)."""
    capsys.readouterr()
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err, err
    start = out.rfind("\n{") + 1 if out.count("\n{") else out.find("{")
    return code, (json.loads(out[start:]) if "{" in out else {"stderr": err})


@pytest.mark.parametrize("name, kind", [("qkeras_v3_mlp", "keras3"), ("qkeras_v3_cnn", "keras3"),
                                        ("keras3_float_softmax", "keras3"), ("hgq2_mlp", "hgq2"),
                                        ("hgq2_cnn", "hgq2")])
def test_the_front_end_is_read_from_the_model_file(models, name, kind):
    assert frontends.detect(models / f"{name}.keras") == kind


def test_a_keras2_model_file_stays_in_this_process(tmp_path):
    from flow.keras.env import keras

    k = keras()
    model = k.Sequential([k.Input((3,)), k.layers.Dense(2)])
    model.save(tmp_path / "k2.h5")
    model.save(tmp_path / "k2.keras")
    (tmp_path / "k2.json").write_text(model.to_json())
    assert {frontends.detect(tmp_path / f) for f in ("k2.h5", "k2.keras", "k2.json")} == {"keras2"}


def test_the_python_api_refuses_a_keras3_file_in_a_keras2_process_with_one_line(models):
    from flow.core.errors import FlowError
    from flow.keras.model_io import load_model

    with pytest.raises(FlowError, match=r"qkeras_v3_mlp.keras: a Keras 3 models file.*keras3 worker"):
        load_model(models / "qkeras_v3_mlp.keras")


def _convert_verify_rtl_sim(models: Path, tmp_path: Path, capsys, name: str, simulator: str,
                            bit_accurate: bool) -> None:
    project = tmp_path / name
    code, summary = cli_json(capsys, "convert", str(models / f"{name}.keras"), "--out", str(project),
                             "--samples", "300", *FLAGS[name])
    assert code == 0, summary
    report = json.loads((project / "report.json").read_text())
    meta = json.loads((project / "project.json").read_text())
    assert meta["frontend"] == report["frontend"] == frontends.detect(models / f"{name}.keras")
    assert meta["model"] == "model.keras"
    emu = report["emulator_vs_csim"]
    assert emu["outputs"] > 0 and emu["equal_outputs"] == emu["outputs"], emu
    if bit_accurate:
        assert summary["csim_vs_keras"]["equal_outputs"] == summary["csim_vs_keras"]["outputs"]

    code, verified = cli_json(capsys, "verify", str(project), "--samples", "400")
    assert code == 0, verified
    assert verified["emulator_vs_csim"]["differing_outputs"] == 0
    assert verified["samples"]["total"] == 400
    if bit_accurate:
        assert verified["csim_vs_model"]["model_is_qkeras"]
        assert verified["csim_vs_model"]["differing_outputs"] == 0

    code, rtl = cli_json(capsys, "rtl", str(project), "--no-yosys")
    assert code == 0, rtl
    assert rtl["lint_clean"] is True
    code, sim = cli_json(capsys, "sim", str(project), "--simulator", simulator, "--samples", "150")
    assert code == 0, sim
    assert sim["rtl_vs_emulator"]["mismatching_samples"] == 0
    assert sim["rtl_vs_emulator"]["differing_bits"] == 0
    assert sim["samples"]["total"] == 150 and sim["ok"] is True


def test_a_qkeras_v3_model_goes_convert_verify_rtl_sim_bit_exactly(models, tmp_path, capsys):
    """Issue 11: a QKeras v3 `.keras` file gave "Unrecognized keyword arguments: ['batch_shape']"."""
    _convert_verify_rtl_sim(models, tmp_path, capsys, "qkeras_v3_mlp", "verilator", bit_accurate=True)


@pytest.mark.heavy  # 65 s; the default run keeps HGQ2's per-element quantizers (MLP) the whole way
def test_an_hgq2_conv_model_goes_convert_verify_rtl_sim_bit_exactly(models, tmp_path, capsys):
    _convert_verify_rtl_sim(models, tmp_path, capsys, "hgq2_cnn", "icarus", bit_accurate=True)


def test_an_hgq2_model_with_per_element_quantizers_goes_the_whole_way(models, tmp_path, capsys):
    """hls4ml keeps HGQ2's heterogeneous activation quantizers as FixedPointQuantizer layers (each element
    cast to its own type): the emulator and the RTL describe them too."""
    _convert_verify_rtl_sim(models, tmp_path, capsys, "hgq2_mlp_heterogeneous", "verilator", bit_accurate=True)


@pytest.mark.heavy
@pytest.mark.parametrize("name, simulator", [("qkeras_v3_cnn", "icarus"), ("hgq2_mlp", "verilator"),
                                             ("qkeras_v3_mlp", "icarus"), ("hgq2_cnn", "verilator")])
def test_more_keras3_models_go_the_whole_way(models, tmp_path, capsys, name, simulator):
    _convert_verify_rtl_sim(models, tmp_path, capsys, name, simulator, bit_accurate=True)


def test_a_keras3_float_softmax_model_is_compared_on_its_logits(models, tmp_path, capsys):
    code, summary = cli_json(capsys, "convert", str(models / "keras3_float_softmax.keras"), "--out",
                             str(tmp_path / "p"), "--samples", "200", *FLAGS["keras3_float_softmax"])
    assert code == 0, summary
    report = json.loads((tmp_path / "p" / "report.json").read_text())
    assert report["csim_vs_keras"]["compared_at"] == "fc2 (logits, before softmax)"
    assert report["emulator_vs_csim"]["equal_outputs"] == report["emulator_vs_csim"]["outputs"] == 600
    assert report["csim_vs_keras"]["argmax_agreement"] >= 0.9


def test_a_missing_overlay_is_named_with_its_remedy(models, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(frontends.OVERLAYS_VAR, str(tmp_path / "no-overlays"))
    code = main(["convert", str(models / "hgq2_mlp.keras"), "--out", str(tmp_path / "p")])
    err = assert_one_error_line(capsys.readouterr().err, "convert")
    assert code == 3
    assert "hgq2 front end" in err and "scripts/setup.sh" in err
    assert not (tmp_path / "p").exists()


def test_a_damaged_keras_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "broken.keras"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    code = main(["convert", str(bad), "--out", str(tmp_path / "p")])
    err = assert_one_error_line(capsys.readouterr().err, "convert")
    assert code == EXIT_BAD_INPUT
    assert err.startswith("hlsflow convert: error: ") and "broken.keras" in err
