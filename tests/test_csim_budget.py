"""The C-simulation build never blocks the flow: past its time budget (``--csim-timeout``) the compiler's process
group is stopped, nothing of it is left, the project is written with the emulator's check against the model, the
terminal says in one line that the C-simulation check is pending and which command completes it, report.json says
``pending``, and ``hlsflow verify`` completes the check (and fails while it cannot)."""

from __future__ import annotations

import contextlib
import ctypes
import io
import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import assert_one_error_line, error_lines, uniform_weights

from flow.commands.cli import main
from flow.core.errors import FlowError
from flow.hls import csim_build
from flow.hls.convert import on_large_stack

ROOT = Path(__file__).resolve().parents[1]
BUDGET = "1"  # seconds, for a compiler that never finishes (slow_compiler)
SLOW_BUILD = '#!/bin/bash\nCFLAGS="-O3 -fPIC"\nsleep 30 & wait\n'  # hls4ml's script form, a compiler that hangs


def hlsflow_quiet(*args: object) -> tuple[int, str]:
    """Run ``hlsflow ARGS`` in-process (for module fixtures, which cannot use capsys); exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, err.getvalue()


def processes_in(folder: Path) -> list[int]:
    """Live processes whose working directory is ``folder`` or inside it (a compiler started there)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            if Path(os.readlink(f"/proc/{entry}/cwd")).is_relative_to(folder.resolve()):
                found.append(int(entry))
    return found


@contextlib.contextmanager
def slow_compiler(folder: Path) -> Iterator[None]:
    """A ``g++`` first on PATH that never finishes (it sleeps), for the duration."""
    (folder / "g++").write_text("#!/bin/sh\nexec sleep 60\n")
    (folder / "g++").chmod(0o755)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
        yield


@pytest.fixture(scope="module")
def pending_project(small_model, tmp_path_factory) -> tuple[Path, int, str, list[int]]:
    """``small_model`` converted with a C-simulation budget of ``BUDGET`` s and a compiler that never finishes: the
    project, the exit code, stderr and the processes left working inside the output folder."""
    out = tmp_path_factory.mktemp("budget") / "p"
    with slow_compiler(tmp_path_factory.mktemp("bin")):
        code, err = hlsflow_quiet("convert", small_model[0] / "m.h5", "--out", out, "--input-type", "ap_fixed<8,3>",
                                  "--samples", 50, "--csim-timeout", BUDGET)
    return out, code, err, processes_in(out.parent)


def test_a_compile_over_its_budget_ends_with_exit_0_and_one_pending_line(pending_project):
    out, code, err, _ = pending_project
    assert code == 0, err[-2000:]
    assert error_lines(err) == [
        f"hlsflow convert: C simulation pending: g++ -O3 did not finish within {BUDGET} s and was stopped; the "
        f"project holds the emulator's results; complete the check with: hlsflow verify {out}"], err[-2000:]


def test_a_stopped_compile_leaves_no_process_and_no_object_file(pending_project):
    out, _, _, left = pending_project
    assert not left, left
    hls = out / "hls"
    assert (hls / "firmware" / "myproject.cpp").is_file()  # the project is written
    assert not list(hls.rglob("*.o")) and not list(hls.rglob("*.so"))
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no staging folder


def test_the_report_says_pending_and_holds_the_emulators_check_against_the_model(pending_project):
    out, _, _, _ = pending_project
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["status"] == "pending"
    assert report["csim"]["timeout_seconds"] == float(BUDGET)
    assert report["csim"]["complete_with"] == f"hlsflow verify {out}"
    for key in ("csim_vs_keras", "emulator_vs_csim"):
        assert f"`hlsflow verify {out}` builds it" in report[key]["pending"]
    emu = report["emulator_vs_keras"]
    assert emu["outputs"] == 50 * 3 and emu["equal_outputs"] == emu["outputs"]


def test_verify_exits_1_while_its_own_budget_stops_the_build_and_0_with_allow_skip(pending_project, hlsflow,
                                                                                   tmp_path):
    out, _, _, _ = pending_project
    with slow_compiler(tmp_path):
        code, summary, err = hlsflow("verify", out, "--samples", 50, "--csim-timeout", BUDGET)
        assert code == 1 and not summary["ok"] and "pending" in summary["emulator_vs_csim"]
        assert "C simulation pending" in assert_one_error_line(err, "verify")
        code, summary, _ = hlsflow("verify", out, "--samples", 50, "--csim-timeout", BUDGET, "--allow-skip")
    assert code == 0 and summary["emulator_vs_model"]["differing_outputs"] == 0
    assert json.loads((out / "report.json").read_text())["csim"]["status"] == "pending"


