"""Levelized Verilog of one da4ml ``CombLogic`` (a pipeline stage): every op one blocking assignment, in op order.

da4ml's own generator (``da4ml.codegen.rtl.verilog.comb.comb_logic_gen``) instantiates one small module per
adder, mux, negation, ... (``shift_adder.v``, ``mux.v``, ...). An event-driven simulator pays for every
instance and continuous assignment of such a netlist: Icarus 11 ran the digits MLP at 70 samples/s and the
third-party 784-20-10 MLP (11,000 adders) at 1-2. Here a stage is one module holding one function whose
body is one blocking assignment per op, in da4ml's op order (topological: an op reads only earlier ops), and
one continuous assignment ``model_out = eval_stage(model_inp)``. Icarus runs the function once per change of
the stage's input as straight-line code; its local variables are in no sensitivity list, which made it 2.4x
faster than the same statements in an ``always @*`` block over module-level registers (digits MLP, see
``bench/icarus_speed.py``). Verilator inlines the function; Yosys synthesizes it as combinational logic.

Conventions (da4ml's, unchanged, so the stage ports are bit for bit those of ``comb_logic_gen``):

* op ``i``'s quantization interval ``op.qint`` gives its minimal ``(k, i, f)`` (:func:`da4ml.types.minimal_kif`:
  k sign bit, i integer bits without the sign, f fractional bits) and the width ``w = k + i + f`` of the
  variable ``v<i>`` holding the op's *code*: value = code * 2**-f, two's complement when k = 1. An op of
  width 0 is the constant 0 and has no variable;
* ``model_inp`` is the concatenation (element 0 at the LSB) of the input ops' codes, each in its op's format
  (the interpreter's ``inp_shifts`` are inside those qints); ``model_out`` the same of the outputs in the
  formats of ``CombLogic.out_qint`` (``out_shifts`` and ``out_negs`` applied: the output's code is the op's
  code, negated when ``out_negs``).

Every op is a *window* of an exact integer: the exact result (a sum, negation, selection, product,
bitwise combination or table word) at some binary point, of which the op keeps bits ``[lo, lo + w)``
(dropping low bits is truncation, TRN; keeping ``w`` bits is two's-complement wrap-around, WRAP), see
:func:`window`. Sums, negations and products modulo 2**n depend only on the operands modulo 2**n, so they are
computed at the op's own width; bitwise ops commute with any window. Negative factors (da4ml folds ``-x``
into the consumer: opcodes -2, -3, -6, -9, the negation flags of opcode 10, ``out_negs``) are negations in
the consumer's statement or, where the sign or dropped low bits of ``-x`` matter, a temporary one bit wider
than ``x``. The one-line semantics of each opcode are at :meth:`_Stage.rhs`; they are those of da4ml's C++
interpreter ``CombLogic.predict``, which the tests compare on every op type (``tests/test_rtl_emit.py``).

Lookup tables (opcode 8) are ROMs ``reg [w-1:0] rom<i> [0:2**w_key-1]`` filled by ``$readmemh`` from da4ml's
table files (the same names and contents as da4ml's ``table_mem_gen``), addressed by the key's code.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import accumulate
from typing import Any

EMITTERS = ("levelized", "da4ml")  # hlsflow rtl --emitter; the first is the default
FUNCTION = "eval_stage"


@dataclass(frozen=True)
class _Val:
    """A code: bits ``[base, base + width)`` of the Verilog variable ``name`` (``size`` bits wide; None: ``width``),
    two's complement when ``signed``, value ``code * 2**-frac``. ``name`` None: the constant 0 (width 0)."""

    name: str | None
    width: int
    signed: bool
    frac: int
    base: int = 0
    size: int | None = None


ZERO = _Val(None, 0, False, 0)


