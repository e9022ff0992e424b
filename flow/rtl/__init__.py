"""Vendor-free RTL: Verilog from the traced arithmetic, the AXI4-Stream wrapper, lint and resource estimates."""
