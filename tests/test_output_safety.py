"""Nothing lost, ever: every command that writes replaces only what hlsflow made (or what --force names),
refuses in one line before any work, never touches the working directory or a folder holding its input,
writes with the user's umask, and concurrent writers of one target neither fail nor leave folders behind."""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import stat
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import assert_one_error_line, fake_project, tree_digest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flow.core.errors import FlowError
from flow.core.outputs import PROJECT, SWEEP, claim_output
from flow.core.staging import staged_dir

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Scene:
    """One scenario folder (``root``, the working directory of the command) and the inputs the commands read."""

    root: Path
    model: Path  # a Keras model file (convert)
    spec: Path  # a run spec named digits_mlp
    sweep: Path  # a sweep file named digits_sweep
    project: Path  # an hlsflow project with rtl/ (rtl, ip, emulate)
    npy: Path  # inputs for emulate


def user_folder(path: Path) -> Path:
    """A folder of the user's: one file that must survive."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "thesis.txt").write_text("three years of work")
    return path


def user_file(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("not yours")
    return path


@pytest.fixture
def scene(tmp_path, corpus_files, monkeypatch) -> Scene:
    root = tmp_path / "scene"
    inputs = root / "inputs"
    inputs.mkdir(parents=True)
    model_src, _ = corpus_files("qkeras_jet_mlp")
    for f in model_src.parent.iterdir():  # the model and its weights file, if any
        shutil.copy(f, inputs / f.name)
    spec = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
    spec["rtl"] = {"enabled": False}
    (inputs / "digits_mlp.yaml").write_text(yaml.safe_dump(spec))
    sweep = yaml.safe_load((ROOT / "models" / "digits_sweep.yaml").read_text())
    (inputs / "digits_sweep.yaml").write_text(yaml.safe_dump(sweep))
    np.save(inputs / "x.npy", np.zeros((2, 16)))
    monkeypatch.chdir(root)
    return Scene(root, inputs / model_src.name, inputs / "digits_mlp.yaml", inputs / "digits_sweep.yaml",
                 fake_project(root / "proj", rtl=True), inputs / "x.npy")


# Each case: (command, arrange(scene) -> (the path the one line must name, argv)). Every case is refused with exit 2
# and one line before any work, and leaves the scenario's file tree as it was (bit for bit, modes too).
def run_into_the_cwd(s: Scene) -> tuple[Path, list]:
    cwd = user_folder(s.root / "x" / "digits_mlp")
    os.chdir(cwd)  # the test's monkeypatch.chdir restores the working directory
    return cwd, ["run", s.spec, "--out", "..", "--force"]


def run_into_the_folder_holding_the_spec(s: Scene) -> tuple[Path, list]:
    folder = s.root / "data" / "digits_mlp"  # the spec's name is the folder holding it
    shutil.copytree(s.root / "inputs", folder)
    return folder, ["run", folder / "digits_mlp.yaml", "--out", "data", "--force"]


def rtl_folder_of_the_user(s: Scene, make: Callable[[Path], Path]) -> tuple[Path, list]:
    shutil.rmtree(s.project / "rtl")
    return make(s.project / "rtl"), ["rtl", s.project]


REFUSED = [
    # run: OUT/<spec name>
    pytest.param("run", lambda s: (user_folder(s.root / "out" / "digits_mlp"), ["run", s.spec, "--out", "out"]),
                 id="run-user-folder"),
    pytest.param("run", lambda s: (user_file(s.root / "out" / "digits_mlp"), ["run", s.spec, "--out", "out"]),
                 id="run-target-is-a-file"),
    pytest.param("run", lambda s: (user_file(s.root / "out"), ["run", s.spec, "--out", "out"]), id="run-out-is-a-file"),
    pytest.param("run", run_into_the_cwd, id="run-force-target-is-the-cwd"),
    pytest.param("run", run_into_the_folder_holding_the_spec, id="run-force-target-holds-the-spec"),
    # convert: --out
    pytest.param("convert", lambda s: (user_folder(s.root / "mine"), ["convert", s.model, "--out", "mine"]),
                 id="convert-user-folder"),
    pytest.param("convert", lambda s: (s.root, ["convert", s.model, "--out", "."]), id="convert-out-is-the-cwd"),
    pytest.param("convert", lambda s: (s.root, ["convert", s.model, "--out", ".", "--force"]),
                 id="convert-force-out-is-the-cwd"),
    pytest.param("convert", lambda s: (s.model.parent, ["convert", s.model, "--out", s.model.parent, "--force"]),
                 id="convert-force-out-holds-the-model"),
    pytest.param("convert", lambda s: (user_file(s.root / "out.txt"), ["convert", s.model, "--out", "out.txt"]),
                 id="convert-out-is-a-file"),
    pytest.param("convert", lambda s: (user_file(s.root / "f"), ["convert", s.model, "--out", "f/proj"]),
                 id="convert-out-under-a-file"),
    # rtl: PROJECT/rtl
    pytest.param("rtl", lambda s: rtl_folder_of_the_user(s, user_folder), id="rtl-user-folder"),
    pytest.param("rtl", lambda s: rtl_folder_of_the_user(s, user_file), id="rtl-target-is-a-file"),
    # ip: --out
    pytest.param("ip", lambda s: (user_folder(s.root / "mine"), ["ip", s.project, "--out", "mine"]), id="ip-user-folder"),
    pytest.param("ip", lambda s: (s.root, ["ip", s.project, "--out", ".", "--force"]), id="ip-force-out-is-the-cwd"),
    pytest.param("ip", lambda s: (s.project, ["ip", s.project, "--out", s.project, "--force"]),
                 id="ip-force-out-is-the-project"),
    pytest.param("ip", lambda s: (user_file(s.root / "f"), ["ip", s.project, "--out", "f/ip"]), id="ip-out-under-a-file"),
    # sweep: OUT/<sweep name>
    pytest.param("sweep", lambda s: (user_folder(s.root / "sw" / "digits_sweep"),
                                     ["sweep", s.sweep, "--out", "sw", "--no-progress"]), id="sweep-user-folder"),
    pytest.param("sweep", lambda s: (user_file(s.root / "sw"), ["sweep", s.sweep, "--out", "sw", "--no-progress"]),
                 id="sweep-out-is-a-file"),
    pytest.param("sweep", lambda s: (user_file(s.root / "best.yaml"),
                                     ["sweep", s.sweep, "--out", "sw", "--export-best", "best.yaml"]),
                 id="sweep-export-best-onto-a-user-file"),
    pytest.param("sweep", lambda s: (s.sweep, ["sweep", s.sweep, "--out", "sw", "--export-best", s.sweep, "--force"]),
                 id="sweep-force-export-best-onto-the-sweep-file"),
    # verify: --write-exact-config
    pytest.param("verify", lambda s: (user_file(s.root / "cfg.yml"),
                                      ["verify", s.project, "--write-exact-config", "cfg.yml"]),
                 id="verify-exact-config-onto-a-user-file"),
    # emulate: --output (and its trace files)
    pytest.param("emulate", lambda s: (user_file(s.root / "y.npy"),
                                       ["emulate", s.project, "--input", s.npy, "--output", "y.npy"]),
                 id="emulate-existing-file"),
    pytest.param("emulate", lambda s: (user_file(s.root / "y.trace.npz"),
                                       ["emulate", s.project, "--input", s.npy, "--output", "y.npy", "--trace"]),
                 id="emulate-existing-trace-file"),
    pytest.param("emulate", lambda s: (s.npy, ["emulate", s.project, "--input", s.npy, "--output", s.npy, "--force"]),
                 id="emulate-force-output-is-the-input"),
    pytest.param("emulate", lambda s: (user_folder(s.root / "mine"),
                                       ["emulate", s.project, "--input", s.npy, "--output", "mine"]),
                 id="emulate-output-is-a-folder"),
]


@pytest.mark.parametrize("command, arrange", REFUSED)
def test_a_target_hlsflow_did_not_make_is_refused_in_one_line_and_nothing_changes(scene, hlsflow, command,
                                                                                  arrange):
    named, argv = arrange(scene)
    before = tree_digest(scene.root)
    code, _, err = hlsflow(*argv)
    line = assert_one_error_line(err, command)
    assert code == 2, err
    message = line.split(": error: ", 1)[-1]
    forms = {str(named), os.path.relpath(named, scene.root), os.path.relpath(named, Path.cwd())}
    assert any(message.startswith(f) or f" {f}" in message for f in forms), (line, forms)
    assert tree_digest(scene.root) == before


@pytest.mark.skipif(os.geteuid() == 0, reason="permission bits do not stop root; out-under-a-file cases cover it")
def test_a_folder_that_cannot_be_written_is_refused_in_one_line(scene, hlsflow):
    locked = scene.root / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    before = tree_digest(scene.root)
    code, _, err = hlsflow("convert", scene.model, "--out", locked / "proj")
    assert code == 2 and "permission denied" in assert_one_error_line(err, "convert")
    assert tree_digest(scene.root) == before


# ----------------------------------------------------------------------------- what is replaced

@pytest.fixture(scope="module")
def forced_convert(tmp_path_factory, corpus_files):
    """`hlsflow convert --force` onto a user's folder, under umask 022, from the folder holding the model. Returns
    (model, folder, exit code, the working directory's mode before and after)."""
    from flow.commands.cli import main

    model, _ = corpus_files("qkeras_jet_mlp")
    out = user_folder(tmp_path_factory.mktemp("forced") / "mine")
    old_umask = os.umask(0o022)
    cwd = os.getcwd()
    try:
        os.chdir(model.parent)
        mode_before = stat.S_IMODE(model.parent.stat().st_mode)
        code = main(["convert", str(model), "--out", str(out), "--force", "--samples", "20"])
        mode_after = stat.S_IMODE(model.parent.stat().st_mode)
    finally:
        os.chdir(cwd)
        os.umask(old_umask)
    return model, out, code, (mode_before, mode_after)


def test_force_replaces_a_user_folder_and_only_then_is_its_file_gone(forced_convert):
    _, out, code, _ = forced_convert
    assert code == 0
    assert not (out / "thesis.txt").exists() and (out / "project.json").is_file()
    assert [p.name for p in out.parent.iterdir()] == ["mine"]  # no staging folder, no lock file


def test_a_project_has_the_users_umask_and_the_working_directory_keeps_its_mode(forced_convert):
    _, out, _, (mode_before, mode_after) = forced_convert
    dirs = {stat.S_IMODE(p.stat().st_mode) for p in [out, *out.rglob("*")] if p.is_dir()}
    files = {stat.S_IMODE(p.stat().st_mode) for p in out.rglob("*") if p.is_file() and not os.access(p, os.X_OK)}
    assert dirs == {0o755} and files == {0o644}, (dirs, files)
    assert mode_after == mode_before


@pytest.mark.heavy
def test_a_previous_hlsflow_project_is_replaced_without_force(forced_convert, tmp_path, hlsflow):
    model, out, _, _ = forced_convert
    target = tmp_path / "proj"
    shutil.copytree(out, target)
    (target / "report.json").write_text('{"previous": true}')
    code, _, err = hlsflow("convert", model, "--out", target, "--samples", "20")
    assert code == 0, err
    assert json.loads((target / "report.json").read_text()).get("previous") is None
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]


