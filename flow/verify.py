"""``hlsflow verify``: the emulator against hls4ml's C simulation (and the Keras/QKeras model) on N inputs.

Inputs are the project's test data when its spec is present (``spec.yaml``), then random values
drawn uniformly from every representable value of the input type (``ap_fixed<W,I>``: all
``2**W`` codes are equally likely), so overflow paths are exercised too.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from flow.arith.types import FixedType, full_range_inputs, parse_type
from flow.errors import FlowError


def project_test_data(project: Path, input_type: FixedType, n: int) -> np.ndarray:
    """Up to ``n`` test samples from the project's spec, or an empty array when it has none."""
    spec_file = project / "spec.yaml"
    if not spec_file.is_file():
        return np.zeros((0,))
    from flow.data import load_dataset
    from flow.spec import load_spec

    spec = load_spec(spec_file)
    return load_dataset(spec.dataset, input_type, spec.training.seed).x_test[:n].astype(np.float64)


def verify(project: str | Path, samples: int, seed: int = 0) -> dict[str, Any]:
    """Compare emulator, C simulation and model on ``samples`` inputs; counts of differing outputs.

    ``ok`` is False on any emulator/C-sim difference, and on any C-sim/model difference when the
    model is a QKeras model (a float model is not expected to match its quantized conversion).
    """
    from flow.compare import check_bit_exact, check_emulator
    from flow.hls.convert import csim_predict, write_and_compile
    from flow.hls.project import rebuild

    project = Path(project)
    if samples < 1:
        raise FlowError(f"--samples must be >= 1, got {samples}")
    with tempfile.TemporaryDirectory(prefix="hlsflow-verify-") as tmp:
        model, graph, meta = rebuild(project, Path(tmp) / "hls")
        input_type = parse_type(meta["input_type"])
        data = project_test_data(project, input_type, samples)
        shape = tuple(int(d) for d in model.input_shape[1:])
        rand = full_range_inputs(input_type, shape, samples - len(data), seed)
        x = np.concatenate([data.reshape(len(data), *shape), rand]) if len(data) else rand
        write_and_compile(graph)
        csim = csim_predict(graph, x)
        emu = check_emulator(model, graph, x, csim).comparison
        ref = check_bit_exact(model, graph, x.astype(np.float32), csim)
    is_qkeras = any(type(layer).__name__.startswith("Q") for layer in model.layers)
    summary = {
        "project": str(project),
        "samples": {"total": len(x), "test_data": len(data), "random_full_range": len(rand), "seed": seed},
        "input_type": str(input_type),
        "emulator_vs_csim": {"differing_outputs": emu["outputs"] - emu["equal_outputs"], **emu},
        "csim_vs_model": {"differing_outputs": ref["outputs"] - ref["equal_outputs"], "model_is_qkeras": is_qkeras,
                          **ref},
    }
    # a float model is quantized by the conversion, so only a QKeras model must match bit for bit
    summary["ok"] = summary["emulator_vs_csim"]["differing_outputs"] == 0 and (
        not is_qkeras or summary["csim_vs_model"]["differing_outputs"] == 0)
    return summary
