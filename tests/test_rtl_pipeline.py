"""The unrolled core's pipeline has no global stall (flow/rtl/generate.py): data registers load on every clock
edge with no enable, and back-pressure fills an output FIFO whose free beats (credits) drive ``s_axis_tready``.

Two checks on a small real net: Yosys's view of the generated top (no data flip-flop has an enable or a reset),
and Icarus under maximal back-pressure (``m_axis_tready`` low for many cycles while ``s_axis_tvalid`` stays high:
the core accepts exactly as many samples as its FIFO holds, then drops ``s_axis_tready``; every sample comes out
once, in order, bit-exact to the emulator). Random gaps, back-pressure and a mid-stream reset on the shipped digits
MLP are checked by cocotb in tests/test_rtl_sim.py.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml
from conftest import uniform_weights
from hdl import needs_icarus
from qmodels import dense_model

from flow.commands.pipeline import convert_existing
from flow.core import procs, tools
from flow.hls.convert import derive_hls_config
from flow.keras.env import set_seed
from flow.rtl.words import pack
from flow.sim.sim_project import build_vectors
from flow.spec import Hardware

needs_yosys = pytest.mark.skipif(tools.find("yosys") is None, reason="Yosys is not installed (apt-get install yosys)")
SAMPLES = 60


@pytest.fixture(scope="module")
def unrolled_project(tmp_path_factory):
    """A 6-7-5-3 QKeras MLP (random weights) converted and cut into several stages (cutoff 2)."""
    from flow.commands.rtl_command import rtl_project

    tmp = tmp_path_factory.mktemp("pipeline")
    set_seed(4)
    model = uniform_weights(dense_model(), 4)
    hw = Hardware(backend="Vitis", io_type="io_parallel")
    cfg = derive_hls_config(model, hw, "ap_fixed<8,3>")
    (tmp / "cfg.yml").write_text(yaml.safe_dump({"Backend": "Vitis", "IOType": "io_parallel", "HLSConfig": cfg}))
    model.save(tmp / "mlp.h5")
    convert_existing(tmp / "mlp.h5", tmp / "mlp", config_path=tmp / "cfg.yml", samples=100)
    summary = rtl_project(tmp / "mlp", latency_cutoff=2.0, yosys=False)
    (tmp / "summary.json").write_text(json.dumps(summary))
    return tmp / "mlp"


def _port_map(project):
    return json.loads((project / "rtl" / "port_map.json").read_text())


def test_port_map_states_the_fifo_and_the_flip_flops_per_stage(unrolled_project):
    pm = _port_map(unrolled_project)
    assert pm["architecture"] == "unrolled" and pm["initiation_interval"] == 1 and pm["lint"]["clean"], pm["lint"]
    assert pm["pipeline_stages"] >= 3 and pm["latency_cycles"] == pm["pipeline_stages"] + 1
    assert pm["output_fifo"]["depth"] == pm["latency_cycles"] + 1
    regs = pm["registers"]
    assert len(regs["per_stage"]) == pm["pipeline_stages"] and all(b > 0 for b in regs["per_stage"])
    assert regs["data"] == sum(regs["per_stage"]) + regs["output"]
    assert regs["total"] == regs["data"] + regs["control"] + regs["fifo"]
    printed = json.loads((unrolled_project.parent / "summary.json").read_text())  # what `hlsflow rtl` prints
    assert printed["register_bits"] == regs


def _flip_flops(rtl, pm) -> dict[str, int]:
    """Flip-flop bits of the top module by kind, as Yosys infers them (``proc; opt_dff``): ``plain`` (D input
    only), ``gated`` (with an enable or a reset)."""
    script = (f"read_verilog {' '.join(f for f in pm['verilog'] if f.endswith('.v'))}; hierarchy -top {pm['top']}; "
              "proc; opt_clean; opt_dff; opt_clean; write_json ffs.json")
    out = procs.run([tools.require("yosys"), "-q", "-p", script], cwd=rtl, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    cells = json.loads((rtl / "ffs.json").read_text())["modules"][pm["top"]]["cells"].values()
    kinds = {"plain": 0, "gated": 0}
    for c in cells:
        if "dff" in c["type"]:  # $dff, $dffe, $sdff, $sdffe, $sdffce, $adff, ...
            kinds["plain" if c["type"] == "$dff" else "gated"] += int(c["parameters"]["WIDTH"], 2)
    return kinds


@needs_yosys
def test_no_data_flip_flop_has_an_enable_or_a_reset(unrolled_project, tmp_path):
    """Every register bit of the pipeline's data path is a plain D flip-flop: no stall signal fans out to it.
    Only the control bits (valid bits, credit counter) carry a reset or an enable."""
    import shutil

    rtl = tmp_path / "rtl"
    shutil.copytree(unrolled_project / "rtl", rtl)
    pm = _port_map(unrolled_project)
    ffs = _flip_flops(rtl, pm)
    assert ffs["plain"] == pm["registers"]["data"]
    assert ffs["gated"] <= pm["registers"]["control"]


_TB = """`timescale 1ns / 1ps
module stall_tb;
    localparam N = {n};
    localparam STALL = {stall};  // cycles with m_axis_tready low and s_axis_tvalid high, right after reset
    reg clk = 0, rst = 1;
    reg [{wi}-1:0] inputs [0:N-1];
    reg [{wi}-1:0] s_axis_tdata;
    reg s_axis_tvalid = 0, m_axis_tready = 0;
    wire s_axis_tready, m_axis_tvalid;
    wire [{wo}-1:0] m_axis_tdata;
    integer sent = 0, got = 0, cycle = 0, accepted_in_stall = 0, ready_low_in_stall = 0, f;
    {top} dut (.clk(clk), .rst(rst), .s_axis_tdata(s_axis_tdata), .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready), .m_axis_tdata(m_axis_tdata), .m_axis_tvalid(m_axis_tvalid),
        .m_axis_tready(m_axis_tready));
    always #5 clk = !clk;
    initial begin
        $readmemh("inputs.hex", inputs);
        f = $fopen("outputs.hex", "w");
        repeat (3) @(posedge clk);
        #1 rst = 0;
        s_axis_tvalid = 1;
        s_axis_tdata = inputs[0];
        while (got < N && cycle < 100000) begin
            m_axis_tready = cycle >= STALL;
            @(posedge clk);
            if (cycle < STALL && s_axis_tvalid && !s_axis_tready) ready_low_in_stall = ready_low_in_stall + 1;
            if (s_axis_tvalid && s_axis_tready) begin
                if (cycle < STALL) accepted_in_stall = accepted_in_stall + 1;
                sent = sent + 1;
            end
            if (m_axis_tvalid && m_axis_tready) begin
                $fwrite(f, "%h\\n", m_axis_tdata);
                got = got + 1;
            end
            #1;
            s_axis_tvalid = sent < N;
            s_axis_tdata = inputs[sent < N ? sent : 0];
            cycle = cycle + 1;
        end
        repeat (3 * {latency}) begin  // outputs nobody sent
            @(posedge clk);
            if (m_axis_tvalid) got = got + 1;
        end
        $fclose(f);
        $display("RESULT sent=%0d got=%0d accepted_in_stall=%0d ready_low_in_stall=%0d", sent, got,
                 accepted_in_stall, ready_low_in_stall);
        $finish;
    end
endmodule
"""


def _run_stalled(project, tmp, stall: int) -> tuple[dict[str, int], list[int], list[int]]:
    """Icarus run of the core with ``m_axis_tready`` low for the first ``stall`` cycles; (counters, words out,
    words the emulator gives)."""
    import shutil

    pm = _port_map(project)
    vec = build_vectors(project, SAMPLES, seed=5)
    in_fields, out_fields = vec.port_map.input.fields, vec.port_map.output.fields
    work = tmp / f"stall{stall}"
    shutil.copytree(project / "rtl", work)
    wi, wo = pm["input"]["tdata_width"], pm["output"]["tdata_width"]
    (work / "inputs.hex").write_text("\n".join(format(w, "x") for w in pack(vec.x_codes, in_fields, wi)) + "\n")
    (work / "stall_tb.v").write_text(_TB.format(n=SAMPLES, stall=stall, wi=wi, wo=wo, top=pm["top"],
                                                latency=pm["latency_cycles"]))
    sources = [f for f in pm["verilog"] if f.endswith(".v")]
    build = procs.run([tools.require("iverilog"), "-g2005", "-o", "tb.vvp", "stall_tb.v", *sources], cwd=work,
                      capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    out = procs.run([tools.require("vvp"), "-n", "tb.vvp"], cwd=work, capture_output=True, text=True)
    m = re.search(r"RESULT (.*)", out.stdout)
    assert m, out.stdout + out.stderr
    counters = {k: int(v) for k, v in (kv.split("=") for kv in m.group(1).split())}
    got = [int(ln, 16) for ln in (work / "outputs.hex").read_text().split()]
    return counters, got, pack(vec.y_codes, out_fields, wo)


@needs_icarus
@pytest.mark.parametrize("stall_latencies", [0, 3])
def test_maximal_back_pressure_loses_and_duplicates_nothing(unrolled_project, tmp_path, stall_latencies):
    """``m_axis_tready`` low for 0 or 3 latencies after reset with ``s_axis_tvalid`` always high: the core takes
    exactly its FIFO's depth of samples, then holds ``s_axis_tready`` low; afterwards every sample comes out once,
    in order, equal to the emulator bit for bit."""
    pm = _port_map(unrolled_project)
    stall = stall_latencies * pm["latency_cycles"]
    counters, got, want = _run_stalled(unrolled_project, tmp_path, stall)
    assert counters["sent"] == SAMPLES and counters["got"] == SAMPLES
    assert got == want
    if stall:
        assert counters["accepted_in_stall"] == pm["output_fifo"]["depth"]
        assert counters["ready_low_in_stall"] == stall - pm["output_fifo"]["depth"]