def test_staging_replaces_a_previous_project_and_refuses_a_user_folder(tmp_path):
    final = fake_project(tmp_path / "proj")
    (final / "old.txt").write_text("previous run")
    with staged_dir(final, PROJECT) as work:
        fake_project(work)
    assert sorted(p.name for p in final.iterdir()) == ["project.json"]
    mine = user_folder(tmp_path / "mine")
    with pytest.raises(FlowError, match="not an hlsflow project"), staged_dir(mine, PROJECT) as work:
        fake_project(work)
    assert [p.name for p in mine.iterdir()] == ["thesis.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine", "proj"]


def test_emulate_replaces_an_existing_output_file_only_with_force(forced_convert, tmp_path, hlsflow):
    project = forced_convert[1]
    np.save(tmp_path / "x.npy", np.zeros((3, 16)))
    out = user_file(tmp_path / "y.npy")
    code, _, err = hlsflow("emulate", project, "--input", tmp_path / "x.npy", "--output", out)
    assert code == 2 and out.read_text() == "not yours", err
    code, _, err = hlsflow("emulate", project, "--input", tmp_path / "x.npy", "--output", out, "--force")
    assert code == 0, err
    assert np.load(out).shape[0] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.npy", "y.npy"]  # no temporary file left


# ----------------------------------------------------------------------------- staging on its own

