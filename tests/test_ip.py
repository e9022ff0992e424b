"""``hlsflow ip``: a self-contained IP folder whose own testbench and FuseSoC core check the RTL bit for bit.

One small project (the digits MLP with an 8-unit hidden layer, 1 epoch, RTL without Yosys) is
packaged once per module; the tests run the packaged core through FuseSoC and through the plain
Verilog testbench, regenerate it to check reproducibility, and feed bad input.
"""

from __future__ import annotations

import hashlib
import json
import shlex
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from hdl import needs_icarus, needs_verilator
from qmodels import ROOT, trained_rtl_project

from flow.commands.cli import build_parser, main
from flow.core import tools
from flow.core.errors import FlowError
from flow.ip.core import vlnv
from flow.ip.package import MARKER, hlsflow_version, ip_project
from flow.rtl.port_map import PortMap
from flow.rtl.words import unpack_bytes

VECTORS = 500  # 450 test samples, then 50 random full-range inputs

needs_fusesoc = pytest.mark.skipif(shutil.which("fusesoc") is None,
                                   reason="FuseSoC is not installed (pip install fusesoc==2.4.7, in the dev extras)")


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    return trained_rtl_project(tmp_path_factory.mktemp("ip_prj"), "digits_mlp", epochs=1, first_units=8)


@pytest.fixture(scope="module")
def ip(project, tmp_path_factory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("ip_a") / "digits_mlp_ip"
    return out, ip_project(project, out, vectors=VECTORS, seed=3)


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@needs_icarus
@needs_fusesoc
def test_fusesoc_simulates_the_generated_core_on_icarus_and_it_passes(ip, tmp_path):
    out, summary = ip
    core = vlnv("digits_mlp", hlsflow_version())
    assert summary["core"] == core and (out / "digits_mlp.core").is_file()
    run = subprocess.run(["fusesoc", "--cores-root", str(out), "run", "--target", "sim", "--tool", "icarus", core],
                         cwd=tmp_path, capture_output=True, text=True, env=tools.hdl_env(), timeout=600)
    log = run.stdout + run.stderr
    assert run.returncode == 0, log[-3000:]
    assert f"PASS: {VECTORS} vectors, 0 mismatches" in log
    assert not (out / "build").exists()  # FuseSoC built in its own folder, not in the IP


@needs_icarus
def test_plain_testbench_passes_and_fails_on_one_flipped_expected_bit(ip, tmp_path):
    out, summary = ip
    assert summary["ok"] and summary["testbench"]["passed"]
    assert summary["testbench"]["line"].startswith(f"PASS: {VECTORS} vectors, 0 mismatches")
    work = tmp_path / "copy"
    shutil.copytree(out, work)
    # the commands the datasheet gives, without hlsflow
    subprocess.run(["iverilog", "-g2005", "-s", "digits_mlp_tb", "-o", "tb.vvp", "tb/digits_mlp_tb.v",
                    *sorted(str(p.relative_to(work)) for p in (work / "rtl").glob("*.v"))],
                   cwd=work, check=True, capture_output=True, text=True)
    args = ["vvp", "-n", "tb.vvp", "+inputs=vectors/digits_mlp_inputs.hex", "+expected=vectors/digits_mlp_expected.hex"]
    good = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=600)
    assert good.returncode == 0 and f"PASS: {VECTORS} vectors, 0 mismatches" in good.stdout

    hex_file = work / "vectors" / "digits_mlp_expected.hex"
    lines = hex_file.read_text().splitlines(keepends=True)
    words = [i for i, ln in enumerate(lines) if not ln.startswith("//")]
    k = 57  # vector index
    line = words[k]
    flipped = int(lines[line], 16) ^ (1 << 13)
    lines[line] = f"{flipped:0{len(lines[line].strip())}x}\n"
    hex_file.write_text("".join(lines))
    bad = subprocess.run(args, cwd=work, capture_output=True, text=True, timeout=600)
    assert bad.returncode != 0, bad.stdout[-2000:]
    fail = [ln for ln in bad.stdout.splitlines() if ln.startswith("FAIL: ")]
    assert len(fail) == 1 and f"{VECTORS} vectors, 1 mismatches, first at index {k}:" in fail[0]
    assert f"expected {flipped:0{len(lines[line].strip())}x}" in fail[0]


