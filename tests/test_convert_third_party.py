"""`hlsflow convert` on real third-party models (hls4ml's public example models in ../shared/models)."""

from conftest import shared_model

from flow.commands.pipeline import convert_existing
from flow.spec import Hardware


def test_qkeras_mnist_dense_csim_equals_qkeras_on_every_logit(tmp_path):
    """Precisions derived from its QKeras quantizers (incl. power-of-two weights), 2,000 random inputs."""
    report = convert_existing(shared_model("qkeras_mnist_dense.json"), tmp_path / "prj", input_type="ap_fixed<16,6>",
                              samples=2000)
    cmp = report["csim_vs_keras"]
    assert cmp["compared_at"].startswith("q_dense_3")
    assert cmp["outputs"] == 2000 * 10
    assert cmp["equal_outputs"] == cmp["outputs"]
    emu = report["emulator_vs_csim"]
    assert emu["outputs"] == cmp["outputs"] and emu["equal_outputs"] == emu["outputs"]
    assert (tmp_path / "prj" / "hls" / "firmware" / "myproject.cpp").is_file()


def test_qkeras_mnist_dense_converts_with_its_own_config(tmp_path):
    report = convert_existing(shared_model("qkeras_mnist_dense.json"), tmp_path / "prj",
                              config_path=shared_model("qkeras_mnist_dense_config.yml"), samples=200)
    assert report["hardware"]["backend"] == "Vivado"
    assert report["input"]["type"] == "ap_fixed<16,6>"
    assert (tmp_path / "prj" / "hls" / "build_prj.tcl").is_file()


def test_float_jet_tagger_converts_with_a_declared_precision(tmp_path):
    report = convert_existing(shared_model("KERAS_3layer.json"), tmp_path / "prj", precision="ap_fixed<16,6>",
                              hardware=Hardware(backend="Vivado"), samples=500)
    assert report["input"]["type"] == "ap_fixed<16,6>"
    assert report["csim_vs_keras"]["outputs"] == 500 * 5
    # a float model quantized after training: not bit-exact, but it must pick the same class almost always
    assert report["csim_vs_keras"]["argmax_agreement"] >= 0.95
    assert (tmp_path / "prj" / "hls" / "firmware" / "myproject.cpp").is_file()