def test_staging_refuses_a_folder_that_appeared_after_the_check(tmp_path):
    """The rule is checked again under the lock: a user's folder made while the command worked survives."""
    final = tmp_path / "proj"
    claim_output(final, PROJECT)
    with pytest.raises(FlowError, match="not an hlsflow project"):
        with staged_dir(final, PROJECT) as work:
            (work / "project.json").write_text("{}")
            user_folder(final)
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]
    assert [p.name for p in final.iterdir()] == ["thesis.txt"]


def _writer(final: str, writer: int, rounds: int, barrier, errors) -> None:
    for r in range(rounds):
        barrier.wait()
        try:
            with staged_dir(Path(final), PROJECT) as work:
                for k in range(5):
                    (work / f"part{k}.txt").write_text(f"{writer} {r}")
                (work / "project.json").write_text(json.dumps({"writer": writer, "round": r}))
        except BaseException:
            errors.put(f"writer {writer} round {r}: {traceback.format_exc(limit=2)}")


def test_concurrent_writers_of_one_target_neither_fail_nor_leave_folders(tmp_path):
    """Two processes finish the same project at once, 100 times (a barrier before each round): no error, no stray
    staging/old/lock entry, and the target is always one writer's complete folder."""
    ctx = multiprocessing.get_context("fork")
    rounds = 100
    final = tmp_path / "proj"
    barrier, errors = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(str(final), w, rounds, barrier, errors)) for w in (0, 1)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    found = []
    while not errors.empty():
        found.append(errors.get())
    assert [p.exitcode for p in procs] == [0, 0]
    assert found == [], f"{len(found)} failures, first: {found[0]}"
    assert [p.name for p in tmp_path.iterdir()] == ["proj"]
    record = json.loads((final / "project.json").read_text())
    assert record["round"] == rounds - 1
    assert {(final / f"part{k}.txt").read_text() for k in range(5)} == {f"{record['writer']} {rounds - 1}"}


