"""RTL simulation with cocotb (Icarus, Verilator): tdata words, the runner, ``hlsflow sim``."""
