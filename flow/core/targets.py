"""Targets as records: the FPGA parts the physical stage synthesizes, places and routes for (nextpnr-ecp5), under the
names the CLI and the spec accept (:mod:`flow.physical.fpga` measures them)."""

from __future__ import annotations

from dataclasses import dataclass

from flow.core.errors import FlowError


@dataclass(frozen=True)
class FpgaPart:
    """An FPGA target: ``device`` (vendor name), nextpnr's device flags, the speed grade timed (ECP5: 6, the
    slowest, to 8, the fastest), Yosys's synthesis command."""

    device: str
    device_args: tuple[str, ...]
    speed: int = 6
    synth: str = "synth_ecp5"

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
    "ecp5-25k": FpgaPart("LFE5U-25F", ("--25k",)),
    "ecp5-45k": FpgaPart("LFE5U-45F", ("--45k",)),
    "ecp5-85k": FpgaPart("LFE5U-85F", ("--85k",)),
}


def fpga_part(name: str) -> FpgaPart:
    """The :data:`FPGA_PARTS` entry, or FlowError listing the known parts."""
    try:
        return FPGA_PARTS[name]
    except KeyError:
        raise FlowError(f"unknown FPGA part {name!r}; known: {', '.join(FPGA_PARTS)}") from None