def kif_bits(qint: Any) -> tuple[int, int, int]:
    """da4ml's minimal (keep_negative, integer, fractional) bit counts of a value range ``qint``: its code is
    ``k + i + f`` bits wide, ``i`` integer bits excluding the sign, LSB ``2**-f``."""
    from da4ml.types import minimal_kif

    k, i, f = minimal_kif(qint)
    return int(k), int(i), int(f)


def _lit(value: int, width: int) -> str:
    """``value`` modulo 2**width as a sized Verilog literal."""
    return f"{width}'h{value % (1 << width):x}"


def _bits(v: _Val, hi: int, lo: int) -> str:
    """Bits ``[hi:lo]`` of ``v``'s code (``0 <= lo <= hi < v.width``)."""
    if lo == 0 and hi == v.width - 1 and v.base == 0 and v.size in (None, v.width):
        return v.name
    return f"{v.name}[{v.base + hi}]" if hi == lo else f"{v.name}[{v.base + hi}:{v.base + lo}]"


def window(v: _Val, lo: int, n: int) -> str:
    """An ``n``-bit expression: bits ``[lo, lo + n)`` of ``v``'s code extended to infinite width (sign bits
    above a signed code, zeros above an unsigned one, zeros below bit 0 when ``lo < 0``).

    ``window(v, v.frac - f, n)`` is the code of ``v``'s value at ``f`` fractional bits, truncated (TRN) and
    wrapped (WRAP) to ``n`` bits."""
    if v.name is None:
        return f"{n}'d0"
    zeros = min(max(-lo, 0), n)                      # output bits below the code's bit 0
    src_lo, src_hi = max(lo, 0), min(v.width - 1, lo + n - 1)
    count = max(src_hi - src_lo + 1, 0)
    top = n - zeros - count                          # output bits above the code's MSB
    parts = []
    if top:
        if v.signed:
            msb = _bits(v, v.width - 1, v.width - 1)
            parts.append(f"{{{top}{{{msb}}}}}" if top > 1 else msb)
        else:
            parts.append(f"{top}'d0")
    if count:
        parts.append(_bits(v, src_hi, src_lo))
    if zeros:
        parts.append(f"{zeros}'d0")
    return parts[0] if len(parts) == 1 else "{" + ", ".join(parts) + "}"


def _signed32(x: int) -> int:
    x &= 0xFFFFFFFF
    return x - (1 << 32) if x >= 1 << 31 else x


