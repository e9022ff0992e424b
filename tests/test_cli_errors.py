"""Every failure of every command, as a user meets it: the real CLI, one line naming the file, field, layer or
argument at fault, exit 2 for bad input (3 for a missing tool, 1 for a check that did not pass), never a
traceback, and nothing changed in the folders involved (a digest of the tree before and after).

Argument errors run as processes (`python -m flow`); the rest in-process (the same `main`, no TensorFlow start-up
per case). Issue 20, part B: validation before work, nothing silently ignored, one-line messages."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, assert_one_error_line, tree_digest

from flow.commands.cli import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_NOT_BIT_EXACT, EXIT_TOOL_MISSING

SPEC = ROOT / "models" / "digits_mlp.yaml"
SWEEP = ROOT / "models" / "digits_sweep.yaml"
UNWRITABLE = Path("/proc/1")  # a folder no user (root included) can create anything in


def run_process(*args: object, cwd: Path) -> tuple[int, str]:
    """``python -m flow ARGS`` as a separate process in ``cwd``; (exit code, stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-m", "flow", *map(str, args)], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)
    return done.returncode, done.stderr


@pytest.fixture
def workdir(tmp_path) -> Path:
    """A folder with what the cases point at: a user's folder that is no project (``thesis/``), a project folder
    with a corrupt record (``corrupt/``) or a record that is no JSON object (``listed/``), a plain file (``notes.txt``),
    an empty file (``empty.yaml``), a YAML list (``list.yaml``) and inputs for ``emulate`` (``x.npy``)."""
    (tmp_path / "thesis").mkdir()
    (tmp_path / "thesis" / "thesis.txt").write_text("four years of work\n")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "project.json").write_text('{"model": "m.h5", ')
    (tmp_path / "listed").mkdir()
    (tmp_path / "listed" / "project.json").write_text("[1, 2]\n")
    (tmp_path / "notes.txt").write_text("not a folder\n")
    (tmp_path / "empty.yaml").write_text("")
    (tmp_path / "list.yaml").write_text("- name\n- dataset\n")
    np.save(tmp_path / "x.npy", np.zeros((2, 6)))
    return tmp_path


@pytest.fixture(scope="module")
def record_project(small_model, tmp_path_factory) -> Path:
    """A project as ``hlsflow convert`` records it (``project.json``, the model file), without the HLS folder and
    its C-simulation compile: enough for every case that must fail before the project's graph is rebuilt."""
    from flow.hls.project import save_meta
    from flow.spec import Hardware

    folder, config = small_model
    project = tmp_path_factory.mktemp("record") / "p"
    project.mkdir()
    shutil.copy(folder / "m.h5", project / "m.h5")
    save_meta(project, "m.h5", config["HLSConfig"], Hardware(), "ap_fixed<8,3>")
    return project


def assert_fails_cleanly(code: int, err: str, command: str | None, expected_code: int, *fragments: str) -> str:
    line = assert_one_error_line(err, command)
    assert code == expected_code, err
    for fragment in fragments:
        assert fragment in line, (fragment, line)
    return line


# ---- arguments: refused when parsed, before any file is read (the project `nope` does not exist) ------------------

ARGUMENTS = [
    (["rtl", "nope", "--check-samples", "-3"], "argument --check-samples: must be >= 1, got -3"),
    (["rtl", "nope", "--clock-period", "0"], "argument --clock-period: must be > 0, got 0"),
    (["rtl", "nope", "--clock-period", "nan"], "argument --clock-period: must be > 0, got nan"),
    (["rtl", "nope", "--latency-cutoff", "-1"], "argument --latency-cutoff: must be >= 0, got -1"),
    (["rtl", "nope", "--reuse-factor", "0"], "argument --reuse-factor: must be >= 1, got 0"),
    (["rtl", "nope", "--fpga", "ice40"], "argument --fpga: invalid choice: 'ice40'"),
    (["rtl", "nope", "--bogus"], "unrecognized arguments: --bogus"),
    (["convert", "m.h5", "--samples", "0"], "argument --samples: must be >= 1, got 0"),
    (["convert", "m.h5", "--samples", "ten"], "argument --samples: must be an integer, got 'ten'"),
    (["verify", "nope", "--samples", "0"], "argument --samples: must be >= 1, got 0"),
    (["verify", "nope", "--seed", "-1"], "argument --seed: must be >= 0, got -1"),
    (["sim", "nope", "--simulator", "icarus", "--samples", "0"], "argument --samples: must be >= 1, got 0"),
    (["sim", "nope", "--simulator", "ghdl"], "argument --simulator: invalid choice: 'ghdl'"),
    (["sim", "nope"], "the following arguments are required: --simulator"),
    (["ip", "nope", "--vectors", "0"], "argument --vectors: must be >= 1, got 0"),
    (["ip", "nope", "--seed", "-5"], "argument --seed: must be >= 0, got -5"),
    (["sweep", "s.yaml", "--workers", "0"], "argument --workers: must be >= 1, got 0"),
    (["sweep", "s.yaml", "--min-accuracy", "1.5"], "argument --min-accuracy: must be >= 0 and <= 1, got 1.5"),
    (["sweep", "s.yaml", "--trial", "-1"], "argument --trial: must be >= 0, got -1"),
    (["emulate", "nope", "--input", "x.npy"], "the following arguments are required: --output"),
]


