"""The steps of ``hlsflow run`` and ``hlsflow convert``, as named steps over one context (:mod:`flow.commands.steps`).

``run``: spec -> data -> float baseline -> QKeras QAT -> (neuron pruning) -> hls4ml conversion -> HLS
project + C simulation -> emulator -> report -> (RTL, its simulations). ``convert``: a user's model ->
hls4ml conversion -> HLS project + C simulation -> report. Everything is written into a staging folder
that replaces ``<out>/<name>/`` only when every step succeeded. The training, pruning and conversion steps
are shared with a sweep point (:mod:`flow.sweep.evaluate`).
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from flow import __version__
from flow.arith.types import FixedType, is_representable, parse_type, quantize
from flow.commands.run_report import graph_types, graph_weight_stats, write_reports
from flow.commands.steps import FlowContext, Step, execute
from flow.core.errors import FlowError
from flow.core.outputs import PROJECT, claim_output
from flow.core.staging import staged_dir
from flow.data import accuracy
from flow.hls.compare import check_bit_exact, check_emulator, check_emulator_vs_model, emulator_alone, emulator_or_skip
from flow.hls.csim_build import DEFAULT_TIMEOUT_S, CsimBuild, check_timeout
from flow.hls.project import save_meta
from flow.spec import Hardware, NeuronPruning, Pruning, Spec, load_spec, read_yaml


def build_and_train(spec: Spec, split: Any, quantized: bool) -> Any:
    """Build the float (``quantized=False``) or QKeras model of ``spec`` and train it on ``split``, seeded."""
    from flow.keras import network, train
    from flow.keras.env import set_seed

    set_seed(spec.training.seed)
    model = network.build_model(spec, quantized)
    n_out = int(model.output_shape[-1])
    if n_out != split.n_classes:
        raise FlowError(f"{spec.path}: the last layer has {n_out} outputs but the data set has "
                        f"{split.n_classes} classes")
    magnitude = spec.pruning if isinstance(spec.pruning, Pruning) else None  # neuron pruning: prune_trained()
    train.train(model, split, spec.training, magnitude, "qkeras" if quantized else "float",
                not network.ends_in_softmax(spec))
    return model


def prune_trained(spec: Spec, split: Any, qmodel: Any) -> tuple[Any, dict[str, Any]]:
    """Neuron pruning of the trained QKeras model as ``spec.pruning`` (a :class:`NeuronPruning`) asks:
    the narrower, fine-tuned model and the record of what was removed (:mod:`flow.keras.prune_neurons`)."""
    from flow.keras import network
    from flow.keras.prune_neurons import prune_neurons

    return prune_neurons(qmodel, split, spec.pruning, spec.training, not network.ends_in_softmax(spec), str(spec.path))


def to_hls_graph(qmodel: Any, spec: Spec, input_type: str, hls_dir: Path) -> tuple[Any, dict]:
    """hls4ml config (precisions from the QKeras quantizers) and ModelGraph writing to ``hls_dir`` (nothing written yet)."""
    from flow.hls import convert

    hls_config = convert.derive_hls_config(qmodel, spec.hardware, input_type)
    return convert.build_graph(qmodel, hls_config, spec.hardware, hls_dir), hls_config


# ----------------------------------------------------------------------------- steps shared with sweep points

def prunes_neurons(ctx: FlowContext) -> bool:
    return isinstance(ctx.spec.pruning, NeuronPruning)


def step_train_qat(ctx: FlowContext) -> None:
    """The spec's QKeras model, trained (QAT, magnitude pruning if asked), saved as ``qkeras_model.h5``."""
    ctx.qmodel = build_and_train(ctx.spec, ctx.split, quantized=True)
    ctx.qmodel.save(ctx.work / "qkeras_model.h5")


def step_prune_neurons(ctx: FlowContext) -> None:
    """Neuron pruning and fine-tuning; the unpruned model stays as ``qkeras_model_unpruned.h5``."""
    ctx.qmodel, ctx.neurons = prune_trained(ctx.spec, ctx.split, ctx.qmodel)
    (ctx.work / "qkeras_model.h5").rename(ctx.work / "qkeras_model_unpruned.h5")
    ctx.qmodel.save(ctx.work / "qkeras_model.h5")


