"""SIGKILL, SIGTERM, SIGHUP and SIGINT to `hlsflow run`/`convert`/`rtl` in their long stages: the previous project
stays, no child tool outlives the command; after SIGTERM/SIGHUP/SIGINT the clean-up ran (exit 128 + signal, one
line, no staging folder), after kill -9 the next run removes the stale staging folder. Plus the staging rules on
their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import MARK, error_lines, fake_project, marked_processes

from flow.commands.cli import EXIT_BAD_INPUT, main
from flow.core.outputs import PROJECT
from flow.core.staging import process_start_time, remove_stale, staged_dir

ROOT = Path(__file__).resolve().parents[1]
GRACE = 1.0  # seconds a child may take to die after its parent (a g++ compile alone takes longer)


def small_spec(tmp: Path, rtl: dict) -> Path:
    spec = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
    spec["training"]["epochs"] = 3
    spec["model"]["layers"][0]["units"] = 8
    spec["rtl"] = {"enabled": True, "latency_cutoff": 5, "samples": 20, **rtl}
    path = tmp / "digits_mlp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@dataclass
class Stopped:
    """What a command stopped by a signal left: its exit code, its stderr, the marked processes alive just before
    the signal and those alive ``GRACE`` s after it ended."""

    code: int
    stderr: str
    before: dict[int, str]
    after: dict[int, str]


def stop_when(tmp: Path, argv: list[str], banner: str, tools: tuple[str, ...], sig: int,
              timeout: float = 300) -> Stopped:
    """Start `hlsflow ARGV`, wait for ``banner`` on stderr and (if given) a child named one of ``tools``, then send
    ``sig`` to the hlsflow process and wait for it to end (clean-up included)."""
    mark = uuid.uuid4().hex
    log = tmp / "run.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flow", *map(str, argv)],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, MARK: mark})
    deadline = time.monotonic() + timeout
    seen: dict[int, str] = {}
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the command ended before the signal: {log.read_text()[-2000:]}"
            if banner in log.read_text():
                seen = marked_processes(mark)
                if not tools or any(name.startswith(tools) for name in seen.values()):
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"no {banner!r} with {tools} within {timeout} s: {log.read_text()[-2000:]}")
        os.kill(proc.pid, sig)
        code = proc.wait(60)
        time.sleep(GRACE)
        alive = marked_processes(mark)
    finally:
        if proc.poll() is None:
            proc.kill()
        for pid in marked_processes(mark):  # never leave anything behind, whatever the test found
            os.kill(pid, signal.SIGKILL)
    return Stopped(code, log.read_text(), seen, alive)


def previous_project(out: Path) -> Path:
    project = fake_project(out / "digits_mlp")
    (project / "report.json").write_text('{"previous": true}')
    return project


def unchanged(project: Path) -> bool:
    return (sorted(p.name for p in project.iterdir()) == ["project.json", "report.json"]
            and (project / "report.json").read_text() == '{"previous": true}')


def next_run_cleans(tmp: Path, out: Path) -> None:
    """A later run (here one that fails inside its staging folder) removes the killed run's folder."""
    stale = [p for p in out.iterdir() if p.name.startswith(".digits_mlp.tmp-")]
    assert len(stale) == 1, list(out.iterdir())  # what kill -9 leaves
    spec = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
    np.savez(tmp / "bad.npz", x=np.zeros((20, 64)), y=np.linspace(0, 1, 20))
    spec["dataset"]["source"] = str(tmp / "bad.npz")
    (tmp / "bad.yaml").write_text(yaml.safe_dump(spec))
    assert main(["run", str(tmp / "bad.yaml"), "--out", str(out)]) == EXIT_BAD_INPUT
    assert [p.name for p in out.iterdir()] == ["digits_mlp"]


TRAINING = ("train float baseline ...", (), {"yosys": False, "simulators": []})
CSIM_COMPILE = ("write HLS project + compile C simulation ...", ("g++", "cc1plus"), {"yosys": False, "simulators": []})
RTL_YOSYS = ("RTL (da4ml) + lint + Yosys ...", ("yosys",), {"yosys": True, "simulators": []})
RTL_SIM = ("RTL simulation (icarus) ...", ("vvp",), {"yosys": False, "simulators": ["icarus"]})

