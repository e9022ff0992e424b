"""One sweep point: train (QAT, then neuron pruning when the point asks) or quantize (PTQ), convert, write
the project, emulate, cost (BOPs)."""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from pathlib import Path
from typing import Any

import yaml

from flow.core.errors import FlowError
from flow.spec import Spec
from flow.sweep.config import Sweep, point_key


def bit_operations(graph: Any) -> dict[str, Any]:
    """Bit operations (BOPs) of one inference of an hls4ml graph, in total and per layer.

    For every layer with a kernel (Dense, Conv): ``P`` output positions (1 for Dense, out_height x
    out_width for Conv2D), weight width ``b_w``, input width ``b_x`` and accumulator width ``b_acc``
    (bits, all read from the graph), and ``nz_j`` the non-zero quantized weights feeding output ``j``::

        BOPs = P * sum_j ( nz_j * b_w * b_x  +  max(0, nz_j - 1 + [bias_j != 0]) * b_acc )

    a ``b_w x b_x`` multiply per non-zero weight (weights pruned or rounded to zero cost nothing) and
    one ``b_acc``-bit addition per product and bias after the first. Activations and pooling count 0;
    zero padding of convolutions is not subtracted. The reuse factor and io type change how the
    operations are scheduled, not their number.
    """
    import numpy as np

    total = 0
    layers: dict[str, int] = {}
    for layer in graph.get_layers():
        weight = layer.weights.get("weight") if hasattr(layer, "weights") else None
        if weight is None or layer.get_input_variable() is None:
            continue
        kernel = np.asarray(weight.data)
        if layer.get_attr("_weights_transposed", False) is True:  # resource strategy stores outputs first
            kernel = np.moveaxis(kernel, 0, -1)
        n_out = kernel.shape[-1]
        nz = np.count_nonzero(kernel.reshape(-1, n_out), axis=0).astype(np.int64)
        bias = layer.weights.get("bias")
        bias_nz = (np.asarray(bias.data).reshape(-1) != 0).astype(np.int64) if bias is not None else 0
        b_w = int(weight.type.precision.width)
        b_x = int(layer.get_input_variable().type.precision.width)
        accum = layer.get_attr("accum_t")
        b_acc = int(accum.precision.width) if accum is not None else int(layer.get_output_variable().type.precision.width)
        positions = int(np.prod(layer.get_output_variable().shape)) // n_out
        per_pos = int(np.sum(nz * b_w * b_x + np.maximum(0, nz - 1 + bias_nz) * b_acc))
        layers[layer.name] = positions * per_pos
        total += positions * per_pos
    return {"bops": total, "layers": layers}


def rtl_cost(project_dir: Path) -> dict[str, float] | None:
    """Extra cost figures of a finished point from the vendor-free RTL flow, or None if it is unavailable.

    Hook for ``flow/commands/rtl_command.py``: calls ``flow.commands.rtl_command.cost_figures(project_dir)``, which
    returns numbers such as ``latency_cycles``, ``latency_ns``, ``luts``, ``ffs``, ``fmax_mhz`` (ECP5-85k
    after place-and-route), ``area_um2``, ``power_mw``, ``energy_nj`` (OSU 0.18 um) for the hlsflow
    project folder ``project_dir``. Returns None when ``flow.commands.rtl_command`` or that function does not exist.
    """
    import importlib

    try:
        rtl = importlib.import_module("flow.commands.rtl_command")
    except ModuleNotFoundError as exc:
        if exc.name == "flow.commands.rtl_command":
            return None
        raise
    fn = getattr(rtl, "cost_figures", None)
    if fn is None:
        return None
    return {str(k): float(v) for k, v in dict(fn(Path(project_dir))).items()}


# ---------------------------------------------------------------------------------------------------
# One point


