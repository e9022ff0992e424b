"""The levelized emitter (flow/rtl/emit.py): its Verilog computes exactly what da4ml's netlist computes.

Every stage module is simulated (Verilator and Icarus, one testbench build each for all nets) on 3,000 inputs
drawn from each input's whole interval and compared word for word with da4ml's C++ interpreter of the same
``CombLogic`` (``predict``). The nets: small netlists built with da4ml's tracer that use every opcode
(add/sub with shifts, negative factors, relu, wrap/saturate/round casts, constants, constant addition, MSB
mux, multiplication, lookup tables, bitwise unary and binary ops), netlists edited by hand for what the tracer
never writes (opcode -9, input shifts, an output without an op, a sum kept at a coarser step), and the
pipeline stages of real QKeras networks traced by flow.arith.trace (Dense with softmax tables, Conv2D with
max pooling, the shipped digits MLP).
"""

from __future__ import annotations

import re

import numpy as np
import pytest
import stage_vectors as sv
from hdl import needs_icarus, needs_verilator
from qmodels import ROOT, conv_model, qb

from flow.core import tools
from flow.keras.env import keras, set_seed
from flow.rtl.emit import stage_module, stage_verilog

N_VECTORS = 3000


def _inputs(kifs):
    from da4ml.trace import FixedVariableArray

    k, i, f = (np.array(col) for col in zip(*kifs))
    return FixedVariableArray.from_kif(k, i, f)


def _trace(x, outs):
    from da4ml.trace import FixedVariableArray, comb_trace

    y = FixedVariableArray(np.array(outs, dtype=object), hwconf=x.hwconf)
    return comb_trace(x, y, keep_dead_inputs=True)


def _table(v, fn):
    """``v.lookup`` of ``fn`` over every value of ``v``'s interval (a da4ml lookup-table op)."""
    lo, hi, step = (float(t) for t in v.qint)
    return v.lookup(fn(np.linspace(lo, hi, round((hi - lo) / step) + 1)))


def every_op_net(kifs, tables: bool = True):
    """Six inputs of the given (k, i, f) formats, ~45 outputs that use every opcode the tracer writes (without
    ``tables``, no lookup table: a table over a wide input's whole interval would be too large)."""
    x = _inputs(kifs)
    a, b, c, d, e, g = (x[j] for j in range(6))
    outs = [
        a + b, a - (b << 2), (c >> 1) - a, a * 3 - c * 5, -a, -(b - c), d + 0.75,                   # 0/1, shifts, negation
        a.relu(), (-a).relu(), (a - b).relu(2, 1), (c - d).relu(None, 1, "RND"),                      # 2/-2 (wrapping i)
        a.quantize(1, 2, 1), (-b).quantize(1, 3, 0), (a + c).quantize(1, 1, 1, "SAT"),                # 3/-3, saturation
        (a - c).quantize(1, 2, 2, "SAT_SYM", "RND"), d.quantize(0, 3, 0), (-c).quantize(0, 2, 2),
        a + 0.75, b - 5.5, c + 100,                                                                  # 4
        abs(a), abs(-c), a.max_of(b), c.min_of(d), (a - b).msb_mux(c, d), c.msb_mux(a, -d),          # 6/-6 (signed keys)
        a * b, c * d, (-a) * e, g * g,                                                               # 7
        a & b, a | (c << 1), b ^ e, (-a) & c, a ^ (-d), ~a, ~e,                                      # 10, 9 NOT
        a.unary_bit_op("any"), e.unary_bit_op("all"), (-c).unary_bit_op("all"), (a - c).unary_bit_op("any"),
        a._eq(b), a._ne(3),
        2.5,                                                                                         # 5 (a constant output)
    ]
    if tables:
        outs += [_table(a, lambda t: np.floor(np.sin(t) * 8)), _table(e, lambda t: t * t / 4),        # 8
                 _table(-a, lambda t: t * 0.5)]
    return _trace(x, outs)


