"""Bad input, fuzzed (hypothesis): malformed, truncated and type-confused spec YAML, hls4ml config YAML,
model files, project records and command lines of every subcommand. Every case either is accepted or ends in
one line that names the file (and, for a field, the field), exit 2, no traceback, nothing written."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import yaml
from conftest import assert_one_error_line, tree_digest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from flow.commands.cli import EXIT_BAD_INPUT, main
from flow.core.errors import FlowError

ROOT = Path(__file__).resolve().parents[1]
BASE_SPEC = yaml.safe_load((ROOT / "models" / "digits_mlp.yaml").read_text())
FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])

confusing = st.one_of(
    st.none(), st.booleans(), st.integers(-10**30, 10**30), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.text(max_size=4),
                                                                                     st.integers(), max_size=2),
    st.sampled_from(["ap_fixed<0,0>", "ap_fixed<8,9,AP_RND>", "fixed<16,6>", "auto", "-1", "1e999", "", "{",
                     "relu", "io_serial", "Vitis", "[64]", "&a [*a]"]),
)


def paths(node, prefix=()):
    """Every (key path) in a nested dict/list structure, parents before children."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from paths(v, (*prefix, i))


@st.composite
def mutated(draw, base):
    """``base`` with one value (at any depth) replaced by a confusing value, or deleted, or a key added."""
    doc = copy.deepcopy(base)
    where = draw(st.sampled_from([p for p in paths(doc) if p]))
    parent = doc
    for key in where[:-1]:
        parent = parent[key]
    action = draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if action == "delete":
        del parent[where[-1]]
    elif action == "add" and isinstance(parent, dict):
        parent[draw(st.text(min_size=1, max_size=6))] = draw(confusing)
    else:
        parent[where[-1]] = draw(confusing)
    return doc, ".".join(str(k) for k in where)


def text_cases(base_text: str):
    """Truncations of a valid file, garbage bytes, or one mutated document."""
    return st.one_of(
        st.integers(0, len(base_text) - 1).map(lambda n: base_text[:n].encode()),
        st.binary(max_size=64),
        st.text(max_size=80).map(str.encode),
    )


def assert_clean_failure(code: int, stderr: str, command: str, file: Path, out: Path | None = None) -> str:
    line = assert_one_error_line(stderr, command)
    assert code == EXIT_BAD_INPUT, stderr
    assert str(file) in line or file.name in line, line
    if out is not None:
        assert not out.exists() or not any(out.iterdir()), list(out.iterdir())
    return line


# ---- spec YAML: `hlsflow run` --------------------------------------------------------------------------------

@settings(FUZZ, max_examples=150)
@given(case=mutated(BASE_SPEC))
def test_a_type_confused_spec_is_accepted_or_names_the_file_and_field(tmp_path_factory, case):
    from flow.spec import load_spec

    doc, where = case
    path = tmp_path_factory.mktemp("spec") / "spec.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_spec(path)
    except FlowError as exc:
        msg = str(exc)
        assert msg.startswith(f"{path}: ") and "\n" not in msg.strip(), msg
        assert "field `" in msg, msg


@settings(FUZZ, max_examples=60)
@given(data=text_cases((ROOT / "models" / "digits_mlp.yaml").read_text()))
def test_a_truncated_or_garbage_spec_through_run_is_one_line_and_writes_nothing(tmp_path_factory, capsys, data):
    from flow.spec import load_spec

    tmp = tmp_path_factory.mktemp("spec")
    path = tmp / "spec.yaml"
    path.write_bytes(data)
    try:
        load_spec(path)
        assume(False)  # a prefix that still parses as a whole spec would start training: not this test's job
    except FlowError:
        pass
    code = main(["run", str(path), "--out", str(tmp / "out")])
    assert_clean_failure(code, capsys.readouterr().err, "run", path, tmp / "out")


# ---- hls4ml config YAML and model files: `hlsflow convert` ----------------------------------------------------

