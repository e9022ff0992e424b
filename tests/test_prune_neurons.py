"""Neuron pruning (`pruning: {method: neurons}`): rarely firing Dense units and Conv filters are removed,
the weights downstream are cut to match, and the result is an ordinary narrower model all the way down
to the emulator and the C simulation; from the spec, in `hlsflow run` and in sweeps."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from qmodels import dense_model, qb

from flow.arith.emulate import emulate
from flow.arith.types import parse_type
from flow.commands.cli import EXIT_BAD_INPUT, main
from flow.commands.verify import full_range_inputs
from flow.core.errors import FlowError
from flow.data import Split
from flow.keras import prune_neurons as pn
from flow.keras.env import keras, set_seed
from flow.spec import NeuronPruning, Training

ROOT = Path(__file__).resolve().parents[1]
INPUT_TYPE = "ap_fixed<8,3>"
DEAD = 2  # the unit of the first layer that never fires


def conv2d_model():
    """Conv2D -> BatchNormalization -> ReLU -> MaxPooling -> Flatten -> Dense."""
    from qkeras import QActivation, QConv2D, QDense, quantized_relu

    K = keras()
    inp = K.Input((6, 6, 2), name="x_in")
    h = QConv2D(4, (3, 3), kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d1")(inp)
    h = K.layers.BatchNormalization(name="bn1")(h)
    h = QActivation(quantized_relu(6, 2), name="a1")(h)
    h = K.layers.MaxPooling2D((2, 2), name="p1")(h)
    h = K.layers.Flatten(name="f1")(h)
    return K.Model(inp, QDense(3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h))


def conv1d_model():
    from qkeras import QActivation, QConv1D, QDense, quantized_relu

    K = keras()
    inp = K.Input((10, 2), name="x_in")
    h = QConv1D(4, 3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d1")(inp)
    h = QActivation(quantized_relu(6, 2), name="a1")(h)
    h = K.layers.Flatten(name="f1")(h)
    return K.Model(inp, QDense(3, kernel_quantizer=qb(6), bias_quantizer=qb(6), name="d3")(h))


def with_dead_unit(model):
    """Random weights, every bias +0.25 (units fire), except unit DEAD of layer d1: zero weights in and
    a negative pre-activation (bias -0.5, or batch-norm beta -1), so its ReLU output is 0 for every input."""
    rng = np.random.default_rng(7)
    for layer in model.layers:
        ws = layer.get_weights()
        if layer.name == "bn1":  # gamma, beta, moving mean, moving variance
            beta = np.full(4, 0.25, np.float32)
            beta[DEAD] = -1.0
            layer.set_weights([np.ones(4, np.float32), beta, np.zeros(4, np.float32), np.ones(4, np.float32)])
        elif ws:
            kernel = rng.uniform(-1, 1, ws[0].shape).astype(np.float32)
            bias = np.full(ws[1].shape, 0.25, np.float32)
            if layer.name == "d1":
                kernel[..., DEAD] = 0.0
                bias[DEAD] = 0.0 if "bn1" in [x.name for x in model.layers] else -0.5
            layer.set_weights([kernel, bias])
    return model


def split_of(model, n_train: int = 400, n_test: int = 600) -> Split:
    shape = tuple(model.input_shape[1:])
    t = parse_type(INPUT_TYPE)
    rng = np.random.default_rng(3)
    return Split(full_range_inputs(t, shape, n_train, 1).astype(np.float32), rng.integers(0, 3, n_train),
                 full_range_inputs(t, shape, n_test, 2).astype(np.float32), rng.integers(0, 3, n_test), 3, 0, 0)


def outputs(model, x):
    return np.asarray(model(x, training=False), dtype=np.float64)


@pytest.mark.parametrize("make", [dense_model, conv2d_model, conv1d_model])
def test_a_unit_that_never_fires_is_removed_and_the_outputs_do_not_change(make):
    model = with_dead_unit(make())
    split = split_of(model)
    pruning = NeuronPruning(threshold=0.001, finetune_epochs=0, layers=("d1",))
    pruned, record = pn.prune_neurons(model, split, pruning, Training(), True, "spec.yaml")
    assert record["rounds"][0]["layers"][0]["removed"] == [DEAD]
    assert pn.width(pruned.get_layer("d1")) == pn.width(model.get_layer("d1")) - 1
    assert [layer.name for layer in pruned.layers] == [layer.name for layer in model.layers]
    x = np.concatenate([split.x_test, full_range_inputs(parse_type(INPUT_TYPE), model.input_shape[1:], 2000, 9)])
    assert np.array_equal(outputs(pruned, x), outputs(model, x))  # exact: the unit contributed nothing


def test_a_plain_keras_model_stays_plain_keras_with_its_names_and_weights_cut():
    K = keras()
    inp = K.Input((5,), name="x_in")
    h = K.layers.Dense(4, activation="relu", name="d1")(inp)
    h = K.layers.Dropout(0.2, name="drop")(h)
    model = K.Model(inp, K.layers.Dense(2, name="out")(h), name="plain")
    pruned = pn.narrow_model(model, {"d1": np.array([0, 3])})
    assert pruned.name == "plain"
    assert [(x.name, x.__class__.__name__) for x in pruned.layers] == \
        [(x.name, x.__class__.__name__) for x in model.layers]
    k1, b1 = model.get_layer("d1").get_weights()
    k2, b2 = model.get_layer("out").get_weights()
    got = [w for name in ("d1", "out") for w in pruned.get_layer(name).get_weights()]
    for have, want in zip(got, [k1[:, [0, 3]], b1[[0, 3]], k2[[0, 3], :], b2]):
        assert np.array_equal(have, want)


def test_removed_filters_cut_the_next_layers_and_the_hardware_stays_bit_exact(tmp_path):
    """Conv2D(4) -> BN -> ReLU -> pool -> Flatten -> Dense: filter DEAD and one live filter removed.
    The Dense rows through Flatten and the BN parameters are cut to match; with only the dead filter
    removed the emulator's outputs equal the unpruned model's; with a live one removed too, hls4ml's
    C simulation of the narrower model equals the emulator (0 differences) and QKeras."""
    from flow.hls.convert import build_graph, csim_predict, derive_hls_config
    from flow.spec import Hardware

    model = with_dead_unit(conv2d_model())
    keep = np.array([0, 1, 3])  # filter DEAD = 2 removed
    pruned = pn.narrow_model(model, {"d1": keep})
    flat_rows = (np.arange(4)[:, None] * 4 + keep[None, :]).reshape(-1)  # 2x2 positions x 4 channels, channels last
    assert np.array_equal(pruned.get_layer("d3").get_weights()[0], model.get_layer("d3").get_weights()[0][flat_rows])
    for have, want in zip(pruned.get_layer("bn1").get_weights(), model.get_layer("bn1").get_weights()):
        assert np.array_equal(have, want[keep])
    assert np.array_equal(pruned.get_layer("d1").get_weights()[0], model.get_layer("d1").get_weights()[0][..., keep])

    hw = Hardware(io_type="io_stream")
    x = full_range_inputs(parse_type(INPUT_TYPE), (6, 6, 2), 1000, 4)

    def graph(m, name):
        return build_graph(m, derive_hls_config(m, hw, INPUT_TYPE), hw, tmp_path / name)

    assert np.array_equal(emulate(graph(pruned, "dead"), x).outputs, emulate(graph(model, "full"), x).outputs)
    live_cut = pn.narrow_model(model, {"d1": np.array([1, 3])})
    g = graph(live_cut, "live")
    g.compile()
    csim = csim_predict(g, x)
    emu = emulate(g, x)
    assert int(np.sum(csim != emu.outputs)) == 0
    assert [x.get_output_variable().shape[-1] for x in g.get_layers() if x.name == "d1"] == [2]


def test_the_same_seed_gives_the_same_pruned_model():
    set_seed(5)
    model = dense_model()
    split = split_of(model)
    pruning = NeuronPruning(fraction=0.5, finetune_epochs=2, rounds=2, layers=("d1", "d2"))
    training = Training(batch_size=64, validation_split=0.0, seed=3)
    runs = [pn.prune_neurons(pn.narrow_model(model, {}), split, pruning, training, True, "spec.yaml") for _ in range(2)]
    (a, rec_a), (b, rec_b) = runs
    assert json.dumps(rec_a) == json.dumps(rec_b)
    assert [pn.width(a.get_layer(n)) for n in ("d1", "d2")] == [4, 3]
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        assert np.array_equal(wa, wb)


def test_fraction_removes_the_least_active_units_spread_over_the_rounds():
    model = with_dead_unit(dense_model())
    split = split_of(model)
    pruning = NeuronPruning(fraction=0.75, finetune_epochs=0, rounds=2, layers=("d1",))
    pruned, record = pn.prune_neurons(model, split, pruning, Training(), True, "spec.yaml")
    first, second = (r["layers"][0] for r in record["rounds"])
    assert (first["before"], first["after"], second["after"]) == (7, 5, 2)  # floor(0.75 * 7 * r / 2) removed
    assert DEAD in first["removed"]
    activity = np.asarray(first["active_fraction"])
    kept = [i for i in range(7) if i not in first["removed"]]
    assert activity[first["removed"]].max() <= activity[kept].min()
    removed = set(first["removed"]) | set(second["removed"])
    assert len(removed) == 5
    assert record["layers"] == [{"layer": "d1", "kind": "units", "before": 7, "after": 2,
                                 "kept": sorted(set(range(7)) - removed)}]
    assert pn.width(pruned.get_layer("d1")) == 2


# --- bad input -----------------------------------------------------------------------------------


def _reshape_after_dense():
    K = keras()
    inp = K.Input((6,), name="x_in")
    h = K.layers.Dense(4, name="d1")(inp)
    h = K.layers.Reshape((2, 2), name="r1")(h)
    return K.Model(inp, K.layers.Dense(2, name="out")(K.layers.Flatten(name="f1")(h)))


@pytest.mark.parametrize("make, keep, message", [
    (dense_model, {"d3": [0, 1]}, "'d3' is the output layer"),
    (dense_model, {"a1": [0]}, "'a1' (QActivation) cannot be neuron-pruned"),
    (conv2d_model, {"p1": [0]}, "'p1' (MaxPooling2D) cannot be neuron-pruned"),
    (_reshape_after_dense, {"d1": [0, 1]}, "'r1' (Reshape) follows pruned layer 'd1'"),
    (dense_model, {"d1": []}, "at least one"),
    (dense_model, {"d9": [0]}, "no layer named 'd9'"),
])
def test_a_layer_that_cannot_be_pruned_is_named(make, keep, message):
    with pytest.raises(FlowError, match=message.replace("(", r"\(").replace(")", r"\)")):
        pn.narrow_model(make(), {k: np.array(v, dtype=np.int64) for k, v in keep.items()})


def test_a_threshold_that_would_remove_every_unit_is_refused():
    model = with_dead_unit(dense_model())
    model.get_layer("d1").set_weights([np.zeros((6, 7), np.float32), np.full(7, -0.5, np.float32)])  # all dead
    with pytest.raises(FlowError, match=r"spec.yaml: field `pruning.threshold`: 0.01 would remove every unit of "
                                        r"layer 'd1'"):
        pn.prune_neurons(model, split_of(model), NeuronPruning(threshold=0.01, finetune_epochs=0, layers=("d1",)),
                         Training(), True, "spec.yaml")


def spec_file(tmp_path: Path, name: str = "digits_mlp", epochs: int = 1, **pruning) -> Path:
    spec = yaml.safe_load((ROOT / "models" / f"{name}.yaml").read_text())
    spec["training"].update(epochs=epochs, validation_split=0.0)
    spec["dataset"]["max_samples"] = 400
    spec["rtl"] = {"enabled": False}
    spec["pruning"] = pruning
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.parametrize("name, pruning, field", [
    ("digits_mlp", {"method": "neurons", "fraction": 0.5, "layers": ["fc2"]}, "pruning.layers[0]"),  # output layer
    ("digits_cnn", {"method": "neurons", "fraction": 0.5, "layers": ["pool1"]}, "pruning.layers[0]"),  # no units
    ("digits_mlp", {"method": "neurons", "fraction": 0.5, "layers": ["fc9"]}, "pruning.layers[0]"),
    ("digits_mlp", {"method": "neurons", "fraction": 0.5, "layers": "fc1"}, "pruning.layers"),
    ("digits_mlp", {"method": "neurons"}, "pruning"),
    ("digits_mlp", {"method": "neurons", "fraction": 0.5, "threshold": 0.1}, "pruning"),
    ("digits_mlp", {"method": "neurons", "fraction": 1.0}, "pruning.fraction"),
    ("digits_mlp", {"method": "neurons", "threshold": 0}, "pruning.threshold"),
    ("digits_mlp", {"method": "neurons", "threshold": 1.5}, "pruning.threshold"),
    ("digits_mlp", {"method": "neurons", "fraction": 0.5, "rounds": 0}, "pruning.rounds"),
    ("digits_mlp", {"method": "neurons", "fraction": 0.5, "finetune_epochs": -1}, "pruning.finetune_epochs"),
    ("digits_mlp", {"method": "neurons", "fraction": 0.5, "sparsity": 0.5}, "pruning.sparsity"),
    ("digits_mlp", {"method": "magnitude", "fraction": 0.5}, "pruning.fraction"),
    ("digits_mlp", {"method": "channels", "fraction": 0.5}, "pruning.method"),
])
def test_bad_neuron_pruning_in_the_spec_exits_2_naming_the_field(tmp_path, capsys, name, pruning, field):
    path = spec_file(tmp_path, name, **pruning)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(path) in err and f"`{field}`" in err, err
    assert not (tmp_path / "out").exists()


def test_a_spec_whose_only_dense_layer_is_the_output_has_nothing_to_prune(tmp_path, capsys):
    path = spec_file(tmp_path, method="neurons", fraction=0.5)
    spec = yaml.safe_load(path.read_text())
    spec["model"]["layers"] = spec["model"]["layers"][1:]
    path.write_text(yaml.safe_dump(spec))
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    assert "no layer to prune: the only dense/conv2d layer, `fc2`, is the output layer" in capsys.readouterr().err


def test_a_threshold_that_empties_a_layer_during_run_exits_2_and_writes_nothing(tmp_path, capsys, monkeypatch):
    def silent(model, x, layers, batch_size=1024):  # every unit measured as never firing
        n = {name: pn.width(model.get_layer(name)) for name in layers}
        return {name: pn.UnitActivity(name, name, np.zeros(n[name]), np.zeros(n[name]), len(x)) for name in layers}

    monkeypatch.setattr(pn, "measure_activity", silent)
    path = spec_file(tmp_path, method="neurons", threshold=0.01)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == EXIT_BAD_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (f"hlsflow run: error: {path}: field `pruning.threshold`: 0.01 would remove every unit of layer 'fc1' "
                       "(round 1: its most active unit is non-zero on 0.0000 of its values); use a lower threshold "
                       "or `fraction`")
    assert not (tmp_path / "out" / "digits_mlp").exists() and not list((tmp_path / "out").glob(".digits_mlp*"))


# --- in hlsflow run and in sweeps -----------------------------------------------------------------


def test_hlsflow_run_prunes_the_cnn_filters_and_every_stage_sees_the_narrower_model(tmp_path, capsys):
    from flow.keras.model_io import load_model

    path = spec_file(tmp_path, "digits_cnn", epochs=2, method="neurons", fraction=0.5, finetune_epochs=1)
    assert main(["run", str(path), "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "prune neurons + fine-tune done" in err and "conv1 8 -> 4 filters" in err
    project = tmp_path / "out" / "digits_cnn"
    report = json.loads((project / "report.json").read_text())
    assert [(x["layer"], x["before"], x["after"]) for x in report["neuron_pruning"]["layers"]] == [("conv1", 8, 4)]
    pruned, unpruned = load_model(project / "qkeras_model.h5"), load_model(project / "qkeras_model_unpruned.h5")
    assert (pn.width(pruned.get_layer("conv1")), pn.width(unpruned.get_layer("conv1"))) == (4, 8)
    assert pruned.get_layer("fc1").get_weights()[0].shape == (3 * 3 * 4, 10)
    assert report["csim_vs_qkeras"]["exact_fraction"] == 1.0
    assert report["emulator_vs_csim"]["equal_outputs"] == report["emulator_vs_csim"]["outputs"]
    assert report["accuracy"]["emulator"] == report["accuracy"]["csim"] == report["neuron_pruning"]["accuracy_pruned"]
    md = (project / "report.md").read_text()
    assert "## Neuron pruning" in md and "| conv1 | 8 filters | 4 filters | `pool1` |" in md and "neuron_activity.png" in md
    assert (project / "neuron_activity.png").stat().st_size > 10_000


def test_the_shipped_pruning_sweep_compares_both_methods_at_three_amounts():
    from flow.sweep.config import load_sweep, point_key

    sweep = load_sweep(ROOT / "models" / "digits_pruning_sweep.yaml")
    assert sweep.space_size == len({point_key(p) for p in sweep.grid()}) == 7
    neurons = sweep.point_spec({"pruning_method": "neurons", "pruning_amount": 0.25}).pruning
    assert (neurons.method, neurons.fraction, neurons.finetune_epochs, neurons.layers) == ("neurons", 0.25, 5, ("fc1",))
    assert sweep.point_spec({"pruning_method": "magnitude", "pruning_amount": 0.75}).pruning.sparsity == 0.75


def test_a_sweep_over_pruning_method_and_amount_computes_the_unpruned_point_once(tmp_path):
    from flow.sweep.run import run_sweep
    from flow.sweep.workers import is_computed, trial_key

    data = {"name": "prune", "base": str(ROOT / "models" / "digits_mlp.yaml"),
            "overrides": {"training": {"epochs": 1, "validation_split": 0.0}, "dataset": {"max_samples": 300},
                          "pruning": {"method": "neurons", "fraction": 0.1, "finetune_epochs": 1}},
            "axes": {"pruning_method": ["magnitude", "neurons"], "pruning_amount": [0.0, 0.5]}, "heartbeat": 2}
    path = tmp_path / "prune.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_sweep(path, tmp_path / "out", progress=False)
    assert result.sweep.space_size == 3 and result.counts.done == 3
    trials = result.study.get_trials()
    figures = {(t.params["pruning_method"], t.params["pruning_amount"]): t.user_attrs["figures"]
               for t in trials if is_computed(t)}
    assert len(figures) == 3 and len({trial_key(t, result.sweep) for t in trials}) == 3
    unpruned = next(f for (m, a), f in figures.items() if a == 0)
    magnitude, neurons = figures["magnitude", 0.5], figures["neurons", 0.5]
    assert unpruned["units"] == magnitude["units"] == 32 + 10 and neurons["units"] == 16 + 10
    assert neurons["neuron_pruning"]["layers"][0]["after"] == 16
    assert magnitude["sparsity"] > 0.4 and neurons["bops"] < unpruned["bops"] and magnitude["bops"] < unpruned["bops"]
    rows = list(csv.DictReader((tmp_path / "out" / "prune" / "report" / "points.csv").open()))
    assert sorted((r["pruning_method"], float(r["pruning_amount"]), int(r["units"])) for r in rows) == [
        ("magnitude", 0.5, 42), ("neurons", 0.5, 26), ("none", 0.0, 42)]