@pytest.mark.parametrize("argv,fragment", ARGUMENTS, ids=[" ".join(a) for a, _ in ARGUMENTS])
def test_a_bad_argument_is_one_line_before_any_work(workdir, argv, fragment):
    before = tree_digest(workdir)
    code, err = run_process(*argv, cwd=workdir)
    assert_fails_cleanly(code, err, argv[0], EXIT_BAD_INPUT, fragment)
    assert tree_digest(workdir) == before


def test_no_command_and_an_unknown_command_are_one_line(workdir):
    for argv, fragment in (([], "required: command"), (["compile"], "invalid choice: 'compile'")):
        code, err = run_process(*argv, cwd=workdir)
        assert_fails_cleanly(code, err, None, EXIT_BAD_INPUT, fragment)


# ---- a folder that is not an hlsflow project: one check, the same line for every project command ----------------

PROJECT_COMMANDS = {"rtl": [], "sim": ["--simulator", "icarus"], "ip": [], "verify": [],
                    "emulate": ["--input", "x.npy", "--output", "y.npy"]}
NOT_A_PROJECT = {  # folder -> what the line says
    "thesis": "thesis: not an hlsflow project (no project.json)",
    "corrupt": "corrupt/project.json: not valid JSON (",
    "listed": "listed/project.json: not a project record (a JSON object), got list",
    "missing": "missing: project folder not found",
    "notes.txt": "notes.txt: not an hlsflow project (a file, not a project folder)",
}


@pytest.mark.parametrize("folder", NOT_A_PROJECT)
@pytest.mark.parametrize("command", PROJECT_COMMANDS)
def test_a_project_command_on_a_folder_that_is_no_project_names_it(workdir, hlsflow, monkeypatch, command, folder):
    monkeypatch.chdir(workdir)
    before = tree_digest(workdir)
    code, _, err = hlsflow(command, folder, *PROJECT_COMMANDS[command])
    line = assert_fails_cleanly(code, err, command, EXIT_BAD_INPUT, NOT_A_PROJECT[folder])
    said = line.split(": ", 1)[1]
    assert "clock_period" not in said and "hlsflow rtl" not in said  # no misleading cause, no command that fails
    assert tree_digest(workdir) == before


@pytest.mark.parametrize("command", ["sim", "ip"])
def test_sim_and_ip_on_a_project_without_rtl_say_so(record_project, tmp_path, hlsflow, command):
    project = tmp_path / "p"
    shutil.copytree(record_project, project)
    before = tree_digest(tmp_path)
    code, _, err = hlsflow(command, project, *PROJECT_COMMANDS[command][:2])
    assert_fails_cleanly(code, err, command, EXIT_BAD_INPUT, f"{project / 'rtl'}", "port_map.json")
    assert tree_digest(tmp_path) == before


def test_ip_with_an_unknown_simulator_names_it(record_project, tmp_path, hlsflow):
    project = tmp_path / "p"
    shutil.copytree(record_project, project)
    (project / "rtl").mkdir()
    (project / "rtl" / "port_map.json").write_text("{}")  # only its presence is checked before the simulators
    before = tree_digest(tmp_path)
    code, _, err = hlsflow("ip", project, "--simulators", "icarus", "ghdl")
    assert_fails_cleanly(code, err, "ip", EXIT_BAD_INPUT, "--simulators must be among icarus, verilator, got ghdl")
    assert tree_digest(tmp_path) == before


