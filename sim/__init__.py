"""The cocotb testbench (axis_tb.py) and HDL harness; installed as the package flow.sim.testbench."""