# (signal, the long stage of `hlsflow run` it arrives in); every one stops the run with the previous project intact
# and no child tool left. The default run keeps one case per signal where it matters most; the rest are heavy.
SIGNALS_AT_STAGES = [
    pytest.param(signal.SIGKILL, *TRAINING, id="kill-training"),
    pytest.param(signal.SIGKILL, *CSIM_COMPILE, id="kill-csim-compile"),
    pytest.param(signal.SIGKILL, *RTL_YOSYS, id="kill-rtl-yosys"),
    pytest.param(signal.SIGKILL, *RTL_SIM, id="kill-rtl-sim", marks=pytest.mark.heavy),
    pytest.param(signal.SIGTERM, *TRAINING, id="term-training"),
    pytest.param(signal.SIGHUP, *TRAINING, id="hup-training"),
    pytest.param(signal.SIGTERM, *CSIM_COMPILE, id="term-csim-compile", marks=pytest.mark.heavy),
    pytest.param(signal.SIGINT, *TRAINING, id="int-training", marks=pytest.mark.heavy),
    pytest.param(signal.SIGTERM, *RTL_YOSYS, id="term-rtl-yosys", marks=pytest.mark.heavy),
    pytest.param(signal.SIGTERM, *RTL_SIM, id="term-rtl-sim", marks=pytest.mark.heavy),
]


@pytest.mark.parametrize("sig, banner, tools, rtl", SIGNALS_AT_STAGES)
def test_a_signal_in_a_long_stage_of_run_keeps_the_previous_project_and_leaves_no_child(tmp_path, sig, banner,
                                                                                         tools, rtl):
    out = tmp_path / "out"
    project = previous_project(out)
    stopped = stop_when(tmp_path, ["run", small_spec(tmp_path, rtl), "--out", out], banner, tools, sig)
    if tools:
        assert any(name.startswith(tools) for name in stopped.before.values())
    assert not stopped.after, f"still running {GRACE} s after the end: {stopped.after} (before: {stopped.before})"
    assert unchanged(project)
    if sig == signal.SIGKILL:
        next_run_cleans(tmp_path, out)  # kill -9 leaves the staging folder; the next run removes it
        return
    assert_cleaned_up(stopped, "run", sig)
    assert [p.name for p in out.iterdir()] == ["digits_mlp"]  # the staging folder went with the clean-up


STOPPED_BY = {signal.SIGINT: "interrupted", signal.SIGTERM: "terminated by SIGTERM", signal.SIGHUP: "terminated by SIGHUP"}


def assert_cleaned_up(stopped: Stopped, command: str, sig: int) -> None:
    """Exit 128 + signal and the one line saying how the command was stopped (besides progress: stage banners,
    indented lines and the `hlsflow rtl: tracing ... (unrolled) ...` kind of line ending in ` ...`)."""
    assert stopped.code == 128 + sig, stopped.stderr[-2000:]
    assert "Traceback" not in stopped.stderr, stopped.stderr[-2000:]
    assert [line for line in error_lines(stopped.stderr) if not line.endswith(" ...")] == \
        [f"hlsflow {command}: {STOPPED_BY[sig]}; no partial output was kept"], stopped.stderr[-2000:]


@pytest.mark.parametrize("sig", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.heavy)])
def test_a_signal_during_the_compile_of_convert_keeps_the_previous_project(tmp_path, corpus_files, sig):
    model, _ = corpus_files("qkeras_jet_mlp")
    previous = previous_project(tmp_path / "out")
    stopped = stop_when(tmp_path, ["convert", model, "--out", previous], "write HLS project + compile C simulation ...",
                        ("g++", "cc1plus"), sig)
    assert not stopped.after, stopped.after
    assert_cleaned_up(stopped, "convert", sig)
    assert unchanged(previous) and [p.name for p in previous.parent.iterdir()] == ["digits_mlp"]


