"""The YAML flow spec: parsing and validation into small frozen records.

Every error is a :class:`FlowError` whose message names the spec file, the field
(``model.layers[2].units``) and what is allowed. Bit-width fields follow QKeras:
``*_bits`` is the total width and ``*_integer`` the integer bits *excluding* the sign bit,
so signed ``quantized_bits(bits, integer)`` is ``ap_fixed<bits, integer + 1>`` and unsigned
``quantized_relu(bits, integer)`` is ``ap_ufixed<bits, integer>``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from flow.core.errors import FlowError
from flow.core.simulators import SIMULATORS

BACKENDS = ("Vitis", "Vivado", "Catapult")
IO_TYPES = ("io_parallel", "io_stream")
STRATEGIES = ("Latency", "Resource")
ACTIVATIONS = ("relu", "linear", "softmax")
PRUNING_METHODS = ("magnitude", "neurons")
PRUNABLE_LAYER_TYPES = ("dense", "conv2d")  # layer types with units/filters that neuron pruning can remove
QUANTIZER_NAMES = ("quantized_bits", "quantized_relu", "quantized_po2", "quantized_relu_po2")
NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
# ap_fixed<W,I>, ap_ufixed<W,I>, optional rounding and overflow modes; W total bits, I integer bits incl. sign.
FIXED_TYPE_RE = re.compile(r"^ap_u?fixed<\s*\d+\s*,\s*-?\d+\s*(,\s*AP_[A-Z_]+\s*){0,2}>$")

# Layer type -> (required fields, optional fields with defaults)
LAYER_FIELDS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "dense": (("units",), {"activation": "linear", "use_bias": True}),
    "conv2d": (("filters", "kernel_size"), {"strides": 1, "padding": "valid", "activation": "linear", "use_bias": True}),
    "maxpool2d": ((), {"pool_size": 2, "strides": None}),
    "avgpool2d": ((), {"pool_size": 2, "strides": None}),
    "batchnorm": ((), {}),
    "flatten": ((), {}),
    "dropout": (("rate",), {}),
    "activation": (("activation",), {}),
}
QUANT_KEYS = (
    "weight_bits", "weight_integer", "bias_bits", "bias_integer",
    "activation_bits", "activation_integer", "weight_quantizer", "bias_quantizer", "activation_quantizer",
)


@dataclass(frozen=True)
class Quant:
    """Quantization of one layer. ``*_integer`` excludes the sign bit (QKeras convention).

    ``*_quantizer`` strings, when given, are QKeras quantizer expressions such as
    ``quantized_po2(4, 1)`` and take precedence over the bits/integer pair.
    """

    weight_bits: int = 8
    weight_integer: int = 0
    bias_bits: int = 8
    bias_integer: int = 3
    activation_bits: int = 8
    activation_integer: int = 3
    weight_quantizer: str | None = None
    bias_quantizer: str | None = None
    activation_quantizer: str | None = None


@dataclass(frozen=True)
class Layer:
    type: str
    name: str
    params: dict[str, Any]
    quant: Quant


@dataclass(frozen=True)
class Dataset:
    source: str  # "digits" or an absolute path to a .npz/.csv file
    input_shape: tuple[int, ...]
    scale: float = 1.0
    test_fraction: float = 0.25
    label_column: int = -1
    x_key: str = "x"
    y_key: str = "y"
    max_samples: int | None = None


@dataclass(frozen=True)
class Pruning:
    """Magnitude pruning (``method: magnitude``, the default): the smallest kernel weights of every
    Dense/Conv layer are zeroed during training, up to ``sparsity``; layers keep their width."""

    sparsity: float
    start_epoch: int = 0
    end_epoch: int | None = None
    method: str = "magnitude"


@dataclass(frozen=True)
class NeuronPruning:
    """Structural pruning (``method: neurons``): after training, the Dense units and Conv filters of
    ``layers`` that fire least on the training data are removed (:mod:`flow.keras.prune_neurons`).

    Exactly one of ``fraction`` (the share of each layer's units removed in all, spread evenly over
    ``rounds``) and ``threshold`` (remove every unit whose activity, the fraction of samples where the
    value the next layer reads is non-zero, is below it) is set. Each round measures, cuts and
    fine-tunes ``finetune_epochs`` epochs. ``layers`` defaults to every dense/conv2d layer except the
    output layer.
    """

    fraction: float | None = None
    threshold: float | None = None
    finetune_epochs: int = 5
    rounds: int = 1
    layers: tuple[str, ...] = ()
    method: str = "neurons"


@dataclass(frozen=True)
class Training:
    epochs: int = 30
    batch_size: int = 32
    learning_rate: float = 0.003
    seed: int = 1
    validation_split: float = 0.1


@dataclass(frozen=True)
class Hardware:
    """hls4ml target. ``clock_period`` in ns; ``reuse_factor`` 1 means fully parallel."""

    backend: str = "Vitis"
    part: str = "xcvu13p-flga2577-2-e"
    clock_period: float = 5.0
    io_type: str = "io_parallel"
    strategy: str = "Latency"
    reuse_factor: int = 1


# RTL architectures (flow/rtl/sequential.py): auto picks stream for io_stream CNNs, folded for a reuse factor > 1
ARCHITECTURES = ("auto", "unrolled", "folded", "stream")


@dataclass(frozen=True)
class Rtl:
    """Vendor-free RTL in ``hlsflow run`` (off unless the spec has ``rtl: {enabled: true}``).

    ``latency_cutoff``: an explicit da4ml pipelining budget per stage, in its estimated logic-delay units
    (0 = one combinational stage); None: the cut that meets ``hardware.clock_period`` on the timing
    target (``fpga``, else ``asic``, else ECP5-85k) from the shipped delay calibration. ``samples``:
    cocotb samples per simulator (``sim_samples``: per-simulator overrides, from a mapping such as
    ``samples: {verilator: 2000, icarus: 300}``; :meth:`samples_for`); ``yosys``: Yosys generic/``synth_xilinx`` cell counts; ``fpga``: a part
    to place and route on (``ecp5-85k``); ``asic``: a cell library (``osu018``) for area, timing, power.
    """

    enabled: bool = False
    latency_cutoff: float | None = None
    simulators: tuple[str, ...] = SIMULATORS
    samples: int = 2000
    yosys: bool = False
    architecture: str = "auto"  # ARCHITECTURES: auto, unrolled, folded (reuse factors), stream (io_stream CNNs)
    fpga: str | None = None
    asic: str | None = None
    sim_samples: tuple[tuple[str, int], ...] = ()

    def samples_for(self, simulator: str) -> int:
        """Samples of the cocotb run on ``simulator``."""
        return dict(self.sim_samples).get(simulator, self.samples)


@dataclass(frozen=True)
class Spec:
    name: str
    path: Path
    dataset: Dataset
    input_type: str  # ap_fixed<W,I> / ap_ufixed<W,I>: inputs are quantized to it before every stage
    layers: tuple[Layer, ...]
    training: Training
    hardware: Hardware
    pruning: Pruning | NeuronPruning | None = None
    raw: dict[str, Any] = field(default_factory=dict, compare=False)
    rtl: Rtl = Rtl()


class Checker:
    """Validation helpers that know which file they are reading."""

    def __init__(self, path: Path):
        self.path = path

    def fail(self, where: str, msg: str) -> FlowError:
        return FlowError(f"{self.path}: field `{where}`: {msg}")

    def mapping(self, value: Any, where: str, allowed: tuple[str, ...], required: tuple[str, ...] = ()) -> dict:
        """``value`` if it is a mapping with only ``allowed`` keys and every ``required`` one; ``where`` "" is the
        whole file (an empty file or a list there is named as such, not as a field)."""
        if not where and not isinstance(value, dict):
            expected = f"expected a mapping with {', '.join((*required, '...'))}"
            if value is None:
                raise FlowError(f"{self.path}: empty file ({expected})")
            raise FlowError(f"{self.path}: not a mapping ({expected}), got {type(value).__name__}")
        if not isinstance(value, dict):
            raise self.fail(where, f"must be a mapping, got {type(value).__name__}")
        for key in value:
            if key not in allowed:
                raise self.fail(f"{where}.{key}" if where else key, f"unknown field; allowed: {', '.join(allowed)}")
        for key in required:
            if key not in value:
                raise self.fail(f"{where}.{key}" if where else key, "is required")
        return value

    def integer(self, value: Any, where: str, lo: int | None = None, hi: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(where, f"must be an integer, got {value!r}")
        if lo is not None and value < lo:
            raise self.fail(where, f"must be >= {lo}, got {value}")
        if hi is not None and value > hi:
            raise self.fail(where, f"must be <= {hi}, got {value}")
        return value

    def number(self, value: Any, where: str, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise self.fail(where, f"must be a finite number, got {value!r}")
        try:
            value = float(value)
        except OverflowError:
            raise self.fail(where, f"must be a finite number, got {value!r}") from None
        if lo is not None and (value < lo or (lo_open and value == lo)):
            raise self.fail(where, f"must be {'>' if lo_open else '>='} {lo}, got {value}")
        if hi is not None and (value > hi or (hi_open and value == hi)):
            raise self.fail(where, f"must be {'<' if hi_open else '<='} {hi}, got {value}")
        return value

    def choice(self, value: Any, where: str, allowed: tuple[str, ...]) -> str:
        if value not in allowed:
            raise self.fail(where, f"must be one of {', '.join(allowed)}, got {value!r}")
        return value

    def shape(self, value: Any, where: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise self.fail(where, f"must be a non-empty list of positive integers, got {value!r}")
        return tuple(self.integer(v, f"{where}[{i}]", lo=1) for i, v in enumerate(value))


def _quantizer_expr(chk: Checker, value: Any, where: str) -> str:
    if not isinstance(value, str) or not re.match(r"^\s*([a-z_0-9]+)\s*\(([^()]*)\)\s*$", value):
        raise chk.fail(where, f"must be a QKeras quantizer expression like 'quantized_bits(6, 0)', got {value!r}")
    name = value.split("(")[0].strip()
    if name not in QUANTIZER_NAMES:
        raise chk.fail(where, f"unknown quantizer {name!r}; allowed: {', '.join(QUANTIZER_NAMES)}")
    return value.strip()


def _quant(chk: Checker, value: Any, where: str, base: Quant) -> Quant:
    value = chk.mapping(value, where, QUANT_KEYS)
    merged = dict(base.__dict__)
    for key, v in value.items():
        if key.endswith("_quantizer"):
            merged[key] = _quantizer_expr(chk, v, f"{where}.{key}")
        else:
            merged[key] = chk.integer(v, f"{where}.{key}", lo=(1 if key.endswith("_bits") else -32), hi=32)
    for kind, signed in (("weight", True), ("bias", True), ("activation", False)):
        bits, integer = merged[f"{kind}_bits"], merged[f"{kind}_integer"]
        limit = bits - 1 if signed else bits
        if integer > limit:
            raise chk.fail(
                f"{where}.{kind}_integer",
                f"integer bits ({integer}) must be <= {'total bits - 1 (one bit is the sign)' if signed else 'total bits'}"
                f" = {limit} for {kind}_bits={bits}",
            )
    return Quant(**merged)


def _layers(chk: Checker, value: Any, quant_cfg: dict, default_q: Quant) -> tuple[Layer, ...]:
    if not isinstance(value, list) or not value:
        raise chk.fail("model.layers", "must be a non-empty list of layers")
    counts: dict[str, int] = {}
    layers = []
    for i, item in enumerate(value):
        where = f"model.layers[{i}]"
        if not isinstance(item, dict) or "type" not in item:
            raise chk.fail(where, "must be a mapping with a `type`")
        ltype = chk.choice(item["type"], f"{where}.type", tuple(LAYER_FIELDS))
        required, optional = LAYER_FIELDS[ltype]
        chk.mapping(item, where, ("type", "name", *required, *optional), required)
        counts[ltype] = counts.get(ltype, 0) + 1
        name = item.get("name", f"{ltype}_{counts[ltype]}")
        if not isinstance(name, str) or not NAME_RE.match(name) or name == "input":
            raise chk.fail(f"{where}.name", f"must be an identifier other than 'input', got {name!r}")
        params = {**optional, **{k: v for k, v in item.items() if k not in ("type", "name")}}
        for key in ("units", "filters"):
            if key in params:
                chk.integer(params[key], f"{where}.{key}", lo=1)
        for key in ("kernel_size", "pool_size", "strides"):
            if params.get(key) is not None:
                chk.integer(params[key], f"{where}.{key}", lo=1)
        if "padding" in params:
            chk.choice(params["padding"], f"{where}.padding", ("valid", "same"))
        if "activation" in params:
            chk.choice(params["activation"], f"{where}.activation", ACTIVATIONS)
        if "rate" in params:
            chk.number(params["rate"], f"{where}.rate", 0.0, 1.0, hi_open=True)
        layers.append(Layer(ltype, name, params, default_q))
    names = [layer.name for layer in layers]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise chk.fail("model.layers", f"layer names must be unique; repeated: {', '.join(dupes)}")
    per_layer = quant_cfg.get("layers") or {}
    if not isinstance(per_layer, dict):
        raise chk.fail("quantization.layers", "must be a mapping of layer name to bit widths")
    for lname in per_layer:
        if lname not in names:
            raise chk.fail(f"quantization.layers.{lname}", f"no such layer; layers are: {', '.join(names)}")
    softmax_at = [i for i, layer in enumerate(layers) if layer.params.get("activation") == "softmax"]
    if softmax_at and softmax_at != [len(layers) - 1]:
        raise chk.fail(f"model.layers[{softmax_at[0]}].activation", "softmax is allowed only on the last layer")
    return tuple(
        Layer(layer.type, layer.name, layer.params,
              _quant(chk, per_layer[layer.name], f"quantization.layers.{layer.name}", default_q)
              if layer.name in per_layer else default_q)
        for layer in layers
    )


def read_yaml(path: Path, what: str) -> Any:
    """The parsed contents of the YAML file ``path``; :class:`FlowError` naming it when it is missing
    (``"<path>: <what> not found"``) or not YAML."""
    if not path.is_file():
        raise FlowError(f"{path}: {what} not found")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = getattr(exc, "problem", None) or " ".join(str(exc).split())
        raise FlowError(f"{path}: malformed YAML{where}: {what}") from None
    except (UnicodeDecodeError, RecursionError) as exc:
        raise FlowError(f"{path}: not a YAML text file: {type(exc).__name__}: {exc}") from None


def load_spec(path: str | Path) -> Spec:
    """Read and validate a flow spec. Raises :class:`FlowError` naming the file and field on bad input."""
    path = Path(path)
    return parse_spec(read_yaml(path, "spec file"), path)


def parse_spec(raw: Any, path: Path) -> Spec:
    """Validate an already-parsed spec mapping; ``path`` names it in errors and anchors relative data paths."""
    path = Path(path)
    chk = Checker(path)
    raw = chk.mapping(raw, "", ("name", "dataset", "model", "quantization", "pruning", "training", "hardware", "rtl"),
                      ("name", "dataset", "model"))
    name = raw["name"]
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise chk.fail("name", f"must be an identifier (letters, digits, _), got {name!r}")

    ds = chk.mapping(raw["dataset"], "dataset",
                     ("source", "input_shape", "scale", "test_fraction", "label_column", "x_key", "y_key",
                      "max_samples"), ("source",))
    source = ds["source"]
    if not isinstance(source, str):
        raise chk.fail("dataset.source", f"must be 'digits' or a path to a .npz/.csv file, got {source!r}")
    if source != "digits":
        resolved = (path.parent / source).resolve()
        if resolved.suffix not in (".npz", ".csv"):
            raise chk.fail("dataset.source", f"must be 'digits' or a .npz/.csv file, got {source!r}")
        if not resolved.is_file():
            raise chk.fail("dataset.source", f"data file not found: {resolved}")
        if "input_shape" not in ds:
            raise chk.fail("dataset.input_shape", "is required for a .npz/.csv data set")
        source = str(resolved)
    default_shape = [64]
    dataset = Dataset(
        source=source,
        input_shape=chk.shape(ds.get("input_shape", default_shape), "dataset.input_shape"),
        scale=chk.number(ds.get("scale", 1.0), "dataset.scale", 0.0, lo_open=True),
        test_fraction=chk.number(ds.get("test_fraction", 0.25), "dataset.test_fraction", 0.0, 1.0, True, True),
        label_column=chk.integer(ds.get("label_column", -1), "dataset.label_column"),
        x_key=str(ds.get("x_key", "x")),
        y_key=str(ds.get("y_key", "y")),
        max_samples=(chk.integer(ds["max_samples"], "dataset.max_samples", lo=10) if "max_samples" in ds else None),
    )

    q = chk.mapping(raw.get("quantization") or {}, "quantization", ("input_type", "default", "layers"))
    input_type = q.get("input_type", "ap_fixed<16,6>")
    if not isinstance(input_type, str) or not FIXED_TYPE_RE.match(input_type.strip()):
        raise chk.fail("quantization.input_type", f"must be an ap_fixed<W,I> or ap_ufixed<W,I> type, got {input_type!r}")
    from flow.arith.types import parse_type  # local: keeps spec import light

    try:
        parse_type(input_type)
    except ValueError as exc:
        raise chk.fail("quantization.input_type", str(exc)) from None
    default_q = _quant(chk, q.get("default") or {}, "quantization.default", Quant())

    model = chk.mapping(raw["model"], "model", ("layers",), ("layers",))
    layers = _layers(chk, model["layers"], q, default_q)

    tr = chk.mapping(raw.get("training") or {}, "training",
                     ("epochs", "batch_size", "learning_rate", "seed", "validation_split"))
    training = Training(
        epochs=chk.integer(tr.get("epochs", 30), "training.epochs", lo=1),
        batch_size=chk.integer(tr.get("batch_size", 32), "training.batch_size", lo=1),
        learning_rate=chk.number(tr.get("learning_rate", 0.003), "training.learning_rate", 0.0, lo_open=True),
        seed=chk.integer(tr.get("seed", 1), "training.seed", lo=0),
        validation_split=chk.number(tr.get("validation_split", 0.1), "training.validation_split", 0.0, 1.0,
                                    hi_open=True),
    )

    pruning = _pruning(chk, raw.get("pruning"), training, layers)

    hw = chk.mapping(raw.get("hardware") or {}, "hardware",
                     ("backend", "part", "clock_period", "io_type", "strategy", "reuse_factor"))
    hardware = Hardware(
        backend=chk.choice(hw.get("backend", "Vitis"), "hardware.backend", BACKENDS),
        part=str(hw.get("part", Hardware.part)),
        clock_period=chk.number(hw.get("clock_period", 5.0), "hardware.clock_period", 0.0, lo_open=True),
        io_type=chk.choice(hw.get("io_type", "io_parallel"), "hardware.io_type", IO_TYPES),
        strategy=chk.choice(hw.get("strategy", "Latency"), "hardware.strategy", STRATEGIES),
        reuse_factor=chk.integer(hw.get("reuse_factor", 1), "hardware.reuse_factor", lo=1),
    )
    return Spec(name, path, dataset, input_type.strip(), layers, training, hardware, pruning, raw,
                _rtl(chk, raw.get("rtl")))


def _pruning(chk: Checker, value: Any, training: Training, layers: tuple[Layer, ...]) -> Pruning | NeuronPruning | None:
    """``pruning:``: magnitude (the default method) or neurons; see :class:`Pruning`, :class:`NeuronPruning`."""
    if value is None:
        return None
    if not isinstance(value, dict):
        raise chk.fail("pruning", f"must be a mapping, got {type(value).__name__}")
    method = chk.choice(value.get("method", "magnitude"), "pruning.method", PRUNING_METHODS)
    if method == "magnitude":
        pr = chk.mapping(value, "pruning", ("method", "sparsity", "start_epoch", "end_epoch"), ("sparsity",))
        start = chk.integer(pr.get("start_epoch", 0), "pruning.start_epoch", lo=0, hi=training.epochs - 1)
        end = pr.get("end_epoch")
        if end is not None:
            end = chk.integer(end, "pruning.end_epoch", lo=start + 1, hi=training.epochs)
        return Pruning(chk.number(pr["sparsity"], "pruning.sparsity", 0.0, 1.0, True, True), start, end)
    pr = chk.mapping(value, "pruning", ("method", "fraction", "threshold", "finetune_epochs", "rounds", "layers"))
    if ("fraction" in pr) == ("threshold" in pr):
        raise chk.fail("pruning", "method neurons needs exactly one of `fraction` (the share of each layer's units "
                                  "to remove) and `threshold` (remove the units active on fewer than this fraction "
                                  "of the training samples)")
    weighted = [layer for layer in layers if layer.type in PRUNABLE_LAYER_TYPES]
    output = weighted[-1].name if weighted else None
    names = {layer.name: layer for layer in layers}
    chosen = pr.get("layers")
    if chosen is None:
        chosen = [layer.name for layer in weighted[:-1]]
        if not chosen:
            raise chk.fail("pruning", f"no layer to prune: the only {'/'.join(PRUNABLE_LAYER_TYPES)} layer, "
                                      f"`{output}`, is the output layer (its units are the class scores)")
    elif not isinstance(chosen, list) or not chosen:
        raise chk.fail("pruning.layers", f"must be a non-empty list of layer names, got {chosen!r}")
    for i, lname in enumerate(chosen):
        where = f"pruning.layers[{i}]"
        if not isinstance(lname, str) or lname not in names:
            raise chk.fail(where, f"no such layer {lname!r}; layers are: {', '.join(names)}")
        if names[lname].type not in PRUNABLE_LAYER_TYPES:
            raise chk.fail(where, f"layer {lname!r} is a {names[lname].type} layer, which has no units or filters "
                                  f"to remove; prunable: {', '.join(PRUNABLE_LAYER_TYPES)}")
        if lname == output:
            raise chk.fail(where, f"layer {lname!r} is the output layer: its units are the class scores and "
                                  "cannot be removed")
        if chosen.count(lname) > 1:
            raise chk.fail(where, f"layer {lname!r} is named twice")
    return NeuronPruning(
        fraction=(chk.number(pr["fraction"], "pruning.fraction", 0.0, 1.0, True, True) if "fraction" in pr else None),
        threshold=(chk.number(pr["threshold"], "pruning.threshold", 0.0, 1.0, lo_open=True)
                   if "threshold" in pr else None),
        finetune_epochs=chk.integer(pr.get("finetune_epochs", NeuronPruning.finetune_epochs),
                                    "pruning.finetune_epochs", lo=0),
        rounds=chk.integer(pr.get("rounds", NeuronPruning.rounds), "pruning.rounds", lo=1),
        layers=tuple(chosen))


def _rtl(chk: Checker, value: Any) -> Rtl:
    if value is None:
        return Rtl()
    r = chk.mapping(value, "rtl", ("enabled", "latency_cutoff", "simulators", "samples", "yosys", "fpga", "asic",
                                    "architecture"))
    for key in ("enabled", "yosys"):
        if key in r and not isinstance(r[key], bool):
            raise chk.fail(f"rtl.{key}", f"must be true or false, got {r[key]!r}")
    sims = r.get("simulators", list(SIMULATORS))
    if not isinstance(sims, list):
        raise chk.fail("rtl.simulators", f"must be a list drawn from {', '.join(SIMULATORS)}, got {sims!r}")
    sims = tuple(chk.choice(s, f"rtl.simulators[{i}]", SIMULATORS) for i, s in enumerate(sims))
    from flow.core.targets import FPGA_PARTS
    from flow.core.tools import LIBRARIES

    raw_samples = r.get("samples", 2000)
    if isinstance(raw_samples, dict):
        unknown = sorted(set(raw_samples) - set(SIMULATORS))
        if unknown:
            raise chk.fail(f"rtl.samples.{unknown[0]}", f"is not a simulator ({', '.join(SIMULATORS)})")
        per_sim = tuple((k, chk.integer(v, f"rtl.samples.{k}", lo=1)) for k, v in raw_samples.items())
        samples = 2000
    else:
        per_sim, samples = (), chk.integer(raw_samples, "rtl.samples", lo=1)
    cutoff = r.get("latency_cutoff")
    fpga = None if r.get("fpga") is None else chk.choice(r["fpga"], "rtl.fpga", tuple(FPGA_PARTS))
    asic = None if r.get("asic") is None else chk.choice(r["asic"], "rtl.asic", tuple(LIBRARIES))
    return Rtl(enabled=r.get("enabled", True),
               latency_cutoff=None if cutoff is None else chk.number(cutoff, "rtl.latency_cutoff", 0.0),
               simulators=sims, samples=samples, sim_samples=per_sim, yosys=r.get("yosys", False), fpga=fpga,
               asic=asic,
               architecture=chk.choice(r.get("architecture", "auto"), "rtl.architecture", ARCHITECTURES))
