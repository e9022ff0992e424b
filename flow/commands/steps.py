"""Named steps over one context: how the stage sequences of ``hlsflow run``, ``hlsflow convert`` and a sweep
point are written.

A sequence is an ordered list of :class:`Step` (a name, a function of the context, and an optional condition);
:func:`execute` runs the enabled steps in order on one :class:`FlowContext`, with numbered, timed banners on
stderr (or quietly, for sweep points) and each step's wall time kept in ``FlowContext.seconds``. The step
functions themselves are defined once (:mod:`flow.commands.pipeline`, :mod:`flow.sweep.evaluate`) and shared between
the sequences: ``run`` and a sweep point train, prune and convert with the same steps.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow.arith.types import FixedType


@dataclass
class FlowContext:
    """Everything the steps of one flow read and write.

    ``spec``: the validated spec (None for ``convert``); ``work``: the staging folder the steps write into
    (:func:`flow.core.staging.staged_dir`), ``final``: where it goes on success; ``input_type``: the declared
    input type; ``split``: the data (:class:`flow.data.Split`); ``float_model``/``qmodel``: the float baseline
    and the quantized model (the one that is converted); ``graph``/``hls_config``: the hls4ml ModelGraph and
    the config it was built from; ``csim_out``: the C simulation's outputs on the test inputs;
    ``emulation``: the emulator's check against them (:class:`flow.hls.compare.EmulatorCheck`); ``neurons``: the
    record of neuron pruning; ``figures``: results the last steps collect (the report, a point's figures);
    ``options``: what the caller adds for its own steps.
    """

    spec: Any = None
    work: Path | None = None
    final: Path | None = None
    input_type: FixedType | None = None
    split: Any = None
    float_model: Any = None
    qmodel: Any = None
    graph: Any = None
    hls_config: dict | None = None
    csim_out: Any = None
    emulation: Any = None
    neurons: dict | None = None
    figures: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Step:
    """One named step: ``fn(context)``; skipped where ``when(context)`` is false."""

    name: str
    fn: Callable[[FlowContext], None]
    when: Callable[[FlowContext], bool] | None = None

    def enabled(self, ctx: FlowContext) -> bool:
        return self.when is None or bool(self.when(ctx))


def execute(steps: list[Step], ctx: FlowContext, banners: bool = True, digits: int = 2,
            numbered: tuple[int, int] | None = None) -> FlowContext:
    """Run the enabled ``steps`` in order on ``ctx``; ``[i/n] name ...`` / ``... done in s`` on stderr when
    ``banners``; each step's wall time (s, rounded to ``digits``) in ``ctx.seconds``. ``numbered`` =
    ``(first, total)`` numbers a part of a longer sequence. Returns ``ctx``."""
    todo = [s for s in steps if s.enabled(ctx)]
    first, total = numbered or (1, len(todo))
    for i, step in enumerate(todo, first):
        if banners:
            print(f"[{i}/{total}] {step.name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        step.fn(ctx)
        ctx.seconds[step.name] = round(time.perf_counter() - t0, digits)
        if banners:
            print(f"[{i}/{total}] {step.name} done in {ctx.seconds[step.name]:.1f} s", file=sys.stderr, flush=True)
    return ctx


def names(steps: list[Step], ctx: FlowContext) -> list[str]:
    """The names of the steps that would run on ``ctx``."""
    return [s.name for s in steps if s.enabled(ctx)]