# signed formats whose sums, maxima, relus and casts need 33 to 60 bits: da4ml's C++ interpreter wraps a signed op
# wider than 32 bits with a 32-bit type minimum, so the oracle of this net is flow.arith.netlist_eval
WIDE_KIFS = [(1, 30, 6), (1, 22, 12), (0, 34, 2), (1, 40, 10), (1, 8, 28), (1, 16, 20)]

NETS_BY_TRACER = {
    "every_op": [(1, 3, 2), (0, 4, 1), (1, 2, 3), (1, 5, 0), (0, 2, 2), (1, 1, 4)],
    "every_op_wide": [(1, 7, 4), (0, 6, 3), (1, 0, 6), (1, 9, -1), (0, 3, 1), (1, 4, 2)],
    "every_op_narrow": [(1, 1, 1), (0, 1, 2), (1, -1, 3), (1, 2, 0), (0, 0, 3), (1, 0, 2)],
}


def _negated_qint(q):
    from da4ml.types import QInterval, minimal_kif

    k, i, f = minimal_kif(QInterval(-q.max, -q.min, q.step))
    return QInterval(-k * 2.0**i, 2.0**i - 2.0**-f, 2.0**-f)


def hand_edited_nets():
    """Netlists with what da4ml's tracer never writes but its interpreter defines."""
    from da4ml.types import Op, QInterval

    x = _inputs([(1, 3, 2), (0, 4, 1), (1, 0, 3)])
    a, b, c = x[0], x[1], x[2]
    bits = _trace(x, [~a, ~b, ~c, a.unary_bit_op("any"), b.unary_bit_op("all"), c.unary_bit_op("all")])
    # opcode -9: the bitwise op of the negated operand (NOT's result in the negated operand's format)
    neg9 = bits._replace(ops=[
        op._replace(opcode=-9, qint=_negated_qint(bits.ops[op.id0].qint) if op.data == 0 else op.qint)
        if op.opcode == 9 else op for op in bits.ops])
    sums = _trace(x, [a + b, a - (c << 1), (b - c).relu(), a.quantize(1, 2, 1)])
    shifted = sums._replace(inp_shifts=[1, -2, 0])            # input values scaled before the ops
    holes = sums._replace(out_idxs=[sums.out_idxs[0], -1, *sums.out_idxs[2:]])  # an output without an op: 0
    ops = list(sums.ops)
    add = next(j for j, op in enumerate(ops) if op.opcode in (0, 1))
    q = ops[add].qint
    ops[add] = ops[add]._replace(qint=QInterval(np.floor(q.min), np.floor(q.max), 1.0))  # coarser: TRN of the sum
    coarse = sums._replace(ops=ops)
    const = sums._replace(ops=[*sums.ops, Op(-1, -1, 5, -3, QInterval(-0.75, -0.75, 0.25), 0.0, 0.0)],
                          out_idxs=[*sums.out_idxs, len(sums.ops)], out_shifts=[*sums.out_shifts, 0],
                          out_negs=[*sums.out_negs, True], shape=(3, len(sums.out_idxs) + 1))
    return {"opcode_minus_9": neg9, "input_shifts": shifted, "output_without_op": holes,
            "sum_at_coarser_step": coarse, "negated_constant_output": const}


def unsigned_key_mux():
    """MSB muxes on unsigned keys of 1..6 bits (and fractional formats)."""
    x = _inputs([(0, 1, 0), (0, 2, 0), (0, 3, 0), (0, 4, 1), (0, 6, 0), (0, 0, 3), (1, 3, 0), (1, 2, 1)])
    a, b = x[6], x[7]
    return _trace(x, [x[j].msb_mux(a, b) for j in range(6)] + [x[2].msb_mux(b, -a)])


