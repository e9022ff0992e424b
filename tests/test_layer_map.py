"""Keras layers -> hls4ml graph layers after hls4ml's fusions (flow/hls/layer_map.py), and what convert
does with config names the graph lacks. Graphs are built, never compiled (a second each)."""

from __future__ import annotations

import pytest
import yaml
from corpus import BY_NAME, write_hls4ml_config

from flow.core.errors import FlowError
from flow.hls.convert import build_graph, derive_hls_config
from flow.hls.layer_map import config_names_report, layer_map
from flow.keras.env import set_seed
from flow.spec import Hardware


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    """``mapped(name)``: (model, graph, layer map) of a corpus model with precisions from its quantizers."""
    made = {}

    def get(name):
        if name not in made:
            set_seed(0)
            model = BY_NAME[name].build()
            graph = build_graph(model, derive_hls_config(model, Hardware(), None), Hardware(),
                                tmp_path_factory.mktemp(name) / "hls")
            made[name] = model, graph, layer_map(model, graph)
        return made[name]

    return get


def test_batchnorm_folded_into_dense_is_held_by_the_dense_layer(mapped):
    _, _, lmap = mapped("float_bn_mlp")
    assert "bn4" not in lmap.graph_layers
    assert lmap.keras_to_graph["bn4"] == "fc4" and lmap.fused["fc4"] == ["bn4"]
    assert lmap.reference("fc4") == ("bn4", False)  # fc4's own Keras output exists nowhere in the graph


def test_batchnorm_and_binary_activation_are_held_by_their_threshold_layer(tmp_path):
    """hls4ml folds BatchNormalization + binary/ternary activation into BatchNormalizationQuantizedTanh: it holds the
    activation's output; the Dense before keeps its own."""
    from qmodels import binary_model

    model = binary_model()
    graph = build_graph(model, derive_hls_config(model, Hardware(), None), Hardware(), tmp_path / "hls")
    lmap = layer_map(model, graph)
    assert lmap.keras_to_graph["d1"] == "d1" and lmap.reference("d1") == ("d1", False)
    assert lmap.fused == {"bnbt_bn1": ["bn1", "a1"], "bnbt_a2_scale": ["bn2", "a2"]}
    assert lmap.reference("bnbt_bn1") == ("a1", False) and lmap.reference("bnbt_a2_scale") == ("a2", False)


def test_logits_of_a_softmax_after_folded_batchnorm_are_the_dense_layer(mapped):
    _, _, lmap = mapped("float_bn_mlp")
    assert lmap.logits == "fc4" and lmap.compare_layer == "fc4"


def test_sequential_input_layer_is_mapped_though_model_layers_lacks_it(mapped):
    model, _, lmap = mapped("qkeras_jet_mlp")
    assert "fc1_input" not in [layer.name for layer in model.layers]
    assert lmap.keras_to_graph["fc1_input"] == "fc1_input" and lmap.reference("fc1_input") == ("fc1_input", False)


def test_dropout_is_held_by_the_layer_before_it(mapped):
    _, _, lmap = mapped("qkeras_jet_mlp")
    assert lmap.keras_to_graph["drop1"] == "relu1" and lmap.graph_to_keras["relu1"] == "drop1"


def test_split_activation_holds_the_layer_and_the_layer_its_pre_activation(mapped):
    _, _, lmap = mapped("float_jet_conv2d")
    assert lmap.output == "output_softmax_softmax"
    assert lmap.keras_to_graph["output_softmax"] == "output_softmax_softmax"
    assert lmap.logits == "output_softmax" and lmap.reference("output_softmax") == ("output_softmax", True)


@pytest.mark.parametrize("name, graph_layer", [("bn4", "fc4"), ("fc4", "fc4"), ("relu1", "relu1")])
def test_rtl_upto_accepts_keras_and_graph_names(mapped, name, graph_layer):
    assert mapped("float_bn_mlp")[2].graph_layer(name) == graph_layer


def test_an_unknown_upto_name_is_one_error_naming_it(mapped):
    with pytest.raises(FlowError, match="no layer named 'fc9'"):
        mapped("float_bn_mlp")[2].graph_layer("fc9")


def test_config_names_of_fused_layers_are_absorbed_and_typos_unknown(mapped, tmp_path):
    model, _, lmap = mapped("float_bn_mlp")
    cfg = yaml.safe_load(write_hls4ml_config(model, tmp_path / "c.yml", "name").read_text())["HLSConfig"]
    cfg["LayerName"]["fc_typo"] = {"Precision": {"result": "ap_fixed<8,3>"}}
    absorbed, unknown = config_names_report(cfg, lmap)
    assert {"bn1", "bn2", "bn4", "fc1_linear"} <= set(absorbed)
    assert unknown == ["fc_typo"]


def test_convert_warns_about_fused_names_and_refuses_unmatched_ones(corpus_files, hlsflow, tmp_path):
    model, config = corpus_files("float_bn_mlp")
    cfg = yaml.safe_load(config.read_text())
    cfg["HLSConfig"]["LayerName"]["fc_typo"] = {"Precision": {"result": "ap_fixed<8,3>"}}
    bad = tmp_path / "typo.yml"
    bad.write_text(yaml.safe_dump(cfg))
    code, _, err = hlsflow("convert", model, "--config", bad, "--out", tmp_path / "prj")
    assert code == 2 and "fc_typo" in err and "bn4" not in err.splitlines()[-1]
    assert len([ln for ln in err.splitlines() if "error" in ln]) == 1
    assert not (tmp_path / "prj").exists()


def test_hls4ml_config_of_a_model_with_fused_layers_converts_with_one_warning_naming_them(mapped, tmp_path, capsys):
    from flow.commands.pipeline import check_config_names

    model, graph, _ = mapped("float_bn_mlp")
    path = write_hls4ml_config(model, tmp_path / "c.yml", "name")
    check_config_names(path, yaml.safe_load(path.read_text())["HLSConfig"], model, graph)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "warning" in err[0] and str(path) in err[0]
    assert all(name in err[0] for name in ("bn1", "bn2", "bn4"))
