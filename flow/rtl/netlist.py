"""Verilog of one da4ml netlist and the files around it: module names with a core's prefix, lookup-table
files, da4ml's helper modules, the assigns between declared fixed-point fields and da4ml's packed bit vectors,
and the Verilator lint every generated core passes (shared by the unrolled
core, :mod:`flow.rtl.generate`, and the sequential architectures, :mod:`flow.rtl.sequential`)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

from flow.arith.types import FixedType
from flow.core import procs, tools
from flow.core.errors import FlowError
from flow.core.simulators import VERILATOR
from flow.rtl.emit import EMITTERS, kif_bits, stage_verilog, uses_static_modules

_STATIC_MODULES = ("shift_adder", "negative", "mux", "binop", "multiplier", "lookup_table")


def module_prefix(name: str) -> str:
    """A Verilog identifier from a project name (letters, digits, underscores; never starts with a digit)."""
    p = re.sub(r"[^A-Za-z0-9_]", "_", name)
    return p if re.match(r"[A-Za-z_]", p) else f"m_{p}"


def _prefix_modules(text: str, prefix: str) -> str:
    """Give da4ml's shared helper modules (shift_adder, mux, ...) this core's prefix, so two cores coexist."""
    return re.sub(rf"\b({'|'.join(_STATIC_MODULES)})\b", rf"{prefix}_\1", text)


def _table_file(prefix: str, table: str) -> str:
    """A lookup table's ``$readmemh`` file name: this core's prefix and a hash of the contents, so
    two cores in one design never share a file name, and regenerating gives the same names."""
    import hashlib

    return f"{prefix}_table_{hashlib.sha256(table.encode()).hexdigest()[:12]}.mem"


_ROM_STYLE = re.compile(r'\(\*\s*rom_style\s*=\s*\(BW_IN <= 999\) \? "distributed" : "block"\s*\*\)')


def _portable(text: str) -> str:
    """da4ml's lookup_table gives ``rom_style`` a parameter-dependent attribute value, which Icarus 11
    rejects ("not a constant expression"), and its value "distributed" makes Yosys 0.23 ``synth_ecp5`` stop
    ("no valid mapping found for memory"). Our ROMs carry no ``rom_style``: every table is read
    asynchronously, so each tool maps it to logic (LUTs on ECP5 and Xilinx, gates in generic ``synth``)."""
    return _ROM_STYLE.sub("", text)


def _static_sources(has_tables: bool) -> list[Path]:
    import da4ml.codegen.rtl as rtl_pkg

    src = Path(rtl_pkg.__file__).parent / "verilog" / "source"
    return [p for p in sorted(src.glob("*.v")) if has_tables or p.stem != "lookup_table"]


def netlist_verilog(sol: Any, module: str, prefix: str, emitter: str = EMITTERS[0], registered: bool = False
                    ) -> tuple[str, dict[str, str]]:
    """One da4ml netlist (``CombLogic``) as the Verilog module ``module`` (ports ``model_inp``/``model_out``; with
    ``registered`` also ``clk``/``load`` and ``model_out`` a register) by ``emitter``
    (:func:`flow.rtl.emit.stage_verilog`), its table files and helper modules named with ``prefix``;
    returns (code, {table file name: ``$readmemh`` contents})."""
    code, da4ml_tables = stage_verilog(sol, module, emitter, registered=registered)
    tables = {}
    for da4ml_name, table in da4ml_tables.items():
        ours = _table_file(prefix, table)
        tables[ours] = table
        code = code.replace(f'"{da4ml_name}"', f'"{ours}"')
    return _prefix_modules(code, prefix), tables


def static_modules(prefix: str, has_tables: bool, emitter: str = EMITTERS[0]) -> dict[str, str]:
    """da4ml's helper modules (shift_adder, mux, ...) with this core's prefix, {file name: code}, when the
    ``emitter``'s stage modules instantiate them (none for the levelized emitter)."""
    if not uses_static_modules(emitter):
        return {}
    return {f"{prefix}_{p.name}": _portable(_prefix_modules(p.read_text(), prefix)) for p in _static_sources(has_tables)}