@settings(FUZZ, max_examples=120)
@given(data=st.data())
def test_a_type_confused_hls4ml_config_is_accepted_or_names_the_file_and_field(small_model, tmp_path_factory, data):
    from flow.hls.config_check import check_hls4ml_yaml
    from flow.spec import read_yaml

    doc, where = data.draw(mutated(small_model[1]))
    path = tmp_path_factory.mktemp("cfg") / "hls4ml.yml"
    path.write_text(yaml.safe_dump(doc))
    try:
        check_hls4ml_yaml(path, read_yaml(path, "config file"))
    except FlowError as exc:
        assert str(exc).startswith(f"{path}: ") and "\n" not in str(exc).strip(), str(exc)


@settings(FUZZ, max_examples=25)
@given(data=st.data())
def test_a_bad_hls4ml_config_through_convert_is_one_line_and_writes_nothing(small_model, tmp_path_factory, capsys,
                                                                            data):
    from flow.hls.config_check import check_hls4ml_yaml
    from flow.spec import read_yaml

    folder, config = small_model
    tmp = tmp_path_factory.mktemp("cfg")
    path = tmp / "hls4ml.yml"
    if data.draw(st.booleans()):
        path.write_text(yaml.safe_dump(data.draw(mutated(config))[0]))
    else:
        path.write_bytes(data.draw(text_cases(yaml.safe_dump(config))))
    try:
        check_hls4ml_yaml(path, read_yaml(path, "config file"))
        assume(False)  # an accepted config converts and compiles (seconds): covered by the convert tests
    except FlowError:
        pass
    code = main(["convert", str(folder / "m.h5"), "--config", str(path), "--out", str(tmp / "out")])
    assert_clean_failure(code, capsys.readouterr().err, "convert", path, tmp / "out")


def _damaged(data, source: Path) -> bytes:
    raw = source.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "overwrite", "garbage"]))
    if how == "truncate":
        return raw[:data.draw(st.integers(0, len(raw) - 1))]
    if how == "overwrite":  # a block of the header region replaced: structure, not just weights
        at = data.draw(st.integers(0, min(len(raw) - 1, 4096)))
        return raw[:at] + data.draw(st.binary(min_size=8, max_size=64)) + raw[at + 64:]
    return data.draw(st.binary(max_size=200))


@settings(FUZZ, max_examples=45)
@given(data=st.data(), kind=st.sampled_from(["m.h5", "m.keras", "m.json"]))
def test_a_damaged_model_file_is_loaded_or_named(small_model, tmp_path_factory, data, kind):
    from flow.keras.frontends import detect
    from flow.keras.model_io import load_model

    folder, _ = small_model
    tmp = tmp_path_factory.mktemp("model")
    path = tmp / kind
    path.write_bytes(_damaged(data, folder / kind))
    if kind == "m.json":
        shutil.copy(folder / "m_weights.h5", tmp / "m_weights.h5")
    try:
        if detect(path) == "keras2":
            load_model(path)
    except FlowError as exc:
        assert str(exc).startswith(str(tmp)) and "\n" not in str(exc).strip(), str(exc)


@settings(FUZZ, max_examples=20)
@given(data=st.data(), kind=st.sampled_from(["m.h5", "m.keras", "m.json"]))
def test_a_truncated_model_file_through_convert_is_one_line_and_writes_nothing(small_model, tmp_path_factory,
                                                                               capsys, data, kind):
    folder, _ = small_model
    tmp = tmp_path_factory.mktemp("model")
    path = tmp / kind
    raw = (folder / kind).read_bytes()
    path.write_bytes(raw[:data.draw(st.integers(0, len(raw) - 16))])
    if kind == "m.json":
        shutil.copy(folder / "m_weights.h5", tmp / "m_weights.h5")
    code = main(["convert", str(path), "--out", str(tmp / "out")])
    assert_clean_failure(code, capsys.readouterr().err, "convert", path, tmp / "out")


# ---- project records: `hlsflow verify` -----------------------------------------------------------------------