def _graph_stages(graph):
    from da4ml.trace import comb_trace
    from da4ml.trace.pipeline import to_pipeline

    from flow.arith.trace import trace_graph

    traced = trace_graph(graph)
    comb = comb_trace(traced.inputs, traced.outputs, keep_dead_inputs=True)
    # da4ml's to_pipeline gives stages without tables lookup_tables=() where predict needs None
    return [comb, *(s._replace(lookup_tables=s.lookup_tables or None)
                    for s in to_pipeline(comb, 5.0, verbose=False).solutions)]


def _graph(model, tmp):
    from flow.hls.convert import build_graph, derive_hls_config
    from flow.spec import Hardware

    hw = Hardware(backend="Vitis")
    return build_graph(model, derive_hls_config(model, hw, "ap_fixed<8,3>"), hw, tmp)


def real_nets(tmp):
    """Pipeline stages (and the unpipelined netlist) of traced QKeras networks."""
    from qkeras import QActivation, QDense, quantized_relu

    K = keras()
    set_seed(7)
    inp = K.Input((6,), name="x_in")
    h = QActivation(quantized_relu(5, 2), name="a1")(QDense(8, kernel_quantizer=qb(6, 1), bias_quantizer=qb(6, 1),
                                                            name="d1")(inp))
    h = QDense(5, kernel_quantizer=qb(6, 2), bias_quantizer=qb(6, 2), name="d2")(h)
    nets = {}
    for name, model in (("dense_softmax", K.Model(inp, K.layers.Activation("softmax", name="probs")(h))),
                        ("conv_maxpool", conv_model())):
        for s, sol in enumerate(_graph_stages(_graph(model, tmp / name))):
            nets[f"{name}_{'whole' if s == 0 else f'stage{s - 1}'}"] = sol
    assert len(nets) > 6  # both pipelined into several stages
    return nets


def shipped_mlp_stages(tmp):
    from flow.hls.convert import build_graph, derive_hls_config
    from flow.keras import network
    from flow.spec import load_spec

    spec = load_spec(ROOT / "models" / "digits_mlp.yaml")
    set_seed(3)
    model = network.build_model(spec, quantized=True)
    graph = build_graph(model, derive_hls_config(model, spec.hardware, spec.input_type), spec.hardware, tmp / "mlp")
    return {f"digits_mlp_stage{s}": sol for s, sol in enumerate(_graph_stages(graph)[1:])}


@pytest.fixture(scope="module")
def nets(tmp_path_factory):
    """{name: (CombLogic, oracle)}: oracle 'predict' (da4ml's C++ interpreter), 'python' (``CombLogic.__call__``)
    or 'exact' (:func:`flow.arith.netlist_eval.evaluate_codes`)."""
    tmp = tmp_path_factory.mktemp("emit_nets")
    out = {name: (every_op_net(kifs), "predict") for name, kifs in NETS_BY_TRACER.items()}
    out["every_op_beyond_32_bits"] = (every_op_net(WIDE_KIFS, tables=False), "exact")
    out |= {name: (sol, "predict") for name, sol in hand_edited_nets().items()}
    # da4ml 0.6.0's C++ interpreter takes an unsigned key of 3+ bits as set when its code > 2**(w-2), not when
    # its MSB is set: the Python interpreter, da4ml's own Verilog and the docstring ("if the MSB of this
    # variable is 1, return a") agree on the MSB, and so does the emitter
    out["unsigned_key_mux"] = (unsigned_key_mux(), "python")
    out |= {name: (sol, "predict") for name, sol in real_nets(tmp).items()}
    return out


def _results(nets, work, simulator):
    """{name: (Case, simulated output words)} of every net, simulated in one build."""
    cases = []
    for j, (name, (sol, oracle)) in enumerate(nets.items()):
        codes = sv.draw_codes(sol, N_VECTORS, seed=j)
        want = {"python": sv.python_words, "exact": sv.exact_words}.get(oracle, lambda *_: None)(sol, codes)
        text, tables = stage_module(sol, name)
        cases.append(sv.case(sol, name, text, tables, codes, want))
    return {c.module: (c, got) for c, got in zip(cases, sv.simulate(cases, work, simulator))}


