"""``hlsflow sim``: test vectors of a project (test data + full-range random inputs, the emulator's outputs)
and a cocotb run of ``PROJECT/rtl`` checked bit for bit, with agreement against the Keras/QKeras models."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from flow.core.errors import FlowError
from flow.core.simulators import simulator as get_simulator
from flow.core.staging import scratch_dir, written_atomically
from flow.rtl.port_map import PortMap
from flow.rtl.words import codes_to_values, values_to_codes
from flow.sim.runner import run_cocotb


@dataclass
class Vectors:
    """Test vectors of a project's RTL: inputs and the bit-exact emulator's outputs.

    ``x``: (N, *input shape) float64 input values, quantized to ``input_type``; the first
    ``test_data`` rows are the project's test data, the other ``random`` rows are drawn from every
    code of the input type. ``expected``: (N, n_outputs) emulator values at ``output_layer``.
    ``x_codes``/``y_codes``: the same as integer codes of the port map's input/output fields
    (``value = code * 2**-(width - integer_bits)``). ``model``/``meta``: the rebuilt project model and
    its ``project.json``; ``layer_map``: which Keras layer each graph layer holds.
    """

    x: np.ndarray
    expected: np.ndarray
    x_codes: np.ndarray
    y_codes: np.ndarray
    test_data: int
    random: int
    seed: int
    input_type: Any
    output_layer: str | None
    port_map: PortMap
    model: Any = field(repr=False)
    meta: dict[str, Any] = field(repr=False)
    layer_map: Any = field(default=None, repr=False)  # flow.hls.layer_map.LayerMap of model and graph


def build_vectors(project: str | Path, samples: int, seed: int = 0) -> Vectors:
    """Inputs and expected outputs for ``PROJECT/rtl``: what ``hlsflow sim`` and ``hlsflow ip`` check.

    Inputs: the project's test data (spec data set), then random values drawn from every code of the
    input type (seeded by ``seed``), ``samples`` in all, quantized to the input type. Expected
    outputs: the bit-exact emulator (:func:`flow.arith.emulate.emulate`) at the RTL's output layer, as
    values and as codes of the port map's output fields. FlowError when the port map does not fit
    the model.
    """
    from flow.arith.emulate import emulate
    from flow.arith.types import full_range_inputs, parse_type, quantize
    from flow.hls.layer_map import layer_map
    from flow.hls.project import project_test_data, rebuild

    project = Path(project)
    rtl_dir = project / "rtl"
    if samples < 1:
        raise FlowError(f"the number of samples must be >= 1, got {samples}")
    pm = PortMap.load(rtl_dir)
    in_fields, out_fields = pm.input.fields, pm.output.fields
    bi, bo = pm.input.beats, pm.output.beats  # beats per sample (pixel streams: one pixel per beat)
    with scratch_dir("vectors") as tmp:
        model, graph, meta = rebuild(project, Path(tmp) / "hls")
        input_type = parse_type(meta["input_type"])
        shape = tuple(int(d) for d in model.input_shape[1:])
        if int(np.prod(shape)) != bi * len(in_fields):
            raise FlowError(f"{rtl_dir / 'port_map.json'}: {bi * len(in_fields)} input fields, the model takes "
                            f"{shape} = {int(np.prod(shape))} values (regenerate the RTL: hlsflow rtl {project})")
        data = project_test_data(project, input_type, samples)
        rand = full_range_inputs(input_type, shape, samples - len(data), seed)
        x = np.concatenate([data.reshape(len(data), *shape), rand]) if len(data) else rand
        x = quantize(x, input_type)
        layer = pm.output_layer
        lmap = layer_map(model, graph)
        emu = emulate(graph, x, upto=layer).outputs
    if emu.shape[1:] != (bo * len(out_fields),):
        raise FlowError(f"{rtl_dir / 'port_map.json'}: {bo * len(out_fields)} output fields, the emulator gives "
                        f"{emu.shape[1:]} values at {layer or 'the output layer'}")
    x_codes = values_to_codes(x.reshape(len(x) * bi, -1), in_fields, "inputs").reshape(len(x), -1)
    y_codes = values_to_codes(emu.reshape(len(emu) * bo, -1), out_fields,
                              f"emulator outputs at {layer or 'the output layer'}").reshape(len(emu), -1)
    return Vectors(x=x, expected=emu, x_codes=x_codes, y_codes=y_codes, test_data=len(data), random=len(rand),
                   seed=seed, input_type=input_type, output_layer=layer, port_map=pm, model=model, meta=meta,
                   layer_map=lmap)


def sim_project(project: str | Path, simulator: str, samples: int = 2000, seed: int = 0,
                *, gaps: bool = True, backpressure: bool = True, reset_midstream: bool = True) -> dict[str, Any]:
    """``hlsflow sim``: simulate ``PROJECT/rtl`` with cocotb and check every output bit against the emulator.

    Inputs: the project's test data (spec data set), then random values drawn from every code of the
    input type, ``samples`` in all, quantized to the input type. Expected outputs: the bit-exact
    emulator (:func:`flow.arith.emulate.emulate`) at the RTL's output layer, as codes of the port map's
    output fields. Also compares the RTL's values with the project's model (QKeras or Keras) and
    with ``float_model.h5`` when present (argmax agreement, max/mean absolute error).
    Writes ``PROJECT/rtl/sim_<simulator>.json`` and ``sim_<simulator>.junit.xml`` (paths in the summary are
    relative to the project folder); the build lives in
    ``PROJECT/rtl/sim_build/<simulator>/``. ``ok`` is False on any differing bit, missing or extra
    output, or back-pressure violation.
    """
    from flow.hls.compare import compare_outputs, reference_outputs
    from flow.keras.model_io import load_model

    project = Path(project)
    rtl_dir = project / "rtl"
    if samples < 1:
        raise FlowError(f"--samples must be >= 1, got {samples}")
    get_simulator(simulator).require()
    vec = build_vectors(project, samples, seed)
    pm, model, meta, x, layer = vec.port_map, vec.model, vec.meta, vec.x, vec.output_layer
    out_fields = pm.output.fields
    x_codes, y_codes, input_type = vec.x_codes, vec.y_codes, vec.input_type
    tag = f"sim_{simulator}"
    result = run_cocotb(rtl_dir, x_codes, y_codes, simulator, seed=seed, build_dir=rtl_dir / "sim_build" / simulator,
                        junit=rtl_dir / f"{tag}.junit.xml", gaps=gaps, backpressure=backpressure,
                        reset_midstream=reset_midstream)
    codes = result.received_codes  # (N, beats * fields)
    rtl_values = codes_to_values(codes.reshape(-1, len(out_fields)), out_fields).reshape(len(codes), -1)
    is_qkeras = any(type(lay).__name__.startswith("Q") for lay in model.layers)
    models = [("qkeras" if is_qkeras else "model", model, meta["model"])]
    if (project / "float_model.h5").is_file() and meta["model"] != "float_model.h5":
        models.append(("float", load_model(project / "float_model.h5"), "float_model.h5"))
    references: dict[str, Any] = {}
    lmap = vec.layer_map
    at = layer or lmap.output
    from flow.hls.sources import ModelSource

    source = isinstance(model, ModelSource)  # ONNX, PyTorch, Keras files only hls4ml reads: the output only
    keras_layer, pre = ("model output", False) if source else (lmap.reference(at) or (None, False))
    if keras_layer is None:
        raise FlowError(f"the RTL's output layer {at!r} holds no layer of the model (graph layers holding "
                        f"Keras layers: {', '.join(lmap.graph_to_keras)})")
    for key, m, file in models:
        unavailable = getattr(m, "reference_unavailable", None)
        if source and not unavailable and at != lmap.output:
            unavailable = f"the {model.kind} model is compared at the graph's output ({lmap.output}) only"
        if unavailable:  # a model no framework runs here: said, not dropped
            references[key] = {"unavailable": unavailable, "file": file}
            continue
        ref = reference_outputs(m, lmap, x.astype(np.float32), [at])[at]
        references[key] = compare_outputs(rtl_values, ref, lmap.describe(at)) | {
            "file": file, "keras_layer": keras_layer + (" (pre-activation)" if pre else "")}
        if vec.test_data:  # the figures that matter for a float model: on real data, not random full-range inputs
            references[key]["test_data"] = {k: v for k, v in compare_outputs(
                rtl_values[:vec.test_data], ref[:vec.test_data], at).items() if k != "compared_at"}
    summary = {
        "project": project.name, "rtl": "rtl", "top": pm.top,
        "samples": {"total": len(x), "test_data": vec.test_data, "random_full_range": vec.random, "seed": seed},
        "input_type": str(input_type), "output_layer": layer,
        "rtl_vs_emulator": {k: v for k, v in result.to_dict().items()
                            if k in ("samples", "mismatching_samples", "differing_bits", "missing_outputs",
                                     "extra_outputs", "stall_violations", "unknown_handshakes",
                                     "first_mismatches")},
        "stimulus": {"gaps": gaps, "backpressure": backpressure, "reset_midstream": result.reset_midstream,
                     "resent_after_reset": result.resent_after_reset},
        "latency_cycles": {"measured": result.latency_cycles, "declared": result.latency_cycles_declared},
        "throughput_samples_per_cycle": result.throughput_samples_per_cycle,
        "simulator": {"name": simulator, "version": result.simulator_version,
                      "build_seconds": result.build_seconds, "test_seconds": result.test_seconds,
                      "samples_per_second": round(result.samples_per_second, 1), "cycles": result.cycles},
        "rtl_vs_reference": references,
        "junit": f"rtl/{tag}.junit.xml",
        "ok": result.passed,
    }
    with written_atomically(rtl_dir / f"{tag}.json") as tmp:  # into an rtl/ that hlsflow made (port_map.json)
        tmp.write_text(json.dumps(summary, indent=2) + "\n")
    return summary