@settings(FUZZ, max_examples=40)
@given(data=st.data())
def test_a_damaged_project_record_rebuilds_or_names_the_file(small_project, tmp_path_factory, data):
    from flow.hls.project import rebuild

    copy_dir = tmp_path_factory.mktemp("proj") / "p"
    shutil.copytree(small_project, copy_dir, ignore=shutil.ignore_patterns("hls"))
    meta = json.loads((copy_dir / "project.json").read_text())
    if data.draw(st.booleans()):
        (copy_dir / "project.json").write_text(json.dumps(data.draw(mutated(meta))[0]))
    else:
        raw = (copy_dir / "project.json").read_bytes()
        (copy_dir / "project.json").write_bytes(raw[:data.draw(st.integers(0, len(raw) - 1))])
    try:
        rebuild(copy_dir, copy_dir / "rebuilt")
    except FlowError as exc:
        assert str(exc).startswith(str(copy_dir)) and "\n" not in str(exc).strip(), str(exc)


@settings(FUZZ, max_examples=10)
@given(cut=st.integers(0, 200))
def test_a_truncated_project_record_through_verify_is_one_line(small_project, tmp_path_factory, capsys, cut):
    copy_dir = tmp_path_factory.mktemp("proj") / "p"
    shutil.copytree(small_project, copy_dir, ignore=shutil.ignore_patterns("hls"))
    raw = (copy_dir / "project.json").read_bytes()
    (copy_dir / "project.json").write_bytes(raw[:cut])
    before = sorted(p.name for p in copy_dir.iterdir())
    code = main(["verify", str(copy_dir), "--samples", "10"])
    assert_clean_failure(code, capsys.readouterr().err, "verify", copy_dir / "project.json")
    assert sorted(p.name for p in copy_dir.iterdir()) == before


# ---- command lines: every subcommand ---------------------------------------------------------------------------

def _options(command: str) -> list[tuple[str, bool]]:
    """(option string, takes a value) of every option of ``hlsflow COMMAND``, read from the CLI's own parser."""
    from flow.commands.cli import build_parser

    sub = next(a for a in build_parser()._subparsers._group_actions if a.choices)  # argparse lists no actions publicly
    return [(a.option_strings[-1], a.nargs != 0) for a in sub.choices[command]._actions
            if a.option_strings and a.option_strings[-1] not in ("--help", "-h")]


COMMANDS = ("run", "convert", "emulate", "verify", "rtl", "sim", "ip", "synth", "sweep")
ARG_VALUES = st.sampled_from(["-3", "0", "1", "2.5", "nan", "inf", "-inf", "1e999", "abc", "", "--", "/proc/1/x",
                              "x.yaml", "icarus", "verilator", "ecp5-85k", "osu018", "auto", "folded", "O3",
                              "ap_fixed<8,3>", "int8", "2lsb", "-", "\x00"])


@st.composite
def command_lines(draw):
    """``hlsflow COMMAND <a path that is no input> [random options with random values]``, options in any order."""
    command = draw(st.sampled_from(COMMANDS))
    options = _options(command)
    argv = [command, draw(st.sampled_from(["missing", "folder", "file.txt"]))]
    for flag, takes_value in draw(st.lists(st.sampled_from(options), max_size=5) if options else st.just([])):
        argv += [flag, draw(ARG_VALUES)] if takes_value else [flag]
    return argv


@settings(FUZZ, max_examples=300)
@given(argv=command_lines())
def test_a_random_command_line_is_one_line_and_changes_nothing(tmp_path_factory, capsys, monkeypatch, argv):
    """Random options and values for every subcommand, on an input that is not there, not a project or not a
    model: exit 0/1/2/3, never a traceback, a failure is one line, and nothing in the folder changes."""
    tmp = tmp_path_factory.mktemp("argv")
    (tmp / "folder").mkdir()
    (tmp / "file.txt").write_text("not a model, spec or project\n")
    monkeypatch.chdir(tmp)
    before = tree_digest(tmp)
    code = main(argv)
    err = capsys.readouterr().err
    assert code in (0, 1, 2, 3), (argv, err)
    if code:
        assert_one_error_line(err, None)
    assert tree_digest(tmp) == before, argv