# ----------------------------------------------------------------------------- command lines, fuzzed

FUZZ = settings(max_examples=60, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def refused_targets(s: Scene) -> dict[str, Path]:
    """Targets every command must refuse (even with --force), each reachable under several spellings."""
    (s.root / "to_cwd").symlink_to(s.root)
    (s.root / "to_inputs").symlink_to(s.root / "inputs")
    user_file(s.root / "notes.txt")
    return {"cwd": s.root, "inputs": s.root / "inputs", "link-to-cwd": s.root / "to_cwd",
            "link-to-inputs": s.root / "to_inputs", "a-file": s.root / "notes.txt",
            "under-a-file": s.root / "notes.txt" / "x"}


def spellings(path: Path, root: Path) -> list[str]:
    rel = os.path.relpath(path, root)
    return [str(path), rel, f"./{rel}", f"{rel}/", f"inputs/../{rel}", str(path) + "/."]


# Which fuzzed targets each command must refuse even with --force (run and sweep write OUT/<name>: a file as OUT).
REFUSED_BY = {"convert": ["cwd", "inputs", "link-to-cwd", "link-to-inputs", "a-file", "under-a-file"],
              "ip": ["cwd", "link-to-cwd", "a-file", "under-a-file"],
              "run": ["a-file", "under-a-file"], "sweep": ["a-file", "under-a-file"]}


@FUZZ
@given(data=st.data())
def test_fuzzed_command_lines_never_replace_the_cwd_an_input_or_a_file(scene, hlsflow, data):
    """Any spelling of the working directory, the folder holding the model (also through a symlink), a file or a
    path under a file, as a writing command's --out, with or without --force, in any argument order: exit 2, one
    line, nothing changed."""
    if not hasattr(scene, "targets"):
        scene.targets = refused_targets(scene)
    command = data.draw(st.sampled_from(sorted(REFUSED_BY)), label="command")
    kind = data.draw(st.sampled_from(REFUSED_BY[command]), label="target")
    out = data.draw(st.sampled_from(spellings(scene.targets[kind], scene.root)), label="spelling")
    positional = {"run": scene.spec, "convert": scene.model, "ip": scene.project, "sweep": scene.sweep}[command]
    options = [["--out", out]] + ([["--force"]] if data.draw(st.booleans(), label="force") else [])
    options = data.draw(st.permutations(options), label="order")
    argv = [command, *[a for o in options for a in o]]
    argv.insert(data.draw(st.integers(1, len(argv)), label="positional at"), positional)
    before = tree_digest(scene.root)
    code, _, err = hlsflow(*argv)
    assert code == 2, (argv, err)
    assert_one_error_line(err, command)
    assert tree_digest(scene.root) == before


def test_a_sweep_folder_is_kept_for_resuming_and_another_one_replaced_only_when_forced(tmp_path):
    """make_sweep_dir runs after claim_output allowed the folder (so a user's folder reaches it only with --force)."""
    from flow.sweep.run import make_sweep_dir

    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "sweep.db").write_bytes(b"")
    (ours / "points").mkdir()
    make_sweep_dir(ours)
    assert sorted(p.name for p in ours.iterdir()) == ["hlsflow-sweep.json", "points", "sweep.db"]
    mine = user_folder(tmp_path / "mine")
    with pytest.raises(FlowError, match="not an hlsflow sweep folder"):
        claim_output(mine, SWEEP)
    claim_output(mine, SWEEP, force=True)
    make_sweep_dir(mine)
    assert [p.name for p in mine.iterdir()] == ["hlsflow-sweep.json"]
