"""IP-core folders (``hlsflow ip``): RTL, FuseSoC core, plain testbench, vectors, datasheet."""
