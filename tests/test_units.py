"""The RTL units' building blocks (flow/rtl/units.py) on their own: word packing and the FIFO unit in Icarus."""

from __future__ import annotations

import random
import subprocess

import pytest

from flow.arith.types import FixedType
from flow.core.simulators import ICARUS
from flow.rtl import units

S4, U3, S8 = FixedType(4, 2, True), FixedType(3, 3, False), FixedType(8, 8, True)


@pytest.mark.parametrize("fields,expected", [
    ([(1, S4)], ("1", 4)),
    ([(-1, S4)], ("f", 4)),                       # two's complement in the field's 4 bits
    ([(-8, S4), (7, U3)], ("78", 7)),             # 7 << 4 | 0b1000
    ([(5, U3), (-1, S8)], ("7fd", 11)),           # 0xff << 3 | 5
    ([(0, S8), (0, S8), (1, S4)], ("10000", 20)),  # the first field at bit 0
])
def test_hex_word_packs_fields_from_bit_zero_up_in_twos_complement(fields, expected):
    assert units.hex_word(fields) == expected


def test_literal_is_a_sized_verilog_hex_constant():
    assert units.literal([(-8, S4), (7, U3)]) == "7'h78"


_FIFO_TB = """
module tb;
    reg clk = 0, rst = 1;
    always #1 clk = !clk;
    reg  [7:0] in_data = 0;
    reg        in_valid = 0, out_ready = 0;
    wire       in_ready, out_valid;
    wire [7:0] out_data;
    fifo dut(.clk(clk), .rst(rst), .in_data(in_data), .in_valid(in_valid), .in_ready(in_ready),
             .out_data(out_data), .out_valid(out_valid), .out_ready(out_ready));
    integer sent = 0, got = 0, held = 0, peak = 0, cycle = 0, seed = SEED;
    initial begin
        repeat (2) @(posedge clk);
        rst = 0;
        while (got < BEATS && cycle < 20000) begin
            @(negedge clk);
            cycle = cycle + 1;
            in_valid = (sent < BEATS) && ($random(seed) % 3 != 0);
            in_data = sent;
            out_ready = ($random(seed) % 4 != 0) && (cycle > 40 || cycle < 10);
            if (!in_ready && held != DEPTH) begin $display("FAIL ready low at %0d of %0d", held, DEPTH); $finish; end
            if (in_ready && held == DEPTH) begin $display("FAIL ready high when full"); $finish; end
            @(posedge clk);
            if (out_valid && out_ready) begin
                if (out_data != got[7:0]) begin $display("FAIL beat %0d got %0d", got, out_data); $finish; end
                got = got + 1;
            end
            if (in_valid && in_ready) sent = sent + 1;
            held = sent - got;
            if (held > peak) peak = held;
        end
        $display("DONE got=%0d peak=%0d", got, peak);
        $finish;
    end
endmodule
"""


@pytest.mark.parametrize("depth", [2, 3, 5])
def test_fifo_unit_delivers_every_beat_in_order_and_is_ready_exactly_while_not_full(depth, tmp_path):
    """Random valid/ready with a long stall of the reader (cycles 10-40), so the FIFO fills: order, no loss, no
    duplicate, ``in_ready`` low exactly at ``depth`` beats held."""
    (tmp_path / "fifo.v").write_text(units.fifo_unit("fifo", 8, depth, ""))
    tb = _FIFO_TB.replace("SEED", str(random.Random(depth).randrange(1 << 20))).replace("BEATS", "200")
    (tmp_path / "tb.v").write_text(tb.replace("DEPTH", str(depth)))
    subprocess.run(ICARUS.compile_command(["tb.v", "fifo.v"], "tb", tmp_path), cwd=tmp_path, check=True)
    out = subprocess.run(ICARUS.run_command(tmp_path), cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert "FAIL" not in out, out
    assert f"DONE got=200 peak={depth}" in out
