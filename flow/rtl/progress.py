"""Progress lines on stderr while ``hlsflow rtl`` traces, builds, checks and writes (issue 22).

Small models stay quiet: a phase or layer is reported when it took at least :data:`PROGRESS_SECONDS`
(with its elapsed seconds), and, when the model is large (at least :data:`LARGE_WEIGHTS` constant
multiplications), also when it starts, so a long step is never silent. Times are wall-clock seconds.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

PROGRESS_SECONDS = 2.0  # a phase or layer that took at least this long (s) is reported with its time
LARGE_WEIGHTS = 10_000  # from this many nonzero weights on, every phase and layer is announced when it starts


def say(message: str) -> None:
    """One line ``hlsflow rtl: <message>`` on stderr."""
    print(f"hlsflow rtl: {message}", file=sys.stderr, flush=True)


def layer_weights(layer: Any) -> int:
    """Nonzero weights of an hls4ml layer (its constant multiplications; biases are additions, not counted)."""
    weights = getattr(layer, "weights", None) or {}
    return sum(int(np.count_nonzero(v.data)) for k, v in weights.items()
               if "bias" not in k and getattr(v, "data", None) is not None)


def describe(layer: Any) -> str:
    """``Dense 128×128``: the layer's class and its weight matrix's shape (class only without weights)."""
    weights = getattr(layer, "weights", None) or {}
    w = weights.get("weight")
    shape = np.shape(w.data) if w is not None and getattr(w, "data", None) is not None else ()
    return f"{layer.class_name} {'×'.join(str(s) for s in shape)}" if shape else str(layer.class_name)


def is_large(weights: int) -> bool:
    """Whether a model of ``weights`` constant multiplications announces every phase and layer."""
    return weights >= LARGE_WEIGHTS


@contextmanager
def phase(what: str, large: bool) -> Iterator[None]:
    """Report phase ``what`` (``building the netlist``): ``what ...`` at the start when ``large``, and
    ``what: N.N s`` at the end when it took at least :data:`PROGRESS_SECONDS`."""
    report(what, large, None)
    t0 = time.perf_counter()
    yield
    report(what, large, time.perf_counter() - t0)


def report(what: str, large: bool, seconds: float | None) -> None:
    """The rule of every progress line: ``what ...`` at the start (``seconds`` None) when ``large``; ``what: N.N s``
    at the end when it took at least :data:`PROGRESS_SECONDS`."""
    if seconds is None:
        if large:
            say(f"{what} ...")
    elif seconds >= PROGRESS_SECONDS:
        say(f"{what}: {seconds:.1f} s")


def trace_size(graph: Any, upto: str | None = None) -> tuple[int, int]:
    """(layers with a description, their nonzero weights) of ``graph`` up to layer ``upto``: what will be traced."""
    from flow.arith.walk import plan

    steps = [s for s in plan(graph, upto) if s.impl is not None]
    return len(steps), sum(layer_weights(s.layer) for s in steps)


def layer_reporter(n: int, large: bool) -> Callable[[int, Any, float | None], None]:
    """The hook for :func:`flow.arith.walk.run`, called with (index, step, None) before a layer and
    (index, step, seconds) after it: reports ``tracing layer i/n NAME (CLASS SHAPE)`` as :func:`phase` does."""

    def on_layer(index: int, step: Any, seconds: float | None) -> None:
        report(f"tracing layer {index}/{n} {step.name} ({describe(step.layer)})", large, seconds)

    return on_layer
