"""What ``hlsflow rtl`` will cost, from the graph alone (no da4ml), and the folding that fits a LUT budget.

Before anything is traced, every foldable layer (Dense, Conv; :data:`flow.rtl.architecture.FOLDABLE`) is sized from
its weight codes as the emulator reads them (:func:`flow.arith.hls_layer.weights`), its input type and its
``accum_t`` (``ap_fixed<W,I>``: W total bits, I integer bits incl. sign):

* **unrolled** (reuse factor 1): every nonzero weight is a multiplication by a constant, made of shift-adds,
  one adder per nonzero canonical-signed-digit (CSD) digit beyond the first; the products of an output are
  summed by one adder each. Adders = (nonzero CSD digits) - (outputs with a nonzero weight), times the output
  positions an io_parallel convolution traces (1 for Dense and streamed convolutions). LUTs =
  :data:`LUTS_PER_ADDER_BIT` x adders x input width.
* **folded** at reuse factor R (the shape :func:`flow.rtl.architecture.fold_shapes` gives: ki x ko shared
  variable-by-variable multipliers, R steps): LUTs = ki x ko x (:data:`LUTS_PER_PRODUCT_BIT` x accumulator
  width, the add into the accumulator, times :data:`MULTI_OPERAND_FACTOR` when ki > 1, or only
  :data:`LUTS_PER_DSP_SUM` when ``accum_t`` keeps every product bit and wraps (the sums go into the DSP48s'
  post-adders; a truncating ``accum_t`` puts a cast between product and sum that keeps them in LUTs), plus
  one LUT per accumulator bit in that case; plus :data:`LUTS_PER_MULTIPLIER_BIT` x input width x weight width,
  the multiplier itself, 0 for Yosys ``synth_xilinx``, which puts it in a DSP48) + the weight ROM when it is too
  small for block RAM (one LUT per word bit and 64 words) + the input-slice multiplexer + a fixed
  :data:`FOLD_CONTROL_LUTS` (step counters, handshakes).
* every other layer (activations, casts, softmax tables ...): :data:`LUTS_PER_OTHER_BIT` x its output bits (one
  pixel's in a streamed CNN), the same at every reuse factor.

A streamed CNN (io_stream) is sized as one window per convolution (its line buffers are not counted); a Dense
layer after its Flatten folds by beats of one pixel's channels, as :func:`flow.rtl.architecture.fold_shapes` does.

Registers: unrolled, :data:`REGISTERS_PER_ADDER_BIT` x adders x input width (da4ml's pipeline registers every
live value at every stage: how many depends on the cut, fitted at the 5 ns default) plus every layer's result;
folded, the accumulators, the input register and a LUT ROM's output word (a rough figure either way).

The coefficients were fitted to Yosys 0.23 ``synth_xilinx -flatten`` LUT counts (LUT1..LUT6,
:mod:`flow.physical.estimate`) of generated designs (docs/rtl.md, "Estimating and folding to a budget";
``bench/folding.py``); an estimate, not a synthesis result: within a factor 1.5 of Yosys on most designs
measured there, and the table there says where not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from flow.core.errors import FlowError

LUTS_PER_ADDER_BIT = 0.9       # unrolled: LUTs per constant-multiplication adder and input bit
LUTS_PER_PRODUCT_BIT = 1.0     # folded: LUTs per shared product and accumulator bit (the running sum)
LUTS_PER_DSP_SUM = 2.0         # folded, exact products (accum_t keeps every bit, WRAP): Yosys chains the sums
                               # through the DSP48s' post-adders; LUTs per product that remain, plus one LUT per
                               # accumulator bit (the bias-or-sum select in front of the chain, fitted, not broken down)
MULTI_OPERAND_FACTOR = 2.0     # folded, several inputs per step (ki > 1): Yosys sums ki + 1 operands per output
                               # with its $macc adder tree, about twice the LUTs of one carry-chain adder per operand
LUTS_PER_MULTIPLIER_BIT = 0.0  # folded: LUTs per multiplier and input x weight bit (0: DSP48 in synth_xilinx)
REGISTERS_PER_ADDER_BIT = 0.9  # unrolled: flip-flops per adder and input bit (da4ml's pipeline, cut for 5 ns)
LUTS_PER_OTHER_BIT = 1.0       # every other layer: LUTs per output bit
FOLD_CONTROL_LUTS = 40         # folded: per layer, step counters and handshakes
ROM_WORDS_PER_LUT = 64         # a LUT6 holds 64 words of one bit


def csd_digits(codes: np.ndarray) -> np.ndarray:
    """Nonzero digits of the canonical signed-digit (non-adjacent) form of every integer code: the terms of a
    multiplication by that constant as shift-adds (0 for 0, 1 for a power of two, 2 for 7 = 8 - 1)."""
    a = np.abs(np.asarray(codes, dtype=np.int64))
    d = ((3 * a) ^ a) >> 1
    count = np.zeros(a.shape, dtype=np.int64)
    while np.any(d):
        count += d & 1
        d >>= 1
    return count


@dataclass(frozen=True)
class LayerSize:
    """One foldable layer as the estimate sees it: an ``n_in`` x ``n_out`` product, ``positions`` times per
    sample in the unrolled trace (output pixels of an io_parallel convolution, else 1); widths in bits."""

    name: str
    n_in: int
    n_out: int
    positions: int
    nonzero: int       # nonzero weights (constant multiplications per position)
    digits: int        # their nonzero CSD digits
    used_outputs: int  # outputs with at least one nonzero weight
    x_bits: int
    w_bits: int
    acc_bits: int
    out_bits: int      # bits of one position's result (n_out x the result width)
    exact_products: bool = False  # accum_t keeps every product bit and wraps: product and sum fit one DSP48
    chunk: int = 0     # inputs per beat when a streamed CNN's Dense takes its flattened pixels (0: all n_in at once)

    def shapes(self) -> dict[int, tuple[int, int]]:
        """Every reuse factor this product folds to, with its (ki, ko) (:func:`flow.rtl.architecture.fold_shapes`)."""
        from flow.rtl.architecture import fold_shapes

        chunk = self.chunk or self.n_in
        return fold_shapes(self.n_in, self.n_out, chunk, self.n_in // chunk)


@dataclass(frozen=True)
class Estimate:
    """The estimate of a whole design at ``reuse`` (the reuse factor used per foldable layer; 1: unrolled).

    ``multiplications``: constant multiplications of the unrolled layers plus shared multipliers of the folded
    ones; ``adders``: shift-add and accumulation adders; ``luts``: Yosys ``synth_xilinx`` LUTs (LUT6) expected;
    ``registers``: flip-flops expected (rough)."""

    reuse: dict[str, int]
    multiplications: int
    adders: int
    luts: int
    registers: int

    @property
    def folding(self) -> str:
        """``unrolled``, ``reuse factor 16``, or ``reuse factors fc1 4, fc2 2`` when they differ."""
        folded = {k: r for k, r in self.reuse.items() if r > 1}
        if not folded:
            return "unrolled"
        if len(set(self.reuse.values())) == 1:
            return f"reuse factor {next(iter(folded.values()))}"
        return "reuse factors " + ", ".join(f"{k} {r}" for k, r in self.reuse.items())

    def line(self, architecture: str = "") -> str:
        """``estimate: N multiplications, ~A adders, ~L LUTs, ~F registers (unrolled)``; ``architecture``
        ``stream`` adds it: ``(stream, reuse factor 4)``."""
        how = f"stream, {self.folding}" if architecture == "stream" else self.folding
        return (f"estimate: {self.multiplications:,} multiplications, ~{self.adders:,} adders, ~{self.luts:,} LUTs, "
                f"~{self.registers:,} registers ({how})")


def layer_sizes(graph: Any, upto: str | None = None) -> tuple[list[LayerSize], int]:
    """(the foldable layers' sizes, the output bits of every other layer) of ``graph`` up to ``upto``."""
    from flow.arith.hls_layer import attr_type, ftype, out_shape, out_type, weights
    from flow.arith.target import Target
    from flow.arith.walk import plan
    from flow.rtl.architecture import FOLDABLE, code_type

    stream = Target.of(graph).stream
    sizes: list[LayerSize] = []
    other = 0
    pixel = 0  # streamed: channels per beat of the pixel stream a Flatten turns into a chunked vector
    for step in plan(graph, upto):
        if step.impl is None:
            continue
        layer = step.layer
        shape = out_shape(layer)
        t = out_type(layer)
        if stream and len(shape) > 1:
            pixel = int(shape[-1])
        if step.impl.name not in FOLDABLE:
            other += (int(shape[-1]) if stream else int(np.prod(shape))) * t.width  # streamed: one pixel
            continue
        w = weights(layer, "weight")
        if step.impl.name == "dense" and layer.get_attr("_weights_transposed", False):
            w = w.transposed((1, 0))
        n_out = int(shape[-1])
        codes = np.asarray(np.ones(w.shape) if w.kind == "po2" else w.codes, dtype=np.int64).reshape(-1, n_out)
        n_in = codes.shape[0]
        nonzero = codes != 0
        digits = int(csd_digits(codes).sum()) if w.kind == "fixed" else int(nonzero.sum())
        w_bits = code_type(codes, 0).width
        positions = 1 if stream or step.impl.name == "dense" else int(np.prod(shape[:-1]))
        x_t = ftype(layer, layer.get_input_variable().type.precision, "input")
        acc_t = attr_type(layer, "accum_t") if layer.get_attr("accum_t") is not None else t
        exact = acc_t.fractional >= x_t.fractional + w.frac and acc_t.overflow == "WRAP"
        chunk = pixel if stream and step.impl.name == "dense" and pixel and n_in % pixel == 0 else 0
        if len(shape) == 1:
            pixel = 0
        sizes.append(LayerSize(step.name, n_in, n_out, positions, int(nonzero.sum()), digits,
                               int(nonzero.any(axis=0).sum()), x_t.width, w_bits, acc_t.width, n_out * t.width,
                               exact, chunk))
    return sizes, other


def used_reuse(size: LayerSize, requested: int) -> int:
    """The reuse factor the folded unit will use for ``requested`` (the closest valid one, as hls4ml does)."""
    from flow.rtl.architecture import closest_reuse

    if requested <= 1:
        return 1
    return closest_reuse(requested, list(size.shapes()))


def estimate(sizes: list[LayerSize], other_bits: int, reuse: dict[str, int]) -> Estimate:
    """The design's estimate with reuse factor ``reuse[name]`` per foldable layer (missing or 1: unrolled)."""
    from flow.rtl.architecture import bits
    from flow.rtl.units import BLOCK_ROM_BITS

    mults = adders = registers = 0
    luts = LUTS_PER_OTHER_BIT * other_bits
    registers += other_bits
    used: dict[str, int] = {}
    for s in sizes:
        r = used_reuse(s, reuse.get(s.name, 1))
        used[s.name] = r
        if r == 1:
            adds = s.positions * max(s.digits - s.used_outputs, 0)
            mults += s.positions * s.nonzero
            adders += adds
            luts += LUTS_PER_ADDER_BIT * adds * s.x_bits
            registers += int(REGISTERS_PER_ADDER_BIT * adds * s.x_bits) + s.positions * s.out_bits
            continue
        ki, ko = s.shapes()[r]
        m = ki * ko
        rom_bits = m * s.w_bits
        mults += m
        adders += m
        if s.exact_products:
            per_add = LUTS_PER_DSP_SUM
            luts += s.n_out * s.acc_bits
        else:
            per_add = LUTS_PER_PRODUCT_BIT * s.acc_bits * (MULTI_OPERAND_FACTOR if ki > 1 else 1.0)
        luts += m * (per_add + LUTS_PER_MULTIPLIER_BIT * s.x_bits * s.w_bits)
        in_luts = r * rom_bits < BLOCK_ROM_BITS  # else block RAM, its output register included
        if in_luts:
            luts += rom_bits * -(-r // ROM_WORDS_PER_LUT)
        slices = (s.chunk or s.n_in) // ki  # input slices of one beat
        if slices > 1:
            luts += ki * s.x_bits * -(-(slices - 1) // 4)
        luts += FOLD_CONTROL_LUTS + 3 * bits(r)
        registers += s.n_in * s.x_bits + s.n_out * s.acc_bits + (rom_bits if in_luts else 0)
    return Estimate(used, mults, adders, int(round(luts)), registers)


def reuse_candidates(sizes: list[LayerSize]) -> list[int]:
    """Every reuse factor some layer can be folded to (:func:`flow.rtl.architecture.fold_shapes`), ascending, 1
    first."""
    found = {1}
    for s in sizes:
        found.update(s.shapes())
    return sorted(found)


def fit(sizes: list[LayerSize], other_bits: int, max_luts: int, what: str) -> tuple[int, Estimate]:
    """The smallest reuse factor R (the same for every foldable layer, each at its closest valid one) whose
    estimate is at most ``max_luts``, and that estimate. Nothing fits: FlowError stating what the cheapest folding
    would cost and what to pass (``what`` names the budget: ``--max-luts 5000``, ``--fpga ecp5-25k``)."""
    tried = []
    for r in reuse_candidates(sizes):
        e = estimate(sizes, other_bits, {s.name: r for s in sizes})
        if e.luts <= max_luts:
            return r, e
        tried.append((e.luts, r))
    if not tried:
        raise FlowError("the graph has no Dense/Conv layer to fold")
    luts, r = min(tried)
    raise FlowError(f"no folding fits {max_luts:,} LUTs ({what}): the cheapest, --reuse-factor {r}, is estimated at "
                    f"~{luts:,} LUTs; pass --max-luts {luts} or more (or --architecture folded --reuse-factor {r} "
                    "to generate it anyway)")


def decide(graph: Any, kind: str, reuse: dict[str, int], explicit: bool, max_luts: int | None, what: str,
           upto: str | None = None) -> tuple[str, dict[str, int], Estimate]:
    """The architecture and reuse factors ``hlsflow rtl`` traces, and their estimate, stated on stderr before
    tracing (``estimate: ...``).

    ``kind``/``reuse``: what :func:`flow.rtl.sequential.choose_architecture` chose. Without a budget
    (``max_luts`` None) they stay. With one and ``explicit`` (``--architecture`` other than auto, or
    ``--reuse-factor``) they stay too, with a warning line when the estimate is over it. Otherwise the smallest
    reuse factor whose estimate fits (:func:`fit`) replaces the project's: ``unrolled`` at 1, ``folded`` above
    (a streaming CNN stays ``stream``), stated in one line; FlowError (exit 2) when nothing fits."""
    from flow.rtl.progress import say

    sizes, other = layer_sizes(graph, upto)
    chosen = estimate(sizes, other, reuse if kind != "unrolled" else {})
    if max_luts is not None and sizes and not explicit:
        r, chosen = fit(sizes, other, max_luts, what)
        kind = kind if kind == "stream" else "folded" if r > 1 else "unrolled"
        reuse = {name: r for name in reuse}
        say(f"--architecture auto: {chosen.folding}, the smallest folding estimated within {max_luts:,} LUTs ({what})")
    elif max_luts is not None and chosen.luts > max_luts:
        say(f"warning: ~{chosen.luts:,} LUTs estimated, over the budget of {max_luts:,} ({what}); the architecture "
            f"asked for is kept ({chosen.folding if kind == 'folded' else kind})")
    say(chosen.line(kind))
    return kind, reuse, chosen
