"""Verilog of the sequential units (templates; the arithmetic inside every unit is a traced kernel).

Every unit has the same stream interface, ``clk``, ``rst`` (synchronous, active high), ``in_data/in_valid/
in_ready``, ``out_data/out_valid/out_ready``, with AXI4-Stream rules: a beat transfers at a rising edge with
valid and ready high; ``out_valid``/``out_data`` come from registers and hold until taken. ``*_data`` carry the
declared codes of their token's elements, element k at ``[k*W +: W]`` (``ap_fixed<W,I>``: W total bits, I integer
bits incl. sign). Kernels are da4ml netlists (``model_inp``/``model_out`` packed in da4ml's own per-element
formats); :func:`pack_assigns`/:func:`unpack_assigns` convert between the two.

* comb unit: a traced kernel, pipelined into stages, one register after each stage, no stall (valid bits shift
  every cycle; back-pressure fills an output FIFO; ``in_ready`` from a credit count); latency = stages (+1 with
  an input register), one beat per cycle;
* window unit (line buffer): a shift register of ``(kh-1)*Wp + kw`` pixels (Wp: padded width) over the padded
  image in raster order; a padding cell is pushed without an input beat; after the push that completes a
  window the kernel window is the shift register's taps; pushes stop while a window waits;
* fold unit: the step kernel (one instance), the step counter, a synchronous-read ROM of the step's weights
  (``$readmemh``), one accumulator per output of the block (with one block they are the output register; with
  several, finished blocks wait in a staging register and the token in an output register);
* collect unit: beats shifted into one wide register; FIFO: ``D`` words (distributed RAM), registered ready.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from flow.arith.types import FixedType
from flow.rtl.architecture import Collect, Fold, Window, bits
from flow.rtl.netlist import pack_assigns, packed_width, unpack_assigns


def hex_word(fields: Sequence[tuple[int, FixedType]]) -> tuple[str, int]:
    """Codes packed from bit 0 up (two's complement in each field's width) as hex digits; (hex, width)."""
    word, off = 0, 0
    for code, t in fields:
        word |= (int(code) & ((1 << t.width) - 1)) << off
        off += t.width
    return format(word, f"0{max(1, (off + 3) // 4)}x"), off


def literal(fields: Sequence[tuple[int, FixedType]]) -> str:
    h, w = hex_word(fields)
    return f"{w}'h{h}"


BLOCK_ROM_BITS = 4096  # weight ROMs of at least this many bits are marked for block RAM
J = "\n    "
JJ = "\n            "


def _ports(name: str, in_w: int, out_w: int) -> str:
    return f"""module {name} (
    input  wire             clk,
    input  wire             rst,
    // verilator lint_off UNUSEDSIGNAL
    input  wire [{in_w - 1}:0] in_data,  // a kernel may not read every input (e.g. one with zero weights only)
    // verilator lint_on UNUSEDSIGNAL
    input  wire             in_valid,
    output wire             in_ready,
    output wire [{out_w - 1}:0] out_data,
    output wire             out_valid,
    input  wire             out_ready
);"""


def comb_fifo_depth(regs: int) -> int:
    """Beats of a comb unit's output FIFO: its latency (``regs`` registers) + 1, the samples in flight at full
    rate plus the one whose credit returns on the cycle it leaves."""
    return regs + 1


def comb_unit(name: str, stage_names: list[str | None], stages: list[Any], in_types: list[FixedType],
              out_types: list[FixedType], input_register: bool, header: str, registered: bool = False) -> str:
    """A pipelined kernel: ``stages`` (da4ml CombLogic per stage; ``stage_names[s]`` its module or None for a
    stage without logic), declared input/output element types.

    No stall: the valid bits shift on every cycle, and a register loads when the one before it holds a sample (its
    valid bit; a sample accepted for the first), so each load enable drives one stage's register only and an idle
    slot keeps its old bits (no logic downstream of it switches: less dynamic power; Verilator skips the stage's
    evaluation). Back-pressure is absorbed by an output FIFO ``<name>_out_fifo`` (:func:`fifo_unit`,
    :func:`comb_fifo_depth` beats, passed by when empty and ``out_ready`` is high); ``in_ready = credits != 0``,
    ``credits`` = FIFO beats not promised to a sample accepted and not yet delivered, so the FIFO never overflows.
    ``registered``: the stage modules hold these registers themselves (ports ``clk``, ``load``;
    :func:`flow.rtl.emit.stage_module`)."""
    in_w, out_w = sum(t.width for t in in_types), sum(t.width for t in out_types)
    regs = len(stages) + int(input_register)
    depth = comb_fifo_depth(regs)
    cb = bits(depth + 1)
    in_lines, in_bits = pack_assigns("packed_in", "in_data", list(stages[0].inp_qint), in_types)
    out_lines = unpack_assigns("out_data", "packed_out", list(stages[-1].out_qint), out_types)
    ob = max(packed_width(stages[-1].out_qint), 1)
    decl, inst, seq = [f"wire [{max(in_bits, 1) - 1}:0] packed_in;"], [], []
    if not in_lines:
        in_lines = ["assign packed_in = 1'b0;"]
    src = "packed_in"
    if input_register:
        decl.append(f"reg  [{max(in_bits, 1) - 1}:0] packed_in_q;")
        seq.append("if (accept) packed_in_q <= packed_in;")
        src = "packed_in_q"
    for s, (mod, sol) in enumerate(zip(stage_names, stages)):
        sb = packed_width(sol.out_qint)
        k = s + int(input_register)  # this register's valid bit
        loads = "accept" if k == 0 else f"valid[{k - 1}]"  # the register before it holds a sample
        if mod is None:
            decl.append(f"wire [{max(sb, 1) - 1}:0] stage{s}_q = {max(sb, 1)}'d0;")
        elif registered:
            decl.append(f"wire [{max(sb, 1) - 1}:0] stage{s}_q;")
            inst.append(f"{mod} u_stage{s} (.clk(clk), .load({loads}), .model_inp({src}), "
                        f".model_out(stage{s}_q));")
        else:
            decl += [f"wire [{max(sb, 1) - 1}:0] stage{s}_out;", f"reg  [{max(sb, 1) - 1}:0] stage{s}_q;"]
            inst.append(f"{mod} u_stage{s} (.model_inp({src}), .model_out(stage{s}_out));")
            seq.append(f"if ({loads}) stage{s}_q <= stage{s}_out;")
        src = f"stage{s}_q"
    shift = "accept" if regs == 1 else f"{{valid[{regs - 2}:0], accept}}"
    loads_block = f"""always @(posedge clk) begin
        {J.join(seq)}
    end""" if seq else "// every register is inside its stage module"
    return f"""{header}{_ports(name, in_w, out_w)}
    // verilator lint_off UNUSEDSIGNAL
    {J.join(decl)}
    wire [{ob - 1}:0] last_q = {src};
    wire [{ob - 1}:0] fifo_out;
    wire fifo_ready;  // always high when written: the credits keep room for every sample in flight
    wire [{ob - 1}:0] packed_out = fifo_valid ? fifo_out : last_q;
    // verilator lint_on UNUSEDSIGNAL
    wire fifo_valid;
    reg  [{regs - 1}:0] valid;
    reg  [{cb - 1}:0] credits;
    wire accept = in_valid && in_ready;
    wire deliver = out_valid && out_ready;
    // the last register's sample goes straight out when the FIFO is empty and the consumer takes it
    wire fifo_write = valid[{regs - 1}] && (fifo_valid || !out_ready);
    assign in_ready = credits != {cb}'d0;
    assign out_valid = fifo_valid || valid[{regs - 1}];

    {J.join(in_lines)}
    {J.join(inst)}

    always @(posedge clk) begin
        if (rst) begin
            valid <= {regs}'d0;
            credits <= {cb}'d{depth};
        end else begin
            valid <= {shift};
            if (accept && !deliver) credits <= credits - {cb}'d1;
            else if (deliver && !accept) credits <= credits + {cb}'d1;
        end
    end
    {loads_block}

    {name}_out_fifo u_out_fifo (.clk(clk), .rst(rst), .in_data(last_q), .in_valid(fifo_write),
        .in_ready(fifo_ready), .out_data(fifo_out), .out_valid(fifo_valid), .out_ready(out_ready));

    {J.join(out_lines)}
