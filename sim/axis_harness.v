`timescale 1ns / 1ps
// cocotb harness around an AXI4-Stream DUT (flow/sim.py, sim/axis_tb.py).
//
// The DUT module and its clock/reset port names come from defines set by flow/sim.py:
//   HLSFLOW_DUT, HLSFLOW_CLK, HLSFLOW_RST, and HLSFLOW_RST_ACTIVE_LOW when the reset is active low.
// rst here is always active high; the harness inverts it for an active-low DUT.
//
// The harness only observes: at every rising edge it registers what happened at that edge, so the
// Python testbench can read a stable record once per cycle (at the falling edge) without racing
// the simulator's scheduling of the edge:
//   fire_q[0]   an input transfer happened (s_axis_tvalid && s_axis_tready, not in reset)
//   fire_q[1]   an output transfer happened (m_axis_tvalid && m_axis_tready, not in reset)
//   out_data_q  m_axis_tdata at that edge
//   stall_violations  edges at which the DUT dropped m_axis_tvalid or changed m_axis_tdata while the
//               previous edge saw m_axis_tvalid && !m_axis_tready (AXI4-Stream: hold until accepted)
module hlsflow_axis_harness #(
    parameter IN_W = 8,
    parameter OUT_W = 8
) (
    input  wire             clk,
    input  wire             rst,
    input  wire [IN_W-1:0]  s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,
    output wire [OUT_W-1:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready,
    output reg [1:0]        fire_q,
    output reg [OUT_W-1:0]  out_data_q,
    output reg [31:0]       stall_violations
);
`ifdef HLSFLOW_RST_ACTIVE_LOW
    wire dut_rst = ~rst;
`else
    wire dut_rst = rst;
`endif

    `HLSFLOW_DUT dut (
        .`HLSFLOW_CLK (clk),
        .`HLSFLOW_RST (dut_rst),
        .s_axis_tdata (s_axis_tdata),
        .s_axis_tvalid(s_axis_tvalid),
        .s_axis_tready(s_axis_tready),
        .m_axis_tdata (m_axis_tdata),
        .m_axis_tvalid(m_axis_tvalid),
        .m_axis_tready(m_axis_tready)
    );

    reg             stalled;     // previous edge: output offered and not taken
    reg [OUT_W-1:0] stalled_data;

    initial begin
        fire_q = 2'b00;
        out_data_q = {OUT_W{1'b0}};
        stall_violations = 32'd0;
        stalled = 1'b0;
        stalled_data = {OUT_W{1'b0}};
    end

    always @(posedge clk) begin
        fire_q <= {!rst && m_axis_tvalid && m_axis_tready, !rst && s_axis_tvalid && s_axis_tready};
        out_data_q <= m_axis_tdata;
        stalled <= !rst && m_axis_tvalid && !m_axis_tready;
        stalled_data <= m_axis_tdata;
        if (!rst && stalled && (!m_axis_tvalid || m_axis_tdata !== stalled_data))
            stall_violations <= stall_violations + 32'd1;
    end
endmodule