@needs_verilator
def test_plain_testbench_on_verilator_passes_at_full_rate_and_fails_on_one_flipped_expected_bit(ip, tmp_path):
    """``verilator --binary`` runs the same testbench; ``+full_rate`` drops the gaps and back-pressure (fewer
    cycles for the same vectors) and still compares every word."""
    from flow.ip.testbench import run_testbench

    out, summary = ip
    args = (out, [f"rtl/{p.name}" for p in sorted((out / "rtl").glob("*.v"))], "tb/digits_mlp_tb.v", "digits_mlp_tb",
            "vectors/digits_mlp_inputs.hex", "vectors/digits_mlp_expected.hex", VECTORS)
    fast = run_testbench("verilator", *args, full_rate=True)
    assert fast["passed"] and fast["line"].startswith(f"PASS: {VECTORS} vectors, 0 mismatches"), fast
    gapped_cycles = int(summary["testbench"]["line"].rsplit(", ", 1)[1].split()[0])  # the Icarus run, with gaps
    assert fast["timing"]["cycles"] < gapped_cycles and fast["timing"]["samples_per_second"] > 0

    work = tmp_path / "copy"
    shutil.copytree(out, work)
    hex_file = work / "vectors" / "digits_mlp_expected.hex"
    lines = hex_file.read_text().splitlines(keepends=True)
    line = [i for i, ln in enumerate(lines) if not ln.startswith("//")][99]
    lines[line] = f"{int(lines[line], 16) ^ 1:0{len(lines[line].strip())}x}\n"
    hex_file.write_text("".join(lines))
    bad = run_testbench("verilator", work, *args[1:])
    assert not bad["passed"] and f"{VECTORS} vectors, 1 mismatches, first at index 99:" in bad["line"], bad


def test_two_generations_are_byte_identical_and_a_previous_ip_folder_is_replaced(project, ip, tmp_path):
    out, _ = ip
    second = tmp_path / "second"
    ip_project(project, second, vectors=VECTORS, seed=3)
    a, b = _tree(out), _tree(second)
    assert sorted(a) == sorted(b)
    assert [f for f in a if a[f] != b[f]] == []
    # regenerating into an existing IP folder (it has the marker) replaces it; nothing else is left beside it
    (second / "rtl" / "stale.v").write_text("// left over\n")
    ip_project(project, second, vectors=VECTORS, seed=3)
    assert _tree(second) == a
    assert sorted(p.name for p in tmp_path.iterdir()) == ["second"]