# ---- where a command writes: an existing file or a folder nobody can write into, refused before any work -------

def _out_cases(workdir: Path, project: Path) -> list[tuple[list, str]]:
    file, folder = workdir / "notes.txt", workdir / "thesis"
    return [
        (["run", SPEC, "--out", file], f"--out {file}: {file} is a file, not a folder"),
        (["run", SPEC, "--out", file / "sub"], f"{file} is a file, not a folder"),
        (["run", SPEC, "--out", UNWRITABLE / "out"], f"cannot write into {UNWRITABLE} (permission denied)"),
        (["convert", workdir / "m.h5", "--out", file / "p"], f"{file} is a file, not a folder"),
        (["convert", workdir / "m.h5", "--out", UNWRITABLE / "p"], f"cannot write into {UNWRITABLE}"),
        (["sweep", SWEEP, "--out", file], f"--out {file}: {file} is a file, not a folder"),
        (["sweep", SWEEP, "--out", UNWRITABLE / "s"], f"cannot write into {UNWRITABLE}"),
        (["sweep", SWEEP, "--report-only", "--export-best", folder], f"--export-best {folder}: is a folder"),
        (["emulate", project, "--input", workdir / "x.npy", "--output", folder], f"--output {folder}: is a folder"),
        (["emulate", project, "--input", workdir / "x.npy", "--output", file / "y.npy"], f"{file} is a file"),
        (["verify", project, "--write-exact-config", UNWRITABLE / "c.yml"], f"cannot write into {UNWRITABLE}"),
        (["ip", project, "--out", file / "ip"], f"{file} is a file, not a folder"),
    ]


OUT_CASES = 12


@pytest.mark.parametrize("case", range(OUT_CASES))
def test_an_output_path_that_cannot_be_written_is_one_line_before_any_work(workdir, small_model, record_project,
                                                                           hlsflow, case):
    shutil.copy(small_model[0] / "m.h5", workdir / "m.h5")
    project = workdir / "p"
    shutil.copytree(record_project, project)
    cases = _out_cases(workdir, project)
    assert len(cases) == OUT_CASES
    argv, fragment = cases[case]
    before = tree_digest(workdir)
    code, _, err = hlsflow(*argv)
    assert_fails_cleanly(code, err, argv[0], EXIT_BAD_INPUT, fragment)
    assert tree_digest(workdir) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only folder (permissions do not bind root)")
def test_rtl_into_a_read_only_project_is_one_line_before_any_work(record_project, tmp_path, hlsflow):
    project = tmp_path / "p"
    shutil.copytree(record_project, project)
    project.chmod(0o555)
    try:
        before = tree_digest(tmp_path)
        code, _, err = hlsflow("rtl", project)
        assert_fails_cleanly(code, err, "rtl", EXIT_BAD_INPUT, f"cannot write into {project}")
        assert tree_digest(tmp_path) == before
    finally:
        project.chmod(0o755)


# ---- input files: empty, not a mapping, misspelt keys, unsupported layers ---------------------------------------

@pytest.mark.parametrize("command,file,fragment", [
    ("run", "empty.yaml", "empty.yaml: empty file (expected a mapping with name, dataset, model, ...)"),
    ("sweep", "empty.yaml", "empty.yaml: empty file (expected a mapping with name, base, axes, ...)"),
    ("run", "list.yaml", "list.yaml: not a mapping (expected a mapping with name, dataset, model, ...), got list"),
    ("run", "missing.yaml", "missing.yaml: spec file not found"),
    ("convert", "missing.h5", "missing.h5: model file not found"),
    ("convert", "thesis", "thesis: model file is a folder, not a file"),
])
def test_an_empty_or_missing_input_file_is_named(workdir, hlsflow, monkeypatch, command, file, fragment):
    monkeypatch.chdir(workdir)
    before = tree_digest(workdir)
    code, _, err = hlsflow(command, file, "--out", "out")
    line = assert_fails_cleanly(code, err, command, EXIT_BAD_INPUT, fragment)
    assert "field ``" not in line
    assert tree_digest(workdir) == before


def _set(doc: dict, path: str, value: object) -> dict:
    """``doc`` with the key at dotted ``path`` set to ``value`` (parents created)."""
    *parents, last = path.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value
    return doc


