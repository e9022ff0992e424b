"""The package's shape: layers that import only downwards, no import cycles or private imports, and a wheel that
works.

The wheel test builds the project's wheel, installs it (without dependencies) into a fresh virtual
environment that sees this machine's packages, and runs `hlsflow convert`, `rtl` and `sim` from there:
the testbench files of the top-level ``sim/`` must ship in the wheel (as ``flow.sim.testbench``) for
``hlsflow sim`` to work outside an editable checkout.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from flow.core import tools

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


# The layers, lowest first (docs/ARCHITECTURE.md): a module imports modules of its own layer and of the layers below,
# never of a layer above. Infrastructure (flow.core) imports nothing else of flow; the commands sit on top.
LAYERS = (
    ("infrastructure", ("flow.core",)),
    ("arithmetic", ("flow.arith",)),
    ("inputs", ("flow.spec", "flow.data")),
    ("keras", ("flow.keras",)),
    ("hls", ("flow.hls",)),
    ("rtl", ("flow.rtl",)),
    ("simulation", ("flow.sim",)),
    ("physical", ("flow.physical",)),
    ("ip", ("flow.ip",)),
    ("commands", ("flow.commands", "flow.sweep", "flow.__main__")),
)


def layer_of(module: str) -> int:
    """Index in :data:`LAYERS` of the layer holding ``module`` (``flow`` itself, the version, is the lowest)."""
    if module == "flow":
        return -1
    for k, (_, prefixes) in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return k
    raise LookupError(f"{module} is in no layer of tests/test_layout.py LAYERS")


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return [f"{m} ({LAYERS[layer_of(m)][0]}) imports {d} ({LAYERS[layer_of(d)][0]})"
            for m in sorted(graph) for d in sorted(graph[m]) if layer_of(d) > layer_of(m)]


def test_every_module_is_in_a_layer():
    unplaced = []
    for m in MODULES:
        try:
            layer_of(m)
        except LookupError:
            unplaced.append(m)
    assert unplaced == []


def test_no_module_imports_a_layer_above_its_own():
    assert upward_imports(import_graph()) == []


def test_the_layer_check_finds_an_upward_import():
    graph = {"flow.core.errors": {"flow.commands.cli"}, "flow.rtl.emit": {"flow.arith.ops"}}
    assert upward_imports(graph) == ["flow.core.errors (infrastructure) imports flow.commands.cli (commands)"]


def test_the_top_level_holds_only_the_layers():
    """Modules directly under flow/ are the version, ``python -m flow`` and the inputs (spec, data); everything
    else lives in its layer's subpackage."""
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py", "__main__.py", "data.py", "spec.py"]


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


def test_hlsflow_sim_runs_from_an_installed_wheel(wheel, tmp_path):
    """`hlsflow convert`, `rtl` and `sim` (Icarus) of a tiny model, all run by the wheel's own `hlsflow` in a
    fresh virtual environment: the flow package and the cocotb testbench come from the wheel."""
    if tools.find("iverilog") is None:
        pytest.skip("iverilog is not installed (scripts/setup.sh installs it)")
    from flow.keras.env import keras, set_seed

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--no-deps", "--no-index",
                    "--ignore-installed", "-q", str(wheel)], check=True, capture_output=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(venv / "bin" / "python"), "-c",
                            "import flow, flow.sim.runner as r; print(flow.__file__); print(r.SIM_DIR)"],
                           capture_output=True, text=True, env=env, check=True, cwd=tmp_path).stdout.split()
    assert all(w.startswith(str(venv)) for w in where), where
    K = keras()
    set_seed(1)
    inp = K.Input((4,), name="x_in")
    model = K.Model(inp, K.layers.Dense(2, name="d1")(K.layers.Dense(3, activation="relu", name="d0")(inp)))
    model.save(tmp_path / "tiny.h5")
    hlsflow = str(venv / "bin" / "hlsflow")
    for args in (["convert", str(tmp_path / "tiny.h5"), "--precision", "ap_fixed<8,3>", "--out", "prj", "--samples", "20"],
                 ["rtl", "prj", "--no-yosys", "--check-samples", "200"],
                 ["sim", "prj", "--simulator", "icarus", "--samples", "40"]):
        out = subprocess.run([hlsflow, *args], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert out.returncode == 0, (args, out.stderr[-3000:])
    summary = json.loads(out.stdout[out.stdout.index("{"):])
    assert summary["ok"] and summary["rtl_vs_emulator"]["differing_bits"] == 0 and summary["samples"]["total"] == 40