endmodule
"""


def kernel_shell(name: str, comb_module: str, comb: Any, groups: list[tuple[str, list[FixedType]]],
                 out_name: str, out_types: list[FixedType], header: str) -> str:
    """A combinational kernel with declared-code ports: ``groups`` (port name, element types) in the order the
    kernel's inputs were traced, one output port."""
    types = [t for _, ts in groups for t in ts]
    ports = [f"input  wire [{sum(t.width for t in ts) - 1}:0] {g}," for g, ts in groups]
    cat = "{" + ", ".join(g for g, _ in reversed(groups)) + "}" if len(groups) > 1 else groups[0][0]
    in_lines, in_bits = pack_assigns("packed_in", "all_in", list(comb.inp_qint), types)
    out_lines = unpack_assigns(out_name, "packed_out", list(comb.out_qint), out_types)
    ob = packed_width(comb.out_qint)
    return f"""{header}module {name} (
    {J.join(ports)}
    output wire [{sum(t.width for t in out_types) - 1}:0] {out_name}
);
    // verilator lint_off UNUSEDSIGNAL
    wire [{sum(t.width for t in types) - 1}:0] all_in = {cat};
    wire [{max(in_bits, 1) - 1}:0] packed_in;
    wire [{max(ob, 1) - 1}:0] packed_out;
    // verilator lint_on UNUSEDSIGNAL
    {J.join(in_lines) if in_lines else "assign packed_in = 1'b0;"}
    {comb_module} u_kernel (.model_inp(packed_in), .model_out(packed_out));
    {J.join(out_lines)}
endmodule
"""