class _Stage:
    """The ROMs, local variables and statements of one stage's function."""

    def __init__(self, sol: Any, inp: str = "inp"):
        self.sol = sol
        self.inp = inp  # the Verilog name of the packed input the input ops read
        self.vals: list[_Val] = []
        self.roms: list[str] = []
        self.decls: list[str] = []
        self.body: list[str] = []
        self.tables: dict[str, str] = {}
        widths = [sum(kif_bits(q)) for q in sol.inp_qint]
        self.inp_lo = [0, *accumulate(widths)]

    def var(self, name: str, width: int) -> str:
        self.decls.append(f"reg [{width - 1}:0] {name};")
        return name

    def negated(self, v: _Val, tag: str) -> _Val:
        """A temporary holding ``-code`` exactly (one bit wider than ``v``, signed)."""
        if v.name is None:
            return v
        w = v.width + 1
        name = self.var(f"n{tag}", w)
        self.body.append(f"{name} = -{window(v, 0, w)};")
        return _Val(name, w, True, v.frac)

    def emit(self) -> None:
        sol = self.sol
        ref = sol.ref_count
        for i, op in enumerate(sol.ops):
            k, _, f = kif_bits(op.qint)
            w = sum(kif_bits(op.qint))
            if w <= 0 or ref[i] == 0:
                self.vals.append(ZERO)
            elif op.opcode == -1:  # an input: read in place
                self.vals.append(_Val(self.inp, w, bool(k), f, self.inp_lo[op.id0], self.inp_lo[-1]))
            else:
                out = _Val(f"v{i}", w, bool(k), f)
                rhs = self.rhs(i, op, out)
                self.vals.append(out)
                self.var(out.name, w)
                self.body.append(f"{out.name} = {rhs};")

    def rhs(self, i: int, op: Any, out: _Val) -> str:
        """The ``out.width``-bit right-hand side of op ``i``; may add statements for temporaries first."""
        w, f, code, v = out.width, out.frac, op.opcode, self.vals
        if code in (0, 1):    # v[id0] +/- v[id1] * 2**data
            return self.ring(i, [(1, v[op.id0], 0), (-1 if code else 1, v[op.id1], op.data)], 0, f, w)
        if code in (2, -2):   # relu(+/-v[id0]): 0 when negative, else TRN + WRAP to the op's format
            x = v[op.id0] if code == 2 else self.negated(v[op.id0], str(i))
            win = window(x, x.frac - f, w)
            return f"{_bits(x, x.width - 1, x.width - 1)} ? {w}'d0 : {win}" if x.signed else win
        if code in (3, -3):   # quantize(+/-v[id0]): TRN + WRAP
            x = v[op.id0] if code == 3 else self.negated(v[op.id0], str(i))
            return window(x, x.frac - f, w)
        if code == 4:         # v[id0] + data * 2**-f
            if v[op.id0].frac > f:
                raise ValueError(f"op {i}: constant addition at {f} fractional bits to a code with {v[op.id0].frac}")
            return self.ring(i, [(1, v[op.id0], 0)], int(op.data), f, w)
        if code == 5:         # the constant data * 2**-f
            return _lit(int(op.data), w)
        if code in (6, -6):   # MSB of v[data & 0xffffffff] ? v[id0] : (+/-v[id1]) * 2**(data >> 32)
            key = v[op.data & 0xFFFFFFFF]
            sel = _bits(key, key.width - 1, key.width - 1) if key.name is not None else "1'b0"
            a = window(v[op.id0], v[op.id0].frac - f, w)
            b = self.scaled(v[op.id1], _signed32(op.data >> 32), f, w, code == -6, f"{i}b")
            return f"{sel} ? {a} : {b}"
        if code == 7:         # v[id0] * v[id1]: the product of the codes
            a, b = v[op.id0], v[op.id1]
            if a.frac + b.frac != f:
                raise ValueError(f"op {i}: product at {f} fractional bits of codes with {a.frac} and {b.frac}")
            # signed operands: their sign-extension bits are then redundant to Yosys (wreduce), so the $mul
            # keeps the operands' own widths (one DSP48 for 16 x 6 bits, not two for 22 x 22); modulo 2**w
            # the product is the same either way
            return f"$signed({window(a, 0, w)}) * $signed({window(b, 0, w)})" if a.name and b.name else f"{w}'d0"
        if code == 8:         # tables[data][code of v[id0]]
            return self.lookup(i, op, w)
        if code in (9, -9):   # NOT (~c = -c - 1, wrapped), OR-reduce, AND-reduce of the code of +/-v[id0]
            x = self.negated(v[op.id0], str(i)) if code == -9 and op.data != 1 else v[op.id0]
            if op.data == 0:
                return f"~{window(x, 0, w)}" if x.name is not None else _lit(-1, w)
            bit = f"{'|&'[int(op.data) - 1]}{_bits(x, x.width - 1, 0)}" if x.name is not None else "1'b0"
            return bit if w == 1 else f"{{{w - 1}'d0, {bit}}}"
        if code == 10:        # (+/-v[id0]) AND/OR/XOR (+/-v[id1]) * 2**shift, the codes at f fractional bits
            data = int(op.data)
            a = self.negated(v[op.id0], f"{i}a") if (data >> 32) & 1 else v[op.id0]
            b = self.negated(v[op.id1], f"{i}b") if (data >> 33) & 1 else v[op.id1]
            shift = _signed32(data)
            return f"{window(a, a.frac - f, w)} {'&|^'[(data >> 56) & 0xFF]} {window(b, b.frac - shift - f, w)}"
        raise ValueError(f"op {i}: unknown da4ml opcode {code} ({op})")

    def scaled(self, v: _Val, shift: int, f: int, w: int, neg: bool, tag: str) -> str:
        """``w`` bits at ``f`` fractional bits of ``(+/-v) * 2**shift``."""
        lo = v.frac - shift - f
        if not neg:
            return window(v, lo, w)
        if lo <= 0:  # no low bits dropped: negate after the shift, modulo 2**w
            return f"-{window(v, lo, w)}"
        return window(self.negated(v, tag), lo, w)

    def ring(self, i: int, terms: list[tuple[int, _Val, int]], const: int, f: int, w: int) -> str:
        """``sum(sign * v * 2**shift) + const * 2**-f`` kept as ``w`` bits at ``f`` fractional bits.

        The exact sum is formed at ``frac``, the finest of the terms and ``f``; of its ``lo = frac - f``
        low bits none survives (TRN). Modulo ``2**(w + lo)`` it needs the low ``w + lo`` bits of each term."""
        frac = max([t.frac - sh for _, t, sh in terms] + [f])
        lo = frac - f
        n = w + lo
        s = " ".join(("+ " if sign > 0 else "- ") + window(t, t.frac - sh - frac, n) for sign, t, sh in terms)
        if const:
            s += f" + {_lit(const << lo, n)}"
        s = s[2:] if s.startswith("+ ") else f"-{s[2:]}"
        if lo == 0:
            return s
        t = self.var(f"t{i}", n)
        self.body.append(f"{t} = {s};")
        return window(_Val(t, n, True, frac), lo, w)

    def lookup(self, i: int, op: Any, w: int) -> str:
        from da4ml.codegen.rtl.verilog.comb import get_table_name_memfile

        name, contents = get_table_name_memfile(self.sol, op)
        self.tables[name] = contents
        key = self.vals[op.id0]
        rom = f"rom{i}"
        self.roms += [f'reg [{w - 1}:0] {rom} [0:{(1 << key.width) - 1}];',  # no rom_style: each tool maps it to logic
                      f'initial $readmemh("{name}", {rom});']
        return f"{rom}[{_bits(key, key.width - 1, 0)}]" if key.name is not None else f"{rom}[0]"

    def outputs(self, target: str = FUNCTION, assign: str = "=") -> list[str]:
        """The statements writing every output field of ``target`` (``assign``: ``=`` or ``<=``)."""
        sol, lines, lo = self.sol, [], 0
        qints = sol.out_qint  # a da4ml property that rebuilds the whole list on every access: read it once
        for j, idx in enumerate(sol.out_idxs):
            w = sum(kif_bits(qints[j]))
            if w <= 0:
                continue
            v = self.vals[idx] if idx >= 0 else ZERO
            neg = "-" if sol.out_negs[j] and v.name is not None else ""
            lines.append(f"{target}[{lo + w - 1}:{lo}] {assign} {neg}{window(v, 0, w)};")
            lo += w
        return lines


