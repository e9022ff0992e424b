"""The port map: what an RTL folder is, as a typed record (``PROJECT/rtl/port_map.json``).

:class:`PortMap` is the record every later stage reads (simulation, IP packaging, the datasheet, physical
figures): the top module, its Verilog files, the AXI4-Stream input and output (:class:`Port`: the fields of a
tdata word, :class:`flow.rtl.words.Field`), the clock and reset, latency and initiation interval (cycles), the
pipelining. Keys only the report and the datasheet show stay in :attr:`PortMap.record`, the file's JSON as it
is on disk (``to_json`` gives it back key for key). :func:`port_map_record` is the one place the file's keys are
written (the unrolled core, :mod:`flow.rtl.generate`, and the folded and streaming cores,
:mod:`flow.rtl.sequential`).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

from flow.core.errors import FlowError
from flow.rtl.words import Field, parse_fields

FILE = "port_map.json"
REQUIRED = ("top", "verilog", "input", "output")


@dataclass(frozen=True)
class Port:
    """One AXI4-Stream side of the core (the port map's ``input`` or ``output``).

    ``fields``: the fixed-point elements of one tdata word, in order; ``tdata_width`` in bits; ``beats``: words
    per sample (1: a whole sample per beat; a pixel stream: one pixel per beat).
    """

    fields: tuple[Field, ...]
    tdata_width: int
    beats: int = 1


@dataclass(frozen=True)
class PortMap:
    """A checked ``port_map.json``: typed fields for what the stages read, ``record`` for the rest.

    Build one with :meth:`load` (from an RTL folder) or :meth:`from_json`; :meth:`to_json` gives back the
    file's JSON (same keys, same order). Latency and initiation interval are in clock cycles;
    ``latency_cutoff`` is da4ml's pipelining budget per stage in its logic-delay units (None: one per kernel,
    chosen for the clock period); ``stage_delay_units`` the largest stage's delay in those units, when
    recorded.
    """

    top: str
    verilog: tuple[str, ...]
    input: Port
    output: Port
    architecture: str = "unrolled"
    latency_cycles: int | None = None
    initiation_interval: int = 1
    pipeline_stages: int | None = None
    latency_cutoff: float | None = None
    stage_delay_units: float | None = None
    output_layer: str | None = None
    clock: str = "clk"
    reset: str = "rst"
    reset_active_high: bool = True
    reset_synchronous: bool = True
    lint_clean: bool | None = None
    record: Mapping[str, Any] = field(default_factory=dict, repr=False, hash=False)

    @classmethod
    def from_json(cls, data: Any, where: str = FILE) -> PortMap:
        """Check and parse a port map's JSON (a dict); FlowError names ``where`` and the key otherwise."""
        if not isinstance(data, dict):
            raise FlowError(f"{where}: not a JSON object")
        for key in REQUIRED:
            if key not in data:
                raise FlowError(f"{where}: missing '{key}'")
        if not isinstance(data["top"], str) or not data["top"]:
            raise FlowError(f"{where}: 'top' must be the top module's name, got {data['top']!r}")
        verilog = data["verilog"]
        if not isinstance(verilog, list) or not all(isinstance(v, str) for v in verilog):
            raise FlowError(f"{where}: 'verilog' must be a list of file names")
        timing = data.get("timing")
        lint = data.get("lint")
        return cls(
            top=data["top"], verilog=tuple(verilog),
            input=_port(data["input"], f"{where}: input"), output=_port(data["output"], f"{where}: output"),
            architecture=_typed(data, "architecture", str, where, "unrolled"),
            latency_cycles=_typed(data, "latency_cycles", int, where),
            initiation_interval=_typed(data, "initiation_interval", int, where, 1),
            pipeline_stages=_typed(data, "pipeline_stages", int, where),
            latency_cutoff=_number(data, "latency_cutoff", where),
            stage_delay_units=_number(timing, "stage_delay_units", f"{where}: timing")
            if isinstance(timing, dict) else None,
            output_layer=_typed(data, "output_layer", str, where),
            clock=_typed(data, "clock", str, where, "clk"), reset=_typed(data, "reset", str, where, "rst"),
            reset_active_high=_typed(data, "reset_active_high", bool, where, True),
            reset_synchronous=_typed(data, "reset_synchronous", bool, where, True),
            lint_clean=_typed(lint, "clean", bool, f"{where}: lint") if isinstance(lint, dict) else None,
            record=copy.deepcopy(data))

    @classmethod
    def load(cls, rtl_dir: str | Path) -> PortMap:
        """Read and check ``rtl_dir/port_map.json`` (it names Verilog files that exist in ``rtl_dir``, its
        fields fit their tdata words); FlowError naming the file and the key otherwise."""
        rtl_dir = Path(rtl_dir)
        path = rtl_dir / FILE
        if not path.is_file():
            raise FlowError(f"{path}: not found (generate the RTL first: hlsflow rtl PROJECT)")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise FlowError(f"{path}: not valid JSON: {exc}") from None
        if isinstance(data, dict) and all(key in data for key in REQUIRED) and isinstance(data["verilog"], list):
            for name in data["verilog"]:
                if not (rtl_dir / str(name)).is_file():
                    raise FlowError(f"{path}: verilog file {name} not found in {rtl_dir}")
        return cls.from_json(data, str(path))

    def to_json(self) -> dict[str, Any]:
        """The port map's JSON: the keys of ``port_map.json``, in its order (a copy)."""
        return copy.deepcopy(dict(self.record))

    def with_entries(self, **entries: Any) -> PortMap:
        """This port map with ``entries`` set (added at the end, or replaced in place)."""
        return PortMap.from_json({**self.to_json(), **entries}, "port map")

    def write(self, rtl_dir: str | Path) -> Path:
        """Write ``rtl_dir/port_map.json`` (2-space indented JSON and a newline); returns its path."""
        path = Path(rtl_dir) / FILE
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        return path


