`timescale 1ns / 1ps
// Hand-written AXI4-Stream test DUT for flow/sim.py (tests/test_sim.py): a 3-stage global-stall
// pipeline (input register, arithmetic register, output register; latency 3 cycles, II 1).
// Every register advances when en = !m_axis_tvalid || m_axis_tready, and s_axis_tready = en, so
// back-pressure holds the output and stalls the whole pipeline. rst is synchronous, active high.
//
// s_axis_tdata (69 bits), raw fixed-point codes (ap_fixed<W,I>: W bits, I integer bits incl. sign):
//   a [7:0]   ap_fixed<8,3>     b [13:8]  ap_ufixed<6,2>    c [25:14] ap_fixed<12,4>
//   d [28:26] ap_ufixed<3,3>    e [68:29] ap_fixed<40,10>
// m_axis_tdata (123 bits):
//   y0 [13:0]    = a * b          ap_fixed<14,5>   (signed x unsigned, exact)
//   y1 [26:14]   = a + c          ap_fixed<13,5>   (exact)
//   y2 [114:27]  = e * K          ap_fixed<88,18>  (K = the 48-bit ap_fixed<48,8> constant below, exact)
//   y3 [122:115] = b + d          ap_ufixed<8,4>   (exact)
module axis_dut (
    input  wire         clk,
    input  wire         rst,
    input  wire [68:0]  s_axis_tdata,
    input  wire         s_axis_tvalid,
    output wire         s_axis_tready,
    output wire [122:0] m_axis_tdata,
    output wire         m_axis_tvalid,
    input  wire         m_axis_tready
);
    localparam signed [47:0] K = 48'sh9A3C57E12B6D;

    reg v0, v1, v2;
    wire en = !v2 || m_axis_tready;

    // stage 0: input register
    reg signed [7:0]  a_q;
    reg        [5:0]  b_q;
    reg signed [11:0] c_q;
    reg        [2:0]  d_q;
    reg signed [39:0] e_q;
    // stage 1: arithmetic
    reg signed [13:0] y0_q;
    reg signed [12:0] y1_q;
    reg signed [87:0] y2_q;
    reg        [7:0]  y3_q;
    // stage 2: output register
    reg [122:0] out_q;

    wire signed [13:0] y0 = {{6{a_q[7]}}, a_q} * {8'b0, b_q};
    wire signed [12:0] y1 = {{2{a_q[7]}}, a_q, 3'b0} + {c_q[11], c_q};
    wire signed [87:0] y2 = {{48{e_q[39]}}, e_q} * {{40{K[47]}}, K};
    wire        [7:0]  y3 = {2'b0, b_q} + {1'b0, d_q, 4'b0};

    always @(posedge clk) begin
        if (rst) begin
            v0 <= 1'b0;
            v1 <= 1'b0;
            v2 <= 1'b0;
        end else if (en) begin
            v0 <= s_axis_tvalid;
            v1 <= v0;
            v2 <= v1;
        end
    end

    always @(posedge clk) begin
        if (en) begin
            a_q <= s_axis_tdata[7:0];
            b_q <= s_axis_tdata[13:8];
            c_q <= s_axis_tdata[25:14];
            d_q <= s_axis_tdata[28:26];
            e_q <= s_axis_tdata[68:29];
            y0_q <= y0;
            y1_q <= y1;
            y2_q <= y2;
            y3_q <= y3;
            out_q <= {y3_q, y2_q, y1_q, y0_q};
        end
    end

    assign s_axis_tready = en;
    assign m_axis_tvalid = v2;
    assign m_axis_tdata = out_q;
endmodule