@pytest.fixture(scope="module")
def verilator_results(nets, tmp_path_factory):
    return _results(nets, tmp_path_factory.mktemp("vl"), "verilator")


@pytest.fixture(scope="module")
def icarus_results(nets, tmp_path_factory):
    return _results(nets, tmp_path_factory.mktemp("iv"), "icarus")


# a net, or a traced network (every stage of it and its unpipelined netlist)
ALL_NETS = [*NETS_BY_TRACER, "every_op_beyond_32_bits", "opcode_minus_9", "input_shifts", "output_without_op", "sum_at_coarser_step",
            "negated_constant_output", "unsigned_key_mux", "dense_softmax", "conv_maxpool"]


def _members(results, name):
    names = [n for n in results if n == name or n.startswith(f"{name}_")]
    assert names
    return names


def assert_all_equal(results, names) -> None:
    """Every listed module gave all N_VECTORS output words, each equal to the interpreter's."""
    assert all(len(results[n][1]) == N_VECTORS for n in names)
    diffs = {n: sv.differing(results[n][1], results[n][0].expected) for n in names}
    assert not any(diffs.values()), diffs


def test_the_nets_use_every_opcode(nets):
    used = {op.opcode for sol, _ in nets.values() for op in sol.ops}
    assert used >= {-1, 0, 1, 2, -2, 3, -3, 4, 5, 6, -6, 7, 8, 9, -9, 10}
    assert all(_members(nets, name) for name in ALL_NETS)
    traced = [sol for name, (sol, _) in nets.items() if name.startswith(("dense", "conv", "digits"))]
    assert {op.opcode for sol in traced for op in sol.ops} >= {0, 1, 3, 4, 6, 8}  # what networks use


@needs_verilator
@pytest.mark.parametrize("name", ALL_NETS)
def test_stage_equals_interpreter_on_verilator(verilator_results, name):
    assert_all_equal(verilator_results, _members(verilator_results, name))


@needs_icarus
@pytest.mark.parametrize("name", ALL_NETS)
def test_stage_equals_interpreter_on_icarus(icarus_results, name):
    assert_all_equal(icarus_results, _members(icarus_results, name))


@needs_verilator
@pytest.mark.heavy
def test_digits_mlp_stages_equal_interpreter_on_verilator(tmp_path):
    """The shipped digits MLP's four stages (2,000-7,000 ops each; tests/test_rtl_sim.py runs the whole
    network on both simulators against the emulator)."""
    nets = {name: (sol, "predict") for name, sol in shipped_mlp_stages(tmp_path).items()}
    results = _results(nets, tmp_path / "vl", "verilator")
    assert len(results) == 4
    assert_all_equal(results, list(results))


def test_the_unsigned_key_mux_is_where_the_interpreters_differ(nets):
    """The one oracle exception above is real: the C++ interpreter differs from the Python one on it."""
    sol, _ = nets["unsigned_key_mux"]
    codes = sv.draw_codes(sol, 500, seed=0)
    assert sv.predicted_words(sol, codes) != sv.python_words(sol, codes)


def _mutations():
    """One op changed in the emitted text: (description, function of the text)."""
    def first(pattern, repl):
        return lambda text: re.sub(pattern, repl, text, count=1)

    return {
        "an adder becomes a subtractor": first(r"(\n\s+v\d+ = \S+) \+ ", r"\1 - "),
        "a window one bit lower": first(r"(\n\s+v\d+ = [^;\n]*?inp\[)(\d+):(\d+)\]",
                                        lambda m: f"{m.group(1)}{int(m.group(2)) - 1}:{int(m.group(3)) - 1}]"),
        "the branches of a mux swapped": first(r"(\n\s+v\d+ = \S+ \? )([^:;]+) : ([^;]+);", r"\1\3 : \2;"),
        "a relu that keeps negative values": first(r"(\n\s+v\d+ = )\S+ \? \d+'d0 : ", r"\1"),
    }