def test_verify_completes_a_pending_check_and_records_it_in_the_report(pending_project, hlsflow):
    out, _, _, _ = pending_project
    code, summary, err = hlsflow("verify", out, "--samples", 50)
    assert code == 0, err[-2000:]
    assert summary["ok"] and summary["csim"]["status"] == "compiled"
    assert summary["emulator_vs_csim"]["differing_outputs"] == 0
    report = json.loads((out / "report.json").read_text())
    assert report["csim"]["status"] == "verified" and "complete_with" not in report["csim"]
    assert "\"pending\"" not in json.dumps(report)  # no pending key or status left
    assert report["emulator_vs_csim"]["equal_outputs"] == report["emulator_vs_csim"]["outputs"] == 50 * 3
    assert report["csim_vs_keras"]["checked_by"] == "checked by hlsflow verify on 50 inputs"


def test_run_over_its_budget_reports_the_emulator_and_a_pending_c_simulation(tmp_path, hlsflow):
    spec = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
    spec["training"]["epochs"], spec["model"]["layers"][0]["units"], spec["rtl"] = 1, 8, {"enabled": False}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(spec))
    with slow_compiler(tmp_path):
        code, printed, err = hlsflow("run", tmp_path / "s.yaml", "--out", tmp_path / "out", "--csim-timeout", BUDGET)
    project = tmp_path / "out" / "digits_mlp"
    assert code == 0, err[-2000:]
    assert error_lines(err) == [f"report: {project / 'report.md'}",
                                f"hlsflow run: C simulation pending: g++ -O3 did not finish within {BUDGET} s and was "
                                "stopped; the project holds the emulator's results; complete the check with: "
                                f"hlsflow verify {project}"]
    assert printed["exact_fraction"] == {"csim_vs_qkeras": "pending", "emulator_vs_csim": "pending",
                                         "emulator_vs_qkeras": 1.0}
    md = (project / "report.md").read_text()
    assert "| hls4ml C simulation | pending |" in md and "C simulation vs QKeras: **pending**" in md


@pytest.mark.parametrize("command", ["convert", "run", "verify"])
@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf", "ten"])
def test_a_budget_that_is_not_a_positive_number_is_one_line_and_exit_2(tmp_path, hlsflow, command, value):
    target = {"convert": tmp_path / "m.h5", "run": tmp_path / "spec.yaml", "verify": tmp_path}[command]
    code, _, err = hlsflow(command, target, "--csim-timeout", value)
    assert code == 2
    assert "--csim-timeout" in assert_one_error_line(err, command)


def test_a_hanging_compiler_is_stopped_at_the_budget_with_its_whole_process_group(tmp_path):
    (tmp_path / "build_lib.sh").write_text(SLOW_BUILD)
    outcome: dict = {}
    assert csim_build.build_library(tmp_path, "-O1", 0.5, outcome) is None
    assert outcome["pending"] and 0.5 <= outcome["seconds"] < 5
    assert not processes_in(tmp_path)  # bash and its sleep: the whole group is gone



def test_progress_lines_name_the_elapsed_seconds_while_the_compiler_runs(tmp_path, monkeypatch, capsys):
    (tmp_path / "build_lib.sh").write_text(SLOW_BUILD)
    monkeypatch.setattr(csim_build, "PROGRESS_PIPE_S", 0.4)
    monkeypatch.setattr(csim_build, "SAMPLE_S", 0.1)
    csim_build.build_library(tmp_path, "-O1", 1.5)
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) >= 2 and all(line.startswith("  C simulation build: ") and "g++ -O1 still running" in line
                                   for line in lines), lines


def test_a_failing_build_is_one_error_naming_the_level_and_the_compilers_last_line(tmp_path):
    (tmp_path / "build_lib.sh").write_text('#!/bin/bash\nCFLAGS="-O3 -fPIC"\necho "myproject.cpp:1: error: boom"\n'
                                           "exit 1\n")
    with pytest.raises(FlowError, match=r"g\+\+ -O1, exit 1\): myproject.cpp:1: error: boom"):
        csim_build.build_library(tmp_path, "-O1", 10)


