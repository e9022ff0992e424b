"""``hlsflow sweep``: many points of the flow, run as an Optuna study in a database, in parallel and
resumable, ending in a Pareto report (:mod:`flow.sweep_report`).

A sweep file names a base spec, optional overrides of it, and the axes to explore::

    name: digits_sweep
    base: digits_mlp.yaml            # a flow spec, relative to this file
    overrides:                       # deep-merged into the base spec before the axes are applied
      training: {epochs: 10}
    axes:                            # every axis is a list of values
      weight_bits: [2, 4, 8]         # quantization fields set for every layer (QKeras convention:
      activation_bits: [2, 4, 8]     #   *_integer excludes the sign bit)
      layers: {fc2: {weight_bits: [4, 8]}}   # per-layer values win over the all-layer axes
      pruning_sparsity: [0.0, 0.5]   # 0 means no pruning
      reuse_factor: [1, 4]
      io_type: [io_parallel, io_stream]
    search: {method: grid}           # grid (every point once) | tpe | nsga2 (need `trials`)
    csim: false                      # also compile and run hls4ml's C simulation for every point
    heartbeat: 10                    # seconds; a point without a heartbeat for 3x this is retried
    mode: qat                        # qat: train every point | ptq: quantize one float model, no training
    float_model: float_model.h5      # ptq only (optional): .h5/.keras float model of the base network,
                                     #   relative to this file; default: the base spec's float baseline,
                                     #   trained once per sweep (:mod:`flow.sweep_ptq`)

A point is one combination of axis values. For each point a worker trains the QKeras model (QAT; in
``ptq`` mode it loads the float model's weights into it instead, :mod:`flow.sweep_ptq`), converts it
with hls4ml, writes the HLS project (no C compile unless ``csim``), measures accuracy with the
bit-exact emulator on the test split and computes the bit-operation cost (:func:`bit_operations`).
Its project folder is ``<out>/<name>/points/<key>/`` (``<key>-ptq/`` in ptq mode), a complete
hlsflow project (``hlsflow verify`` works on it).

Points are trials of an Optuna study in a database (an SQLite file ``<out>/<name>/sweep.db`` by
default, or a PostgreSQL URL shared by several machines); :mod:`flow.sweep_workers` runs them in
worker processes, resumably, and :mod:`flow.sweep_report` writes the Pareto report.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import itertools
import json
import os
import shutil
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flow.errors import FlowError
from flow.spec import IO_TYPES, NAME_RE, Spec, _Check, load_spec, parse_spec, read_yaml
from flow.sweep_ptq import FLOAT_MODEL_SUFFIXES, MODES

QUANT_AXES = ("weight_bits", "weight_integer", "bias_bits", "bias_integer", "activation_bits", "activation_integer")
OTHER_AXES = ("pruning_sparsity", "reuse_factor", "io_type")
METHODS = ("grid", "tpe", "nsga2")
# objective -> Optuna direction
OBJECTIVES = {"accuracy": "maximize", "bops": "minimize", "weight_memory_bits": "minimize"}
SWEEP_KEYS = ("name", "base", "overrides", "axes", "search", "csim", "heartbeat", "mode", "float_model")
MAX_CHECKED_POINTS = 10_000  # points whose full spec is validated up front
# spec sections that change a point's results (the name and the RTL options of `hlsflow run` do not)
POINT_FIELDS = ("dataset", "quantization", "model", "pruning", "training", "hardware")


@dataclass(frozen=True)
class Axis:
    """One dimension of the sweep: ``name`` is ``weight_bits``, ``fc2.weight_bits``, ``reuse_factor``, ..."""

    name: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file. ``base_raw`` is the base spec mapping with the overrides merged in."""

    name: str
    path: Path
    base_path: Path
    base_raw: dict[str, Any]
    axes: tuple[Axis, ...]
    method: str = "grid"
    trials: int | None = None
    seed: int = 0
    objectives: tuple[str, ...] = ("accuracy", "bops")
    csim: bool = False
    heartbeat: int = 10
    base: Spec | None = field(default=None, compare=False)
    mode: str = "qat"  # qat: quantization-aware training per point; ptq: post-training quantization
    float_model: Path | None = None  # ptq: the user's float model (absolute); None = the trained baseline

    @property
    def space_size(self) -> int:
        """Number of distinct points (the product of the axis lengths)."""
        n = 1
        for axis in self.axes:
            n *= len(axis.values)
        return n

    @property
    def directions(self) -> list[str]:
        return [OBJECTIVES[o] for o in self.objectives]

    @property
    def target(self) -> int:
        """Points to finish: the whole grid, or the trial budget of a search."""
        return self.space_size if self.method == "grid" else int(self.trials or 0)

    def grid(self) -> list[dict[str, Any]]:
        """Every point, in axis order (the first axis varies slowest)."""
        names = [a.name for a in self.axes]
        return [dict(zip(names, combo)) for combo in itertools.product(*(a.values for a in self.axes))]

    def study_name(self) -> str:
        """``<name>-<fingerprint>``: a change of the base spec's data, model, quantization, pruning, training
        or hardware (overrides included), of the axes, method or objectives starts a new study."""
        base = {k: v for k, v in self.base_raw.items() if k in POINT_FIELDS}
        payload = {"base": base, "axes": [[a.name, list(a.values)] for a in self.axes],
                   "method": self.method, "objectives": list(self.objectives), "csim": self.csim}
        if self.mode == "ptq":  # QAT sweeps keep the study names they had before PTQ existed
            from flow.sweep_ptq import file_digest

            payload["ptq"] = file_digest(self.float_model) if self.float_model is not None else "baseline"
        digest = hashlib.sha1(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:8]
        return f"{self.name}-{digest}"

    def point_raw(self, params: dict[str, Any], name: str | None = None) -> dict[str, Any]:
        """The base spec mapping with one point's axis values applied (a spec ``hlsflow run`` accepts)."""
        raw = copy.deepcopy(self.base_raw)
        raw["name"] = name or f"{self.name}_{point_key(params)}"
        quant = raw.setdefault("quantization", {}) or {}
        raw["quantization"] = quant
        default = quant.get("default") or {}
        quant["default"] = default
        per_layer = quant.get("layers") or {}
        for axis_name in sorted(params, key=lambda n: "." in n):  # all-layer axes first, per-layer axes win
            value = params[axis_name]
            if axis_name in QUANT_AXES:
                default[axis_name] = value
                for overrides in per_layer.values():
                    overrides.pop(axis_name, None)
            elif "." in axis_name:
                layer, fld = axis_name.split(".", 1)
                per_layer.setdefault(layer, {})[fld] = value
            elif axis_name == "pruning_sparsity":
                if value == 0:
                    raw.pop("pruning", None)
                else:
                    raw["pruning"] = {**(raw.get("pruning") or {}), "sparsity": value}
            else:  # reuse_factor, io_type
                raw["hardware"] = {**(raw.get("hardware") or {}), axis_name: value}
        per_layer = {k: v for k, v in per_layer.items() if v}
        if per_layer:
            quant["layers"] = per_layer
        else:
            quant.pop("layers", None)
        return raw

    def point_spec(self, params: dict[str, Any]) -> Spec:
        """The validated :class:`Spec` of one point (errors name the sweep file and the point)."""
        try:
            return parse_spec(self.point_raw(params), self.base_path)
        except FlowError as exc:
            raise FlowError(f"{self.path}: the point {format_params(params)} gives an invalid spec: {exc}") from None


