"""`hlsflow run`: QKeras training -> hls4ml project -> C simulation equal to QKeras on every output."""

import json
from pathlib import Path

import pytest
import yaml

from flow.commands.cli import main
from flow.commands.pipeline import run

ROOT = Path(__file__).resolve().parents[1]


def shipped(name: str, tmp_path: Path, rtl: dict | None = None, **training) -> Path:
    """A copy of a shipped spec with shorter training, written into tmp_path; RTL off unless ``rtl`` is given
    (the RTL stages have their own tests: tests/test_rtl.py, tests/test_rtl_sim.py)."""
    spec = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text())
    spec["training"].update(training)
    spec["rtl"] = rtl if rtl is not None else {"enabled": False}
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
    rtl = report["rtl"]
    assert rtl["generation"]["top"] == "digits_mlp_axis" and rtl["generation"]["lint_clean"]
    assert "yosys" not in rtl["generation"]  # the generic Yosys estimate is opt-in (rtl.yosys: true)
    assert rtl["generation"]["timing"]["cutoff_from"] == "clock_period"  # pipelined for hardware.clock_period
    assert str(tmp_path) not in (tmp_path / "digits_mlp" / "report.json").read_text()  # paths relative to the project
    for sim in rtl["simulation"].values():
        assert sim["ok"] and sim["rtl_vs_emulator"]["mismatching_samples"] == 0
        assert sim["rtl_vs_emulator"]["samples"] == 2000  # the shipped rtl.samples, on both simulators
        assert sim["latency_cycles"]["measured"] == rtl["generation"]["latency_cycles"]
        assert "float" in sim["rtl_vs_reference"]
    assert set(rtl["simulation"]) == {"verilator", "icarus"}
    md = (tmp_path / "digits_mlp" / "report.md").read_text()
    assert "## RTL (vendor-free, da4ml)" in md and "argmax agreement vs float: test data / all" in md


def test_verify_finds_zero_differences_on_test_and_full_range_inputs(mlp_run, capsys):
    _, out = mlp_run
    assert main(["verify", str(out), "--samples", "600"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["samples"] == {"total": 600, "test_data": 450, "random_full_range": 150, "seed": 0}
    assert summary["emulator_vs_csim"]["outputs"] == 6000
    assert summary["emulator_vs_csim"]["differing_outputs"] == 0
    assert summary["csim_vs_model"]["differing_outputs"] == 0
    assert set(summary["emulator_vs_csim"]["overflows"]) == {"inputs", "fc1", "fc1_act", "fc2"}


def test_verify_fails_when_the_hardware_types_no_longer_match_qkeras(mlp_run, tmp_path, capsys):
    import shutil

    _, out = mlp_run
    copy = tmp_path / "digits_mlp"
    shutil.copytree(out, copy)
    meta = json.loads((copy / "project.json").read_text())
    meta["hls_config"]["LayerName"]["fc1_act"]["Precision"]["result"] = "ufixed<6,3,RND_CONV,SAT>"
    (copy / "project.json").write_text(json.dumps(meta))
    assert main(["verify", str(copy), "--samples", "200"]) == 1
    summary = json.loads(capsys.readouterr().out)
    assert summary["emulator_vs_csim"]["differing_outputs"] == 0  # the emulator follows the C-sim's types
    assert summary["csim_vs_model"]["differing_outputs"] > 0


def test_emulate_writes_outputs_traces_and_a_range_plot(mlp_run, tmp_path, capsys):
    import numpy as np

    _, out = mlp_run
    from sklearn.datasets import load_digits

    x = load_digits().data[:50] / 16.0
    np.save(tmp_path / "x.npy", x)
    assert main(["emulate", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy"),
                 "--trace"]) == 0
    y = np.load(tmp_path / "y.npy")
    assert y.shape == (50, 10)
    traces = np.load(tmp_path / "y.trace.npz")
    assert set(traces.files) == {"inputs", "fc1", "fc1_act", "fc2"}
    assert np.array_equal(traces["fc2"].reshape(50, -1), y)
    assert (tmp_path / "y.layers.png").stat().st_size > 10_000
    report = json.loads(capsys.readouterr().out)
    assert [row["layer"] for row in report["layers"]] == ["inputs", "fc1", "fc1_act", "fc2"]


def test_emulate_rejects_inputs_of_the_wrong_shape(mlp_run, tmp_path, capsys):
    import numpy as np

    _, out = mlp_run
    np.save(tmp_path / "x.npy", np.zeros((3, 63)))
    assert main(["emulate", str(out), "--input", str(tmp_path / "x.npy"), "--output", str(tmp_path / "y.npy")]) == 2
    assert "(63,)" in capsys.readouterr().err
    assert not (tmp_path / "y.npy").exists()