def lint(rtl_dir: Path, files: list[str], top: str) -> dict[str, Any]:
    """``verilator --lint-only -Wall``; returns {"clean", "warnings", "tool"}; ToolMissing without Verilator."""
    cmd = VERILATOR.lint_command(files, top)
    out = procs.run(cmd, cwd=rtl_dir, capture_output=True, text=True, env=tools.hdl_env())
    warnings = [ln for ln in (out.stderr + out.stdout).splitlines() if ln.startswith("%")]
    return {"clean": out.returncode == 0 and not warnings, "warnings": warnings[:50],
            "command": "verilator --lint-only -Wall", "tool": VERILATOR.version()}


def da4ml_version() -> str:
    """The installed da4ml's version (recorded in every port map)."""
    from importlib.metadata import version

    return version("da4ml")


def axis_module(prefix: str, in_w: int, out_w: int) -> str:
    """The head of the AXI4-Stream top ``<prefix>_axis`` (every architecture's): module line and ports, tdata
    ``in_w``/``out_w`` bits, ``clk``, ``rst`` (synchronous, active high)."""
    return f"""module {prefix}_axis (
    input  wire             clk,
    input  wire             rst,
    input  wire [{in_w - 1}:0] s_axis_tdata,
    input  wire             s_axis_tvalid,
    output wire             s_axis_tready,
    output wire [{out_w - 1}:0] m_axis_tdata,
    output wire             m_axis_tvalid,
    input  wire             m_axis_tready
);"""


def packed_width(qints: Sequence[Any]) -> int:
    return sum(max(0, sum(kif_bits(q))) for q in qints)


def pack_assigns(dst: str, src: str, qints: Sequence[Any], types: Sequence[FixedType]) -> tuple[list[str], int]:
    """One assign from declared codes (element n of ``types[n]`` in ``src``, fields packed from bit 0 up) to
    da4ml's packed input ``dst``; returns (lines, packed width). FlowError when a traced format does not fit.

    A single concatenation, not one assign per field: Icarus re-evaluates every reader of a vector each time a
    part of it is written, so piecewise assigns into a wide vector read piecewise cost readers x writers."""
    parts, off, base = [], 0, 0
    for n, (q, t) in enumerate(zip(qints, types)):
        k, i, f = kif_bits(q)
        bw = k + i + f
        if bw > 0:
            lo = t.fractional - f
            if lo < 0 or lo + bw > t.width:
                raise FlowError(f"input element {n}: traced format (k={k}, i={i}, f={f}) does not fit {t}")
            parts.append(f"{src}[{base + lo + bw - 1}:{base + lo}]")
            off += bw
        base += t.width
    if not parts:
        return [], 0
    return [f"assign {dst} = {_concat(parts)};"], off


def _concat(parts_lsb_first: list[str]) -> str:
    if len(parts_lsb_first) == 1:
        return parts_lsb_first[0]
    return "{" + ",\n        ".join(reversed(parts_lsb_first)) + "}"


def unpack_assigns(dst: str, src: str, qints: Sequence[Any], types: Sequence[FixedType]) -> list[str]:
    """One assign from da4ml's packed output ``src`` to declared codes ``dst`` (sign/zero extension, shift)."""
    fields, off = [], 0
    for n, (q, t) in enumerate(zip(qints, types)):
        k, i, f = kif_bits(q)
        bw = k + i + f
        if bw <= 0:
            fields.append(f"{t.width}'d0")
            continue
        shift = t.fractional - f
        top = t.width - bw - shift
        if shift < 0 or top < 0:
            raise FlowError(f"output element {n}: traced format (k={k}, i={i}, f={f}) does not fit {t}")
        if shift:
            fields.append(f"{shift}'d0")
        fields.append(f"{src}[{off + bw - 1}:{off}]")
        if top:
            fill = f"{src}[{off + bw - 1}]" if k else "1'b0"
            fields.append(f"{{{top}{{{fill}}}}}")
        off += bw
    return [f"assign {dst} = {_concat(fields)};"]
