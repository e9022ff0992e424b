"""The stages of ``hlsflow run`` and ``hlsflow convert`` in order, timed, with progress on stderr.

``run``: spec -> data -> float baseline -> QKeras QAT -> hls4ml conversion -> HLS project +
C simulation -> report. Everything is written into a staging folder that replaces
``<out>/<name>/`` only when every stage succeeded.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from flow import __version__
from flow.arith.types import FixedType, is_representable, parse_type, quantize
from flow.compare import accuracy, check_bit_exact, check_emulator
from flow.errors import FlowError
from flow.hls.project import save_meta
from flow.report import graph_types, graph_weight_stats, write_reports
from flow.spec import Hardware, NeuronPruning, Pruning, Spec, load_spec, read_yaml
from flow.staging import staged_dir


class Stages:
    """Numbered, timed stage banners on stderr; ``seconds`` keeps each stage's wall time."""

    def __init__(self, names: list[str]):
        self.names = names
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        i = self.names.index(name) + 1
        print(f"[{i}/{len(self.names)}] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        yield
        self.seconds[name] = round(time.perf_counter() - t0, 2)
        print(f"[{i}/{len(self.names)}] {name} done in {self.seconds[name]:.1f} s", file=sys.stderr, flush=True)
















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


NEURON_STAGE = "prune neurons + fine-tune"


def neuron_stage_names(spec: Spec) -> list[str]:
    """The stage ``run`` adds after QAT when the spec asks for neuron pruning (``pruning: {method: neurons}``)."""
    return [NEURON_STAGE] if isinstance(spec.pruning, NeuronPruning) else []


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


def rtl_stage_names(spec: Spec) -> list[str]:
    """The RTL stages ``run`` adds when the spec asks for RTL (``rtl: {enabled: true}``)."""
    if not spec.rtl.enabled:
        return []
    r = spec.rtl
    return ["RTL (da4ml) + lint" + (" + Yosys" if r.yosys else "") + (f" + {r.fpga} place and route" if r.fpga else "")
            + (f" + {r.asic} timing/power" if r.asic else "")] + [f"RTL simulation ({sim})" for sim in r.simulators]


def run_rtl_stages(spec: Spec, project: Path, stages: Stages) -> dict[str, Any]:
    """Generate ``project/rtl`` and simulate it with cocotb on each simulator of the spec; a report section."""
    from flow.rtl.generate import rtl_project
    from flow.sim.project import sim_project

    names = rtl_stage_names(spec)
    with stages.stage(names[0]):
        rtl = rtl_project(project, spec.rtl.latency_cutoff, yosys=spec.rtl.yosys, name=spec.name, fpga=spec.rtl.fpga,
                          asic=spec.rtl.asic, clock_period=spec.hardware.clock_period)
    physical = project / "rtl" / "physical.json"
    sims = {}
    for sim, name in zip(spec.rtl.simulators, names[1:]):
        with stages.stage(name):
            sims[sim] = sim_project(project, sim, spec.rtl.samples_for(sim), seed=spec.training.seed)
    out = {"generation": rtl, "simulation": sims}
    if physical.is_file():
        out["physical"] = json.loads(physical.read_text())
    return out


def run(spec_path: str | Path, out_root: str | Path = "hls_projects") -> dict[str, Any]:
    """Run the whole flow for one spec; returns the report (also written to ``<out>/<name>/``)."""
    spec = load_spec(spec_path)
    stages = Stages(["data", "train float baseline", "train QKeras (QAT)", *neuron_stage_names(spec),
                     "convert with hls4ml", "write HLS project + compile C simulation", "C simulation",
                     "bit-exact emulation", "report"]
                    + rtl_stage_names(spec))
    from flow.data import load_dataset
    from flow.hls import convert
    from flow.keras import train

    final = Path(out_root) / spec.name
    input_type = parse_type(spec.input_type)
    with staged_dir(final) as work:
        with stages.stage("data"):
            split = load_dataset(spec.dataset, input_type, spec.training.seed)
            print(f"  {len(split.x_train)} train / {len(split.x_test)} test samples, {split.n_classes} classes; "
                  f"inputs quantized to {input_type}", file=sys.stderr)
        models = {}
        for quantized, stage_name in ((False, "train float baseline"), (True, "train QKeras (QAT)")):
            with stages.stage(stage_name):
                model = build_and_train(spec, split, quantized)
                model.save(work / ("qkeras_model.h5" if quantized else "float_model.h5"))
                models[quantized] = model
        qmodel, neurons = models[True], None
        if neuron_stage_names(spec):
            from flow.plots import plot_neuron_activity

            with stages.stage(NEURON_STAGE):
                qmodel, neurons = prune_trained(spec, split, qmodel)
                (work / "qkeras_model.h5").rename(work / "qkeras_model_unpruned.h5")
                qmodel.save(work / "qkeras_model.h5")
                plot_neuron_activity(neurons, work / "neuron_activity.png")
        with stages.stage("convert with hls4ml"):
            graph, hls_config = to_hls_graph(qmodel, spec, str(input_type), work / "hls")
        with stages.stage("write HLS project + compile C simulation"):
            convert.write_and_compile(graph)
        with stages.stage("C simulation"):
            csim_out = convert.csim_predict(graph, split.x_test)
        with stages.stage("bit-exact emulation"):
            emu_check = check_emulator(qmodel, graph, split.x_test, csim_out)
            emu_cmp, emu_out = emu_check.comparison, emu_check.outputs
        with stages.stage("report"):
            float_out = train.predict(models[False], split.x_test)
            q_out = train.predict(qmodel, split.x_test)
            stats = graph_weight_stats(graph)
            n_params = int(models[False].count_params())
            report = {
                "name": spec.name,
                "hlsflow_version": __version__,
                "spec": "spec.yaml",
                "hardware": spec.hardware.__dict__,
                "pruning": spec.pruning.__dict__ if spec.pruning else None,
                "training": spec.training.__dict__,
                "samples": {"train": len(split.x_train), "test": len(split.x_test)},
                "input": {"type": str(input_type), "changed_by_quantization": split.inputs_changed,
                          "out_of_range": split.inputs_out_of_range},
                "accuracy": {"float": accuracy(float_out, split.y_test), "qkeras": accuracy(q_out, split.y_test),
                             "csim": accuracy(csim_out, split.y_test),
                             "emulator": accuracy(emu_out, split.y_test)},
                "csim_vs_qkeras": check_bit_exact(qmodel, graph, split.x_test, csim_out),
                "emulator_vs_csim": emu_cmp,
                "size": {"parameters": n_params, "float_bits": 32 * n_params,
                         "quantized_bits": stats["quantized_bits"], "sparsity": stats["sparsity"],
                         "zero_weights": stats["zero_weights"], "weights": stats["weights"]},
                "types": graph_types(graph),
                "hls_project": "hls",
            }
            if neurons is not None:
                report["neuron_pruning"] = neurons
            shutil.copyfile(spec.path, work / "spec.yaml")
            save_meta(work, "qkeras_model.h5", hls_config, spec.hardware, str(input_type))
            report["seconds"] = dict(stages.seconds)
        if spec.rtl.enabled:
            report["rtl"] = run_rtl_stages(spec, work, stages)
            report["seconds"] = dict(stages.seconds)
            report["rtl"] = relative_paths(report["rtl"], work)
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
                     samples: int = 1000, seed: int = 0, custom_objects: str | Path | None = None) -> dict[str, Any]:
    """Convert an existing Keras/QKeras/HGQ2 model to an HLS project and check its C simulation.

    Precisions come from ``config_path`` (an hls4ml config) when given, else from the model's
    quantizers with ``precision`` (``ap_fixed<W,I>``) as the default for float layers. The check feeds
    ``samples`` inputs drawn from N(0, 1) and quantized to the input type. ``custom_objects`` is a
    Python file defining the model's own layers (:func:`flow.keras.model_io.load_custom_objects`); it
    is copied into the project so later commands rebuild the same graph. Runs in this process's front
    end (the CLI picks the worker that matches the model file).
    """
    from flow.hls import convert
    from flow.keras.env import FRONTEND
    from flow.keras.model_io import load_model, save_model

    stages = Stages(["load model", "convert with hls4ml", "write HLS project + compile C simulation",
                     "C simulation", "report"])
    hw = hardware or Hardware()
    model_path = Path(model_path)
    with stages.stage("load model"):
        model = load_model(model_path, weights, custom_objects)
    with stages.stage("convert with hls4ml"):
        in_name = convert.input_layer_name(model)
        if config_path is not None:
            cfg = load_hls4ml_yaml(Path(config_path))
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
            hls_config = convert.derive_hls_config(model, hw, input_type)
            if precision is not None:
                _check_type(precision, "--precision")
                hls_config["Model"]["Precision"] = precision
                if input_type is None:
                    hls_config["LayerName"][in_name]["Precision"]["result"] = precision
    final = Path(out_dir)
    with staged_dir(final) as work:
        graph = None
        with stages.stage("write HLS project + compile C simulation"):
            try:
                graph = convert.build_graph(model, hls_config, hw, work / "hls")
            except FlowError as exc:
                raise FlowError(f"{config_path}: {exc}") if config_path is not None else exc from None
            if config_path is not None:
                check_config_names(Path(config_path), hls_config, model, graph)
            in_type = graph_input_type(graph)  # also HGQ2's, which hls4ml infers from the model's input quantizer
            convert.write_and_compile(graph)
        with stages.stage("C simulation"):
            rng = np.random.default_rng(seed)
            x = quantize(rng.standard_normal((samples, *model.input_shape[1:])), in_type).astype(np.float32)
            assert is_representable(x, in_type)
            csim_out = convert.csim_predict(graph, x)
        with stages.stage("report"):
            report = {
                "model": str(model_path), "frontend": FRONTEND.name, "hlsflow_version": __version__,
                "hardware": hw.__dict__,
                "input": {"type": str(in_type), "samples": samples, "distribution": "N(0,1) quantized to input type"},
                "csim_vs_keras": check_bit_exact(model, graph, x, csim_out),
                "emulator_vs_csim": _emulator_or_reason(model, graph, x, csim_out),
                "types": graph_types(graph), "size": graph_weight_stats(graph), "hls_project": str(final / "hls"),
            }
            report["seconds"] = dict(stages.seconds)
            saved = save_model(model, work)
            save_meta(work, saved, hls_config, hw, str(in_type), FRONTEND.name,
                      Path(custom_objects) if custom_objects is not None else None)
            (work / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


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


def _emulator_or_reason(model: Any, graph: Any, x: np.ndarray, csim_out: np.ndarray) -> dict[str, Any]:
    """Emulator check for third-party models, or the reason it cannot run (an unsupported layer)."""
    try:
        return check_emulator(model, graph, x, csim_out).comparison
    except FlowError as exc:
        return {"skipped": str(exc)}


def _check_type(text: str, what: str) -> FixedType:
    try:
        return parse_type(text)
    except ValueError as exc:
        raise FlowError(f"{what}: {exc}") from None