def stage_module(sol: Any, name: str, timescale: str | None = None, registered: bool = False
                 ) -> tuple[str, dict[str, str]]:
    """Verilog of stage ``sol`` (a da4ml ``CombLogic``) as module ``name`` with da4ml's ports
    ``input [N-1:0] model_inp``, ``output [M-1:0] model_out``; returns (text, {table file: contents}).

    ``registered``: ``model_out`` is a register that loads the stage's result at a rising ``clk`` when ``load``
    is high (ports ``clk``, ``load`` first). The same statements are then the body of that clocked block
    (a named block ``eval_stage`` with the variables; each output field a non-blocking assignment), evaluated
    only in the cycles that load: a cycle-based simulator (Verilator) skips an idle stage, which a separate
    output register cannot make it do (it evaluates all combinational logic after every clock edge), and
    copies no packed function argument or result."""
    st = _Stage(sol, "model_inp" if registered else "inp")
    st.emit()
    inp_bits, out_bits = st.inp_lo[-1], sum(sum(kif_bits(q)) for q in sol.out_qint)
    j1, j2, j3 = "\n    ", "\n        ", "\n            "
    if registered:
        text = f"""// levelized (flow/rtl/emit.py): one clocked block, one blocking assignment per da4ml op in topological order
module {name} (
    input  wire clk,
    input  wire load,
    // verilator lint_off UNUSEDSIGNAL
    input  wire [{max(inp_bits, 1) - 1}:0] model_inp,  // a stage may not read every bit of every input
    // verilator lint_on UNUSEDSIGNAL
    output reg  [{max(out_bits, 1) - 1}:0] model_out
);
    {j1.join(st.roms)}
    // variables keep every bit of an op's format; later ops may read only some of them; they hold no state
    // (each is written before it is read), so they are no flip-flops
    // verilator lint_off UNUSEDSIGNAL
    // verilator lint_off BLKSEQ
    always @(posedge clk) begin : {FUNCTION}
        {j2.join(st.decls)}
        if (load) begin
            {j3.join(st.body + st.outputs("model_out", "<="))}
        end
    end
    // verilator lint_on BLKSEQ
    // verilator lint_on UNUSEDSIGNAL
endmodule
"""
        return (f"{timescale}\n\n{text}" if timescale else text), st.tables
    outs = st.outputs()
    text = f"""// levelized (flow/rtl/emit.py): one function, one blocking assignment per da4ml op in topological order
module {name} (
    input  wire [{max(inp_bits, 1) - 1}:0] model_inp,
    output wire [{max(out_bits, 1) - 1}:0] model_out
);
    {j1.join(st.roms)}
    // variables keep every bit of an op's format; later ops may read only some of them
    // verilator lint_off UNUSEDSIGNAL
    function [{max(out_bits, 1) - 1}:0] {FUNCTION};
        input [{max(inp_bits, 1) - 1}:0] inp;
        {j2.join(st.decls)}
        begin
            {j3.join(st.body + outs)}
        end
    endfunction
    // verilator lint_on UNUSEDSIGNAL

    assign model_out = {FUNCTION}(model_inp);
endmodule
"""
    return (f"{timescale}\n\n{text}" if timescale else text), st.tables


