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


def plot_layer_differences(rows: list[dict[str, Any]], first: str | None, path: Path) -> Path:
    """The mismatch doctor's figure: per compared layer (graph order, top to bottom), the fraction of values
    that differ between the model and the fixed-point graph, and the largest |difference| in LSBs of the
    layer's result type. The first differing layer is drawn in red; a softmax (tables by design) in grey."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{r['layer']}  ({r['keras_layer']})" if r["keras_layer"] != r["layer"] else r["layer"] for r in rows]
    frac = [100.0 * r.get("differing_fraction", 0.0) for r in rows]
    lsb = [max(r.get("max_diff_lsb", 0.0), 0.0) for r in rows]
    colors = ["tab:red" if r["layer"] == first else "tab:gray" if r.get("note") else "tab:blue" for r in rows]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 0.42 * len(rows) + 1.6), sharey=True)
    y = np.arange(len(rows))
    a.barh(y, frac, color=colors)
    a.set_xlim(0, 100)
    a.set_xlabel("values differing from the model (%)")
    a.set_yticks(y, names, fontsize=8)
    a.invert_yaxis()
    b.barh(y, [v if v > 0 else np.nan for v in lsb], color=colors)
    b.set_xscale("log")
    b.set_xlabel("max |difference| (LSBs of the layer's result type)")
    for ax, vals in ((a, frac), (b, lsb)):
        for yi, v in zip(y, vals):
            if v == 0:
                ax.text(0.01, yi, "0", va="center", fontsize=7, transform=ax.get_yaxis_transform())
    title = f"first differing layer: {first}" if first else "no layer differs"
    fig.suptitle(title, color="tab:red" if first else "black", fontsize=10, x=0.01, ha="left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_neuron_activity(record: dict[str, Any], path: Path) -> Path:
    """Per-unit activity of every neuron-pruned layer in every round, and the cut.

    ``record`` is :func:`flow.keras.prune_neurons.prune_neurons`'s record. One panel per (round,
    layer): the units sorted by activity (fraction of non-zero values the next layer reads), removed
    units in red, kept in blue, the threshold (or, for ``fraction``, the most active removed unit) as
    a dashed line, and each unit's mean magnitude as dots on the right axis.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = record["rounds"]
    n_layers = max(len(r["layers"]) for r in rounds)
    fig, axes = plt.subplots(len(rounds), n_layers, figsize=(4.6 * n_layers + 0.6, 2.6 * len(rounds) + 0.5),
                             squeeze=False)
    for row, rnd in zip(axes, rounds):
        for ax, lay in zip(row, rnd["layers"]):
            act = np.asarray(lay["active_fraction"])
            mag = np.asarray(lay["mean_magnitude"])
            order = np.lexsort((np.arange(len(act)), mag, act))
            removed = set(lay["removed"])
            colors = ["tab:red" if lay["units"][i] in removed else "tab:blue" for i in order]
            ax.bar(np.arange(len(act)), act[order], color=colors, width=0.85)
            gone = [x for x, i in enumerate(order) if lay["units"][i] in removed]  # visible even at activity 0
            ax.plot(gone, np.zeros(len(gone)), "^", color="tab:red", ms=4, clip_on=False, label="removed")
            cut = record["threshold"] if record.get("threshold") is not None else lay["max_removed_activity"]
            if cut is not None:
                ax.axhline(cut, color="black", ls="--", lw=1)
            ax.set_ylim(0, 1.05)
            ax.set_xlabel(f"{lay['kind']}, least active first", fontsize=8)
            ax.set_ylabel("active fraction", fontsize=8)
            rule = (f"cut: activity < {record['threshold']:g}" if record.get("threshold") is not None
                    else f"cut: least active, {record['fraction']:g} in {record['rounds_asked']} round(s)")
            ax.set_title(f"round {rnd['round']}, {lay['layer']}: {lay['before']} -> {lay['after']} {lay['kind']} "
                         f"({rule})", fontsize=8, loc="left")
            ax.tick_params(labelsize=7)
            twin = ax.twinx()
            twin.plot(np.arange(len(act)), mag[order], "k.", ms=3)
            twin.set_ylim(bottom=0)
            twin.set_ylabel("mean |value|", fontsize=7)
            twin.tick_params(labelsize=7)
        for ax in row[len(rnd["layers"]):]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