CONFIG_CASES = [  # (dotted key set in hls4ml's own config, value, what the line says)
    ("HLSConfig.LayerName.fc1.ReuseFacter", 4,
     "field `HLSConfig.LayerName.fc1.ReuseFacter`: unknown hls4ml setting (hls4ml would ignore it); "
     "did you mean `ReuseFactor`?"),
    ("HLSConfig.LayerType.Dense.Stratgy", "Resource", "`HLSConfig.LayerType.Dense.Stratgy`: unknown hls4ml setting"),
    ("HLSConfig.Model.ReuseFacter", 2, "did you mean `ReuseFactor`?"),
    ("HLSConfig.LayerName.fc1.Precision.reslt", "ap_fixed<8,3>",
     "field `HLSConfig.LayerName.fc1.Precision.reslt`: unknown hls4ml setting (hls4ml would ignore it); "
     "did you mean `result`?"),
    ("HLSConfig.Modle", {"Precision": "ap_fixed<8,3>"}, "field `HLSConfig.Modle`: unknown hls4ml setting"),
    ("IOTyp", "io_stream", "field `IOTyp`: unknown hls4ml setting (hls4ml would ignore it); did you mean `IOType`?"),
    ("HLSConfig.Model.Precision", "int8", "field `HLSConfig.Model.Precision`: not a fixed-point or integer type"),
    ("HLSConfig.LayerName.fc1.Precision.weight", "fixed16", "field `HLSConfig.LayerName.fc1.Precision.weight`"),
]


@pytest.mark.parametrize("key,value,fragment", CONFIG_CASES, ids=[c[0] for c in CONFIG_CASES])
def test_a_misspelt_or_malformed_hls4ml_config_key_is_named(small_model, tmp_path, hlsflow, key, value, fragment):
    folder, config = small_model
    cfg = tmp_path / "hls4ml.yml"
    cfg.write_text(yaml.safe_dump(_set(json.loads(json.dumps(config)), key, value)))
    before = tree_digest(tmp_path)
    code, _, err = hlsflow("convert", folder / "m.h5", "--config", cfg, "--out", tmp_path / "out")
    line = assert_fails_cleanly(code, err, "convert", EXIT_BAD_INPUT, f"{cfg}: ", fragment)
    assert "NoneType" not in line and "list index" not in line  # no leaked exception text of hls4ml's parser
    assert tree_digest(tmp_path) == before


@pytest.mark.parametrize("backend", ["Vitis", "Vivado", "Catapult"])
@pytest.mark.parametrize("granularity", ["model", "type", "name"])
def test_every_key_of_hls4mls_own_configs_is_known(small_model, tmp_path, granularity, backend):
    """The key sets are not too narrow: what hls4ml's config_from_keras_model writes passes the check."""
    from corpus import write_hls4ml_config

    from flow.hls.config_check import check_hls4ml_yaml
    from flow.keras.model_io import load_model
    from flow.spec import read_yaml

    path = write_hls4ml_config(load_model(small_model[0] / "m.h5"), tmp_path / "cfg.yml", granularity, backend)
    check_hls4ml_yaml(path, read_yaml(path, "config file"))


@pytest.mark.parametrize("granularity", ["model", "name"])
def test_every_key_of_hls4mls_own_pytorch_configs_is_known(tmp_path, granularity):
    """hls4ml's config_from_pytorch_model writes keys its Keras config does not (``InputShape``): they pass."""
    import torch

    from flow.hls.config_check import check_hls_config
    from flow.keras.env import hls4ml_sees_keras2

    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU())
    with hls4ml_sees_keras2() as hls4ml:
        cfg = hls4ml.utils.config.config_from_pytorch_model(module, input_shape=(4,), granularity=granularity)
    cfg.pop("PytorchModel")  # the module object itself, as project.json leaves it out
    check_hls_config(tmp_path / "project.json", cfg)


def test_a_layer_hls4ml_cannot_convert_is_named_with_its_class_and_file(tmp_path, hlsflow):
    from flow.keras.env import keras

    k = keras()
    inp = k.Input((4,), name="x")
    model = k.Model(inp, k.layers.Dense(2, name="fc")(k.layers.GaussianNoise(0.1, name="noise")(inp)))
    model.save(tmp_path / "noisy.h5")
    before = tree_digest(tmp_path)
    code, _, err = hlsflow("convert", tmp_path / "noisy.h5", "--out", tmp_path / "out")
    assert_fails_cleanly(code, err, "convert", EXIT_BAD_INPUT,
                         f"{tmp_path / 'noisy.h5'}: layer `noise` (GaussianNoise): hls4ml", "cannot convert")
    assert tree_digest(tmp_path) == before


