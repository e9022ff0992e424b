"""Fixed-point types and arithmetic, and the one description of every layer's arithmetic, executed on
numpy integers (the emulator) and on da4ml symbolic arrays (the RTL trace)."""