def dense_graph(tmp: Path, inputs: int, units: int) -> object:
    """The hls4ml graph (not written) of a float Dense(``units``) on ``inputs`` inputs (inputs x units + units
    weights)."""
    from flow.hls.convert import build_graph, derive_hls_config
    from flow.keras.env import keras
    from flow.spec import Hardware

    k = keras()
    x = k.Input((inputs,), name="x")
    model = k.Model(x, k.layers.Dense(units, name="fc")(x))
    return build_graph(model, derive_hls_config(model, Hardware(), "ap_fixed<16,6>"), Hardware(), tmp / "hls")


@pytest.mark.parametrize(("inputs", "units", "level"), [
    (10, 4, "-O3"),                                      # 44 weights: hls4ml's own level
    (99, 199, "-O3"),                                    # 19,900 weights: one short of the limit
    (99, 200, "-O1"),                                    # 20,000 weights (csim_build.LARGE_WEIGHTS)
])
def test_models_from_the_large_weight_count_up_are_built_at_O1(tmp_path, inputs, units, level):
    assert csim_build.opt_level_for(dense_graph(tmp_path, inputs, units)) == level


@pytest.mark.heavy
@pytest.mark.parametrize("level", ["-O0", "-O1", "-O2"])
def test_the_c_simulation_is_bit_identical_at_every_optimization_level(tmp_path, level):
    """A Conv1D io_parallel model of the kind measured in docs/large-models.md, 1,000 full-range inputs."""
    from flow.arith.types import full_range_inputs, parse_type
    from flow.hls.convert import build_graph, csim_predict, derive_hls_config, write_and_compile
    from flow.keras.env import keras
    from flow.spec import Hardware

    k = keras()
    x_in = k.Input((16, 4), name="x")
    h = k.layers.Conv1D(8, 5, activation="relu", name="conv")(x_in)
    model = k.Model(x_in, k.layers.Dense(5, name="out")(k.layers.Flatten(name="flat")(h)))
    uniform_weights(model, seed=1)
    cfg = derive_hls_config(model, Hardware(backend="Vivado"), "ap_fixed<16,6>")
    x = full_range_inputs(parse_type("ap_fixed<16,6>"), (16, 4), 1000, seed=0)
    outputs = {}
    for lvl in (level, "-O3"):
        graph = build_graph(model, cfg, Hardware(backend="Vivado"), tmp_path / lvl)
        assert write_and_compile(graph, opt_level=lvl).opt_level == lvl
        outputs[lvl] = csim_predict(graph, x)
    assert (outputs[level].view(np.uint64) == outputs["-O3"].view(np.uint64)).all()


def test_the_c_simulation_runs_on_a_stack_large_enough_for_a_16_mib_frame(tmp_path):
    """hls4ml's io_parallel C simulation keeps layer arrays on the stack (8 MiB frames for a Conv1D (256, 8) with
    64 filters): more than a main thread's default 8 MiB, which would end the process with a segmentation fault."""
    source = tmp_path / "frame.c"
    source.write_text("int big(void) { volatile char a[16 << 20]; a[0] = 1; a[(16 << 20) - 1] = 2;\n"
                      "  return a[0] + a[(16 << 20) - 1]; }\n")
    subprocess.run(["g++", "-x", "c", "-O0", "-shared", "-fPIC", str(source), "-o", str(tmp_path / "frame.so")],
                   check=True)
    big = ctypes.CDLL(str(tmp_path / "frame.so")).big
    assert on_large_stack(big) == 3


def test_the_c_simulation_predicts_in_chunks_with_the_same_outputs_and_progress_lines(small_project, monkeypatch,
                                                                                    capsys):
    from flow.hls import convert
    from flow.hls.project import rebuild

    _, graph, _ = rebuild(small_project, small_project.parent / "again")
    convert.write_and_compile(graph)
    x = np.random.default_rng(0).uniform(-4, 4, (120, 6))
    whole = convert.csim_predict(graph, x)
    monkeypatch.setattr(convert, "PREDICT_CHUNK", 7)
    monkeypatch.setattr(csim_build, "PROGRESS_PIPE_S", 0.0)
    assert (convert.csim_predict(graph, x).view(np.uint64) == whole.view(np.uint64)).all()
    lines = capsys.readouterr().err.splitlines()
    assert re.fullmatch(r"  C simulation: 119 of 120 inputs, \d+ s", lines[-1]) and len(lines) == 120 // 7