# ---- an emulator skip: said on the terminal, and `verify` fails on it unless --allow-skip -----------------------

@pytest.fixture(scope="module")
def lstm_project(tmp_path_factory) -> tuple[Path, int, str]:
    """``hlsflow convert`` of a small float LSTM model (the emulator has no LSTM): (project, exit code, stderr)."""
    from flow.commands.cli import main
    from flow.keras.env import keras

    k = keras()
    tmp = tmp_path_factory.mktemp("lstm")
    inp = k.Input((5, 3), name="x")
    k.Model(inp, k.layers.Dense(2, name="fc")(k.layers.LSTM(4, name="lstm1")(inp))).save(tmp / "lstm.h5")
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = main(["convert", str(tmp / "lstm.h5"), "--out", str(tmp / "p"), "--samples", "20"])
    return tmp / "p", code, err.getvalue()


def test_convert_says_on_the_terminal_that_the_emulator_skipped_a_layer(lstm_project):
    project, code, err = lstm_project
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("hlsflow convert: warning: ")]
    assert len(warnings) == 1, err
    assert "emulator not run: layer 'lstm1' of class LSTM" in warnings[0] and "--allow-skip" in warnings[0]


@pytest.mark.slow  # a C-simulation compile (about 15 s)
def test_verify_fails_when_the_emulator_skipped_a_layer(lstm_project, hlsflow):
    code, summary, err = hlsflow("verify", lstm_project[0], "--samples", "10")
    line = assert_fails_cleanly(code, err, "verify", EXIT_NOT_BIT_EXACT, "emulator vs C simulation not checked",
                                "layer 'lstm1' of class LSTM")
    assert "--allow-skip" in line
    assert summary["ok"] is False and "skipped" in summary["emulator_vs_csim"]


@pytest.mark.slow  # a C-simulation compile (about 15 s)
def test_verify_allow_skip_accepts_the_skip_and_still_says_it(lstm_project, hlsflow):
    code, summary, err = hlsflow("verify", lstm_project[0], "--samples", "10", "--allow-skip")
    assert code == 0, err
    assert "layer 'lstm1' of class LSTM" in err and "accepted (--allow-skip)" in err
    assert summary["ok"] is True and "skipped" in summary["emulator_vs_csim"]


# ---- tools and the last resort ----------------------------------------------------------------------------------

def test_sim_without_the_simulator_is_exit_3_in_one_line(record_project, tmp_path, hlsflow, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no iverilog/vvp
    code, _, err = hlsflow("sim", record_project, "--simulator", "icarus")
    assert_fails_cleanly(code, err, "sim", EXIT_TOOL_MISSING, "iverilog")


def test_an_os_error_from_deep_inside_is_one_line_naming_the_path(small_model, tmp_path, hlsflow, monkeypatch):
    import flow.commands.pipeline

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "deep" / "file"))

    monkeypatch.setattr(flow.commands.pipeline, "convert_existing", refuse)
    code, _, err = hlsflow("convert", small_model[0] / "m.h5", "--out", tmp_path / "out")
    assert_fails_cleanly(code, err, "convert", EXIT_BAD_INPUT, f"{tmp_path / 'deep' / 'file'}: Permission denied")


def test_a_bug_is_one_line_with_exit_4_and_its_traceback_on_request(small_model, tmp_path, hlsflow, monkeypatch):
    import flow.commands.pipeline

    def bug(*args, **kwargs):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(flow.commands.pipeline, "convert_existing", bug)
    code, _, err = hlsflow("convert", small_model[0] / "m.h5", "--out", tmp_path / "out")
    assert code == EXIT_INTERNAL
    lines = [line for line in err.splitlines() if line.startswith("hlsflow convert: ")]
    assert lines == ["hlsflow convert: internal error: ZeroDivisionError: division by zero (a bug in hlsflow; "
                     "HLSFLOW_TRACEBACK=1 shows the traceback)"], err
    monkeypatch.setenv("HLSFLOW_TRACEBACK", "1")
    with pytest.raises(ZeroDivisionError):
        hlsflow("convert", small_model[0] / "m.h5", "--out", tmp_path / "out")
