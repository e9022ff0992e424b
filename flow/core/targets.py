"""Targets as records: the FPGA parts the physical stage synthesizes, places and routes for (nextpnr-ecp5), under the
names the CLI and the spec accept (:mod:`flow.physical.fpga` measures them)."""

from __future__ import annotations

from dataclasses import dataclass

from flow.core.errors import FlowError


@dataclass(frozen=True)
class FpgaPart:
    """An FPGA target: ``device`` (vendor name), nextpnr's device flags, its ``luts`` (LUT4s, Lattice's data
    sheet), the speed grade timed (ECP5: 6, the slowest, to 8, the fastest), Yosys's synthesis command."""

    device: str
    device_args: tuple[str, ...]
    luts: int = 0
    speed: int = 6
    synth: str = "synth_ecp5"

    @property
    def lut_budget(self) -> int:
        """The part's LUT4s in the LUT6s of :mod:`flow.rtl.budget`'s estimate (:data:`LUT4_PER_LUT6`)."""
        return int(self.luts / LUT4_PER_LUT6)

    @property
    def nextpnr_args(self) -> tuple[str, ...]:
        """nextpnr-ecp5's device and speed-grade flags (the speed grade passed even where it is the default)."""
        return (*self.device_args, "--speed", str(self.speed))

    @property
    def ordering_code(self) -> str:
        """Device and speed grade as in Lattice's ordering codes (``LFE5U-85F-6``; package left out)."""
        return f"{self.device}-{self.speed}"


# nextpnr-ecp5 (and the PyPI wheel) time LFE5U parts at speed grade 6, the slowest, unless told otherwise: the
# shipped part names keep that grade, stated in physical.json (``speed_grade``, ``device``); the calibration
# (flow/rtl/calibration.json) was measured at it.
FPGA_PARTS = {
    "ecp5-25k": FpgaPart("LFE5U-25F", ("--25k",), 24_288),
    "ecp5-45k": FpgaPart("LFE5U-45F", ("--45k",), 43_848),
    "ecp5-85k": FpgaPart("LFE5U-85F", ("--85k",), 83_640),
}
# Yosys synth_ecp5 LUT4s (LUT4 cells + 2 per CCU2C carry cell, which takes a slice's two LUT4s) per synth_xilinx LUT
# (LUT1..LUT6) on the same RTL: the estimate counts the latter, a part's budget is the former. Measured 1.31 on the
# digits MLP's unrolled core and 1.86 on the jet MLP folded at R = 16 (docs/rtl.md "Estimating and folding to a
# budget"): the larger, rounded up, so a budget from a part errs towards more folding
LUT4_PER_LUT6 = 1.9


def fpga_part(name: str) -> FpgaPart:
    """The :data:`FPGA_PARTS` entry, or FlowError listing the known parts."""
    try:
        return FPGA_PARTS[name]
    except KeyError:
        raise FlowError(f"unknown FPGA part {name!r}; known: {', '.join(FPGA_PARTS)}") from None
