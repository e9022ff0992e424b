"""Models with their own layer classes: one line naming the class and `--custom-objects module.py`, and the
option working for real (the file's `custom_objects` dict or its Keras-registered classes, recorded in the
project so verify/rtl/sim rebuild the same graph later)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import assert_one_error_line

from flow.commands.cli import EXIT_BAD_INPUT, main
from flow.core import procs

# A user's layer: a Dense that carries a tag, and the hls4ml handler that converts it as a Dense
# (hls4ml's documented way to add a Keras layer). `import keras` is the model's Keras (tf_keras here).
LAYER = '''
import keras
from hls4ml.converters.keras.core import parse_dense_layer
from hls4ml.converters.keras_v2_to_hls import layer_handlers, register_keras_v2_layer_handler


{decorator}class TaggedDense(keras.layers.Dense):
    def __init__(self, units, tag="", **kwargs):
        super().__init__(units, **kwargs)
        self.tag = tag

    def get_config(self):
        return {{**super().get_config(), "tag": self.tag}}


def parse_tagged_dense(keras_layer, input_names, input_shapes, data_reader):
    layer, shape = parse_dense_layer(keras_layer, input_names, input_shapes, data_reader)
    layer["class_name"] = "Dense"
    return layer, shape


if "TaggedDense" not in layer_handlers:  # hls4ml refuses a second registration in one process
    register_keras_v2_layer_handler("TaggedDense", parse_tagged_dense)
'''
AS_DICT = LAYER.format(decorator="") + 'custom_objects = {"TaggedDense": TaggedDense}\n'
REGISTERED = LAYER.format(decorator='@keras.utils.register_keras_serializable(package="acme")\n')


def tagged_model(module: Path, out: Path) -> Path:
    """A Keras 2 model using the module's TaggedDense, saved as ``out``."""
    from flow.keras.env import keras
    from flow.keras.model_io import load_custom_objects

    k = keras()
    tagged = load_custom_objects(module)["TaggedDense"]
    model = k.Sequential([k.Input((8,), name="x"), tagged(6, tag="acme", activation="relu", name="fc1"),
                          k.layers.Dense(3, name="fc2")])
    model.save(out)
    return out


@pytest.fixture(scope="module")
def dict_model(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("custom")
    module = folder / "acme_layers.py"
    module.write_text(AS_DICT)
    return module, tagged_model(module, folder / "tagged.h5")


def test_an_unknown_layer_class_names_itself_and_the_remedy(dict_model, tmp_path, capsys):
    _, model = dict_model
    code = main(["convert", str(model), "--out", str(tmp_path / "p")])
    err = assert_one_error_line(capsys.readouterr().err, "convert")
    assert code == EXIT_BAD_INPUT
    assert "'TaggedDense'" in err and "--custom-objects module.py" in err and "tagged.h5" in err
    assert not (tmp_path / "p").exists()


def test_custom_objects_convert_and_the_project_rebuilds_without_the_original_file(dict_model, tmp_path, capsys):
    module, model = dict_model
    project = tmp_path / "p"
    code = main(["convert", str(model), "--out", str(project), "--precision", "ap_fixed<16,6>",
                 "--custom-objects", str(module), "--samples", "200"])
    assert code == 0, capsys.readouterr().err
    meta = json.loads((project / "project.json").read_text())
    assert meta["custom_objects"] == "custom_objects.py"
    assert (project / "custom_objects.py").read_text() == module.read_text()
    moved = tmp_path / "elsewhere.py"
    module.rename(moved)  # later commands use the project's copy
    try:
        capsys.readouterr()
        code = main(["verify", str(project), "--samples", "200"])
        summary = json.loads(capsys.readouterr().out)
    finally:
        moved.rename(module)
    assert code == 0
    assert summary["emulator_vs_csim"]["differing_outputs"] == 0 and summary["samples"]["total"] == 200


@pytest.mark.parametrize("content, message", [
    ("raise RuntimeError('boom')\n", "cannot import it: RuntimeError: boom"),
    ("custom_objects = ['TaggedDense']\n", "`custom_objects` must be a dict"),
])
def test_a_broken_custom_objects_file_is_one_line(dict_model, tmp_path, capsys, content, message):
    _, model = dict_model
    bad = tmp_path / "bad_objects.py"
    bad.write_text(content)
    code = main(["convert", str(model), "--out", str(tmp_path / "p"), "--custom-objects", str(bad)])
    err = assert_one_error_line(capsys.readouterr().err, "convert")
    assert code == EXIT_BAD_INPUT
    assert "bad_objects.py" in err and message in err


def test_classes_registered_with_keras_need_no_dict(tmp_path):
    module = tmp_path / "registered_layers.py"
    module.write_text(REGISTERED)
    model = tagged_model(module, tmp_path / "tagged.h5")  # registered in this process only
    out = tmp_path / "p"
    hlsflow = [sys.executable, "-m", "flow", "convert", str(model), "--out", str(out), "--precision",
               "ap_fixed<16,6>", "--samples", "100"]
    refused = procs.run(hlsflow, capture_output=True, text=True)
    assert refused.returncode == EXIT_BAD_INPUT and "'TaggedDense'" in refused.stderr
    done = procs.run([*hlsflow, "--custom-objects", str(module)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads((out / "report.json").read_text())["emulator_vs_csim"]["exact_fraction"] == 1.0
