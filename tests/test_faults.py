"""`kill -9` of `hlsflow run` in each long stage: the previous project stays, no child tool outlives the run,
and the next run removes the stale staging folder. Plus the staging rules on their own."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import pytest
import yaml

from flow.cli import EXIT_BAD_INPUT, main
from flow.staging import process_start_time, remove_stale, staged_dir

ROOT = Path(__file__).resolve().parents[1]
MARK = "HLSFLOW_FAULT_TEST"  # set only for the run under test; every descendant inherits it
GRACE = 1.0  # seconds a child may take to die after its parent (a g++ compile alone takes longer)


def marked_processes(mark: str) -> dict[int, str]:
    """Live (not zombie) processes whose environment has ``MARK=mark``: pid -> command name."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = Path(f"/proc/{entry}/environ").read_bytes()
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        if f"{MARK}={mark}".encode() in env.split(b"\0") and stat.rsplit(")", 1)[-1].split()[0] != "Z":
            found[int(entry)] = stat.split("(", 1)[1].rsplit(")", 1)[0]
    return found


def small_spec(tmp: Path, rtl: dict) -> Path:
    spec = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
    spec["training"]["epochs"] = 3
    spec["model"]["layers"][0]["units"] = 8
    spec["rtl"] = {"enabled": True, "latency_cutoff": 5, "samples": 20, **rtl}
    path = tmp / "digits_mlp.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


def kill_run_when(tmp: Path, spec: Path, banner: str, tools: tuple[str, ...], timeout: float = 300) -> dict[int, str]:
    """Start `hlsflow run spec`, wait for the stage ``banner`` on stderr and (if given) a child named one of
    ``tools``, then SIGKILL the hlsflow process. Returns the marked processes alive just before the kill."""
    mark = uuid.uuid4().hex
    log = tmp / "run.log"
    with open(log, "w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "flow", "run", str(spec), "--out", str(tmp / "out")],
                                stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, MARK: mark})
    deadline = time.monotonic() + timeout
    seen: dict[int, str] = {}
    try:
        while time.monotonic() < deadline:
            assert proc.poll() is None, f"the run ended before the kill: {log.read_text()[-2000:]}"
            if banner in log.read_text():
                seen = marked_processes(mark)
                if not tools or any(name.startswith(tools) for name in seen.values()):
                    break
            time.sleep(0.2)
        else:
            pytest.fail(f"no {banner!r} with {tools} within {timeout} s: {log.read_text()[-2000:]}")
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        time.sleep(GRACE)
        alive = marked_processes(mark)
    finally:
        for pid in marked_processes(mark):  # never leave anything behind, whatever the test found
            os.kill(pid, signal.SIGKILL)
    assert not alive, f"still running {GRACE} s after the kill: {alive} (before the kill: {seen})"
    return seen


def previous_project(out: Path) -> Path:
    project = out / "digits_mlp"
    project.mkdir(parents=True)
    (project / "report.json").write_text('{"previous": true}')
    return project


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


STAGES = [
    pytest.param("train float baseline ...", (), {"yosys": False, "simulators": []}, id="training"),
    pytest.param("write HLS project + compile C simulation ...", ("g++", "cc1plus"),
                 {"yosys": False, "simulators": []}, id="csim-compile"),
    pytest.param("RTL (da4ml) + lint + Yosys ...", ("yosys",), {"yosys": True, "simulators": []}, id="rtl-yosys"),
    pytest.param("RTL simulation (icarus) ...", ("vvp",), {"yosys": False, "simulators": ["icarus"]},
                 id="rtl-sim", marks=pytest.mark.heavy),
]


@pytest.mark.parametrize("banner, tools, rtl", STAGES)
def test_kill_9_in_a_long_stage_leaves_no_child_and_the_previous_project(tmp_path, banner, tools, rtl):
    out = tmp_path / "out"
    project = previous_project(out)
    seen = kill_run_when(tmp_path, small_spec(tmp_path, rtl), banner, tools)
    if tools:
        assert any(name.startswith(tools) for name in seen.values())
    assert [p.name for p in project.iterdir()] == ["report.json"]
    assert (project / "report.json").read_text() == '{"previous": true}'
    next_run_cleans(tmp_path, out)


def test_a_live_runs_staging_folder_is_never_removed(tmp_path):
    final = tmp_path / "proj"
    with staged_dir(final) as work:
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

    from flow.staging import scratch_dir

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
    """A process started without flow.procs (as hls4ml and cocotb start theirs) still dies with hlsflow."""
    mark = uuid.uuid4().hex
    code = ("import subprocess, sys, time; from flow import procs; procs.guard_children(); "
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