def point_key(params: dict[str, Any]) -> str:
    """Stable identifier of a point: ``p`` + 10 hex digits of the SHA-1 of its sorted parameters."""
    return "p" + hashlib.sha1(json.dumps(params, sort_keys=True).encode()).hexdigest()[:10]


def format_params(params: dict[str, Any]) -> str:
    return "{" + ", ".join(f"{k}: {v}" for k, v in params.items()) + "}"


# ---------------------------------------------------------------------------------------------------
# Sweep file


def _deep_merge(base: dict, extra: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _axis_values(chk: _Check, value: Any, where: str, name: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise chk.fail(where, f"must be a non-empty list of values, got {value!r}")
    out = []
    for i, v in enumerate(value):
        at = f"{where}[{i}]"
        if name.endswith("_bits"):
            out.append(chk.integer(v, at, lo=1, hi=32))
        elif name.endswith("_integer"):
            out.append(chk.integer(v, at, lo=-32, hi=32))
        elif name == "pruning_sparsity":
            out.append(chk.number(v, at, 0.0, 1.0, hi_open=True))
        elif name == "reuse_factor":
            out.append(chk.integer(v, at, lo=1))
        else:  # io_type
            out.append(chk.choice(v, at, IO_TYPES))
    dupes = sorted({str(v) for v in out if out.count(v) > 1})
    if dupes:
        raise chk.fail(where, f"values must be distinct; repeated: {', '.join(dupes)}")
    return tuple(out)


def _parse_axes(chk: _Check, value: Any, layer_names: list[str]) -> tuple[Axis, ...]:
    axes_raw = chk.mapping(value, "axes", (*QUANT_AXES, *OTHER_AXES, "layers"))
    if not axes_raw:
        raise chk.fail("axes", "must name at least one axis")
    axes = []
    for name, values in axes_raw.items():
        if name == "layers":
            continue
        axes.append(Axis(name, _axis_values(chk, values, f"axes.{name}", name)))
    per_layer = axes_raw.get("layers") or {}
    if not isinstance(per_layer, dict):
        raise chk.fail("axes.layers", "must be a mapping of layer name to quantization axes")
    for layer, fields in per_layer.items():
        if layer not in layer_names:
            raise chk.fail(f"axes.layers.{layer}", f"no such layer in the base spec; layers are: {', '.join(layer_names)}")
        chk.mapping(fields, f"axes.layers.{layer}", QUANT_AXES)
        for fld, values in fields.items():
            axes.append(Axis(f"{layer}.{fld}", _axis_values(chk, values, f"axes.layers.{layer}.{fld}", fld)))
    if not axes:
        raise chk.fail("axes", "must name at least one axis")
    return tuple(axes)


def _where(axis_name: str) -> str:
    return f"axes.layers.{axis_name}" if "." in axis_name else f"axes.{axis_name}"


def _check_integer_vs_bits(chk: _Check, axes: tuple[Axis, ...], base: Spec) -> None:
    """Every combination of integer and total bits that can occur must fit (integer <= bits, minus the sign)."""
    by_name = {a.name: a for a in axes}
    for layer in base.layers:
        for kind, signed in (("weight", True), ("bias", True), ("activation", False)):
            def values(fld: str) -> tuple[tuple[Any, ...], str | None]:
                for name in (f"{layer.name}.{fld}", fld):
                    if name in by_name:
                        return by_name[name].values, name
                return (getattr(layer.quant, fld),), None

            bits_vals, bits_axis = values(f"{kind}_bits")
            int_vals, int_axis = values(f"{kind}_integer")
            if bits_axis is None and int_axis is None:
                continue
            for bits in bits_vals:
                for integer in int_vals:
                    limit = bits - 1 if signed else bits
                    if integer > limit:
                        rule = "bits - 1 (one bit is the sign)" if signed else "bits"
                        where = _where(int_axis) if int_axis else _where(bits_axis)
                        raise chk.fail(where, f"{kind}_integer {integer} with {kind}_bits {bits} (layer {layer.name}): "
                                              f"integer bits must be <= {rule}")


def _parse_mode(chk: _Check, raw: dict[str, Any], axes: tuple[Axis, ...]) -> tuple[str, Path | None]:
    """``mode`` (qat/ptq) and the absolute path of ``float_model`` (ptq only; None: the trained baseline).

    The file's content (a float model of the base network) is checked by ``hlsflow sweep`` before it
    starts workers (:func:`flow.sweep_ptq.load_user_float_model`), which needs TensorFlow.
    """
    mode = chk.choice(raw.get("mode", "qat"), "mode", MODES)
    if mode == "ptq" and any(a.name == "pruning_sparsity" for a in axes):
        raise chk.fail("axes.pruning_sparsity", "mode ptq does not train, so it cannot prune: prune the float "
                                                "model instead (the base spec's `pruning` applies to the baseline)")
    if "float_model" not in raw:
        return mode, None
    value = raw["float_model"]
    if mode != "ptq":
        raise chk.fail("float_model", "is the float model that `mode: ptq` quantizes; a `mode: qat` sweep "
                                      "trains every point (add `mode: ptq`)")
    if not isinstance(value, str) or Path(value).suffix not in FLOAT_MODEL_SUFFIXES:
        raise chk.fail("float_model", f"must be the path of a {'/'.join(FLOAT_MODEL_SUFFIXES)} Keras model, "
                                      f"got {value!r}")
    resolved = (chk.path.parent / value).resolve()
    if not resolved.is_file():
        raise chk.fail("float_model", f"float model file not found: {resolved}")
    return mode, resolved


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file and every point it can produce; :class:`FlowError` names file and field."""
    path = Path(path)
    raw = read_yaml(path, "sweep file")
    chk = _Check(path)
    raw = chk.mapping(raw, "", SWEEP_KEYS, ("name", "base", "axes"))
    name = raw["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise chk.fail("name", f"must be an identifier (letters, digits, _), got {name!r}")
    if not isinstance(raw["base"], str):
        raise chk.fail("base", f"must be the path of a flow spec, got {raw['base']!r}")
    base_path = (path.parent / raw["base"]).resolve()
    if not base_path.is_file():
        raise chk.fail("base", f"spec file not found: {base_path}")
    base_spec = load_spec(base_path)
    overrides = raw.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise chk.fail("overrides", "must be a mapping merged into the base spec")
    base_raw = _deep_merge(base_spec.raw, overrides)
    if base_spec.dataset.source != "digits":  # points are exported elsewhere: keep the data path absolute
        base_raw["dataset"]["source"] = base_spec.dataset.source
    try:
        base = parse_spec(base_raw, base_path)
    except FlowError as exc:
        raise FlowError(f"{path}: the base spec with `overrides`: {exc}") from None

    axes = _parse_axes(chk, raw["axes"], [layer.name for layer in base.layers])
    _check_integer_vs_bits(chk, axes, base)

    search = chk.mapping(raw.get("search") or {}, "search", ("method", "trials", "seed", "objectives"))
    method = chk.choice(search.get("method", "grid"), "search.method", METHODS)
    trials = None
    if method == "grid":
        if "trials" in search:
            raise chk.fail("search.trials", "a grid runs every point once; `trials` is for tpe/nsga2")
    else:
        if "trials" not in search:
            raise chk.fail("search.trials", f"is required for method {method}")
        trials = chk.integer(search["trials"], "search.trials", lo=1)
    objectives = search.get("objectives", ["accuracy", "bops"])
    if not isinstance(objectives, list) or len(objectives) < 2 or len(set(objectives)) != len(objectives):
        raise chk.fail("search.objectives", f"must be a list of at least two distinct objectives, got {objectives!r}")
    for i, o in enumerate(objectives):
        chk.choice(o, f"search.objectives[{i}]", tuple(OBJECTIVES))
    csim = raw.get("csim", False)
    if not isinstance(csim, bool):
        raise chk.fail("csim", f"must be true or false, got {csim!r}")
    mode, float_model = _parse_mode(chk, raw, axes)
    sweep = Sweep(name=name, path=path, base_path=base_path, base_raw=base_raw, axes=axes, method=method,
                  trials=trials, seed=chk.integer(search.get("seed", 0), "search.seed", lo=0),
                  objectives=tuple(objectives), csim=csim,
                  heartbeat=chk.integer(raw.get("heartbeat", 10), "heartbeat", lo=1, hi=3600), base=base,
                  mode=mode, float_model=float_model)
    names = [a.name for a in axes]
    for combo in itertools.islice(itertools.product(*(a.values for a in axes)), MAX_CHECKED_POINTS):
        sweep.point_spec(dict(zip(names, combo)))
    return sweep


# ---------------------------------------------------------------------------------------------------
# Cost


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

    Hook for ``flow/rtl.py`` (issue 4): calls ``flow.rtl.cost_figures(project_dir)``, expected to
    return a mapping of numbers such as ``latency_cycles``, ``luts``, ``ffs`` for the hlsflow project
    folder ``project_dir``. Returns None when ``flow.rtl`` or that function does not exist.
    """
    import importlib

    try:
        rtl = importlib.import_module("flow.rtl")
    except ModuleNotFoundError as exc:
        if exc.name == "flow.rtl":
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

        from flow import train
        from flow.model_io import load_model
        from flow.sweep_ptq import float_model_path, weights_digest

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
        from flow.data import load_dataset
        from flow.fixed import parse_type

        key = (spec.dataset, spec.input_type, spec.training.seed)
        if key not in self._splits:
            self._splits[key] = load_dataset(spec.dataset, parse_type(spec.input_type), spec.training.seed)
        return self._splits[key]

    def evaluate(self, params: dict[str, Any]) -> dict[str, Any]:
        """Train (QAT) or quantize (PTQ), convert, emulate and cost one point; writes its project folder;
        returns its figures.

        ``accuracy`` is the bit-exact emulator's on the test split, ``bops`` from :func:`bit_operations`,
        ``mode`` ``qat``/``ptq`` (PTQ adds ``float_accuracy``, ``float_model``, ``float_weights_sha1``);
        ``seconds`` holds the wall time of each stage (s).
        """
        with contextlib.ExitStack() as stack:
            if self.log is not None:
                stack.enter_context(contextlib.redirect_stdout(self.log))
                stack.enter_context(contextlib.redirect_stderr(self.log))
            return self._evaluate(params)

    def _evaluate(self, params: dict[str, Any]) -> dict[str, Any]:
        import numpy as np

        from flow import convert, pipeline
        from flow.emulate import emulate
        from flow.project import save_meta
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
                from flow.sweep_ptq import quantize_float_model

                with stage("load float model"):
                    fm = self._float_model(split)
                    out.update(float_accuracy=fm["accuracy"], float_model=fm["path"],
                               float_weights_sha1=fm["weights_sha1"])
                with stage("quantize (PTQ)"):
                    qmodel = quantize_float_model(spec, fm["model"])
                    qmodel.save(work / "qkeras_model.h5")
            else:
                with stage("train"):
                    qmodel = pipeline.build_and_train(spec, split, quantized=True)
                    qmodel.save(work / "qkeras_model.h5")
            with stage("convert"):
                graph, hls_config = pipeline.to_hls_graph(qmodel, spec, spec.input_type, work / "hls")
            with stage("write project"):
                graph.write()
                (work / "spec.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
                save_meta(work, "qkeras_model.h5", hls_config, spec.hardware, spec.input_type)
            with stage("emulate"):
                emu = emulate(graph, split.x_test, upto=pipeline.logits_layer(qmodel))
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
            if self.sweep.csim:
                with stage("csim"):
                    convert.write_and_compile(graph)
                    csim_out = convert.csim_predict(graph, split.x_test)
                    cmp = pipeline.check_emulator(qmodel, graph, split.x_test, csim_out)
                    out["csim_accuracy"] = float(np.mean(np.argmax(csim_out, axis=1) == split.y_test))
                    out["emulator_vs_csim_exact"] = float(cmp["exact_fraction"])
            seconds["total"] = round(time.perf_counter() - t_all, 3)
            out["seconds"] = seconds
            out["project"] = str(final.resolve())
            (work / "point.json").write_text(json.dumps({"params": params, **out}, indent=2) + "\n")
        return out


@dataclass
class SweepResult:
    """What a sweep run produced: the study, the final counts, report files, and the storage used."""

    sweep: Sweep
    study: Any
    counts: Any  # flow.sweep_workers.Counts
    url: str
    out_dir: Path
    report: dict[str, Path] = field(default_factory=dict)


def run_sweep(sweep_path: str | Path, out_root: str | Path = "sweeps", storage: str | None = None,
              workers: int = 1, retry_failed: bool = False, run: bool = True, progress: bool = True,
              report: bool = True, rtl: str = "none") -> SweepResult:
    """Run (or resume) a sweep and write its report into ``<out_root>/<name>/report/``.

    ``workers`` = 1 runs the points in this process; more spawns that many worker processes.
    ``run=False`` only reads the stored results. ``rtl`` = ``pareto``/``all`` asks :func:`rtl_cost`
    for the figures of those points.
    """
    from flow import sweep_report
    from flow.sweep_workers import (counts, next_action, open_storage, open_study, progress_bar, queue_budget, redact,
                                    requeue, run_workers, storage_url, work)

    if workers < 1:
        raise FlowError(f"--workers must be >= 1, got {workers}")
    sweep = load_sweep(sweep_path)
    if run and sweep.mode == "ptq" and sweep.float_model is not None:
        from flow.sweep_ptq import load_user_float_model

        load_user_float_model(sweep)  # bad float model: one line, before anything is written
    out_dir = Path(out_root) / sweep.name
    if storage is None and run:
        out_dir.mkdir(parents=True, exist_ok=True)
    elif storage is None and not (out_dir / "sweep.db").is_file():
        raise FlowError(f"{out_dir / 'sweep.db'}: no stored results (run `hlsflow sweep {sweep_path}` first)")
    url = storage_url(storage, out_dir / "sweep.db")
    store = open_storage(url, sweep.heartbeat)
    study = open_study(store, sweep, create=run)
    out_dir.mkdir(parents=True, exist_ok=True)
    if run:
        queue_budget(store, study, sweep)
        requeue(study, sweep, retry_failed)
        if sweep.mode == "ptq" and next_action(study, sweep) != "done":
            from flow.sweep_ptq import prepare_float_model

            prepare_float_model(sweep, out_dir)  # trained here, once, before any worker starts
        bar, refresh = progress_bar(sweep, study, progress)
        try:
            if next_action(study, sweep) == "done":
                pass  # nothing left: no worker to start
            elif workers == 1:
                logs = out_dir / "logs"
                logs.mkdir(exist_ok=True)
                with open(logs / f"worker-{socket.gethostname()}-{os.getpid()}.log", "a", buffering=1) as log:
                    work(sweep, url, out_dir, 0, log, refresh)
            else:
                run_workers(sweep, url, out_dir, workers, study, refresh)
            refresh(study)
        finally:
            bar.close()
    result = SweepResult(sweep, study, counts(study, sweep), url, out_dir)
    if rtl != "none":
        sweep_report.add_rtl_costs(study, sweep, rtl)
    if report:
        result.report = sweep_report.write_report(study, sweep, out_dir / "report", redact(url))
    return result


def cli_sweep(args: Any) -> int:
    """``hlsflow sweep``: run/resume, report, optionally export the chosen point. Exit 0 when every
    point is done, 1 when some failed or are still unfinished, 2 on bad input (raised as FlowError)."""
    from flow import sweep_report
    from flow.sweep_workers import redact

    for given, flag in ((args.trial is not None, "--trial"), (args.min_accuracy is not None, "--min-accuracy")):
        if given and args.export_best is None:
            raise FlowError(f"{flag} chooses the point for --export-best; give --export-best OUT.yaml too")
    try:
        result = run_sweep(args.sweep, args.out, args.storage, args.workers, args.retry_failed,
                           run=not args.report_only, progress=not args.no_progress, rtl=args.rtl_cost)
    except KeyboardInterrupt:
        print("hlsflow sweep: interrupted; finished points are kept in the sweep's database and the "
              "interrupted ones are queued again: rerun the same command to resume", file=sys.stderr)
        return 130
    rows = sweep_report.collect_rows(result.study, result.sweep)
    summary: dict[str, Any] = {
        "sweep": result.sweep.name, "mode": result.sweep.mode, "study": result.sweep.study_name(),
        "storage": redact(result.url),
        "points": {"target": result.counts.target, "done": result.counts.done, "failed": result.counts.failed,
                   "running": result.counts.running},
        "pareto": [{"trial": r["trial"], **{a.name: r[a.name] for a in result.sweep.axes},
                    **{o: r[o] for o in result.sweep.objectives}} for r in rows if r.get("pareto")],
        "report": {k: str(v) for k, v in result.report.items()},
    }
    if args.export_best is not None:
        chosen = sweep_report.export_spec(result.sweep, rows, args.export_best, args.min_accuracy, args.trial)
        summary["exported"] = {"spec": str(args.export_best), "trial": chosen["trial"],
                               "accuracy": chosen["accuracy"], "bops": chosen["bops"]}
    print(json.dumps(summary, indent=2))
    c = result.counts
    if c.failed:
        print(f"hlsflow sweep: {c.failed} point(s) failed (errors in {result.report.get('html', 'the report')}); "
              f"rerun with --retry-failed to try them again", file=sys.stderr)
        return 1
    if c.done < c.target:
        print(f"hlsflow sweep: {c.done} of {c.target} points done ({c.running} running elsewhere or stale); "
              f"rerun the same command to resume", file=sys.stderr)
        return 1
    return 0