@pytest.mark.heavy
def test_sigterm_while_rtl_traces_keeps_the_previous_rtl_folder(tmp_path, corpus_files):
    model, _ = corpus_files("qkeras_jet_mlp")
    project = tmp_path / "proj"
    assert main(["convert", str(model), "--out", str(project), "--samples", "20"]) == 0
    (project / "rtl").mkdir()
    (project / "rtl" / "port_map.json").write_text('{"previous": true}')
    stopped = stop_when(tmp_path, ["rtl", project], "hlsflow rtl: tracing", (), signal.SIGTERM)
    assert not stopped.after, stopped.after
    assert_cleaned_up(stopped, "rtl", signal.SIGTERM)
    assert [p.name for p in (project / "rtl").iterdir()] == ["port_map.json"]
    assert (project / "rtl" / "port_map.json").read_text() == '{"previous": true}'
    assert not [p for p in project.iterdir() if p.name.startswith(".")]


def test_a_live_runs_staging_folder_is_never_removed(tmp_path):
    final = tmp_path / "proj"
    with staged_dir(final, PROJECT) as work:
        (work / "x").write_text("1")
        assert remove_stale(final) == []
        assert work.is_dir()
    assert (final / "x").read_text() == "1"


def test_a_reused_pid_does_not_keep_a_stale_folder(tmp_path):
    final = tmp_path / "proj"
    pid = os.getpid()
    stale = tmp_path / f".proj.tmp-{pid}-1-abc"  # this pid, but a start time that is not this process's
    stale.mkdir()
    assert process_start_time(pid) != "1"
    assert remove_stale(final) == [stale] and not stale.exists()


def test_scratch_folders_of_dead_processes_are_removed_and_live_ones_kept():
    """verify/rtl/sim rebuild the graph in a scratch folder under the system temp dir; one left by a killed
    process goes at the next scratch_dir(), one of a live process (here: this one) stays."""
    import tempfile

    from flow.core.staging import scratch_dir

    base = Path(tempfile.gettempdir())
    pid = os.getpid()
    dead = base / f"hlsflow-rtl-{pid}-1-{uuid.uuid4().hex[:8]}"  # this pid, another start time: a dead owner
    live = base / f"hlsflow-rtl-{pid}-{process_start_time(pid)}-{uuid.uuid4().hex[:8]}"
    dead.mkdir()
    live.mkdir()
    try:
        with scratch_dir("verify") as tmp:
            assert tmp.is_dir() and tmp.name.startswith(f"hlsflow-verify-{pid}-")
            assert not dead.exists() and live.is_dir()
        assert not tmp.exists()
    finally:
        live.rmdir()


def test_a_run_killed_between_the_two_renames_gets_the_previous_project_back(tmp_path):
    final = tmp_path / "proj"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    old = tmp_path / f".proj.old-{dead}-123-abc"
    old.mkdir()
    (old / "report.json").write_text("{}")
    remove_stale(final)
    assert (final / "report.json").read_text() == "{}" and not old.exists()


def test_the_watchdog_kills_grandchildren_that_third_party_code_started(tmp_path):
    """A process started without flow.core.procs (as hls4ml and cocotb start theirs) still dies with hlsflow."""
    mark = uuid.uuid4().hex
    code = ("import subprocess, sys, time; from flow.core import procs; procs.guard_children(); "
            "subprocess.Popen(['sh', '-c', 'sleep 600 & sleep 600']); print('started', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                            env={**os.environ, MARK: mark})
    try:
        assert proc.stdout.readline().strip() == "started"
        deadline = time.monotonic() + 10
        while len([n for n in marked_processes(mark).values() if n == "sleep"]) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(marked_processes(mark).values()).count("sleep") == 2
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(GRACE)
        assert [n for n in marked_processes(mark).values() if n != "python3"] == []
    finally:
        for pid in marked_processes(mark):
            os.kill(pid, signal.SIGKILL)
