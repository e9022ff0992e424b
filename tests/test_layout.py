"""The package's shape: stage folders without import cycles or private imports, and a wheel that works.

The wheel test builds the project's wheel, installs it (without dependencies) into a fresh virtual
environment that sees this machine's packages, and runs the cocotb testbench from there on the
hand-written DUT of ``tests/data/axis_dut``: the testbench files of the top-level ``sim/`` must ship in
the wheel (as ``flow.sim.testbench``) for ``hlsflow sim`` to work outside an editable checkout.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from flow import tools

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flow"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def flow_imports(path: Path) -> list[tuple[str, list[str]]]:
    """``(module, imported names)`` of every ``from flow... import`` in ``path``, at any depth (function-level too)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "flow":
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.split(".")[0] == "flow"]
    return out


def import_graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {m: set() for m in MODULES}
    for mod, path in MODULES.items():
        for target, names in flow_imports(path):
            deps = {f"{target}.{n}" if f"{target}.{n}" in MODULES else target for n in names} or {target}
            graph[mod] |= {d for d in deps if d in MODULES and d not in (mod, "flow")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_package_has_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("root", ["flow", "tests", "bench"])
def test_no_module_imports_private_names_of_another(root):
    offenders = [f"{p.relative_to(ROOT)}: from {mod} import {name}"
                 for p in sorted((ROOT / root).rglob("*.py")) for mod, names in flow_imports(p)
                 for name in names if name.startswith("_") and not name.startswith("__")]
    assert offenders == []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out),
                    str(ROOT)], check=True, capture_output=True)
    (whl,) = out.glob("hlsflow-*.whl")
    return whl


def test_the_wheel_holds_every_subpackage_and_the_testbench(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {str(p.relative_to(ROOT)) for p in PACKAGE.rglob("*.py")}
    expected |= {f"flow/sim/testbench/{p.name}" for p in (ROOT / "sim").iterdir() if p.suffix in (".py", ".v", ".vlt")}
    assert expected - names == set()


def test_the_testbench_runs_from_an_installed_wheel(wheel, tmp_path):
    if tools.find("iverilog") is None:
        pytest.skip("iverilog is not installed (scripts/setup.sh installs it)")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    py = venv / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", "-q", str(wheel)], check=True,
                   capture_output=True)
    script = textwrap.dedent(f"""
        import numpy as np, flow
        from flow.sim import runner
        from flow.sim.words import load_port_map
        assert flow.__file__.startswith({str(venv)!r}), flow.__file__
        assert str(runner.SIM_DIR).startswith({str(venv)!r}), runner.SIM_DIR
        dut = {str(ROOT / "tests" / "data" / "axis_dut")!r}
        fields = load_port_map(dut)["_in"][0]
        x = np.array([[1, 2, 3, 4, 5], [-128, 63, -2048, 7, -(1 << 39)], [127, 0, 2047, 0, (1 << 39) - 1]], dtype=object)
        a, b, c, d, e = (x[:, i] for i in range(5))
        k = 0x9A3C57E12B6D - (1 << 48)
        y = np.stack([a * b, a * 8 + c, e * k, b + d * 16], axis=1)
        r = runner.run_cocotb(dut, x, y, "icarus", seed=1, build_dir={str(tmp_path / "build")!r})
        print("PASSED" if r.passed else "FAILED", r.mismatching_samples)
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    out = subprocess.run([str(py), "-c", script], cwd=tmp_path, capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "PASSED 0"
