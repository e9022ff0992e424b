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

from flow.errors import FlowError
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

    Hook for ``flow/rtl/generate.py``: calls ``flow.rtl.generate.cost_figures(project_dir)``, which
    returns numbers such as ``latency_cycles``, ``latency_ns``, ``luts``, ``ffs``, ``fmax_mhz`` (ECP5-85k
    after place-and-route), ``area_um2``, ``power_mw``, ``energy_nj`` (OSU 0.18 um) for the hlsflow
    project folder ``project_dir``. Returns None when ``flow.rtl.generate`` or that function does not exist.
    """
    import importlib

    try:
        rtl = importlib.import_module("flow.rtl.generate")
    except ModuleNotFoundError as exc:
        if exc.name == "flow.rtl.generate":
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
        import numpy as np

        from flow import compare, pipeline
        from flow.arith.emulate import emulate
        from flow.hls import convert
        from flow.hls.project import save_meta
        from flow.keras.prune_neurons import model_widths
        from flow.report import graph_weight_stats
        from flow.staging import staged_dir

        seconds: dict[str, float] = {}
        t_all = time.perf_counter()

        @contextlib.contextmanager
        def stage(name: str):
            t0 = time.perf_counter()
            yield
            seconds[name] = round(time.perf_counter() - t0, 3)

        key = point_key(params)
        raw = self.sweep.point_raw(params)
        spec = self.sweep.point_spec(params)
        ptq = self.sweep.mode == "ptq"
        folder = f"{key}-ptq" if ptq else key  # a QAT and a PTQ study of one sweep name keep their own projects
        final = self.points_dir / folder
        for leftover in self.points_dir.glob(f".{folder}.tmp-*"):  # from a worker killed mid-point
            shutil.rmtree(leftover, ignore_errors=True)
        out: dict[str, Any] = {"mode": self.sweep.mode}
        with staged_dir(final) as work:
            with stage("data"):
                split = self._split(spec)
            if ptq:
                from flow.sweep.ptq import quantize_float_model

                with stage("load float model"):
                    fm = self._float_model(split)
                    out.update(float_accuracy=fm["accuracy"], float_model=fm["path"],
                               float_weights_sha1=fm["weights_sha1"])
                with stage("quantize (PTQ)"):
                    qmodel = quantize_float_model(spec, fm["model"])
                    qmodel.save(work / "qkeras_model.h5")
            else:
                neurons = bool(pipeline.neuron_stage_names(spec))
                with stage("train"):
                    qmodel = pipeline.build_and_train(spec, split, quantized=True)
                    if not neurons:
                        qmodel.save(work / "qkeras_model.h5")
                if neurons:
                    with stage("prune neurons"):
                        qmodel, record = pipeline.prune_trained(spec, split, qmodel)
                        qmodel.save(work / "qkeras_model.h5")
                        out["neuron_pruning"] = {"layers": record["layers"],
                                                 "accuracy_unpruned": record["accuracy_unpruned"]}
            with stage("convert"):
                graph, hls_config = pipeline.to_hls_graph(qmodel, spec, spec.input_type, work / "hls")
            with stage("write project"):
                graph.write()
                (work / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
                save_meta(work, "qkeras_model.h5", hls_config, spec.hardware, spec.input_type)
            with stage("emulate"):
                emu = emulate(graph, split.x_test, upto=compare.logits_layer(qmodel, graph))
                out["accuracy"] = float(np.mean(np.argmax(emu.outputs, axis=1) == split.y_test))
                out["overflows"] = int(sum(emu.overflows.values()))
            with stage("qkeras"):  # one eager call: Keras's predict() builds a new graph per model (~0.3 s)
                q_out = np.asarray(qmodel(split.x_test, training=False), dtype=np.float64)
                q_out = q_out.reshape(len(split.x_test), -1)
                out["qkeras_accuracy"] = float(np.mean(np.argmax(q_out, axis=1) == split.y_test))
            with stage("cost"):
                out["bops"] = bit_operations(graph)["bops"]
                stats = graph_weight_stats(graph)
                out["weight_memory_bits"] = int(stats["quantized_bits"])
                out["sparsity"] = float(stats["sparsity"])
                out["units"] = sum(model_widths(qmodel).values())
            if self.sweep.csim:
                with stage("csim"):
                    convert.write_and_compile(graph)
                    csim_out = convert.csim_predict(graph, split.x_test)
                    cmp = compare.check_emulator(qmodel, graph, split.x_test, csim_out)
                    out["csim_accuracy"] = float(np.mean(np.argmax(csim_out, axis=1) == split.y_test))
                    out["emulator_vs_csim_exact"] = float(cmp.comparison["exact_fraction"])
            seconds["total"] = round(time.perf_counter() - t_all, 3)
            out["seconds"] = seconds
            out["project"] = str(final.resolve())
            (work / "point.json").write_text(json.dumps({"params": params, **out}, indent=2) + "\n")
        return out


