"""``hlsflow sweep``: many points of the flow, run as an Optuna study in a database, in parallel and
resumable, ending in a Pareto report (:mod:`flow.sweep.report`).

A sweep file names a base spec, optional overrides of it, and the axes to explore::

    name: digits_sweep
    base: digits_mlp.yaml            # a flow spec, relative to this file
    overrides:                       # deep-merged into the base spec before the axes are applied
      training: {epochs: 10}
    axes:                            # every axis is a list of values
      weight_bits: [2, 4, 8]         # quantization fields set for every layer (QKeras convention:
      activation_bits: [2, 4, 8]     #   *_integer excludes the sign bit)
      layers: {fc2: {weight_bits: [4, 8]}}   # per-layer values win over the all-layer axes
      pruning_sparsity: [0.0, 0.5]   # magnitude pruning's sparsity; 0 means no pruning
      pruning_method: [magnitude, neurons]   # with pruning_amount: magnitude sparsity or neuron fraction
      pruning_amount: [0.0, 0.25, 0.5]       #   (0 = no pruning: one point, whatever the method)
      reuse_factor: [1, 4]
      io_type: [io_parallel, io_stream]
    search: {method: grid}           # grid (every point once) | tpe | nsga2 (need `trials`)
    csim: false                      # also compile and run hls4ml's C simulation for every point
    heartbeat: 10                    # seconds; a point without a heartbeat for 3x this is retried
    mode: qat                        # qat: train every point | ptq: quantize one float model, no training
    float_model: float_model.h5      # ptq only (optional): .h5/.keras float model of the base network,
                                     #   relative to this file; default: the base spec's float baseline,
                                     #   trained once per sweep (:mod:`flow.sweep.ptq`)

A point is one combination of axis values. For each point a worker trains the QKeras model (QAT; in
``ptq`` mode it loads the float model's weights into it instead, :mod:`flow.sweep.ptq`), converts it
with hls4ml, writes the HLS project (no C compile unless ``csim``), measures accuracy with the
bit-exact emulator on the test split and computes the bit-operation cost (:func:`bit_operations`).
Its project folder is ``<out>/<name>/points/<key>/`` (``<key>-ptq/`` in ptq mode), a complete
hlsflow project (``hlsflow verify`` works on it).

Points are trials of an Optuna study in a database (an SQLite file ``<out>/<name>/sweep.db`` by
default, or a PostgreSQL URL shared by several machines); :mod:`flow.sweep.workers` runs them in
worker processes, resumably, and :mod:`flow.sweep.report` writes the Pareto report.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.spec import IO_TYPES, NAME_RE, PRUNING_METHODS, Checker, NeuronPruning, Spec, load_spec, parse_spec, read_yaml
from flow.sweep.ptq import FLOAT_MODEL_SUFFIXES, MODES

QUANT_AXES = ("weight_bits", "weight_integer", "bias_bits", "bias_integer", "activation_bits", "activation_integer")
OTHER_AXES = ("pruning_sparsity", "pruning_method", "pruning_amount", "reuse_factor", "io_type")
PRUNING_AXES = ("pruning_sparsity", "pruning_method", "pruning_amount")
# a point's pruning amount is this field of its method's section; the other fields of the base spec's
# section are kept when the point uses the base's method
AMOUNT_FIELD = {"magnitude": "sparsity", "neurons": "fraction"}
KEPT_FIELDS = {"magnitude": ("method", "start_epoch", "end_epoch"), "neurons": ("method", "finetune_epochs", "rounds",
                                                                                "layers")}
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
        """Number of distinct points: the product of the axis lengths, less the repeats of the unpruned
        point (``pruning_amount`` 0 is one point whatever the ``pruning_method``, :func:`point_key`)."""
        n = 1
        for axis in self.axes:
            n *= len(axis.values)
        by_name = {a.name: a.values for a in self.axes}
        if "pruning_method" in by_name and 0 in by_name.get("pruning_amount", ()):
            methods, amounts = len(by_name["pruning_method"]), len(by_name["pruning_amount"])
            n = n // (methods * amounts) * (methods * (amounts - 1) + 1)
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
            from flow.sweep.ptq import file_digest

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
            elif axis_name in PRUNING_AXES:
                continue  # below, from all the pruning axes together
            else:  # reuse_factor, io_type
                raw["hardware"] = {**(raw.get("hardware") or {}), axis_name: value}
        if any(n in params for n in PRUNING_AXES):
            method = "magnitude" if "pruning_sparsity" in params else params.get("pruning_method")
            amount = params.get("pruning_sparsity", params.get("pruning_amount"))
            section = point_pruning(raw.get("pruning"), method, amount)
            if section is None:
                raw.pop("pruning", None)
            else:
                raw["pruning"] = section
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


def point_pruning(base: dict[str, Any] | None, method: str | None, amount: float | None) -> dict[str, Any] | None:
    """A point's ``pruning`` section: ``method`` (None: the base section's, else magnitude) with ``amount``
    as its sparsity (magnitude) or fraction (neurons); None (no pruning) when ``amount`` is 0. The base
    section's other fields (``start_epoch``/``end_epoch``, ``finetune_epochs``/``rounds``/``layers``)
    are kept when the point uses the base's method."""
    base = base or {}
    base_method = base.get("method", "magnitude")
    method = method or base_method
    if amount == 0:
        return None
    section = {k: base[k] for k in KEPT_FIELDS[method] if k in base} if method == base_method else {}
    if method != "magnitude":
        section["method"] = method
    section[AMOUNT_FIELD[method]] = amount
    return section


