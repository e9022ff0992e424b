"""Third-party-style models (tests/corpus.py) with hls4ml's own configs, through the CLI as users run it:
``hlsflow convert MODEL --config hls4ml.yml`` -> ``hlsflow verify`` -> ``hlsflow rtl`` -> ``hlsflow sim``.

Every model: the emulator equals the C simulation on every output; where the corpus marks the model
``exact`` (QKeras, precisions from the quantizers) the C simulation equals the model on every output.
RTL: the models the tracer supports simulate with 0 differing bits; for the others ``hlsflow rtl`` must
give the corpus's one-line reason (so the table must be updated when the tracer gains the layer).
The default run covers the issue's reproductions; the rest is ``heavy``.
"""

from __future__ import annotations

import pytest
from corpus import BY_NAME, CORPUS
from hdl import assert_bit_exact, needs_verilator

from flow.arith.types import parse_type

DEFAULT = {"qkeras_jet_mlp", "float_bn_mlp", "float_jet_conv2d"}  # the reproductions of issue 11's failures
RTL_DEFAULT = {"float_jet_conv2d"}


def _params(names: set[str]) -> list:
    return [pytest.param(e.name, id=e.name, marks=() if e.name in names else pytest.mark.heavy) for e in CORPUS]


@pytest.fixture(scope="module")
def projects(corpus_files, tmp_path_factory):
    """``projects(name)``: the corpus model converted with its own config by ``hlsflow convert`` (once per module)."""
    from flow.commands.cli import main

    made = {}

    def get(name: str):
        if name not in made:
            model, config = corpus_files(name)
            out = tmp_path_factory.mktemp(f"{name}-prj") / "prj"
            assert main(["convert", str(model), "--config", str(config), "--out", str(out), "--samples", "200"]) == 0
            made[name] = out
        return made[name]

    return get


@pytest.mark.parametrize("name", _params(DEFAULT))
def test_corpus_model_converts_with_its_hls4ml_config_and_verifies(name, projects, hlsflow):
    entry = BY_NAME[name]
    project = projects(name)
    code, summary, _ = hlsflow("verify", project, "--samples", 300, "--error-bound", "0.01")
    assert summary["emulator_vs_csim"]["differing_outputs"] == 0
    assert summary["emulator_vs_csim"]["outputs"] > 0
    assert summary["csim_vs_model"]["outputs"] == summary["emulator_vs_csim"]["outputs"]
    if entry.exact:
        assert summary["csim_vs_model"]["differing_outputs"] == 0, summary.get("doctor")
        assert code == 0
        return
    # the doctor names where the model first differs; for a float model, what each layer would need
    doctor = summary["doctor"]
    assert doctor["first_differing_layer"] in [r["layer"] for r in doctor["layers"]] and doctor["cause"]
    assert ("precision_needed" in doctor) == (not entry.qkeras)
    if entry.qkeras:
        return
    need = doctor["precision_needed"]
    assert need["absolute"] == 0.01 and need["layers"]
    for row in need["layers"]:
        t = parse_type(row["needed"])
        assert t.max_value + t.step > row["max_abs"] and t.step <= 0.01


@needs_verilator
@pytest.mark.parametrize("name", _params(RTL_DEFAULT))
def test_corpus_model_rtl_simulates_bit_exact_or_gives_its_reason(name, projects, corpus_files, hlsflow):
    """The RTL simulation is also compared with the model at the Keras layer the RTL's output holds."""
    from flow.keras.model_io import load_model

    entry = BY_NAME[name]
    project = projects(name)
    code, summary, err = hlsflow("rtl", project, "--no-yosys")
    if entry.rtl_reason is not None:
        assert code == 2 and entry.rtl_reason in err, err
        return
    assert code == 0, err
    code, sim, err = hlsflow("sim", project, "--simulator", "verilator", "--samples", 100)
    assert code == 0, err
    assert_bit_exact(sim, 100)
    assert sim["rtl_vs_reference"]["qkeras" if entry.qkeras else "model"]["keras_layer"] == load_model(corpus_files(name)[0]).layers[-1].name