def step_convert(ctx: FlowContext) -> None:
    ctx.graph, ctx.hls_config = to_hls_graph(ctx.qmodel, ctx.spec, str(ctx.input_type), ctx.work / "hls")


TRAIN_QAT = Step("train QKeras (QAT)", step_train_qat)
PRUNE_NEURONS = Step("prune neurons + fine-tune", step_prune_neurons, when=prunes_neurons)
CONVERT = Step("convert with hls4ml", step_convert)


# ----------------------------------------------------------------------------- the steps of `hlsflow run`

def step_data(ctx: FlowContext) -> None:
    from flow.data import load_dataset

    ctx.split = load_dataset(ctx.spec.dataset, ctx.input_type, ctx.spec.training.seed)
    s = ctx.split
    print(f"  {len(s.x_train)} train / {len(s.x_test)} test samples, {s.n_classes} classes; "
          f"inputs quantized to {ctx.input_type}", file=sys.stderr)


def step_train_float(ctx: FlowContext) -> None:
    ctx.float_model = build_and_train(ctx.spec, ctx.split, quantized=False)
    ctx.float_model.save(ctx.work / "float_model.h5")


def step_prune_neurons_and_plot(ctx: FlowContext) -> None:
    """:func:`step_prune_neurons`, and the per-unit activity plot ``neuron_activity.png``."""
    from flow.commands.plots import plot_neuron_activity

    step_prune_neurons(ctx)
    plot_neuron_activity(ctx.neurons, ctx.work / "neuron_activity.png")


def step_write_and_compile(ctx: FlowContext) -> None:
    """Write the HLS project and build its C simulation within ``options["csim_timeout"]`` seconds (the build's
    record in ``options["csim"]``: :class:`flow.hls.csim_build.CsimBuild`)."""
    from flow.hls import convert

    ctx.options["csim"] = convert.write_and_compile(ctx.graph, ctx.options.get("csim_timeout"))


def csim_pending(ctx: FlowContext) -> bool:
    """Whether the C-simulation build ran out of its time budget (the emulator then carries the flow)."""
    build = ctx.options.get("csim")
    return build is not None and build.pending


def pending_record(build: CsimBuild, project: Path) -> dict[str, str]:
    """What report.json holds in place of a comparison with the C simulation while its build is pending."""
    return {"pending": build.pending_reason(f"`{verify_command(project)}` builds it and runs this check")}


def verify_command(project: Path) -> str:
    """The command that completes a pending C-simulation check of ``project``."""
    return f"hlsflow verify {shlex.quote(str(project))}"


def csim_record(build: CsimBuild, project: Path) -> dict[str, Any]:
    """report.json's ``csim`` section: the build (:meth:`CsimBuild.record`), and when it is pending the command
    that completes the check."""
    return build.record() | ({"complete_with": verify_command(project)} if build.pending else {})


def pending_line(command: str, report: dict[str, Any]) -> str | None:
    """The one terminal line of a command whose C-simulation check is pending (None when it is not)."""
    csim = report.get("csim") or {}
    if csim.get("status") != "pending":
        return None
    return (f"hlsflow {command}: C simulation pending: g++ {csim['opt_level']} did not finish within "
            f"{csim['timeout_seconds']:g} s and was stopped; the project holds the emulator's results; "
            f"complete the check with: {csim['complete_with']}")


def step_csim(ctx: FlowContext) -> None:
    from flow.hls import convert

    if csim_pending(ctx):
        print("  not run: the C simulation is pending (the emulator carries the flow)", file=sys.stderr)
        return
    ctx.csim_out = convert.csim_predict(ctx.graph, ctx.split.x_test)


def step_emulate(ctx: FlowContext) -> None:
    if csim_pending(ctx):
        reason = pending_record(ctx.options["csim"], ctx.final)["pending"]
        ctx.emulation = emulator_alone(ctx.graph, ctx.split.x_test, reason)
        return
    ctx.emulation = check_emulator(ctx.qmodel, ctx.graph, ctx.split.x_test, ctx.csim_out)