@needs_icarus
@pytest.mark.parametrize("mutation", list(_mutations()))
def test_one_changed_op_is_caught(nets, tmp_path, mutation):
    sol, _ = nets["every_op"]
    codes = sv.draw_codes(sol, N_VECTORS, seed=0)
    text, tables = stage_module(sol, "every_op")
    mutant = _mutations()[mutation](text)
    assert mutant != text
    (got,) = sv.simulate([sv.case(sol, "every_op", mutant, tables, codes)], tmp_path, "icarus")
    assert sv.differing(got, sv.predicted_words(sol, codes)) > 0


@needs_icarus
def test_one_flipped_rom_word_is_caught(nets, tmp_path):
    sol, _ = nets["every_op"]
    codes = sv.draw_codes(sol, N_VECTORS, seed=0)
    text, tables = stage_module(sol, "every_op")
    name = min(tables)
    words = tables[name].split("\n")
    k = next(j for j, w in enumerate(words) if "X" not in w)
    words[k] = f"{int(words[k], 16) ^ 1:0{len(words[k])}X}"
    (got,) = sv.simulate([sv.case(sol, "every_op", text, {**tables, name: "\n".join(words)}, codes)], tmp_path, "icarus")
    assert sv.differing(got, sv.predicted_words(sol, codes)) > 0


@needs_verilator
@pytest.mark.parametrize("name", ["every_op", "every_op_wide", "opcode_minus_9", "sum_at_coarser_step",
                                  "conv_maxpool_stage0", "dense_softmax_whole"])
def test_stage_module_is_lint_clean(nets, tmp_path, name):
    from flow.rtl.generate import lint

    text, tables = stage_module(nets[name][0], name)
    (tmp_path / f"{name}.v").write_text(text)
    for file, contents in tables.items():
        (tmp_path / file).write_text(contents)
    result = lint(tmp_path, [f"{name}.v"], name)
    assert result["clean"], result["warnings"]


YOSYS_NETS = ["every_op", "every_op_narrow", "opcode_minus_9"]
YOSYS_NETS_HEAVY = ["dense_softmax_whole", "conv_maxpool_stage0", "conv_maxpool_stage1"]


def _yosys_results(nets, names, work):
    """Each net's module through Yosys ``synth`` (generic gates; ROMs become logic), written back as Verilog
    (``<name>_syn``) and simulated on Verilator at -O0 (gate-level netlists are slow on Icarus)."""
    from flow.core import procs

    cases = []
    for j, name in enumerate(names):
        sol, _ = nets[name]
        text, tables = stage_module(sol, name)
        (work / f"{name}.v").write_text(text)
        for file, contents in tables.items():
            (work / file).write_text(contents)
        script = f"read_verilog {name}.v; synth -top {name}; rename {name} {name}_syn; write_verilog -noattr {name}_syn.v"
        procs.run([tools.require("yosys"), "-q", "-p", script], cwd=work, check=True, capture_output=True)
        synthesized = (work / f"{name}_syn.v").read_text()
        assert "function" not in synthesized and "$readmemh" not in synthesized  # gates only
        cases.append(sv.case(sol, f"{name}_syn", synthesized, {}, sv.draw_codes(sol, N_VECTORS, seed=100 + j)))
    return dict(zip(names, zip(cases, sv.simulate(cases, work / "sim", "verilator", opt="-O0"))))


needs_yosys = pytest.mark.skipif(tools.find("yosys") is None, reason="Yosys is not installed (apt-get install yosys)")


