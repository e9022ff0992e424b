"""The arithmetic of a sequential RTL architecture, traced from the layer descriptions: kernels and the units
between them.

The whole network runs once through its layer descriptions (:mod:`flow.arith.walk`) on
:class:`SequentialOps`, the symbolic executor (:class:`~flow.arith.symbolic_ops.SymbolicOps`) with four
operations intercepted where a sequential architecture replaces space by time:

* ``windows`` (Conv/Pool in io_stream): the windows of the whole image become **one** window, formed by a
  line buffer (:class:`Window`) from a pixel stream; the layer's description continues on that window, so the
  traced arithmetic is that of one output pixel. ``pad`` before it becomes the line buffer's border handling.
* ``reshape`` of a pixel to the flattened image (Flatten in io_stream): the stream becomes a stream of chunks
  of the flat vector (one pixel's channels per beat), no logic.
* ``dot`` of a layer with reuse factor R > 1 (:class:`Fold`): the product becomes a sequential unit whose step
  is the same ``dot`` on a sub-problem, traced once: a slice of the inputs, the weights of that step as
  *variables* (read from a ROM holding the codes the emulator uses) and the running accumulator as the bias.
  The description continues on the accumulator register (its cast to the result type and the next layers).
  ``dot`` over a chunked stream at R = 1 collects the chunks first (:class:`Collect`) and stays unrolled.

Between the cut points the traced variables form combinational kernels (:class:`Segment`), each the
description of what lies between two units, extracted with da4ml's ``comb_trace``. Nothing of the arithmetic
is written here: every value a kernel computes is an operation of a layer description.

A **token** is what one stream beat carries: ``size`` elements of one fixed-point type in the C order of
``shape`` (a pixel ``(1, 1, C)``, a window ``(1, 1, C, kh, kw)``, a vector ``(n,)``), ``beats`` of them per
sample (``ap_fixed<W,I>``: W total bits, I integer bits incl. sign; a code c means ``c * 2**-(W-I)``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import localcontext
from typing import Any

import numpy as np

from flow.arith.layers import Implementation
from flow.arith.ops import OpsError, Tensor
from flow.arith.symbolic_ops import SymbolicOps, cyclic_gc_paused
from flow.arith.target import Target
from flow.arith.trace import DECIMAL_DIGITS
from flow.arith.types import FixedType
from flow.arith.walk import output_names, plan, run
from flow.core.errors import FlowError

FOLDABLE = ("dense", "conv1d", "conv2d")  # descriptions whose product a reuse factor folds
PIXELWISE = ("activation", "param_activation", "hard_activation", "batchnorm", "copy", "conv1d", "conv2d",
             "pooling1d", "pooling2d", "zeropad1d", "zeropad2d", "reshape", "dense", "softmax")


@dataclass(frozen=True)
class Token:
    """One beat of a stream: ``shape`` (C order) of elements of type ``t``, ``beats`` beats per sample."""

    t: FixedType
    shape: tuple[int, ...]
    beats: int

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    @property
    def bits(self) -> int:
        return self.size * self.t.width


@dataclass
class Segment:
    """A combinational kernel: the traced arithmetic between two units (``layers``: whose descriptions it holds).

    ``inputs``/``outputs`` are da4ml variables (flat, C order of the tokens); ``comb`` the netlist (after
    :func:`trace_architecture`)."""

    name: str
    inputs: np.ndarray
    in_token: Token
    outputs: np.ndarray | None = None
    out_token: Token | None = None
    layers: list[str] = field(default_factory=list)
    comb: Any = None

    @property
    def is_wiring(self) -> bool:
        """True when every output is an input (a permutation or copy; no logic, no register needed)."""
        ids = {id(v) for v in self.inputs}
        return self.in_token.t == self.out_token.t and all(id(v) in ids for v in self.outputs)

    def wiring(self) -> list[int]:
        """For a wiring segment: the input index of every output."""
        index = {id(v): k for k, v in enumerate(self.inputs)}
        return [index[id(v)] for v in self.outputs]


@dataclass
class Window:
    """A line buffer: forms the ``kernel`` window (stride ``stride``, ``out`` windows, zero-size ``pads`` of code
    ``pad_code`` around the image) from a stream of pixels of the ``spatial`` image, in raster order."""

    name: str
    layer: str
    in_token: Token
    out_token: Token
    spatial: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    out: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    pad_code: int

    @property
    def channels(self) -> int:
        return self.in_token.shape[-1]


@dataclass
class Fold:
    """A layer's product with reuse factor ``reuse``: ``reuse`` steps per output token, each the step kernel on
    ``ki`` inputs x ``ko`` outputs; ``group`` input beats (of ``in_token``) per output token.

    Step order: for each input beat, for each output block ``ob`` (of ``ko`` outputs), for each slice ``sb`` of
    ``ki`` inputs of the beat. ROM word ``s`` (step s) holds the ``ki x ko`` weight codes of its block (row
    major: input, output) as codes of ``w_t``, and, with several output blocks, the ``ko`` bias codes of the
    block (``acc_t``) after them. ``weights`` (n_in, n_out) and ``bias`` (n_out, already cast to ``acc_t``:
    ``(accum_t) b``, the description's first step, executed by the numpy executor) are the codes the emulator
    uses. The step kernel computes ``dot(x[slice], W[block], acc[block], accum_t)``."""

    name: str
    layer: str
    in_token: Token
    out_token: Token
    reuse: int
    requested: int
    n_in: int
    n_out: int
    ki: int
    ko: int
    group: int
    x_t: FixedType
    w_t: FixedType
    acc_t: FixedType
    weights: np.ndarray
    bias: np.ndarray
    in_order: bool
    step: Any = None  # CombLogic of the step kernel
    kernel_inputs: Any = None
    kernel_outputs: Any = None

    @property
    def slices(self) -> int:
        """Input slices per beat."""
        return self.in_token.size // self.ki

    @property
    def blocks(self) -> int:
        return self.n_out // self.ko

    @property
    def multipliers(self) -> int:
        return self.ki * self.ko

    def step_block(self, s: int) -> tuple[int, int]:
        """(first input, output block) of step ``s`` (0 <= s < reuse)."""
        per_beat = self.slices * self.blocks
        beat, r = divmod(s, per_beat)
        ob, sb = divmod(r, self.slices)
        return beat * self.in_token.size + sb * self.ki, ob

    def rom_words(self) -> list[list[tuple[int, FixedType]]]:
        """Every ROM word as (code, type) fields from the least significant one up."""
        words = []
        for s in range(self.reuse):
            i0, ob = self.step_block(s)
            block = self.weights[i0:i0 + self.ki, ob * self.ko:(ob + 1) * self.ko]
            word = [(int(c), self.w_t) for c in block.ravel()]
            if self.blocks > 1:
                word += [(int(c), self.acc_t) for c in self.bias[ob * self.ko:(ob + 1) * self.ko]]
            words.append(word)
        return words


@dataclass
class Collect:
    """``in_token.beats / out_token.beats`` input beats concatenated into one output beat (beat 0 first)."""

    name: str
    layer: str
    in_token: Token
    out_token: Token

    @property
    def group(self) -> int:
        return self.in_token.beats // self.out_token.beats


@dataclass
class Architecture:
    """The traced network: ``units`` alternate Segment, boundary unit, Segment, ..., Segment."""

    units: list[Any]
    input_type: FixedType
    input_shape: tuple[int, ...]
    output_type: FixedType
    output_shape: tuple[int, ...]
    output_layer: str
    stream: bool

    @property
    def in_token(self) -> Token:
        return self.units[0].in_token

    @property
    def out_token(self) -> Token:
        return self.units[-1].out_token


def divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def fold_shapes(n_in: int, n_out: int, chunk: int, group: int) -> dict[int, tuple[int, int]]:
    """Every reuse factor a product can be folded to, with its (ki, ko): ``ki`` inputs (dividing the beat of
    ``chunk`` inputs) times ``ko`` outputs per step. With several beats per product (``group`` > 1) every step
    covers all outputs, so the accumulators follow the inputs as they stream in."""
    shapes: dict[int, tuple[int, int]] = {}
    for ki in divisors(chunk):
        for ko in sorted(divisors(n_out) if group == 1 else [n_out], reverse=True):
            r = (n_in // ki) * (n_out // ko)
            if r not in shapes or shapes[r][1] < ko:  # prefer wide output blocks (one accumulator per output)
                shapes[r] = (ki, ko)
    return shapes


def closest_reuse(requested: int, valid: list[int]) -> int:
    """The valid reuse factor closest to ``requested`` (the smaller of two equally close), as hls4ml does."""
    return min(sorted(valid), key=lambda r: abs(r - requested))


def reuse_factors(graph: Any, override: int | None = None) -> dict[str, int]:
    """The reuse factor of every foldable layer: ``override`` (``--reuse-factor``) or the graph's
    ``reuse_factor`` (hls4ml's ``ReuseFactor``, model-wide or per layer)."""
    out = {}
    for step in plan(graph):
        if step.impl is not None and step.impl.name in FOLDABLE:
            r = override if override is not None else int(step.layer.get_attr("reuse_factor", 1) or 1)
            if r < 1:
                raise FlowError(f"layer {step.name!r}: reuse factor must be >= 1, got {r}")
            out[step.name] = r
    return out


class SequentialOps(SymbolicOps):
    """The symbolic executor with the cut points of a sequential architecture (module docstring)."""

    def __init__(self, impls: dict[str, Implementation], reuse: dict[str, int], stream: bool) -> None:
        super().__init__()
        self.impls, self.reuse, self.stream = impls, reuse, stream
        self.units: list[Any] = []
        self.spatial: tuple[int, ...] | None = None  # the current stream's image shape (pixel streams)
        self.beats = 1          # beats per sample of the current stream
        self.chunks = False     # the current stream carries chunks of a flattened vector
        self.pending_pad: tuple[Tensor, tuple[tuple[int, int], ...], int, str] | None = None
        self.folded: set[str] = set()
        self._layer = ""

    # the walker names the layer before running it: check it fits the stream it receives
    @property
    def layer(self) -> str:
        return self._layer

    @layer.setter
    def layer(self, name: str) -> None:
        self._layer = name
        if self.units:
            self._note_layer()
        impl = self.impls.get(name)
        if impl is None or not self.stream:
            return
        if self.chunks and impl.name != "dense":
            raise FlowError(f"layer {name!r} ({impl.name}) follows a Flatten in the streaming architecture; "
                            "only a Dense layer can read the flattened stream")
        if self.spatial is not None and impl.name not in PIXELWISE:
            raise FlowError(f"layer {name!r} ({impl.name}) is not supported on a pixel stream by the streaming "
                            f"architecture (supported there: {', '.join(PIXELWISE)})")

    # ------------------------------------------------------------------ segments
    def _open(self, inputs: Tensor, token: Token) -> None:
        self.units.append(Segment(f"seg{sum(isinstance(u, Segment) for u in self.units)}",
                                  np.asarray(inputs.data, dtype=object).reshape(-1), token))

    def _close(self, x: Tensor) -> Token:
        seg = self.units[-1]
        if x.t is None:
            raise FlowError(f"layer {self.layer!r}: an untyped value reaches a unit boundary of the sequential "
                            "architecture")
        seg.outputs = np.asarray(self._vars(x), dtype=object).reshape(-1)
        seg.out_token = Token(x.t, tuple(self.shape(x)), self.beats)
        return seg.out_token

    def _cut(self, x: Tensor, make_unit: Any, new_inputs: Tensor, new_token: Token) -> None:
        token = self._close(x)
        self.units.append(make_unit(token))
        self._open(new_inputs, new_token)

    def _note_layer(self) -> None:
        seg = self.units[-1]
        if not seg.layers or seg.layers[-1] != self.layer:
            seg.layers.append(self.layer)

    def finish(self, y: Tensor) -> None:
        self._close(y)
        missing = [name for name, r in self.reuse.items() if r > 1 and name not in self.folded]
        if missing:
            raise FlowError(f"layer {missing[0]!r}: reuse factor {self.reuse[missing[0]]} needs a product of "
                            "fixed or ternary weights to fold (power-of-two weights: use reuse factor 1)")

    # ------------------------------------------------------------------ intercepted operations
    def input(self, t: FixedType, shape: tuple[int, ...]) -> Tensor:
        if self.stream and len(shape) >= 2:
            self.spatial, self.beats = tuple(shape[:-1]), int(np.prod(shape[:-1]))
            shape = (1,) * (len(shape) - 1) + (shape[-1],)
        x = super().input(t, shape)
        self._open(Tensor(self.inputs[-1]._vars, t.fractional, t), Token(t, tuple(shape), self.beats))
        self.units[-1].layers.append(self.layer)
        return x

    def cast(self, a: Tensor, t: FixedType, role: str = "result") -> Tensor:
        out = super().cast(a, t, role)
        if self.pending_pad is not None and a is self.pending_pad[0]:  # the padding cells are cast alike
            _, widths, code, frac_layer = self.pending_pad
            q = self.consts.cast(self.consts.const(np.array([code]), a.frac), t, role)
            self.pending_pad = (out, widths, int(q.data[0]), frac_layer)
        return out

    def pad(self, x: Tensor, widths: Any, code: int = 0) -> Tensor:
        if not (self.stream and self.spatial is not None):
            return super().pad(x, widths, code)
        widths = tuple((int(a), int(b)) for a, b in widths)
        if widths[-1] != (0, 0) or len(widths) != len(self.spatial) + 1:
            raise FlowError(f"layer {self.layer!r}: padding of the channel axis is not supported on a pixel stream")
        self.pending_pad = (x, widths[:-1], int(code), self.layer)
        return x

    def windows(self, x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...], out: tuple[int, ...]) -> Tensor:
        if not (self.stream and self.spatial is not None):
            return super().windows(x, kernel, stride, out)
        nd = len(kernel)
        pads: tuple[tuple[int, int], ...] = ((0, 0),) * nd
        code = 0
        if self.pending_pad is not None:
            if x is not self.pending_pad[0]:
                raise FlowError(f"the padding of layer {self.pending_pad[3]!r} is followed by arithmetic before the "
                                f"window of layer {self.layer!r}: not supported by the streaming architecture")
            _, pads, code, _ = self.pending_pad
            self.pending_pad = None
        if len(self.spatial) != nd or tuple(self.shape(x)) != (1,) * nd + (self.shape(x)[-1],):
            raise FlowError(f"layer {self.layer!r}: a window over {self.spatial} needs a pixel stream")
        if x.t is None:
            raise FlowError(f"layer {self.layer!r}: the window's input has no declared type")
        c = self.shape(x)[-1]
        wshape = (1,) * nd + (c,) + tuple(kernel)
        win = self.variables(x.t, wshape)
        spatial, layer = self.spatial, self.layer
        n_out = int(np.prod(out))

        def unit(token: Token) -> Window:
            return Window(f"win_{layer}", layer, token, Token(x.t, wshape, n_out), spatial, tuple(kernel),
                          tuple(stride), tuple(out), pads, code)

        self._cut(x, unit, win, Token(x.t, wshape, n_out))
        self.spatial, self.beats = tuple(out), n_out
        self._note_layer()
        return Tensor(win.data, x.frac, x.t)

    def reshape(self, x: Tensor, shape: Any) -> Tensor:
        shape = tuple(int(s) for s in shape)
        size = int(np.prod(self.shape(x)))
        if (self.stream and self.spatial is not None and -1 not in shape and int(np.prod(shape)) != size):
            c = self.shape(x)[-1]
            if len(shape) == 1 and shape[0] == int(np.prod(self.spatial)) * c and size == c:
                self.spatial, self.chunks = None, True  # Flatten: pixel p's channels are flat [p*C, (p+1)*C)
                return super().reshape(x, (c,))
            raise FlowError(f"layer {self.layer!r}: reshape of a {self.spatial} pixel stream to {shape} is not "
                            "supported by the streaming architecture (only Flatten before a Dense layer)")
        return super().reshape(x, shape)

    def accumulate(self, products: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        if self.chunks:
            raise FlowError(f"layer {self.layer!r}: power-of-two weights after a Flatten are not supported by "
                            "the streaming architecture")
        return super().accumulate(products, b, acc_t, in_order)

    def dot(self, x: Tensor, w: Tensor, b: Tensor, acc_t: FixedType, in_order: bool = True) -> Tensor:
        n_in, n_out = (int(s) for s in w.data.shape)
        chunk = int(self.shape(x)[-1])
        lead = tuple(self.shape(x)[:-1])
        r = self.reuse.get(self.layer, 1)
        chunked = chunk != n_in
        if not (r > 1 or chunked):
            return super().dot(x, w, b, acc_t, in_order)
        if chunked and not (self.chunks and n_in == chunk * self.beats):
            raise FlowError(f"layer {self.layer!r}: a product over {n_in} inputs receives {chunk} per beat")
        if not self.stream and lead:
            raise FlowError(f"layer {self.layer!r}: reuse factor {r} of an io_parallel convolution is not "
                            "supported by the RTL (convert with io_stream: a line buffer and one shared kernel)")
        if x.t is None:
            raise FlowError(f"layer {self.layer!r}: the product's input has no declared type")
        group = self.beats if chunked else 1
        layer = self.layer
        if r == 1:  # a chunked stream at R = 1: collect the whole vector, then the unrolled product
            vec = self.variables(x.t, (n_in,))
            self._cut(x, lambda tok: Collect(f"col_{layer}", layer, tok, Token(x.t, (n_in,), tok.beats // group)),
                      vec, Token(x.t, (n_in,), self.beats // group))
            self.beats //= group
            self.chunks = False
            self._note_layer()
            return super().dot(vec, w, b, acc_t, in_order)
        shapes = fold_shapes(n_in, n_out, chunk, group)
        used = closest_reuse(r, list(shapes))
        ki, ko = shapes[used]
        acc = self.variables(acc_t, (*lead, n_out))
        bias = self.consts.cast(b, acc_t, "bias")
        w_t = code_type(np.asarray(w.data), w.frac)
        out_token = Token(acc_t, (*lead, n_out), self.beats // group)

        def unit(token: Token) -> Fold:
            return Fold(f"fold_{layer}", layer, token, out_token, used, r, n_in, n_out, ki, ko, group, x.t, w_t,
                        acc_t, np.asarray(w.data).reshape(n_in, n_out), np.asarray(bias.data).reshape(-1),
                        in_order)

        self._cut(x, unit, acc, out_token)
        self.beats //= group
        self.chunks = False
        self.folded.add(layer)
        self._note_layer()
        return Tensor(acc.data, acc_t.fractional, acc_t)


def code_type(codes: np.ndarray, frac: int) -> FixedType:
    """The narrowest ``ap_[u]fixed`` with ``frac`` fractional bits holding every integer code of ``codes``."""
    lo, hi = int(np.min(codes, initial=0)), int(np.max(codes, initial=0))
    signed = lo < 0
    width = max(1, max(hi.bit_length(), (-lo - 1).bit_length() if signed else 0) + int(signed))
    return FixedType(width, width - frac, signed)


def trace_step_kernel(fold: Fold, solver_options: dict[str, Any] | None = None) -> None:
    """Trace the step kernel of ``fold`` (the layer's ``dot`` on one step's sub-problem) into ``fold.step``.

    Inputs, in port order: ``ki`` inputs of ``x_t``, ``ki * ko`` weights of ``w_t`` (row major), ``ko``
    accumulators of ``acc_t``; outputs: ``ko`` accumulators of ``acc_t``."""
    from da4ml.trace import comb_trace

    ops = SymbolicOps()
    if solver_options:
        ops.solver_options = dict(solver_options)
    ops.layer = fold.layer
    with localcontext() as ctx:
        ctx.prec = DECIMAL_DIGITS
        x = ops.variables(fold.x_t, (fold.ki,))
        w = ops.variables(fold.w_t, (fold.ki, fold.ko))
        b = ops.variables(fold.acc_t, (fold.ko,))
        try:
            y = ops.dot(x, w, b, fold.acc_t, fold.in_order)
        except OpsError as exc:
            raise FlowError(f"layer {fold.layer!r}: reuse factor {fold.reuse}: {exc} (RTL trace)") from None
        if y.t != fold.acc_t:
            y = ops.cast(y, fold.acc_t, "accum")
    fold.kernel_inputs = np.concatenate([x.data.ravel(), w.data.ravel(), b.data.ravel()])
    fold.kernel_outputs = np.asarray(y.data, dtype=object).ravel()
    fold.step = comb_trace(ops.array(Tensor(fold.kernel_inputs, 0)), ops.array(y), keep_dead_inputs=True)


def trace_architecture(graph: Any, reuse: dict[str, int], stream: bool, upto: str | None = None) -> Architecture:
    """Run the network through :class:`SequentialOps` and trace every kernel (module docstring).

    ``reuse``: reuse factor per foldable layer (:func:`reuse_factors`); ``stream``: pixel streams through line
    buffers (io_stream CNNs) instead of whole samples per beat. FlowError names the first layer that cannot be
    built."""
    from da4ml.trace import comb_trace

    steps = plan(graph, upto)
    out_name = output_names(graph, steps, upto)[0]
    impls = {s.name: s.impl for s in steps if s.impl is not None}
    if stream:
        for s in steps:
            if s.impl is not None and s.impl.inputs != 1:
                raise FlowError(f"layer {s.name!r} ({s.impl.name}) has {s.impl.inputs} inputs: the streaming "
                                "architecture takes chains of single-input layers")
    ops = SequentialOps(impls, reuse, stream)
    with localcontext() as ctx, cyclic_gc_paused():
        ctx.prec = DECIMAL_DIGITS
        by_var, _ = run(steps, ops, Target.of(graph))
        y = by_var[out_name]
        if y.t is None:
            raise FlowError(f"the graph output {out_name!r} has no declared type")
        ops.finish(y)
    for unit in ops.units:
        if isinstance(unit, Segment):
            unit.comb = comb_trace(ops.array(Tensor(unit.inputs, 0)), ops.array(Tensor(unit.outputs, 0)),
                                   keep_dead_inputs=True)
        elif isinstance(unit, Fold):
            trace_step_kernel(unit, ops.solver_options)
    in_t = ops.units[0].in_token.t
    return Architecture(ops.units, in_t, tuple(int(s) for s in steps[0].layer.get_output_variable().shape),
                        y.t, tuple(ops.shape(y)), steps[-1].name, stream)


def multipliers(arch: Architecture) -> int:
    """Shared variable-by-variable multipliers of the folded units."""
    return sum(u.multipliers for u in arch.units if isinstance(u, Fold))


def cost(arch: Architecture) -> float:
    """da4ml's cost estimate of every kernel, each counted once (it is instantiated once)."""
    total = 0.0
    for u in arch.units:
        comb = u.comb if isinstance(u, Segment) else u.step if isinstance(u, Fold) else None
        if comb is not None:
            total += float(comb.cost)
    return total


def bits(n: int) -> int:
    """Bits of a counter holding 0 .. n-1 (at least 1)."""
    return max(1, math.ceil(math.log2(max(n, 2))))
