"""`hlsflow run`: QKeras training -> hls4ml project -> C simulation equal to QKeras on every output."""

import json
from pathlib import Path

import pytest
import yaml

from flow.cli import main
from flow.pipeline import run

ROOT = Path(__file__).resolve().parents[1]


def shipped(name: str, tmp_path: Path, **training) -> Path:
    """A copy of a shipped spec with shorter training, written into tmp_path."""
    spec = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text())
    spec["training"].update(training)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def mlp_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("mlp")
    report = run(shipped("digits_mlp", tmp, epochs=3), tmp / "out")
    return report, tmp / "out" / "digits_mlp"


def test_mlp_csim_equals_qkeras_on_every_output(mlp_run):
    report, _ = mlp_run
    cmp = report["csim_vs_qkeras"]
    assert cmp["outputs"] == report["samples"]["test"] * 10
    assert cmp["equal_outputs"] == cmp["outputs"]
    assert cmp["max_abs_diff"] == 0.0


def test_mlp_emulator_equals_csim_on_every_output(mlp_run):
    report, _ = mlp_run
    cmp = report["emulator_vs_csim"]
    assert cmp["outputs"] == report["csim_vs_qkeras"]["outputs"]
    assert cmp["equal_outputs"] == cmp["outputs"]
    assert report["accuracy"]["emulator"] == report["accuracy"]["csim"]


def test_mlp_project_is_complete(mlp_run):
    _, out = mlp_run
    for rel in ("hls/firmware/myproject.cpp", "hls/build_prj.tcl", "hls/firmware/weights", "report.json",
                "report.md", "qkeras_model.h5", "float_model.h5", "spec.yaml"):
        assert (out / rel).exists(), rel
    assert str(out) in (out / "hls" / "hls4ml_config.yml").read_text()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]


def test_report_states_input_type_sizes_and_stage_times(mlp_run):
    report, out = mlp_run
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["input"]["type"] == "ap_ufixed<8,1>"
    assert on_disk["size"]["float_bits"] == 32 * on_disk["size"]["parameters"]
    assert 0 < on_disk["size"]["quantized_bits"] < on_disk["size"]["float_bits"]
    assert set(on_disk["seconds"]) >= {"data", "train QKeras (QAT)", "C simulation"}
    assert "ap_ufixed<8,1>" in (out / "report.md").read_text()


def test_same_seed_gives_identical_weights_and_report(mlp_run, tmp_path):
    report, out = mlp_run
    again = run(shipped("digits_mlp", tmp_path, epochs=3), tmp_path / "out")
    assert again["accuracy"] == report["accuracy"]
    first = (out / "hls" / "firmware" / "weights").glob("*.txt")
    for path in first:
        twin = tmp_path / "out" / "digits_mlp" / "hls" / "firmware" / "weights" / path.name
        assert twin.read_text() == path.read_text(), path.name


def test_cnn_io_stream_with_pruning_csim_equals_qkeras(tmp_path):
    report = run(shipped("digits_cnn", tmp_path, epochs=4), tmp_path / "out")
    assert report["hardware"]["io_type"] == "io_stream"
    cmp = report["csim_vs_qkeras"]
    assert cmp["equal_outputs"] == cmp["outputs"] > 0
    emu = report["emulator_vs_csim"]
    assert emu["equal_outputs"] == emu["outputs"] == cmp["outputs"]
    assert report["size"]["sparsity"] >= 0.4  # pruning target 0.5 on kernels; biases are not pruned


def test_default_spec_meets_its_accuracy_target(tmp_path):
    """The embedded default, exactly as shipped: QKeras accuracy >= 0.93 and C-sim bit-exact."""
    assert main(["run", str(ROOT / "models" / "digits_mlp.yaml"), "--out", str(tmp_path)]) == 0
    report = json.loads((tmp_path / "digits_mlp" / "report.json").read_text())
    assert report["accuracy"]["qkeras"] >= 0.93
    assert report["accuracy"]["csim"] == report["accuracy"]["qkeras"]
    assert report["csim_vs_qkeras"]["exact_fraction"] == 1.0
    assert report["emulator_vs_csim"]["exact_fraction"] == 1.0
