"""The mismatch doctor of ``hlsflow verify`` (flow/commands/doctor.py) and ``--write-exact-config`` (flow/hls/exact_config.py)."""

from __future__ import annotations

import pytest
import yaml

from flow.arith.types import FixedType, parse_type
from flow.commands.doctor import CastStats, Observed, explain, needed_type, parse_error_bound
from flow.core.errors import FlowError
from flow.hls.exact_config import LayerTypes, exact_accum_type

T = parse_type


@pytest.mark.parametrize("x, w, n, b, exact", [
    ("ap_fixed<16,6>", "ap_fixed<6,1>", 16, "ap_fixed<6,1>", "ap_fixed<27,12>"),   # 15 fractional bits, 6+1+ceil(log2 17)
    ("ap_ufixed<6,2>", "ap_fixed<6,1>", 32, "ap_fixed<6,1>", "ap_fixed<19,10>"),   # unsigned input: one more bit
    ("ap_fixed<8,3>", "ap_fixed<4,1>", 1, "ap_fixed<12,8>", "ap_fixed<17,9>"),     # a wide bias sets the integer bits
])
def test_exact_accumulator_keeps_every_product_bit_and_cannot_overflow(x, w, n, b, exact):
    assert exact_accum_type(T(x), T(w), n, T(b)) == T(exact)


def _dense_types(accum: str) -> LayerTypes:
    return LayerTypes("fc1", "Dense", T("ap_fixed<16,6>"), T("ap_fixed<16,6>"), T("ap_fixed<6,1>"), T("ap_fixed<6,1>"),
                      T(accum), 16, T("ap_fixed<27,12>"))


def _observed(**kw) -> Observed:
    base = dict(values=100, differing=90, max_diff_lsb=12.0, result_overflows=0, model_min=-3.0, model_max=3.0,
                model_out_of_range=0, model_off_grid=0)
    return Observed(**(base | kw))


def test_cause_names_the_dropped_product_bits_from_the_types():
    cause = explain(_dense_types("ap_fixed<16,6>"), _observed())
    assert cause.startswith("fc1: accum_t ap_fixed<16,6> drops 5 fractional product bits (inputs ap_fixed<16,6>, "
                            "weights ap_fixed<6,1>: products have 15 fractional bits)")
    assert "can need 12" in cause


def test_cause_counts_saturated_results_and_model_values_outside_the_type():
    t = _dense_types("ap_fixed<27,12>")
    t = LayerTypes(**(t.__dict__ | {"result": T("ap_fixed<16,6,AP_TRN,AP_SAT>")}))
    cause = explain(t, _observed(result_overflows=812, model_out_of_range=812, model_min=-99.5, model_max=125.0))
    assert "drops" not in cause
    assert "result_t ap_fixed<16,6,AP_TRN,AP_SAT>: keeps 10 of 15 fractional bits (TRN), saturates 812 values" in cause
    assert "812 model values lie outside its range [-32, 31.999]" in cause


def test_cause_takes_per_cast_statistics_where_the_emulator_gives_them():
    obs = _observed(casts={"product": CastStats(total=1000, rounded=1000, overflowed=0),
                           "accum": CastStats(total=200, rounded=0, overflowed=37)})
    cause = explain(_dense_types("ap_fixed<16,6>"), obs)
    assert "products have 15 fractional bits) and rounds 100 % of products" in cause
    assert "can need 12 and overflows 37" in cause


def test_cause_names_the_exact_types_the_quantizers_give():
    exact = _dense_types("ap_fixed<27,12>")
    exact = LayerTypes(**(exact.__dict__ | {"result": T("ap_fixed<27,12>")}))
    cause = explain(_dense_types("ap_fixed<16,6>"), _observed(), exact)
    assert cause.endswith("exact types from the quantizers: accum_t ap_fixed<27,12>, result_t ap_fixed<27,12>")


@pytest.mark.parametrize("max_abs, signed, bound, needed", [
    (3.2, True, 0.01, FixedType(10, 3, True)),     # 2 magnitude bits + sign; 2^-7 <= 0.01
    (0.4, False, 0.25, FixedType(3, 1, False)),    # at least 1 integer bit
    (100.0, True, 1.0, FixedType(8, 8, True)),
    (0.0, False, 0.5, FixedType(2, 1, False)),
])
def test_precision_needed_for_an_error_bound(max_abs, signed, bound, needed):
    t = needed_type(max_abs, signed, bound)
    assert t == needed
    assert t.max_value + t.step > max_abs and t.step <= bound