def stage_verilog(sol: Any, name: str, emitter: str = EMITTERS[0],
                  timescale: str | None = "`timescale 1ns / 1ps", registered: bool = False
                  ) -> tuple[str, dict[str, str]]:
    """Stage module ``name`` of ``sol`` and its table files ({file name: ``$readmemh`` contents}), by
    ``emitter``: ``levelized`` (:func:`stage_module`) or ``da4ml`` (da4ml's ``comb_logic_gen``: one instance
    of da4ml's static modules ``shift_adder.v``, ``mux.v``, ... per op, see :func:`uses_static_modules`).
    ``registered``: the stage holds its output register (:func:`stage_module`; only where
    :func:`registers_stages` says the emitter can)."""
    if registered and not registers_stages(emitter):
        raise ValueError(f"the {emitter} emitter writes combinational stages only")
    if emitter == "levelized":
        return stage_module(sol, name, timescale, registered)
    if emitter == "da4ml":
        from da4ml.codegen.rtl.verilog.comb import comb_logic_gen, table_mem_gen

        return comb_logic_gen(sol, name, timescale=timescale), table_mem_gen(sol)
    raise ValueError(f"unknown emitter {emitter!r} (one of {', '.join(EMITTERS)})")


def uses_static_modules(emitter: str) -> bool:
    """Whether the emitter's stage modules instantiate da4ml's static modules (``shift_adder.v``, ...)."""
    return emitter == "da4ml"


def registers_stages(emitter: str) -> bool:
    """Whether the emitter can write a stage with its output register inside (``registered``)."""
    return emitter == "levelized"