def step_report(ctx: FlowContext) -> None:
    from flow.keras import train

    spec, split, graph = ctx.spec, ctx.split, ctx.graph
    float_out = train.predict(ctx.float_model, split.x_test)
    q_out = train.predict(ctx.qmodel, split.x_test)
    build = ctx.options.get("csim")
    pending = csim_pending(ctx)
    stats = graph_weight_stats(graph)
    n_params = int(ctx.float_model.count_params())
    report = {
        "name": spec.name,
        "hlsflow_version": __version__,
        "spec": "spec.yaml",
        "hardware": spec.hardware.__dict__,
        "pruning": spec.pruning.__dict__ if spec.pruning else None,
        "training": spec.training.__dict__,
        "samples": {"train": len(split.x_train), "test": len(split.x_test)},
        "input": {"type": str(ctx.input_type), "changed_by_quantization": split.inputs_changed,
                  "out_of_range": split.inputs_out_of_range},
        "accuracy": {"float": accuracy(float_out, split.y_test), "qkeras": accuracy(q_out, split.y_test),
                     "csim": None if pending else accuracy(ctx.csim_out, split.y_test),
                     "emulator": accuracy(ctx.emulation.outputs, split.y_test)},
        "csim_vs_qkeras": pending_record(build, ctx.final) if pending else
        check_bit_exact(ctx.qmodel, graph, split.x_test, ctx.csim_out),
        "emulator_vs_csim": ctx.emulation.comparison,
        "size": {"parameters": n_params, "float_bits": 32 * n_params,
                 "quantized_bits": stats["quantized_bits"], "sparsity": stats["sparsity"],
                 "zero_weights": stats["zero_weights"], "weights": stats["weights"]},
        "types": graph_types(graph),
        "hls_project": "hls",
    }
    if build is not None:
        report["csim"] = csim_record(build, ctx.final)
    if pending:
        report["emulator_vs_qkeras"] = check_emulator_vs_model(ctx.qmodel, graph, split.x_test, ctx.emulation.outputs)
    if ctx.neurons is not None:
        report["neuron_pruning"] = ctx.neurons
    shutil.copyfile(spec.path, ctx.work / "spec.yaml")
    save_meta(ctx.work, "qkeras_model.h5", ctx.hls_config, spec.hardware, str(ctx.input_type))
    ctx.figures["report"] = report


def step_rtl(ctx: FlowContext) -> None:
    from flow.commands.rtl_command import rtl_project

    r = ctx.spec.rtl
    rtl = ctx.figures.setdefault("rtl", {})
    rtl["generation"] = rtl_project(ctx.work, r.latency_cutoff, yosys=r.yosys, name=ctx.spec.name, fpga=r.fpga,
                                    asic=r.asic, clock_period=ctx.spec.hardware.clock_period,
                                    architecture=r.architecture)
    physical = ctx.work / "rtl" / "physical.json"
    if physical.is_file():
        rtl["physical"] = json.loads(physical.read_text())


def step_sim(simulator: str) -> Step:
    """The RTL simulation on ``simulator`` (one step per simulator the spec lists)."""
    def fn(ctx: FlowContext) -> None:
        from flow.sim.sim_project import sim_project

        sims = ctx.figures.setdefault("rtl", {}).setdefault("simulation", {})
        sims[simulator] = sim_project(ctx.work, simulator, ctx.spec.rtl.samples_for(simulator),
                                      seed=ctx.spec.training.seed)

    return Step(f"RTL simulation ({simulator})", fn, when=lambda ctx: ctx.spec.rtl.enabled)


def run_steps(spec: Spec) -> list[Step]:
    """The steps of ``hlsflow run`` for ``spec`` (the RTL ones when the spec asks for RTL)."""
    r = spec.rtl
    rtl = ("RTL (da4ml) + lint" + (" + Yosys" if r.yosys else "") + (f" + {r.fpga} place and route" if r.fpga else "")
           + (f" + {r.asic} timing/power" if r.asic else ""))
    return [
        Step("data", step_data),
        Step("train float baseline", step_train_float),
        TRAIN_QAT,
        Step(PRUNE_NEURONS.name, step_prune_neurons_and_plot, when=prunes_neurons),
        CONVERT,
        Step("write HLS project + compile C simulation", step_write_and_compile),
        Step("C simulation", step_csim),
        Step("bit-exact emulation", step_emulate),
        Step("report", step_report),
        Step(rtl, step_rtl, when=lambda ctx: ctx.spec.rtl.enabled),
        *[step_sim(sim) for sim in spec.rtl.simulators],
    ]