@pytest.mark.parametrize("text, absolute", [("0.01", 0.01), ("2lsb", 2 * 2.0 ** -10), ("1 LSB", 2.0 ** -10)])
def test_error_bound_is_absolute_or_in_output_lsbs(text, absolute):
    assert parse_error_bound(text, T("ap_fixed<16,6>"))[0] == absolute


@pytest.mark.parametrize("text", ["abc", "-1", "0", "lsb", "inf"])
def test_a_bad_error_bound_is_one_error(text):
    with pytest.raises(FlowError, match="--error-bound"):
        parse_error_bound(text, T("ap_fixed<16,6>"))


def test_doctor_names_the_first_differing_layer_and_the_exact_config_verifies(corpus_files, hlsflow, tmp_path):
    """hls4ml's own type-granularity config of a QKeras MLP applies its ``QDense`` entries to no layer (the
    graph's class is Dense), so fc1 accumulates in the ap_fixed<16,6> default: the doctor names fc1 and why;
    the config --write-exact-config writes then verifies with 0 differences."""
    model, config = corpus_files("qkeras_jet_mlp_type")
    assert hlsflow("convert", model, "--config", config, "--out", tmp_path / "p16", "--samples", 100)[0] == 0
    exact = tmp_path / "exact.yml"
    code, s, _ = hlsflow("verify", tmp_path / "p16", "--samples", 300, "--write-exact-config", exact)
    assert code == 1 and s["csim_vs_model"]["differing_outputs"] > 0 and s["emulator_vs_csim"]["differing_outputs"] == 0
    doc = s["doctor"]
    assert doc["first_differing_layer"] == "fc1"
    assert doc["cause"].startswith("fc1: accum_t ap_fixed<16,6> drops 5 fractional product bits (inputs "
                                   "ap_fixed<16,6>, weights ap_fixed<6,1>: products have 15 fractional bits)")
    rows = {r["layer"]: r for r in doc["layers"]}
    assert rows["fc1_input"]["differing"] == 0 and rows["fc1"]["differing"] > 0 and rows["fc1"]["max_diff_lsb"] > 0
    assert (tmp_path / "p16" / "verify_layers.png").read_bytes()[:4] == b"\x89PNG"
    cfg = yaml.safe_load(exact.read_text())
    assert {"Backend", "IOType", "HLSConfig"} <= set(cfg)
    precisions = [v for entry in cfg["HLSConfig"]["LayerName"].values() for v in entry.get("Precision", {}).values()]
    assert "auto" not in precisions
    exact.write_text(exact.read_text() + "# stale\n")  # still its own file (first line): replaced without --force
    assert hlsflow("verify", tmp_path / "p16", "--samples", 10, "--write-exact-config", exact)[0] != 2
    assert "# stale" not in exact.read_text() and yaml.safe_load(exact.read_text()) == cfg

    assert hlsflow("convert", model, "--config", exact, "--out", tmp_path / "pexact", "--samples", 100)[0] == 0
    code, s, _ = hlsflow("verify", tmp_path / "pexact", "--samples", 1000)
    assert s["csim_vs_model"]["differing_outputs"] == 0 and s["emulator_vs_csim"]["differing_outputs"] == 0
    assert s["csim_vs_model"]["outputs"] == 5000 and code == 0 and "doctor" not in s


@pytest.fixture
def float_project(corpus_files, tmp_path):
    """A project record of the float corpus MLP (no HLS project written: verify rebuilds it)."""
    from flow.hls.project import save_meta
    from flow.keras.model_io import load_model
    from flow.spec import Hardware

    project = tmp_path / "prj"
    project.mkdir()
    load_model(corpus_files("float_bn_mlp")[0]).save(project / "model.h5")
    save_meta(project, "model.h5", {"Model": {"Precision": "ap_fixed<16,6>"}}, Hardware(), "ap_fixed<16,6>")
    return project


def test_write_exact_config_of_a_float_model_is_one_error(float_project, hlsflow, tmp_path):
    code, _, err = hlsflow("verify", float_project, "--write-exact-config", tmp_path / "x.yml")
    assert code == 2 and "needs a QKeras model" in err and not (tmp_path / "x.yml").exists()


def test_cause_names_weights_off_the_weight_type_grid():
    cause = explain(_dense_types("ap_fixed<27,12>"), _observed(weights_off_grid=500, weights_total=512))
    assert "500 of 512 weights are not on the grid of weight_t ap_fixed<6,1> (step 2^-5)" in cause


def test_verify_with_a_bad_error_bound_is_one_error_before_any_compiling(float_project, hlsflow):
    code, _, err = hlsflow("verify", float_project, "--error-bound", "tiny")
    assert code == 2 and "--error-bound" in err and len(err.strip().splitlines()) == 1