def canonical_params(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with ``pruning_method`` ``none`` when ``pruning_amount`` is 0: every method gives the
    same unpruned point (its key, and its row in the report)."""
    if params.get("pruning_amount") == 0 and "pruning_method" in params:
        return {**params, "pruning_method": "none"}
    return params


def point_key(params: dict[str, Any]) -> str:
    """Stable identifier of a point: ``p`` + 10 hex digits of the SHA-1 of its sorted
    :func:`canonical_params`."""
    return "p" + hashlib.sha1(json.dumps(canonical_params(params), sort_keys=True).encode()).hexdigest()[:10]


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


def _axis_values(chk: Checker, value: Any, where: str, name: str) -> tuple[Any, ...]:
    if not isinstance(value, list) or not value:
        raise chk.fail(where, f"must be a non-empty list of values, got {value!r}")
    out = []
    for i, v in enumerate(value):
        at = f"{where}[{i}]"
        if name.endswith("_bits"):
            out.append(chk.integer(v, at, lo=1, hi=32))
        elif name.endswith("_integer"):
            out.append(chk.integer(v, at, lo=-32, hi=32))
        elif name in ("pruning_sparsity", "pruning_amount"):
            out.append(chk.number(v, at, 0.0, 1.0, hi_open=True))
        elif name == "pruning_method":
            out.append(chk.choice(v, at, PRUNING_METHODS))
        elif name == "reuse_factor":
            out.append(chk.integer(v, at, lo=1))
        else:  # io_type
            out.append(chk.choice(v, at, IO_TYPES))
    dupes = sorted({str(v) for v in out if out.count(v) > 1})
    if dupes:
        raise chk.fail(where, f"values must be distinct; repeated: {', '.join(dupes)}")
    return tuple(out)


def _parse_axes(chk: Checker, value: Any, layer_names: list[str]) -> tuple[Axis, ...]:
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
    names = {a.name for a in axes}
    if "pruning_sparsity" in names and names & {"pruning_method", "pruning_amount"}:
        raise chk.fail("axes.pruning_sparsity", "is the sparsity of magnitude pruning; with `pruning_method` or "
                                                "`pruning_amount` give the amount as `pruning_amount` only")
    if "pruning_method" in names and "pruning_amount" not in names:
        raise chk.fail("axes.pruning_method", "needs a `pruning_amount` axis: magnitude pruning's sparsity or the "
                                              "fraction of units neuron pruning removes (0 = no pruning)")
    return tuple(axes)


def _where(axis_name: str) -> str:
    return f"axes.layers.{axis_name}" if "." in axis_name else f"axes.{axis_name}"


def _check_integer_vs_bits(chk: Checker, axes: tuple[Axis, ...], base: Spec) -> None:
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


def _parse_mode(chk: Checker, raw: dict[str, Any], axes: tuple[Axis, ...], base: Spec) -> tuple[str, Path | None]:
    """``mode`` (qat/ptq) and the absolute path of ``float_model`` (ptq only; None: the trained baseline).

    The file's content (a float model of the base network) is checked by ``hlsflow sweep`` before it
    starts workers (:func:`flow.sweep.ptq.load_user_float_model`), which needs TensorFlow.
    """
    mode = chk.choice(raw.get("mode", "qat"), "mode", MODES)
    pruning_axis = next((n for n in PRUNING_AXES if n in {a.name for a in axes}), None)
    if mode == "ptq" and pruning_axis:
        raise chk.fail(f"axes.{pruning_axis}", "mode ptq does not train, so it cannot prune: prune the float "
                                               "model instead (the base spec's `pruning` applies to the baseline)")
    if mode == "ptq" and isinstance(base.pruning, NeuronPruning):
        raise chk.fail("mode", "ptq quantizes a float model of the base spec's widths, so it cannot use the base "
                               "spec's neuron pruning (`pruning: {method: neurons}`, which fine-tunes): use mode qat")
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
    chk = Checker(path)
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
    mode, float_model = _parse_mode(chk, raw, axes, base)
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