class PointEvaluator:
    """Runs points of one sweep in this process; keeps the data split of each data set in memory."""

    def __init__(self, sweep: Sweep, points_dir: Path, log: Any | None = None):
        self.sweep = sweep
        self.points_dir = Path(points_dir)
        self.log = log  # file that receives training/hls4ml output, or None to leave it on stderr
        self._splits: dict[tuple, Any] = {}
        self._float: dict[str, Any] | None = None  # ptq: the float model, its accuracy and weights digest

    def _float_model(self, split: Any) -> dict[str, Any]:
        """PTQ: the sweep's float model (loaded once per process), its test accuracy and weights digest."""
        import numpy as np

        from flow.keras import train
        from flow.keras.model_io import load_model
        from flow.sweep.ptq import float_model_path, weights_digest

        if self._float is None:
            path = float_model_path(self.sweep, self.points_dir.parent)
            if not path.is_file():
                raise FlowError(f"{path}: the float model of this PTQ sweep is missing (`hlsflow sweep` trains "
                                f"it before it starts workers); rerun `hlsflow sweep {self.sweep.path}`")
            model = load_model(path)
            accuracy = float(np.mean(np.argmax(train.predict(model, split.x_test), axis=1) == split.y_test))
            self._float = {"model": model, "path": str(path), "accuracy": accuracy,
                           "weights_sha1": weights_digest(model)}
        return self._float

    def _split(self, spec: Spec) -> Any:
        from flow.arith.types import parse_type
        from flow.data import load_dataset

        key = (spec.dataset, spec.input_type, spec.training.seed)
        if key not in self._splits:
            self._splits[key] = load_dataset(spec.dataset, parse_type(spec.input_type), spec.training.seed)
        return self._splits[key]

    def evaluate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Train (QAT) or quantize (PTQ), convert, emulate and cost one point; writes its project folder;
        returns its figures.

        ``accuracy`` is the bit-exact emulator's on the test split, ``bops`` from :func:`bit_operations`,
        ``units`` the Dense units and Conv filters of the model (after neuron pruning, whose kept units per
        layer are in ``neuron_pruning``), ``mode`` ``qat``/``ptq`` (PTQ adds ``float_accuracy``,
        ``float_model``, ``float_weights_sha1``);
        ``seconds`` holds the wall time of each stage (s).
        """
        with contextlib.ExitStack() as stack:
            if self.log is not None:
                stack.enter_context(contextlib.redirect_stdout(self.log))
                stack.enter_context(contextlib.redirect_stderr(self.log))
            return self._evaluate(params)

    def _evaluate(self, params: dict[str, Any]) -> dict[str, Any]:
        from flow.commands.steps import FlowContext, execute
        from flow.core.outputs import PROJECT
        from flow.core.staging import staged_dir

        t_all = time.perf_counter()
        key = point_key(params)
        spec = self.sweep.point_spec(params)
        folder = f"{key}-ptq" if self.sweep.mode == "ptq" else key  # QAT and PTQ studies keep their own projects
        final = self.points_dir / folder
        for leftover in self.points_dir.glob(f".{folder}.tmp-*"):  # from a worker killed mid-point
            shutil.rmtree(leftover, ignore_errors=True)
        ctx = FlowContext(spec=spec, final=final, options={"evaluator": self, "params": params,
                                                           "raw": self.sweep.point_raw(params)})
        ctx.figures["mode"] = self.sweep.mode
        with staged_dir(final, PROJECT) as work:
            ctx.work = work
            execute(point_steps(), ctx, banners=False, digits=3)
            out = ctx.figures
            out["seconds"] = dict(ctx.seconds) | {"total": round(time.perf_counter() - t_all, 3)}
            out["project"] = str(final.resolve())
            (work / "point.json").write_text(json.dumps({"params": params, **out}, indent=2) + "\n")
        return out


# ----------------------------------------------------------------------------- the steps of a point

def _ptq(ctx: Any) -> bool:
    return ctx.options["evaluator"].sweep.mode == "ptq"


def step_point_data(ctx: Any) -> None:
    from flow.arith.types import parse_type

    ctx.split = ctx.options["evaluator"]._split(ctx.spec)
    ctx.input_type = parse_type(ctx.spec.input_type)


def step_load_float_model(ctx: Any) -> None:
    fm = ctx.options["evaluator"]._float_model(ctx.split)
    ctx.float_model = fm["model"]
    ctx.figures.update(float_accuracy=fm["accuracy"], float_model=fm["path"], float_weights_sha1=fm["weights_sha1"])


def step_quantize(ctx: Any) -> None:
    from flow.sweep.ptq import quantize_float_model

    ctx.qmodel = quantize_float_model(ctx.spec, ctx.float_model)
    ctx.qmodel.save(ctx.work / "qkeras_model.h5")


def step_prune_and_record(ctx: Any) -> None:
    """``hlsflow run``'s neuron-pruning step, and what it kept per layer in the point's figures."""
    from flow.commands import pipeline

    pipeline.step_prune_neurons(ctx)
    ctx.figures["neuron_pruning"] = {"layers": ctx.neurons["layers"], "accuracy_unpruned": ctx.neurons["accuracy_unpruned"]}


def step_write_project(ctx: Any) -> None:
    """The HLS project (no C compile) and the point's spec and project record: a complete hlsflow project."""
    from flow.hls.project import save_meta

    ctx.graph.write()
    (ctx.work / "spec.yaml").write_text(yaml.safe_dump(ctx.options["raw"], sort_keys=False))
    save_meta(ctx.work, "qkeras_model.h5", ctx.hls_config, ctx.spec.hardware, ctx.spec.input_type)


