"""da4ml's delay units in nanoseconds, per target: the table that turns a clock period into a pipeline cut.

da4ml's ``to_pipeline(comb, latency_cutoff)`` cuts the traced logic into stages of at most
``latency_cutoff`` of its delay units (an estimate of adder levels: each operation's ``latency`` is the
longest path from the inputs in these units). A stage's register-to-register delay on a target is
modelled as ``overhead_ns + ns_per_unit * units``, where ``units`` is the stage's span (the largest
output latency minus the smallest input latency inside the stage). The two numbers per target are a
least-squares fit to measured critical paths of small nets pipelined at several cutoffs:

* FPGA parts (``ecp5-85k``): post-route Fmax of nextpnr-ecp5 (:mod:`flow.physical.fpga`), critical path = 1000 / Fmax;
* cell libraries (``osu018``): OpenSTA's minimum period (data arrival + setup) at the clock target.

The table ships as ``flow/rtl/calibration.json``; ``python -m flow.physical.calibrate`` (:mod:`flow.physical.calibrate`)
measures it again (a quarter of an hour on 2 shared cores) and rewrites it. :func:`choose_cutoff` picks the largest cutoff whose
predicted stage delay fits the clock period; the physical flow then confirms it by place-and-route.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError

TABLE = Path(__file__).with_name("calibration.json")
DEFAULT_TARGET = "ecp5-85k"   # the timing target when a run names neither an FPGA part nor a cell library


@dataclass(frozen=True)
class Choice:
    """A pipeline cut for a clock period: the cutoff (da4ml units), the stage delay it predicts (ns)."""

    cutoff: float
    predicted_ns: float
    meets: bool
    target: str


def load_table(path: Path = TABLE) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        raise FlowError(f"{path}: the delay calibration table is missing or unreadable "
                        "(remake it with: python -m flow.physical.calibrate)") from None


def model(target: str, table: dict[str, Any] | None = None) -> tuple[float, float]:
    """(overhead_ns, ns_per_unit) of ``target``; FlowError naming the calibrated targets otherwise."""
    targets = (table or load_table())["targets"]
    if target not in targets:
        raise FlowError(f"no delay calibration for target {target!r}; calibrated: {', '.join(sorted(targets))}")
    t = targets[target]
    return float(t["overhead_ns"]), float(t["ns_per_unit"])


def predicted_ns(units: float, target: str, table: dict[str, Any] | None = None) -> float:
    a, b = model(target, table)
    return a + b * units


def choose_cutoff(period_ns: float, target: str, comb_units: float, table: dict[str, Any] | None = None) -> Choice:
    """The largest whole cutoff (>= 1) whose predicted stage delay fits ``period_ns`` on ``target``.

    ``comb_units``: the whole combinational net's latency in da4ml units; a cutoff at or above it means
    one stage. When even one unit per stage does not fit, the cutoff is 1 (the deepest cut) and
    ``meets`` is False.
    """
    a, b = model(target, table)
    fit = math.floor((period_ns - a) / b + 1e-9) if b > 0 else comb_units
    cutoff = float(max(1, min(fit, max(1, math.ceil(comb_units)))))
    pred = a + b * min(cutoff, comb_units)
    return Choice(cutoff, round(pred, 3), pred <= period_ns, target)


def stage_units(stages: list[Any]) -> float:
    """The largest stage span in da4ml units (output latency minus input latency within a stage)."""
    spans = []
    for s in stages:
        out = [x for x in s.out_latency] or [0.0]
        inp = [x for x in s.inp_latency] or [0.0]
        spans.append(max(out) - min(inp))
    return float(max(spans)) if spans else 0.0


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """Least-squares ``ns = a + b * units`` (a >= 0)."""
    n = len(points)
    if n < 2:
        raise FlowError("calibration needs at least two measured points")
    mx = sum(u for u, _ in points) / n
    my = sum(t for _, t in points) / n
    sxx = sum((u - mx) ** 2 for u, _ in points)
    b = sum((u - mx) * (t - my) for u, t in points) / sxx if sxx else my / max(mx, 1e-9)
    a = my - b * mx
    if a < 0:
        a, b = 0.0, sum(u * t for u, t in points) / sum(u * u for u, _ in points)
    return round(a, 4), round(b, 4)