def run(spec_path: str | Path, out_root: str | Path = "hls_projects", force: bool = False,
        csim_timeout: float | None = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Run the whole flow for one spec; returns the report (also written to ``<out>/<name>/``).

    An existing ``<out>/<name>`` is replaced only if it is an hlsflow project, or with ``force``
    (:func:`flow.core.outputs.claim_output`, checked before any work). The C-simulation build gets ``csim_timeout``
    seconds (None: no limit); past them the flow goes on with the emulator and the report says the check is
    ``pending`` (:func:`pending_line`)."""
    csim_timeout = check_timeout(csim_timeout)
    spec = load_spec(spec_path)
    final = Path(out_root) / spec.name
    data = spec.dataset.source if spec.dataset.source != "digits" else None
    claim_output(final, PROJECT, force, inputs=(spec_path, data))
    ctx = FlowContext(spec=spec, final=final, input_type=parse_type(spec.input_type),
                      options={"csim_timeout": csim_timeout})
    with staged_dir(final, PROJECT, force) as work:
        ctx.work = work
        execute(run_steps(spec), ctx)
        report = ctx.figures["report"]
        report["seconds"] = dict(ctx.seconds)
        if "rtl" in ctx.figures:
            report["rtl"] = relative_paths(ctx.figures["rtl"], work)
        write_reports(work, report)
    return report


def relative_paths(section: dict[str, Any], project: Path) -> dict[str, Any]:
    """``section`` with every path inside ``project`` written relative to it (reports hold no machine paths)."""
    text = json.dumps(section, default=str)
    for root in {str(project), str(Path(project).resolve())}:
        text = text.replace(root + "/", "").replace(root, ".")
    return json.loads(text)


def load_hls4ml_yaml(path: Path) -> dict[str, Any]:
    """Read an hls4ml YAML config (``Backend``, ``Part``, ``IOType``, ``HLSConfig``, ...)."""
    from flow.hls.config_check import check_hls4ml_yaml

    return check_hls4ml_yaml(path, read_yaml(path, "config file"))


def convert_existing(model_path: str | Path, out_dir: str | Path, config_path: str | Path | None = None,
                     weights: str | Path | None = None, precision: str | None = None,
                     input_type: str | None = None, hardware: Hardware | None = None,
                     samples: int = 1000, seed: int = 0, custom_objects: str | Path | None = None,
                     input_shape: str | tuple[int, ...] | None = None,
                     module_file: str | Path | None = None, force: bool = False,
                     csim_timeout: float | None = DEFAULT_TIMEOUT_S) -> dict[str, Any]:
    """Convert an existing Keras/QKeras/HGQ2 model to an HLS project and check its C simulation.

    Precisions come from ``config_path`` (an hls4ml config) when given, else from the model's
    quantizers with ``precision`` (``ap_fixed<W,I>``) as the default for float layers. The check feeds
    ``samples`` inputs drawn from N(0, 1) and quantized to the input type. ``custom_objects`` is a
    Python file defining the model's own layers (:func:`flow.keras.model_io.load_custom_objects`); it
    is copied into the project so later commands rebuild the same graph. Runs in this process's front
    end (the CLI picks the worker that matches the model file). ONNX/QONNX and PyTorch files, and Keras files
    only hls4ml's reader knows, are opened by :func:`flow.hls.model_files.open_model`; ``input_shape`` (one
    sample, channels first, a tuple or ``'C,H,W'``) and ``module_file`` (a state dict's module) are PyTorch's.
    An existing ``out_dir`` is replaced only if it is an hlsflow project, or with ``force``; never the folder
    holding an input (:func:`flow.core.outputs.claim_output`). The C-simulation build gets ``csim_timeout`` seconds
    (None: no limit); past them the project is written with the emulator's check against the model and the report
    says the C-simulation check is ``pending`` (:func:`pending_line`).
    """
    csim_timeout = check_timeout(csim_timeout)
    claim_output(out_dir, PROJECT, force, inputs=(model_path, weights, config_path, custom_objects, module_file))
    if isinstance(input_shape, str):
        from flow.hls.torch_source import parse_input_shape

        input_shape = parse_input_shape(input_shape)
    ctx = FlowContext(final=Path(out_dir), options={
        "model_path": Path(model_path), "config_path": None if config_path is None else Path(config_path),
        "weights": weights, "precision": precision, "input_type": input_type, "hardware": hardware or Hardware(),
        "samples": samples, "seed": seed, "custom_objects": custom_objects, "input_shape": input_shape,
        "module_file": module_file, "csim_timeout": csim_timeout})
    n = len(CONVERT_STEPS)
    execute(CONVERT_STEPS[:2], ctx, numbered=(1, n))  # nothing is written before the model and its config are read
    with staged_dir(ctx.final, PROJECT, force) as work:
        ctx.work = work
        execute(CONVERT_STEPS[2:], ctx, numbered=(3, n))
    return ctx.figures["report"]


def step_load_model(ctx: FlowContext) -> None:
    from flow.hls.model_files import open_model

    o = ctx.options
    ctx.qmodel = open_model(o["model_path"], o["weights"], o["custom_objects"], o.get("input_shape"),
                            o.get("module_file"))
    unavailable = getattr(ctx.qmodel, "reference_unavailable", None)
    if unavailable:
        print(f"  {unavailable}", file=sys.stderr)


def step_user_config(ctx: FlowContext) -> None:
    """The hls4ml config: the user's (``--config``, with ``--input-type`` set on the input layer), or derived
    from the model's quantizers (``--precision`` as the default of float layers)."""
    from flow.hls import convert

    o, model = ctx.options, ctx.qmodel
    hw = o["hardware"]
    in_name = convert.input_layer_name(model)
    input_type = o["input_type"]
    if o["config_path"] is not None:
        cfg = load_hls4ml_yaml(o["config_path"])
        hw = Hardware(backend=cfg.get("Backend", hw.backend), part=cfg.get("Part", hw.part),
                      clock_period=float(cfg.get("ClockPeriod", hw.clock_period)),
                      io_type=cfg.get("IOType", hw.io_type), strategy=hw.strategy, reuse_factor=hw.reuse_factor)
        hls_config = cfg["HLSConfig"]
        if input_type is not None:
            _check_type(input_type, "--input-type")
            layer_cfg = hls_config.setdefault("LayerName", {}).setdefault(in_name, {})
            if not isinstance(layer_cfg.get("Precision"), dict):  # a single type string: it was the result type
                layer_cfg["Precision"] = {}
            layer_cfg["Precision"]["result"] = input_type
    else:
        try:
            hls_config = convert.derive_hls_config(model, hw, input_type)
        except convert.UnsupportedLayer as exc:
            raise FlowError(f"{o['model_path']}: {exc}") from None
        if o["precision"] is not None:
            _check_type(o["precision"], "--precision")
            hls_config["Model"]["Precision"] = o["precision"]
            if input_type is None:
                hls_config["LayerName"][in_name]["Precision"]["result"] = o["precision"]
    ctx.hls_config, o["hardware"] = hls_config, hw


def step_user_graph(ctx: FlowContext) -> None:
    """The ModelGraph of the user's model, its config names checked, its input type read from it, written and
    compiled."""
    from flow.hls import convert

    o = ctx.options
    try:
        ctx.graph = convert.build_graph(ctx.qmodel, ctx.hls_config, o["hardware"], ctx.work / "hls")
    except convert.UnsupportedLayer as exc:
        raise FlowError(f"{o['model_path']}: {exc}") from None
    except FlowError as exc:
        raise FlowError(f"{o['config_path']}: {exc}") if o["config_path"] is not None else exc from None
    if o["config_path"] is not None:
        check_config_names(o["config_path"], ctx.hls_config, ctx.qmodel, ctx.graph)
    ctx.input_type = graph_input_type(ctx.graph)  # also HGQ2's, which hls4ml infers from the model's input quantizer
    o["csim"] = convert.write_and_compile(ctx.graph, o["csim_timeout"])


def step_user_csim(ctx: FlowContext) -> None:
    """The C simulation on random inputs: N(0, 1), quantized to the input type."""
    from flow.hls import convert

    o = ctx.options
    rng = np.random.default_rng(o["seed"])
    x = quantize(rng.standard_normal((o["samples"], *ctx.qmodel.input_shape[1:])), ctx.input_type).astype(np.float32)
    assert is_representable(x, ctx.input_type)
    o["x"] = x
    if csim_pending(ctx):
        print("  not run: the C simulation is pending (the emulator is checked against the model)", file=sys.stderr)
        ctx.csim_out = None
        return
    ctx.csim_out = convert.csim_predict(ctx.graph, x)


def step_user_report(ctx: FlowContext) -> None:
    from flow.hls.model_files import model_record, save_model
    from flow.keras.env import FRONTEND

    o, model, graph = ctx.options, ctx.qmodel, ctx.graph
    build: CsimBuild = o["csim"]
    if build.pending:
        csim_vs_keras = emulator_vs_csim = pending_record(build, ctx.final)
    else:
        csim_vs_keras = check_bit_exact(model, graph, o["x"], ctx.csim_out)
        emulator_vs_csim = emulator_or_skip(model, graph, o["x"], ctx.csim_out)
    report = {
        "model": str(o["model_path"]), "frontend": FRONTEND.name, "hlsflow_version": __version__,
        "hardware": o["hardware"].__dict__,
        "input": {"type": str(ctx.input_type), "samples": o["samples"], "distribution": "N(0,1) quantized to input type"},
        "csim": csim_record(build, ctx.final), "csim_vs_keras": csim_vs_keras, "emulator_vs_csim": emulator_vs_csim,
        "types": graph_types(graph), "size": graph_weight_stats(graph), "hls_project": str(ctx.final / "hls"),
    }
    if build.pending:
        report["emulator_vs_keras"] = check_emulator_vs_model(model, graph, o["x"])
    report["seconds"] = dict(ctx.seconds)
    saved = save_model(model, ctx.work)
    save_meta(ctx.work, saved, ctx.hls_config, o["hardware"], str(ctx.input_type), FRONTEND.name,
              Path(o["custom_objects"]) if o["custom_objects"] is not None else None, model_record(model))
    (ctx.work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    ctx.figures["report"] = report


CONVERT_STEPS = [
    Step("load model", step_load_model),
    Step("convert with hls4ml", step_user_config),
    Step("write HLS project + compile C simulation", step_user_graph),
    Step("C simulation", step_user_csim),
    Step("report", step_user_report),
]


def check_config_names(path: Path, hls_config: dict, model: Any, graph: Any) -> None:
    """Warn (stderr) about ``HLSConfig.LayerName`` entries for layers hls4ml removed or fused; FlowError
    for names that match no layer of the model or its graph."""
    from flow.hls.layer_map import config_names_report, layer_map

    absorbed, unknown = config_names_report(hls_config, layer_map(model, graph))
    if unknown:
        raise FlowError(f"{path}: HLSConfig.LayerName names layers that are neither in the model nor in its "
                        f"hls4ml graph: {', '.join(unknown)}")
    if absorbed:
        print(f"hlsflow: warning: {path}: HLSConfig.LayerName entries for layers hls4ml removed or fused "
              f"(their settings apply to no layer): {', '.join(absorbed)}", file=sys.stderr)


def graph_input_type(graph: Any) -> FixedType:
    """The fixed-point type of the graph's (single) input layer, as hls4ml resolved it from the config
    (layer name, then layer type, then model default)."""
    from flow.arith.types import from_hls_precision

    var = graph.get_input_variables()
    if len(var) != 1:
        raise FlowError(f"the graph has {len(var)} inputs; only single-input models are supported")
    try:
        return from_hls_precision(var[0].type.precision)
    except ValueError as exc:
        raise FlowError(f"input type: {exc}") from None


def _check_type(text: str, what: str) -> FixedType:
    try:
        return parse_type(text)
    except ValueError as exc:
        raise FlowError(f"{what}: {exc}") from None