def test_every_text_file_carries_the_version_stamp_and_the_npz_matches_the_hex_files(project, ip):
    out, _ = ip
    sha = hashlib.sha256((project / "spec.yaml").read_bytes()).hexdigest()
    version = hlsflow_version()
    for path in sorted(out.rglob("*")):
        if not path.is_file() or path.suffix == ".npz":
            continue
        text = path.read_text()
        head = "\n".join(text.splitlines()[:4])
        assert f"hlsflow {version}" in head and sha in head, path
        first = text.splitlines()[0]
        if path.suffix == ".core":
            assert first == "CAPI=2:" and text.splitlines()[1].startswith("# Generated by hlsflow")
        elif path.suffix in (".v", ".hex", ".mem"):
            assert first.startswith("// ")
        elif path.suffix == ".yml":
            assert first.startswith("# ")
        elif path.suffix in (".md", ".html"):
            assert first.startswith("<!-- ")
        assert "/tmp" not in text and str(project) not in text, path

    npz = np.load(out / "vectors" / "digits_mlp_vectors.npz", allow_pickle=False)
    meta = json.loads(str(npz["metadata"]))
    assert meta["spec_yaml_sha256"] == sha and meta["generator"] == f"hlsflow {version}"
    port = PortMap.load(project / "rtl").output
    out_fields, out_w = port.fields, port.tdata_width
    hex_words = [ln for ln in (out / "vectors" / "digits_mlp_expected.hex").read_text().splitlines()
                 if not ln.startswith("//")]
    assert len(hex_words) == VECTORS == len(npz["expected_codes"])
    rows = np.array([list(int(w, 16).to_bytes((out_w + 7) // 8, "little")) for w in hex_words], dtype=np.uint8)
    assert np.array_equal(rows, npz["expected_words"])
    assert np.array_equal(unpack_bytes(rows, out_fields), npz["expected_codes"])
    frac = np.array([f.width - f.integer_bits for f in out_fields])
    assert np.array_equal(npz["expected_codes"] * 2.0 ** -frac, npz["expected_values"])
    assert list(npz["output_fields"]["lsb"]) == [f.lsb for f in out_fields]
    assert meta["vectors"]["test_data"] + meta["vectors"]["random"] == VECTORS and meta["vectors"]["test_data"] > 0


def test_datasheet_states_measured_figures_and_says_what_was_not_measured(project, ip):
    out, summary = ip
    md = (out / "datasheet.md").read_text()
    html = (out / "datasheet.html").read_text()
    pm = json.loads((project / "rtl" / "port_map.json").read_text())
    report = json.loads((project / "report.json").read_text())
    assert f"| latency | {pm['latency_cycles']} cycles" in md
    for f in pm["output"]["fields"]:
        lsb, w = f["lsb"], f["width"]
        assert f"| `{f['name']}` | [{lsb + w - 1}:{lsb}] | `{f['type']}` |" in md
    assert "5 ns (200 MHz)" in md  # the spec's hardware.clock_period
    assert f"{100 * report['accuracy']['float']:.2f} %" in md
    # this project has no Yosys figures and no cocotb runs: said so, with the command
    assert "Yosys estimate: not measured: run `hlsflow rtl PROJECT --yosys`" in md
    assert "cocotb runs: not measured: run `hlsflow sim PROJECT --simulator icarus`" in md
    assert "Not measured: run `hlsflow rtl PROJECT --fpga ecp5-85k --asic osu018`" in md  # timing, area, power
    if summary["testbench"]["passed"] is not None:
        assert summary["testbench"]["line"] in md and summary["testbench"]["line"] in html
    assert html.startswith("<!-- Generated by hlsflow") and "<table>" in html
    assert "Yosys estimate: not measured: run <code>hlsflow rtl PROJECT --yosys</code>" in html  # same data as the .md


def test_missing_rtl_is_a_flow_error_naming_the_command(project, tmp_path, capsys):
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in ("spec.yaml", "project.json"):  # a project without its RTL
        shutil.copy(project / name, bare / name)
    with pytest.raises(FlowError, match=r"hlsflow rtl .*bare"):
        ip_project(bare)
    assert main(["ip", str(bare)]) == 2
    assert f"run `hlsflow rtl {bare}` first" in capsys.readouterr().err
    assert not (bare / "ip").exists()


def test_out_that_is_not_an_ip_folder_is_refused_and_left_untouched(project, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("my notes")
    with pytest.raises(FlowError, match=f"not an hlsflow IP folder \\(no {MARKER}\\)"):
        ip_project(project, folder, vectors=5)
    assert (folder / "notes.txt").read_text() == "my notes" and len(list(folder.iterdir())) == 1
    afile = tmp_path / "file.txt"
    afile.write_text("x")
    with pytest.raises(FlowError, match="exists and is a file"):
        ip_project(project, afile, vectors=5)
    assert afile.read_text() == "x"


def test_a_failure_while_writing_leaves_the_previous_ip_folder_as_it_was(project, ip, tmp_path, monkeypatch):
    out, _ = ip
    before = _tree(out)

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("flow.ip.core.ci_workflow", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        ip_project(project, out, vectors=VECTORS, seed=3)
    assert _tree(out) == before
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no staging folder left


def _hlsflow_commands(workflow: Path) -> list[list[str]]:
    doc = yaml.safe_load(workflow.read_text())
    cmds = []
    for job in doc["jobs"].values():
        for step in job["steps"]:
            script = step.get("run", "").replace("\\\n", " ")
            for line in script.splitlines():
                line = line.split(" #", 1)[0].strip()
                if line.startswith("hlsflow "):
                    cmds.append(shlex.split(line))
    return cmds


def test_every_hlsflow_command_in_the_ci_example_parses_with_the_cli():
    workflow = ROOT / "docs" / "ci" / "hlsflow-ci.yml"
    cmds = _hlsflow_commands(workflow)
    parser = build_parser()
    seen = set()
    for cmd in cmds:
        try:
            args = parser.parse_args(cmd[1:])
        except SystemExit:
            pytest.fail(f"{workflow.name}: `{shlex.join(cmd)}` does not parse with hlsflow's CLI")
        seen.add((args.command, getattr(args, "simulator", None)))
    assert {("run", None), ("verify", None), ("sim", "icarus"), ("sim", "verilator"), ("ip", None)} <= seen
    text = workflow.read_text()
    # the FuseSoC steps name the core `hlsflow ip` writes for this version
    assert f"run --target sim --tool icarus {vlnv('digits_mlp', hlsflow_version())}" in text
    assert "--tool verilator" in text and "sim_*.junit.xml" in text


def test_the_ip_ci_workflow_runs_the_cores_targets(ip):
    out, summary = ip
    doc = yaml.safe_load((out / "ci" / "digits_mlp-fusesoc.yml").read_text())
    steps = " ".join(s.get("run", "") for s in doc["jobs"]["fusesoc"]["steps"])
    assert f"--target sim --tool ${{{{ matrix.tool }}}} {summary['core']}" in steps
    assert f"--target lint {summary['core']}" in steps
    assert doc["jobs"]["fusesoc"]["strategy"]["matrix"]["tool"] == ["icarus", "verilator"]