def step_point_emulate(ctx: Any) -> None:
    """Accuracy of the bit-exact emulator on the test split (at the logits of a softmax model)."""
    import numpy as np

    from flow.arith.emulate import emulate
    from flow.hls import compare

    emu = emulate(ctx.graph, ctx.split.x_test, upto=compare.logits_layer(ctx.qmodel, ctx.graph))
    ctx.figures["accuracy"] = float(np.mean(np.argmax(emu.outputs, axis=1) == ctx.split.y_test))
    ctx.figures["overflows"] = int(sum(emu.overflows.values()))


def step_qkeras_accuracy(ctx: Any) -> None:
    """One eager call of the QKeras model (Keras's predict() builds a new graph per model, ~0.3 s)."""
    import numpy as np

    q_out = np.asarray(ctx.qmodel(ctx.split.x_test, training=False), dtype=np.float64).reshape(len(ctx.split.x_test), -1)
    ctx.figures["qkeras_accuracy"] = float(np.mean(np.argmax(q_out, axis=1) == ctx.split.y_test))


def step_cost(ctx: Any) -> None:
    from flow.commands.run_report import graph_weight_stats
    from flow.keras.prune_neurons import model_widths

    ctx.figures["bops"] = bit_operations(ctx.graph)["bops"]
    stats = graph_weight_stats(ctx.graph)
    ctx.figures["weight_memory_bits"] = int(stats["quantized_bits"])
    ctx.figures["sparsity"] = float(stats["sparsity"])
    ctx.figures["units"] = sum(model_widths(ctx.qmodel).values())


def step_point_csim(ctx: Any) -> None:
    import numpy as np

    from flow.hls import compare, convert

    convert.write_and_compile(ctx.graph)
    csim_out = convert.csim_predict(ctx.graph, ctx.split.x_test)
    cmp = compare.check_emulator(ctx.qmodel, ctx.graph, ctx.split.x_test, csim_out)
    ctx.figures["csim_accuracy"] = float(np.mean(np.argmax(csim_out, axis=1) == ctx.split.y_test))
    ctx.figures["emulator_vs_csim_exact"] = float(cmp.comparison["exact_fraction"])


def point_steps() -> list:
    """The steps of one sweep point: QAT (with neuron pruning when asked) or PTQ, then the steps shared
    with ``hlsflow run`` (conversion) and the point's own (project, emulator accuracy, cost, C-sim)."""
    from flow.commands import pipeline
    from flow.commands.steps import Step

    qat = lambda ctx: not _ptq(ctx)  # noqa: E731
    return [
        Step("data", step_point_data),
        Step("load float model", step_load_float_model, when=_ptq),
        Step("quantize (PTQ)", step_quantize, when=_ptq),
        Step(pipeline.TRAIN_QAT.name, pipeline.TRAIN_QAT.fn, when=qat),
        Step(pipeline.PRUNE_NEURONS.name, step_prune_and_record, when=lambda ctx: qat(ctx) and pipeline.prunes_neurons(ctx)),
        pipeline.CONVERT,
        Step("write project", step_write_project),
        Step("emulate", step_point_emulate),
        Step("qkeras", step_qkeras_accuracy),
        Step("cost", step_cost),
        Step("csim", step_point_csim, when=lambda ctx: ctx.options["evaluator"].sweep.csim),
    ]
