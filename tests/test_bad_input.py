"""Bad input: one clear line naming what is wrong, a non-zero exit, and no half-written project."""

from pathlib import Path

import numpy as np
import yaml

from flow.commands.cli import EXIT_BAD_INPUT, EXIT_TOOL_MISSING, main

ROOT = Path(__file__).resolve().parents[1]


def spec_with(tmp_path: Path, **changes) -> Path:
    spec = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
    spec["training"]["epochs"] = 1
    for key, value in changes.items():
        section, field = key.split("__")
        spec[section][field] = value
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def assert_nothing_written(out: Path) -> None:
    assert not out.exists() or not any(out.iterdir()), list(out.iterdir())


def test_shape_mismatch_names_the_data_and_shape(tmp_path, capsys):
    code = main(["run", str(spec_with(tmp_path, dataset__input_shape=[65])), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "64 features" in err and "[65]" in err
    assert_nothing_written(tmp_path / "out")


def test_output_units_must_match_classes_and_nothing_is_left(tmp_path, capsys):
    spec = spec_with(tmp_path)
    data = yaml.safe_load(spec.read_text())
    data["model"]["layers"][-1]["units"] = 7
    spec.write_text(yaml.safe_dump(data))
    code = main(["run", str(spec), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert "7 outputs" in err and "10 classes" in err
    assert_nothing_written(tmp_path / "out")


def test_failed_rerun_keeps_the_previous_project(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "digits_mlp").mkdir(parents=True)
    (out / "digits_mlp" / "report.json").write_text("{}")
    main(["run", str(spec_with(tmp_path, dataset__input_shape=[65])), "--out", str(out)])
    assert (out / "digits_mlp" / "report.json").read_text() == "{}"
    assert [p.name for p in out.iterdir()] == ["digits_mlp"]


def test_bad_spec_exits_non_zero_with_the_field(tmp_path, capsys):
    code = main(["run", str(spec_with(tmp_path, hardware__io_type="io_serial"))])
    assert code == EXIT_BAD_INPUT
    assert "hardware.io_type" in capsys.readouterr().err


def test_npz_labels_must_be_class_indices(tmp_path, capsys):
    np.savez(tmp_path / "data.npz", x=np.zeros((20, 64)), y=np.linspace(0, 1, 20))
    code = main(["run", str(spec_with(tmp_path, dataset__source="data.npz")), "--out", str(tmp_path / "out")])
    assert code == EXIT_BAD_INPUT
    assert "labels must be non-negative integers" in capsys.readouterr().err


def test_missing_model_file(tmp_path, capsys):
    code = main(["convert", str(tmp_path / "nope.h5"), "--out", str(tmp_path / "out")])
    assert code == EXIT_BAD_INPUT
    assert "nope.h5: model file not found" in capsys.readouterr().err


def test_model_with_a_layer_hls4ml_cannot_convert(tmp_path, capsys):
    from flow.keras.env import keras

    k = keras()
    inp = k.Input((4,), name="x")
    model = k.Model(inp, k.layers.Dense(2)(k.layers.GaussianNoise(0.1)(inp)))
    model.save(tmp_path / "noisy.h5")
    code = main(["convert", str(tmp_path / "noisy.h5"), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT
    assert f"{tmp_path / 'noisy.h5'}: layer `gaussian_noise` (GaussianNoise): hls4ml" in err
    assert "cannot convert this layer class" in err
    assert_nothing_written(tmp_path / "out")


def test_synth_without_vendor_tool_says_which_tool(tmp_path, capsys, monkeypatch):
    hls = tmp_path / "p" / "hls"
    hls.mkdir(parents=True)
    (hls / "hls4ml_config.yml").write_text("Backend: Vivado\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no vendor tool on PATH
    code = main(["synth", str(tmp_path / "p")])
    err = capsys.readouterr().err
    assert code == EXIT_TOOL_MISSING
    assert "vivado_hls" in err and "Traceback" not in err
