"""Figures people would rather look at than read: per-layer value distributions against type ranges."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


def plot_layer_ranges(traces: list[Any], path: Path) -> Path:
    """One histogram per layer of its output values, with the fixed-point type's range shaded.

    Layers whose values wrapped or saturated are titled in red with the count, so overflow is seen at a glance.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(traces)
    fig, axes = plt.subplots(n, 1, figsize=(8, 1.9 * n + 0.6), squeeze=False)
    for ax, t in zip(axes[:, 0], traces):
        vals = np.asarray(t.values, dtype=np.float64).ravel()
        lo, hi = min(t.type_min, float(vals.min(initial=0))), max(t.type_max, float(vals.max(initial=0)))
        span = hi - lo or 1.0
        ax.axvspan(t.type_min, t.type_max, color="tab:green", alpha=0.12, label="type range")
        ax.hist(vals, bins=80, range=(lo - 0.02 * span, hi + 0.02 * span), color="tab:blue", log=True)
        ax.axvline(t.type_min, color="tab:green", lw=1)
        ax.axvline(t.type_max, color="tab:green", lw=1)
        over = f" — {t.n_overflow} values wrapped/saturated" if t.n_overflow else ""
        ax.set_title(f"{t.name}: {t.type}  observed [{t.observed_min:.4g}, {t.observed_max:.4g}]{over}",
                     fontsize=9, color="tab:red" if t.n_overflow else "black", loc="left")
        ax.tick_params(labelsize=8)
    axes[-1, 0].set_xlabel("value")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
