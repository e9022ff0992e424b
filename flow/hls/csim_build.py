"""The C-simulation build of an hls4ml project: its ``build_lib.sh`` under a time budget, with progress lines.

hls4ml's ``ModelGraph.compile()`` writes the project and runs ``build_lib.sh`` (g++ ``-O3`` on the firmware and
the Python bridge), waiting for it without a limit and without a word; on large io_parallel models that g++ runs
for many minutes and takes gigabytes. Here the same script runs as a child of :mod:`flow.core.procs` (own process group,
dies with hlsflow), with:

- an optimization level chosen by size (:func:`opt_level_for`): ``-O3`` as hls4ml has it for small models,
  ``-O1`` from :data:`LARGE_WEIGHTS` weights up, where ``-O3`` costs minutes (docs/large-models.md has the
  measurements; the C simulation's outputs are bit-identical across the levels measured: the fixed-point
  arithmetic is integer arithmetic in ``ap_fixed``, and no level may change it). The project's own
  ``build_lib.sh`` on disk is left as hls4ml wrote it;
- a time budget in seconds: when it runs out, the compiler's whole process group is killed, its partial object
  files are removed, and the build is reported ``pending`` (:class:`CsimBuild`), for the caller to go on with the
  emulator and to say how the check is completed (``hlsflow verify PROJECT``);
- a progress line on stderr while g++ runs (elapsed seconds, peak resident memory of the compiler): every
  :data:`PROGRESS_TTY_S` seconds on a terminal, every :data:`PROGRESS_PIPE_S` seconds otherwise.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from flow.core import procs
from flow.core.errors import FlowError, ToolMissing

DEFAULT_TIMEOUT_S = 600.0  # the budget of `run` and `convert` (``--csim-timeout``)
LARGE_WEIGHTS = 20_000  # from this many weights up the C simulation is built at LARGE_OPT_LEVEL
SMALL_OPT_LEVEL = "-O3"  # hls4ml's own level
LARGE_OPT_LEVEL = "-O1"
OPT_LEVELS = ("-O0", "-O1", "-O2", "-O3")
PROGRESS_TTY_S = 20.0
PROGRESS_PIPE_S = 60.0
SAMPLE_S = 2.0  # how often the compiler's memory is sampled


@dataclass(frozen=True)
class CsimBuild:
    """How the C-simulation library was built: ``status`` ``"compiled"`` or ``"pending"`` (the budget ran out
    and the build was stopped; nothing of it is left), the g++ ``opt_level``, the build's wall ``seconds``, the
    budget ``timeout_s`` (None: none) and the compiler's peak resident memory ``peak_rss_mib`` (MiB, None when
    not sampled)."""

    status: str
    opt_level: str
    seconds: float
    timeout_s: float | None
    peak_rss_mib: int | None

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def pending_reason(self, then: str) -> str:
        """Why a comparison with the C simulation is pending, and ``then``: what completes it."""
        return f"the C simulation was not built within {self.timeout_s:g} s (g++ {self.opt_level} was stopped); {then}"

    def record(self) -> dict[str, Any]:
        """The build as report.json states it."""
        return {"status": self.status, "opt_level": self.opt_level, "compile_seconds": round(self.seconds, 1),
                "timeout_seconds": self.timeout_s, "peak_rss_mib": self.peak_rss_mib}


class _Pending(Exception):
    """The budget ran out (raised through hls4ml's ``compile`` to :func:`compile_graph`)."""


def weight_count(graph: Any) -> int:
    """All layers' weight and bias values of ``graph``."""
    return sum(int(np.size(var.data)) for layer in graph.get_layers() for var in layer.get_weights())


def opt_level_for(graph: Any) -> str:
    """The g++ level for ``graph``'s C simulation (:func:`opt_level_for_weights` of its :func:`weight_count`)."""
    return opt_level_for_weights(weight_count(graph))


def opt_level_for_weights(weights: int) -> str:
    """:data:`LARGE_OPT_LEVEL` from :data:`LARGE_WEIGHTS` weights up, else :data:`SMALL_OPT_LEVEL`."""
    return LARGE_OPT_LEVEL if weights >= LARGE_WEIGHTS else SMALL_OPT_LEVEL


def check_timeout(seconds: float | None, what: str = "--csim-timeout") -> float | None:
    """``seconds`` if it is None or a finite number above 0, else a FlowError naming ``what``."""
    if seconds is None:
        return None
    if not (seconds > 0 and seconds != float("inf")):
        raise FlowError(f"{what} must be a number of seconds > 0, got {seconds}")
    return float(seconds)


def compile_graph(graph: Any, timeout_s: float | None, opt_level: str | None = None) -> CsimBuild:
    """Write ``graph``'s project and build and load its C-simulation library through hls4ml's own ``compile()``,
    with the build itself (g++) run by :func:`build_library` (``opt_level`` None: :func:`opt_level_for`).

    Returns the :class:`CsimBuild`; a ``pending`` one leaves the project written and no library loaded
    (``graph.predict`` cannot run). A failing build is a FlowError with the compiler's last lines; no g++ is
    :class:`flow.core.errors.ToolMissing`."""
    weights = weight_count(graph)
    level = opt_level or opt_level_for_weights(weights)
    if level not in OPT_LEVELS:
        raise FlowError(f"C simulation: optimization level must be one of {', '.join(OPT_LEVELS)}, got {level!r}")
    outcome: dict[str, Any] = {}

    def build(model: Any) -> str:  # in place of hls4ml's FPGABackend.compile: the library's path
        project = Path(model.config.get_output_dir())
        lib = build_library(project, level, timeout_s, outcome)
        if lib is None:
            raise _Pending
        named = project / "firmware" / f"{model.config.get_project_name()}-{model.config.get_config_value('Stamp')}.so"
        return str(named if named.is_file() else lib)  # the name hls4ml gives it

    if weights >= LARGE_WEIGHTS:  # hls4ml writes large weight files for a while before g++ starts
        budget = "no time limit" if timeout_s is None else f"budget {timeout_s:g} s"
        print(f"  writing the HLS project ({weights:,} weights), then g++ {level} ({budget}) ...", file=sys.stderr,
              flush=True)
    backend = graph.config.backend
    backend.compile = build  # shadows the backend's method for this call only (hls4ml then loads the library)
    try:
        graph.compile()
    except _Pending:
        pass
    finally:
        vars(backend).pop("compile", None)
    return CsimBuild("pending" if outcome.get("pending") else "compiled", level, outcome.get("seconds", 0.0),
                     timeout_s, outcome.get("peak_rss_mib"))


def build_library(project: Path, opt_level: str, timeout_s: float | None,
                  outcome: dict[str, Any] | None = None) -> Path | None:
    """Run ``project/build_lib.sh`` with ``-O3`` replaced by ``opt_level``, in ``project``; the library's path,
    or None when ``timeout_s`` seconds ran out (the compiler's process group killed, its partial ``.o``/``.so``
    removed). ``outcome`` (if given) receives ``seconds``, ``peak_rss_mib`` and ``pending``."""
    outcome = {} if outcome is None else outcome
    if shutil.which("g++") is None:
        raise ToolMissing("g++ not found: the C simulation is built with it (e.g. apt-get install g++)")
    script_file = project / "build_lib.sh"
    script = script_file.read_text()
    if 'CFLAGS="-O3 ' not in script:
        raise FlowError(f"{script_file}: no CFLAGS=\"-O3 ...\" line (not a build script of hls4ml's form)")
    script = script.replace('CFLAGS="-O3 ', f'CFLAGS="{opt_level} ', 1)
    before = set(project.rglob("*.so")) | set(project.glob("*.o"))
    watch = _Progress(opt_level)
    t0 = time.perf_counter()
    try:
        proc = procs.run(["bash", "-c", script, "build_lib.sh"], cwd=project, capture_output=True, text=True,
                         timeout=timeout_s, started=watch.start)  # $0 = build_lib.sh: its folder is the cwd
    except subprocess.TimeoutExpired:
        for made in (set(project.rglob("*.so")) | set(project.glob("*.o"))) - before:
            made.unlink(missing_ok=True)
        proc = None
    finally:
        watch.stop()
        outcome.update(seconds=time.perf_counter() - t0, peak_rss_mib=watch.peak_mib or None, pending=False)
    if proc is None:
        outcome["pending"] = True
        return None
    if proc.returncode != 0:
        tail = " | ".join(line for line in (proc.stdout + proc.stderr).strip().splitlines()[-3:])
        raise FlowError(f"C simulation build failed (g++ {opt_level}, exit {proc.returncode}): {tail}")
    libs = sorted(set((project / "firmware").glob("*.so")) - before) or sorted((project / "firmware").glob("*.so"))
    if not libs:
        raise FlowError(f"C simulation build made no library in {project / 'firmware'}")
    return libs[0]


class _Progress:
    """A thread that samples the compiler's memory and prints a progress line now and then, while a build runs."""

    def __init__(self, opt_level: str) -> None:
        self.opt_level = opt_level
        self.peak_mib = 0
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, proc: subprocess.Popen) -> None:
        self._thread = threading.Thread(target=self._watch, args=(proc.pid,), daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()

    def _watch(self, group: int) -> None:
        every = progress_interval()
        t0 = time.monotonic()
        next_line = t0 + every
        while not self._done.wait(SAMPLE_S):
            self.peak_mib = max(self.peak_mib, group_peak_rss_mib(group))
            now = time.monotonic()
            if now >= next_line:
                next_line += every
                print(f"  C simulation build: {now - t0:.0f} s, g++ {self.opt_level} still running, "
                      f"peak {self.peak_mib} MiB", file=sys.stderr, flush=True)


def progress_interval() -> float:
    """Seconds between progress lines: :data:`PROGRESS_TTY_S` when stderr is a terminal, else
    :data:`PROGRESS_PIPE_S`."""
    return PROGRESS_TTY_S if _is_terminal(sys.stderr) else PROGRESS_PIPE_S


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def group_peak_rss_mib(group: int) -> int:
    """The largest peak resident memory (``VmHWM``, MiB) among the live processes of process group ``group``."""
    peak = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            stat = Path(f"/proc/{entry}/stat").read_text()
            if int(stat.rsplit(")", 1)[1].split()[2]) != group:
                continue
            for line in Path(f"/proc/{entry}/status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) // 1024)
    return peak