def port_map_record(*, top: str, verilog: Sequence[str], memories: Sequence[str], architecture: str,
                    latency_cycles: int, initiation_interval: int, latency_cutoff: float | None, emitter: str,
                    output_layer: str | None, input: dict[str, Any], output: dict[str, Any],
                    da4ml: dict[str, Any], timing: dict[str, Any], equivalence: dict[str, Any],
                    pipeline_stages: int | None = None, details: Mapping[str, Any] | None = None,
                    lint: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON of ``port_map.json``, the one place its keys are written (clock ``clk``, synchronous
    active-high reset ``rst``). ``input``/``output``: ``tdata_width`` (bits), ``fields`` (each: ``name``,
    ``lsb``, ``width``, ``signed``, ``integer_bits``, ``type`` ``ap_fixed<W,I>``) and, for streams, ``beats``;
    ``details``: the architecture's own keys (the unrolled core's output FIFO and registers, a sequential
    core's units and reuse factors), after ``emitter``; ``pipeline_stages`` and ``lint`` only when given."""
    out: dict[str, Any] = {
        "top": top, "verilog": list(verilog), "memories": sorted(memories), "clock": "clk", "reset": "rst",
        "reset_active_high": True, "reset_synchronous": True, "architecture": architecture,
        "latency_cycles": latency_cycles, "initiation_interval": initiation_interval}
    if pipeline_stages is not None:
        out["pipeline_stages"] = pipeline_stages
    out |= {"latency_cutoff": latency_cutoff, "emitter": emitter, **(details or {}), "output_layer": output_layer,
            "input": input, "output": output, "da4ml": da4ml, "timing": timing, "equivalence": equivalence}
    if lint is not None:
        out["lint"] = lint
    return out


def _port(section: Any, where: str) -> Port:
    if not isinstance(section, dict):
        raise FlowError(f"{where}: must be an object with 'tdata_width' and 'fields'")
    fields, width = parse_fields(section, where)
    return Port(tuple(fields), width, _typed(section, "beats", int, where, 1))


def _typed(data: Mapping[str, Any], key: str, kind: type, where: str, default: Any = None) -> Any:
    """``data[key]`` when it is a ``kind`` (bool is no int here), ``default`` when absent or null."""
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise FlowError(f"{where}: '{key}' must be {'an' if kind is int else 'a'} {kind.__name__}, got {value!r}")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FlowError(f"{where}: '{key}' must be a number, got {value!r}")
    return value