def _vector_bits(flags: Sequence[bool]) -> str:
    """A Verilog constant whose bit i is ``flags[i]``."""
    v = sum(1 << i for i, f in enumerate(flags) if f)
    return f"{len(flags)}'h{v:x}"


def window_unit(name: str, w: Window, header: str) -> str:
    """The line buffer of ``w`` (1-D windows are 2-D ones of height 1)."""
    sp, ker, st, out, pads = w.spatial, w.kernel, w.stride, w.out, w.pads
    if len(sp) == 1:
        sp, ker, st, out, pads = (1, *sp), (1, *ker), (1, *st), (1, *out), ((0, 0), *pads)
    (h, wd), (kh, kw), (sh, sw), (oh, ow) = sp, ker, st, out
    (pt, pb), (pl, pr_) = pads
    hp, wp = h + pt + pb, wd + pl + pr_
    c, ew = w.channels, w.in_token.t.width
    cw = c * ew
    length = (kh - 1) * wp + kw
    pad_row = [r < pt or r >= pt + h for r in range(hp)]
    pad_col = [q < pl or q >= pl + wd for q in range(wp)]
    row_ok = [r >= kh - 1 and (r - kh + 1) % sh == 0 and (r - kh + 1) // sh < oh for r in range(hp)]
    col_ok = [q >= kw - 1 and (q - kw + 1) % sw == 0 and (q - kw + 1) // sw < ow for q in range(wp)]
    pad_pixel = literal([(w.pad_code, w.in_token.t)] * c)
    taps = []
    for ch in range(c):
        for dy in range(kh):
            for dx in range(kw):
                k = (ch * kh + dy) * kw + dx
                dist = (kh - 1 - dy) * wp + (kw - 1 - dx)
                taps.append(f"assign out_data[{(k + 1) * ew - 1}:{k * ew}] = sr[{dist * cw + (ch + 1) * ew - 1}:"
                            f"{dist * cw + ch * ew}];  // tap (c={ch}, dy={dy}, dx={dx})")
    shift = "pixel" if length == 1 else f"{{sr[{(length - 1) * cw - 1}:0], pixel}}"
    rb, cb = bits(hp), bits(wp)
    return f"""{header}// Line buffer of {w.layer}: {h}x{wd} image of {c} channel(s), window {kh}x{kw}, stride {sh}x{sw},
// padding top/bottom {pt}/{pb}, left/right {pl}/{pr_} (code {w.pad_code}), {oh}x{ow} windows in raster order.
{_ports(name, cw, kh * kw * cw)}
    localparam [{rb - 1}:0] HP_LAST = {hp - 1};
    localparam [{cb - 1}:0] WP_LAST = {wp - 1};
    localparam [{hp - 1}:0] PAD_ROW = {_vector_bits(pad_row)};
    localparam [{wp - 1}:0] PAD_COL = {_vector_bits(pad_col)};
    localparam [{hp - 1}:0] ROW_OK = {_vector_bits(row_ok)};
    localparam [{wp - 1}:0] COL_OK = {_vector_bits(col_ok)};
    reg  [{rb - 1}:0] pr;
    reg  [{cb - 1}:0] pc;
    // verilator lint_off UNUSEDSIGNAL
    reg  [{length * cw - 1}:0] sr;  // pixel j pushes ago at [j*{cw} +: {cw}]
    // verilator lint_on UNUSEDSIGNAL
    reg  win_valid;
    wire is_pad = PAD_ROW[pr] | PAD_COL[pc];
    wire completes = ROW_OK[pr] & COL_OK[pc];
    wire push_ok = !win_valid || out_ready;
    wire push = push_ok && (is_pad || in_valid);
    wire [{cw - 1}:0] pixel = is_pad ? {pad_pixel} : in_data;
    assign in_ready = push_ok && !is_pad;
    assign out_valid = win_valid;

    always @(posedge clk) begin
        if (push) sr <= {shift};
    end
    always @(posedge clk) begin
        if (rst) begin
            pr <= {rb}'d0;
            pc <= {cb}'d0;
            win_valid <= 1'b0;
        end else if (push) begin
            win_valid <= completes;
            pc <= (pc == WP_LAST) ? {cb}'d0 : pc + {cb}'d1;
            if (pc == WP_LAST) pr <= (pr == HP_LAST) ? {rb}'d0 : pr + {rb}'d1;
        end else if (out_ready) begin
            win_valid <= 1'b0;
        end
    end

    {J.join(taps)}
endmodule
"""


def fold_unit(name: str, f: Fold, step_module: str, rom_file: str, header: str) -> str:
    """The sequential part of a folded product (see :class:`flow.rtl.architecture.Fold` for the step order)."""
    xw, ww, aw = f.x_t.width, f.w_t.width, f.acc_t.width
    chunk, ki, ko, nb, g, r = f.in_token.size, f.ki, f.ko, f.blocks, f.group, f.reuse
    slices = f.slices
    in_w, out_w = chunk * xw, f.out_token.size * aw
    w_bits = ki * ko * ww
    rom_w = w_bits + (ko * aw if nb > 1 else 0)
    sbw, obw, btw, stw = bits(slices), bits(nb), bits(g), bits(r)
    bias = f"w_q[{rom_w - 1}:{w_bits}]" if nb > 1 else literal([(int(c), f.acc_t) for c in f.bias])
    # the slice and block selections are case statements with constant bit ranges: Yosys makes a variable
    # part-select (x_q[sb * K +: K], stage[ob * B +: B] <= y) a shifter by a multiple of K, which cost the jet
    # MLP's fc1 at reuse factor 64 (four output blocks) 14,873 LUTs in synth_xilinx
    sw = ki * xw
    x_slice = "x_q" if slices == 1 else "x_sel"
    x_mux = "" if slices == 1 else f"""reg  [{sw - 1}:0] x_sel;  // input slice sb of the beat
    always @* begin
        case (sb)
            {JJ.join(f"{sbw}'d{k}: x_sel = x_q[{(k + 1) * sw - 1}:{k * sw}];" for k in range(1, slices))}
            default: x_sel = x_q[{sw - 1}:0];
        endcase
    end"""
    store_stage = ""
    stage_decl = ""
    final_out = "y"
    if nb > 1:
        bw = ko * aw
        stage_decl = f"reg  [{(nb - 1) * bw - 1}:0] stage;  // finished output blocks 0 .. {nb - 2}"
        cases = ("\n" + " " * 24).join(f"{obw}'d{k}: stage[{(k + 1) * bw - 1}:{k * bw}] <= y;" for k in range(nb - 1))
        store_stage = f"""if (store) begin
                    case (ob)
                        {cases}
                        default: ;  // the last block goes to out_q with the others
                    endcase
                end"""
        final_out = "{y, stage}"
    # block RAM for a ROM of a quarter RAMB18 or more; smaller ones are left to the tool (LUTs). Yosys 0.23 finds
    # no mapping at all for a ROM marked "distributed", so that value is never written.
    rom_attr = '(* rom_style = "block" *) ' if r * rom_w >= BLOCK_ROM_BITS else ""

    def last(reg: str, n: int, w: int) -> str:
        return f"({reg} == {w}'d{n - 1})" if n > 1 else "1'b1"

    def bump(reg: str, n: int, w: int, cond: str) -> str:
        if n == 1:
            return ""
        return f"if ({cond}) {reg} <= {reg}_last ? {w}'d0 : {reg} + {w}'d1;"

    return f"""{header}// Folded product of {f.layer}: reuse factor {r} ({f.requested} requested), {ki} x {ko} multipliers per
// step; {g} input beat(s) of {chunk} per output; ROM {r} x {rom_w} bits ({rom_file}).
{_ports(name, in_w, out_w)}
    reg  busy;
    reg  [{sbw - 1}:0] sb;   // input slice within the beat
    {f"reg  [{obw - 1}:0] ob;   // output block" if nb > 1 else "// one output block"}
    reg  [{btw - 1}:0] bt;   // input beat of the product
    reg  [{stw - 1}:0] st;   // step = ROM address
    reg  [{in_w - 1}:0] x_q;
    reg  [{ko * aw - 1}:0] acc_q;
    {stage_decl}
    {f"reg  [{out_w - 1}:0] out_q;" if nb > 1 else "// the accumulators are the output register"}
    reg  out_valid_q;
    {rom_attr}reg [{rom_w - 1}:0] rom [0:{r - 1}];
    // verilator lint_off UNUSEDSIGNAL
    reg  [{rom_w - 1}:0] w_q;
    // verilator lint_on UNUSEDSIGNAL
    initial $readmemh("{rom_file}", rom);

    wire sb_last = {last("sb", slices, sbw)};
    wire ob_last = {last("ob", nb, obw)};
    wire bt_last = {last("bt", g, btw)};
    wire beat_done = sb_last && ob_last;
    wire final_step = beat_done && bt_last;
    {"wire store = sb_last && bt_last;" if nb > 1 else ""}
    wire first = (sb == {sbw}'d0) && (bt == {btw}'d0);
    wire advance = busy && ({"!final_step || " if nb > 1 else ""}!out_valid_q || out_ready);
    assign in_ready = !busy || (advance && beat_done);
    wire accept = in_valid && in_ready;
    wire [{stw - 1}:0] st_next = advance ? (final_step ? {stw}'d0 : st + {stw}'d1) : st;

    always @(posedge clk) begin
        w_q <= rom[rst ? {stw}'d0 : st_next];
    end

    {x_mux}
    wire [{ko * aw - 1}:0] b_in = first ? {bias} : acc_q;
    wire [{ko * aw - 1}:0] y;
    {step_module} u_step (.x({x_slice}), .w(w_q[{w_bits - 1}:0]), .b(b_in), .y(y));

    always @(posedge clk) begin
        if (rst) begin
            busy <= 1'b0;
            sb <= {sbw}'d0;
            {f"ob <= {obw}'d0;" if nb > 1 else ""}
            bt <= {btw}'d0;
            st <= {stw}'d0;
            out_valid_q <= 1'b0;
        end else begin
            if (out_valid_q && out_ready) out_valid_q <= 1'b0;
            if (advance) begin
                acc_q <= y;
                st <= st_next;
                {bump("sb", slices, sbw, "1'b1")}
                {bump("ob", nb, obw, "sb_last")}
                {bump("bt", g, btw, "beat_done")}
                {store_stage}
                if (final_step) begin
                    {f"out_q <= {final_out};" if nb > 1 else ""}
                    out_valid_q <= 1'b1;
                end
            end
            if (accept) begin
                x_q <= in_data;
                busy <= 1'b1;
            end else if (advance && beat_done) begin
                busy <= 1'b0;
            end
        end
    end

    assign out_data = {"out_q" if nb > 1 else "acc_q"};
    assign out_valid = out_valid_q;
endmodule
"""


def rom_lines(f: Fold) -> str:
    """The ``$readmemh`` contents of the fold unit's ROM: one word per line, step 0 first."""
    return "\n".join(hex_word(w)[0] for w in f.rom_words()) + "\n"


def collect_unit(name: str, c: Collect, header: str) -> str:
    g, cw = c.group, c.in_token.bits
    tot = g * cw
    cb = bits(g)
    shift = "in_data" if g == 1 else f"{{in_data, buffer[{tot - 1}:{cw}]}}"
    return f"""{header}// Collects {g} beats of {c.in_token.size} elements into one (beat 0 in the low bits) for {c.layer}.
{_ports(name, cw, tot)}
    reg  [{tot - 1}:0] buffer;
    reg  [{cb - 1}:0] count;
    reg  full;
    assign in_ready = !full || out_ready;
    wire accept = in_valid && in_ready;
    assign out_valid = full;
    assign out_data = buffer;

    always @(posedge clk) begin
        if (accept) buffer <= {shift};
    end
    always @(posedge clk) begin
        if (rst) begin
            count <= {cb}'d0;
            full <= 1'b0;
        end else begin
            if (full && out_ready) full <= 1'b0;
            if (accept) begin
                if (count == {cb}'d{g - 1}) begin
                    count <= {cb}'d0;
                    full <= 1'b1;
                end else begin
                    count <= count + {cb}'d1;
                end
            end
        end
    end
endmodule
"""


def fifo_unit(name: str, width: int, depth: int, header: str) -> str:
    """A first-in first-out buffer of ``depth`` beats; ``in_ready`` comes from a register (it breaks the ready
    path), data leave from distributed RAM one cycle after they enter."""
    ab, nb = bits(depth), bits(depth + 1)
    return f"""{header}// FIFO of {depth} beats of {width} bits.
{_ports(name, width, width)}
    reg  [{width - 1}:0] mem [0:{depth - 1}];
    reg  [{ab - 1}:0] wp;
    reg  [{ab - 1}:0] rp;
    reg  [{nb - 1}:0] count;
    assign in_ready = (count != {nb}'d{depth});
    assign out_valid = (count != {nb}'d0);
    assign out_data = mem[rp];
    wire wr = in_valid && in_ready;
    wire rd = out_valid && out_ready;

    always @(posedge clk) begin
        if (wr) mem[wp] <= in_data;
    end
    always @(posedge clk) begin
        if (rst) begin
            wp <= {ab}'d0;
            rp <= {ab}'d0;
            count <= {nb}'d0;
        end else begin
            if (wr) wp <= (wp == {ab}'d{depth - 1}) ? {ab}'d0 : wp + {ab}'d1;
            if (rd) rp <= (rp == {ab}'d{depth - 1}) ? {ab}'d0 : rp + {ab}'d1;
            if (wr && !rd) count <= count + {nb}'d1;
            else if (rd && !wr) count <= count - {nb}'d1;
        end
    end
endmodule
"""


def wiring_assigns(dst: str, src: str, index: list[int], t: FixedType) -> list[str]:
    """``dst`` element k = ``src`` element ``index[k]`` (codes of width ``t.width``)."""
    w = t.width
    return [f"assign {dst}[{(k + 1) * w - 1}:{k * w}] = {src}[{(j + 1) * w - 1}:{j * w}];" for k, j in enumerate(index)]


def index_names(prefix: str, shape: tuple[int, ...], stream_axes: int = 0) -> list[str]:
    """Field names of one beat: ``x[i,j,c]``; the first ``stream_axes`` axes are the beat's position (``*``)."""
    out = []
    for idx in np.ndindex(*shape):
        out.append(f"{prefix}[{','.join('*' if a < stream_axes else str(i) for a, i in enumerate(idx))}]")
    return out