@needs_yosys
@pytest.mark.parametrize("synth", ["synth_ecp5", "synth_xilinx"])
def test_a_stage_with_lookup_tables_maps_on_fpga_targets(nets, tmp_path, synth):
    """Every ROM of a stage is mapped to the target's logic (a rom_style Yosys cannot map stops synth_ecp5)."""
    from flow.core import procs

    sol, _ = nets["every_op"]
    text, tables = stage_module(sol, "every_op")
    assert tables, "the net has no lookup table"
    (tmp_path / "every_op.v").write_text(text)
    for file, contents in tables.items():
        (tmp_path / file).write_text(contents)
    out = procs.run([tools.require("yosys"), "-p", f"read_verilog every_op.v; {synth} -top every_op; stat"],
                    cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
    assert re.search(r"Number of memories:\s+0\n", out.stdout), "a ROM was left unmapped"


@pytest.fixture(scope="module")
def yosys_results(nets, tmp_path_factory):
    return _yosys_results(nets, YOSYS_NETS, tmp_path_factory.mktemp("yosys"))


@needs_verilator
@needs_yosys
@pytest.mark.parametrize("name", YOSYS_NETS)
def test_yosys_netlist_of_a_stage_equals_interpreter(yosys_results, name):
    """What Yosys makes of the procedural code computes the same words as da4ml's interpreter."""
    assert_all_equal(yosys_results, [name])


@needs_verilator
@needs_yosys
@pytest.mark.heavy
def test_yosys_netlists_of_traced_stages_equal_interpreter(nets, tmp_path):
    """The same for stages of traced networks (softmax tables, max pooling); minutes of g++ and Yosys."""
    assert_all_equal(_yosys_results(nets, YOSYS_NETS_HEAVY, tmp_path), YOSYS_NETS_HEAVY)


def test_stage_ports_are_those_of_da4ml(nets):
    """Same module interface as da4ml's generator: port names and widths."""
    for name in ("every_op", "dense_softmax_stage0", "conv_maxpool_stage1"):
        sol = nets[name][0]
        ours, theirs = stage_verilog(sol, "m", "levelized")[0], stage_verilog(sol, "m", "da4ml")[0]
        ports = [tuple(re.search(rf"(input|output)\s+(?:wire\s+)?\[(\d+):0\]\s+{p}", t).groups()[1:])
                 for t in (ours, theirs) for p in ("model_inp", "model_out")]
        assert ports[:2] == ports[2:]


def test_tables_have_da4ml_names_and_contents(nets):
    sol = nets["dense_softmax_whole"][0]
    assert stage_verilog(sol, "m", "levelized")[1] == stage_verilog(sol, "m", "da4ml")[1] != {}


def test_unknown_emitter_is_refused(nets):
    with pytest.raises(ValueError, match="unknown emitter 'fast'"):
        stage_verilog(nets["every_op"][0], "m", "fast")



@needs_yosys
def test_a_product_of_codes_maps_to_one_dsp_of_the_operand_widths(tmp_path):
    """A 16-bit x 6-bit product (a folded layer's input times a ROM weight) is one DSP48 in synth_xilinx: the
    operands' sign-extension bits are redundant to Yosys (a 22 x 22 unsigned product of the extended codes
    takes two DSP48s and adders in LUTs)."""
    from flow.core import procs
    from flow.physical.estimate import parse_stat

    x = _inputs([(1, 6, 10), (1, 2, 4)])
    sol = _trace(x, [x[0] * x[1]])
    text, _ = stage_module(sol, "product")
    (tmp_path / "product.v").write_text(text)
    out = procs.run([tools.require("yosys"), "-p", "read_verilog product.v; synth_xilinx -top product; stat"],
                    cwd=tmp_path, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-2000:]
    cells = parse_stat(out.stdout)
    assert cells.get("DSP48E1") == 1 and not any(c.startswith(("LUT", "CARRY")) for c in cells), cells


@needs_icarus
def test_a_registered_stage_loads_its_result_only_when_load_is_high(nets, tmp_path):
    """``registered``: model_out takes the stage's result of model_inp at a clock edge with load high and keeps it
    at one with load low (the sequential architectures' pipeline registers, which idle slots do not load)."""
    from flow.core import procs

    sol = nets["every_op"][0]
    text, tables = stage_module(sol, "reg_stage", registered=True)
    codes = sv.draw_codes(sol, 2, seed=5)
    (a, b), (fa, fb) = sv.pack(codes, sv.widths(sol.inp_qint)), sv.predicted_words(sol, codes)
    iw, ow = sum(sv.widths(sol.inp_qint)), sum(sv.widths(sol.out_qint))
    (tmp_path / "reg_stage.v").write_text(text)
    for file, contents in tables.items():
        (tmp_path / file).write_text(contents)
    (tmp_path / "tb.v").write_text(f"""module tb;
  reg clk = 0, load = 1;
  reg [{iw - 1}:0] inp = {iw}'h{a:x};
  wire [{ow - 1}:0] out;
  reg_stage dut (.clk(clk), .load(load), .model_inp(inp), .model_out(out));
  initial begin
    #1 clk = 1; #1 clk = 0; $display("%h", out);
    inp = {iw}'h{b:x}; load = 0;
    #1 clk = 1; #1 clk = 0; $display("%h", out);
    load = 1;
    #1 clk = 1; #1 clk = 0; $display("%h", out);
    $finish;
  end
endmodule
""")
    procs.run([tools.require("iverilog"), "-o", "simv", "-s", "tb", "tb.v", "reg_stage.v"], cwd=tmp_path, check=True,
              capture_output=True)
    run = procs.run([tools.require("vvp"), "-n", "simv"], cwd=tmp_path, check=True, capture_output=True, text=True)
    assert [int(w, 16) for w in run.stdout.split()[:3]] == [fa, fa, fb]


@pytest.mark.parametrize("name", [n for n in ALL_NETS if n != "unsigned_key_mux"])
def test_the_exact_interpreter_equals_the_cpp_interpreter_where_that_is_exact(nets, name):
    """flow.arith.netlist_eval on every narrow net (every opcode, hand-edited nets, the pipeline stages of traced
    networks): word for word da4ml's C++ interpreter, which the Verilog above equals."""
    for member in _members(nets, name):
        sol, oracle = nets[member]
        codes = sv.draw_codes(sol, N_VECTORS, seed=3)
        if oracle == "exact":  # the wide net: the C++ interpreter is not exact there (next test)
            continue
        assert sv.exact_words(sol, codes) == sv.predicted_words(sol, codes), member


def test_the_exact_interpreter_equals_the_python_interpreter_on_unsigned_keys(nets):
    sol, _ = nets["unsigned_key_mux"]
    codes = sv.draw_codes(sol, 500, seed=0)
    assert sv.exact_words(sol, codes) == sv.python_words(sol, codes)


def test_the_cpp_interpreter_is_wrong_beyond_32_bits(nets):
    """Why the gates use flow.arith.netlist_eval: on the wide net da4ml's C++ interpreter differs from the
    exact interpreter (and from the Verilog: test_stage_equals_interpreter_on_*[every_op_beyond_32_bits])."""
    from flow.arith.netlist_eval import cpp_is_exact, evaluate_codes

    sol, _ = nets["every_op_beyond_32_bits"]
    codes = sv.draw_codes(sol, 500, seed=0)
    assert not cpp_is_exact(sol)
    exact, fracs = evaluate_codes(sol, codes, [sv.kif(q)[2] for q in sol.inp_qint])
    narrow = [j for j, w in enumerate(sv.widths(sol.out_qint)) if w <= 50]  # exact as float64 in both
    cpp = sol.predict(sv.input_values(sol, codes))[:, narrow]
    want = np.stack([exact[:, j].astype(np.float64) * 2.0 ** -fracs[j] for j in narrow], axis=1)
    assert np.count_nonzero(cpp != want) > 0
