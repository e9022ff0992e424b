"""ONNX/QONNX and PyTorch models go convert -> verify -> rtl -> sim with zero differing bits; the model-side
reference is their own framework (onnxruntime, qonnx's executor, the module's forward pass) and must match bit
for bit where the model is bit-accurate by design (QONNX with power-of-two scales, e.g. Brevitas fixed-point
quantizers); what the flow cannot carry is one line naming the node or the file."""

from __future__ import annotations

from pathlib import Path

import frontend_models
import pytest
from conftest import assert_one_error_line, whole_way

pytest.importorskip("torch")
pytest.importorskip("qonnx")

DEFAULT_RUN = ("brevitas_mlp",)  # the others: -m heavy (docs/frontends.md has their figures)
BIT_ACCURATE = {"brevitas_mlp", "brevitas_cnn"}
REFERENCE = {"torch": "torch forward", "onnx": "onnxruntime", "brevitas": "qonnx executor"}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    made: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in made:
            made[name] = frontend_models.BUILDERS[name][0](tmp_path_factory.mktemp(name))
        return made[name]

    return get


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=() if n in DEFAULT_RUN else pytest.mark.heavy) for n in frontend_models.BUILDERS])
def test_the_model_goes_to_rtl_that_equals_the_emulator_bit_for_bit(hlsflow, model_file, tmp_path, name):
    out = whole_way(hlsflow, model_file(name), tmp_path / name, *frontend_models.BUILDERS[name][1])
    model_side = out["verify"]["csim_vs_model"]
    assert model_side["reference"] == REFERENCE[name.split("_")[0]]
    assert model_side["must_match"] == (name in BIT_ACCURATE)
    if name in BIT_ACCURATE:  # C simulation == model, and so the RTL == model, on every output
        assert model_side["differing_outputs"] == 0 and model_side["outputs"] == 900
        assert out["sim"]["rtl_vs_reference"]["model"]["exact_fraction"] == 1.0


def test_a_state_dict_converts_with_the_file_that_builds_its_module(hlsflow, tmp_path):
    import torch

    module = tmp_path / "net.py"
    module.write_text(frontend_models.TORCH_MODULE)
    weights = tmp_path / "net_state.pt"
    torch.save(frontend_models.float_mlp().state_dict(), weights)
    code, summary, err = hlsflow("convert", weights, "--input-shape", "8", "--torch-module", module,
                                 "--out", tmp_path / "p", "--samples", 100)
    assert code == 0, err
    assert summary["csim_vs_keras"]["reference"] == "torch forward" and summary["csim_vs_keras"]["argmax_agreement"] > 0.9
    module.unlink()  # the project keeps its own copy
    code, verified, err = hlsflow("verify", tmp_path / "p", "--samples", 100)
    assert code == 0 and verified["emulator_vs_csim"]["differing_outputs"] == 0, err


def test_a_float_bias_makes_a_qonnx_model_compared_not_required_to_match(hlsflow, tmp_path):
    path = frontend_models.export_qonnx(frontend_models.brevitas_mlp(quantized_bias=False), (8,), tmp_path / "fb.onnx")
    code, summary, err = hlsflow("convert", path, "--out", tmp_path / "p", "--samples", 50)
    assert code == 0, err
    assert summary["csim_vs_keras"]["reference"] == "qonnx executor" and summary["csim_vs_keras"]["bit_accurate"] is False


def torchscript(folder: Path) -> Path:
    import torch

    path = folder / "scripted.pt"
    torch.jit.script(frontend_models.float_mlp()).save(str(path))
    return path


def state_dict_alone(folder: Path) -> Path:
    import torch

    path = folder / "state.pt"
    torch.save(frontend_models.float_mlp().state_dict(), path)
    return path


@pytest.mark.parametrize("make, args, message", [
    (lambda d: frontend_models.export_qonnx(frontend_models.brevitas_mlp(power_of_two=False), (8,), d / "fs.onnx"),
     [], "node 'Quant_0' (Quant): scale"),
    (lambda d: frontend_models.export_qonnx(frontend_models.brevitas_binary_mlp(weight_scale=0.1), (8,), d / "b.onnx"),
     [], "node 'BipolarQuant_0' (BipolarQuant): scale 0.1 is not a power of two"),
    (lambda d: frontend_models.export_qonnx(frontend_models.brevitas_bnn(negative_scale=True), (8,), d / "n.onnx"),
     [], "node 'BatchNormalization_0' (BatchNormalization): scale -"),
    (lambda d: frontend_models.unsupported_op(d / "sin.onnx"), [], "op Sin is not supported by hls4ml's ONNX converter"),
    (torchscript, ["--input-shape", "8"], "a TorchScript file"),
    (state_dict_alone, ["--input-shape", "8"], "a state dict: pass the Python file"),
    (lambda d: frontend_models.save_whole(frontend_models.float_mlp(), d / "m.pt"), [], "needs --input-shape"),
], ids=["non-power-of-two scale", "binary weights scaled by 0.1", "negative BatchNorm scale before a binary activation",
        "unsupported op", "torchscript", "state dict alone", "no input shape"])
def test_what_the_flow_cannot_carry_is_one_line(hlsflow, tmp_path, make, args, message):
    path = make(tmp_path)
    code, _, err = hlsflow("convert", path, "--out", tmp_path / "p", *args)
    line = assert_one_error_line(err, "convert")
    assert code == 2 and message in line and path.name in line
    assert not (tmp_path / "p").exists()


def test_convert_help_lists_the_formats(capsys):
    from flow.commands.cli import main

    assert main(["convert", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for fmt in (".onnx", "QONNX", ".pt/.pth", "--torch-module", "BinaryDense", ".keras"):
        assert fmt in text
