"""``hlsflow verify``: the emulator against hls4ml's C simulation (and the Keras/QKeras model) on N inputs.

Inputs are the project's test data when its spec is present (``spec.yaml``), then random values
drawn uniformly from every representable value of the input type (``ap_fixed<W,I>``: all
``2**W`` codes are equally likely), so overflow paths are exercised too.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from flow.arith.types import full_range_inputs, parse_type
from flow.core.errors import FlowError
from flow.core.outputs import claim_file, first_line_starts
from flow.core.staging import scratch_dir
from flow.hls.project import project_test_data


def verify(project: str | Path, samples: int, seed: int = 0, write_exact_config: str | Path | None = None,
           error_bound: str | None = None, force: bool = False, allow_skip: bool = False,
           csim_timeout: float | None = None) -> dict[str, Any]:
    """Compare emulator, C simulation and model on ``samples`` inputs; counts of differing outputs.

    ``ok`` is False on any emulator/C-sim difference, and on any C-sim/model difference when the
    model is a QKeras model (a float model is not expected to match its quantized conversion).
    When the C simulation differs from the model, the mismatch doctor (:mod:`flow.commands.doctor`) compares
    every layer and names the first that differs, with its cause (``doctor``), and draws
    ``PROJECT/verify_layers.png``; for a float model it adds the precision each layer needs for
    ``error_bound`` (``'0.01'`` absolute or ``'2lsb'``; default 1 LSB of the output type).
    ``write_exact_config``: also write an hls4ml config file whose precisions all come from the
    QKeras quantizers, with exact accumulators (:func:`flow.hls.exact_config.exact_hls_config`); an existing file
    is replaced only if a previous ``--write-exact-config`` wrote it, or with ``force`` (checked before any work).
    When the emulator cannot run a layer of the graph, ``emulator_vs_csim`` is ``{"skipped": reason}`` and
    ``ok`` is False unless ``allow_skip`` (then the C-sim vs model check alone decides).

    The C simulation is built within ``csim_timeout`` seconds (None, the default: no limit). When it runs out,
    both comparisons with the C simulation are ``{"pending": reason}``, the emulator is compared with the model
    instead (``emulator_vs_model``), and ``ok`` is False unless ``allow_skip`` (then that comparison decides). A
    project whose report says its C-simulation check is pending (``convert``/``run`` ran out of their budget) gets
    this run's results in its report.json (and report.md) once the check passes (:func:`complete_pending_check`).
    """
    from flow.hls.compare import check_bit_exact, check_emulator_vs_model, emulator_or_skip
    from flow.hls.convert import build_graph, csim_predict, write_and_compile
    from flow.hls.csim_build import check_timeout
    from flow.hls.layer_map import layer_map
    from flow.hls.project import rebuild
    from flow.spec import Hardware

    project = Path(project)
    csim_timeout = check_timeout(csim_timeout)
    if samples < 1:
        raise FlowError(f"--samples must be >= 1, got {samples}")
    if write_exact_config is not None:
        from flow.hls.exact_config import EXACT_CONFIG_HEADER

        claim_file(write_exact_config, force, inputs=(project / "project.json",),
                   shown=f"--write-exact-config {write_exact_config}",
                   ours=lambda path: first_line_starts(path, EXACT_CONFIG_HEADER))
    with scratch_dir("verify") as tmp:
        model, graph, meta = rebuild(project, Path(tmp) / "hls")
        is_qkeras = any(type(layer).__name__.startswith("Q") for layer in model.layers)
        if write_exact_config is not None and not is_qkeras:
            raise FlowError(f"{project}: --write-exact-config needs a QKeras model (precisions come from its "
                            "quantizers); for a float model see `precision_needed` in the summary (--error-bound)")
        if error_bound is not None:  # a bad bound is bad input, before any compiling
            from flow.commands.doctor import parse_error_bound
            from flow.hls.exact_config import layer_types

            lmap = layer_map(model, graph)
            out_layer = next(layer for layer in graph.get_layers() if layer.name == lmap.compare_layer)
            parse_error_bound(error_bound, layer_types(out_layer).result)
        input_type = parse_type(meta["input_type"])
        data = project_test_data(project, input_type, samples)
        shape = tuple(int(d) for d in model.input_shape[1:])
        rand = full_range_inputs(input_type, shape, samples - len(data), seed)
        x = np.concatenate([data.reshape(len(data), *shape), rand]) if len(data) else rand
        build = write_and_compile(graph, csim_timeout)
        if build.pending:
            emu = ref = {"pending": build.pending_reason("run `hlsflow verify` again with a larger --csim-timeout, "
                                                         "or without one")}
            emu_ref = check_emulator_vs_model(model, graph, x.astype(np.float32))
        else:
            csim = csim_predict(graph, x)
            emu = emulator_or_skip(model, graph, x, csim)
            ref = check_bit_exact(model, graph, x.astype(np.float32), csim)
        differs = not ({"unavailable", "pending"} & set(ref)) and ref["outputs"] != ref["equal_outputs"]
        must_match = is_qkeras or bool(getattr(model, "bit_accurate", False))  # QKeras, QONNX with po2 scales
        hw = Hardware(**meta["hardware"])
        exact_cfg = exact_graph = None
        if is_qkeras and (differs or write_exact_config is not None):
            from flow.hls.exact_config import exact_hls_config

            exact_cfg = exact_hls_config(model, hw, meta["input_type"])
            exact_graph = build_graph(model, exact_cfg, hw, Path(tmp) / "exact")
        doctor = None
        if differs:
            doctor = _doctor(model, graph, layer_map(model, graph), x, exact_graph, error_bound, not is_qkeras,
                             project, Path(tmp))
    summary = {
        "project": str(project),
        "samples": {"total": len(x), "test_data": len(data), "random_full_range": len(rand), "seed": seed},
        "input_type": str(input_type),
        "csim": build.record(),
        "emulator_vs_csim": _counted(emu),
        "csim_vs_model": _counted(ref, model_is_qkeras=is_qkeras, must_match=must_match),
    }
    if build.pending:
        summary["emulator_vs_model"] = _counted(emu_ref, must_match=must_match)
    if doctor is not None:
        summary["doctor"] = doctor
    if write_exact_config is not None:
        from flow.hls.exact_config import write_hls4ml_yaml

        summary["exact_config"] = str(write_hls4ml_yaml(Path(write_exact_config), exact_cfg, hw))
    if build.pending:  # the emulator carries the check, and only with --allow-skip
        e = summary["emulator_vs_model"]
        summary["ok"] = allow_skip and (not must_match or e.get("differing_outputs", 1) == 0)
        return summary
    # a float model is quantized by the conversion, so only a model bit-accurate by design (QKeras, QONNX with
    # power-of-two scales) must match bit for bit; with no model-side values the record says why
    emulator_ok = allow_skip if "skipped" in emu else summary["emulator_vs_csim"]["differing_outputs"] == 0
    summary["ok"] = emulator_ok and (not must_match or summary["csim_vs_model"]["differing_outputs"] == 0)
    if summary["ok"]:
        complete_pending_check(project, summary)
    return summary


def _counted(comparison: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """A comparison record (:func:`flow.hls.compare.compare_outputs`) led by its ``differing_outputs`` and ``extra``; a
    record without outputs (``skipped``, ``unavailable``, ``pending``) as it is."""
    if "outputs" not in comparison:
        return comparison
    return {"differing_outputs": comparison["outputs"] - comparison["equal_outputs"], **extra, **comparison}


def complete_pending_check(project: Path, summary: dict[str, Any]) -> bool:
    """Put a passed ``verify`` run's results into ``project``'s report.json (and report.md, for a ``run``
    project) where they say the C-simulation check is pending: ``csim.status`` becomes ``"verified"``, each pending
    comparison becomes this run's, with ``checked_by``. Returns whether the report was changed (a report with
    nothing pending is left as it is). Files are replaced atomically."""
    import json

    from flow.commands.run_report import render_markdown
    from flow.core.staging import written_atomically

    path = project / "report.json"
    try:
        report = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    csim = report.get("csim") if isinstance(report, dict) else None
    if not isinstance(csim, dict) or csim.get("status") != "pending":
        return False
    by = f"checked by hlsflow verify on {summary['samples']['total']} inputs"
    csim.pop("complete_with", None)
    csim.update(status="verified", checked_by=by, verify_build=summary["csim"])
    for key, new in (("csim_vs_keras", "csim_vs_model"), ("csim_vs_qkeras", "csim_vs_model"),
                     ("emulator_vs_csim", "emulator_vs_csim")):
        if isinstance(report.get(key), dict) and "pending" in report[key]:
            report[key] = {**summary[new], "checked_by": by}
    with written_atomically(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    if (project / "report.md").is_file() and "accuracy" in report:
        with written_atomically(project / "report.md") as tmp:
            tmp.write_text(render_markdown(report))
    return True


def _doctor(model: Any, graph: Any, lmap: Any, x: np.ndarray, exact_graph: Any, error_bound: str | None,
            float_model: bool, project: Path, tmp: Path) -> dict[str, Any]:
    """The doctor's summary, with its plot moved to ``PROJECT/verify_layers.png`` when complete."""
    import shutil

    from flow.commands.doctor import diagnose
    from flow.commands.plots import plot_layer_differences

    try:
        doctor = diagnose(model, graph, lmap, x, exact_graph, error_bound, float_model)
    except FlowError as exc:  # a layer the emulator cannot run: no layer-by-layer comparison
        return {"skipped": str(exc)}
    rows = [r for r in doctor["layers"] if "skipped" not in r]
    if rows:
        plot = plot_layer_differences(rows, doctor["first_differing_layer"], tmp / "verify_layers.png")
        doctor["plot"] = str(shutil.move(str(plot), project / "verify_layers.png"))
    return doctor
