"""The report of a sweep (:mod:`flow.sweep`): table rows from the study, Pareto fronts, plots (PNG + SVG),
an HTML page with a sortable table (inline JavaScript, works offline), CSV, and the export of a
chosen point as a flow spec.
"""

from __future__ import annotations

import csv
import html
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from flow.core.errors import FlowError
from flow.core.outputs import first_line_starts
from flow.core.staging import written_atomically
from flow.spec import NAME_RE
from flow.sweep.config import OBJECTIVES, Sweep, canonical_params, point_key
from flow.sweep.evaluate import rtl_cost
from flow.sweep.workers import is_computed, is_failed, trial_key

FIGURES = ("accuracy", "qkeras_accuracy", "bops", "weight_memory_bits", "sparsity", "units", "overflows")
SHORT = {"weight_bits": "w", "activation_bits": "a", "weight_integer": "wi", "activation_integer": "ai",
         "bias_bits": "b", "bias_integer": "bi", "pruning_sparsity": "s", "pruning_method": "", "pruning_amount": "p",
         "reuse_factor": "rf", "io_type": ""}
BOPS_FORMULA = ("BOPs = P · Σ<sub>j</sub> ( nz<sub>j</sub> · b<sub>w</sub> · b<sub>x</sub> + max(0, nz<sub>j</sub> − 1 + "
                "[bias<sub>j</sub> ≠ 0]) · b<sub>acc</sub> ) over Dense/Conv layers: nz<sub>j</sub> non-zero weights "
                "of output j, P output positions, b<sub>w</sub>/b<sub>x</sub>/b<sub>acc</sub> weight, input and "
                "accumulator widths from the hls4ml graph")


def pareto_mask(values: list[tuple[float, ...]], maximize: list[bool]) -> list[bool]:
    """True for each point that no other point dominates (at least as good in every objective, better in one)."""
    signed = [tuple(v if up else -v for v, up in zip(row, maximize)) for row in values]
    mask = []
    for i, a in enumerate(signed):
        dominated = any(all(b_k >= a_k for a_k, b_k in zip(a, b)) and any(b_k > a_k for a_k, b_k in zip(a, b))
                        for j, b in enumerate(signed) if j != i)
        mask.append(not dominated)
    return mask


def collect_rows(study: Any, sweep: Sweep) -> list[dict[str, Any]]:
    """One row per point: every computed point (``state`` done) and every point that failed for good.

    Columns: ``trial``, ``key``, ``mode`` (``qat`` or ``ptq``), one per axis (``pruning_method`` ``none``
    for the unpruned point of a ``pruning_amount`` axis, :func:`canonical_params`), the figures (and
    ``float_accuracy`` in a PTQ sweep), ``rtl_*`` figures when present, ``seconds`` (total per point),
    ``host``, ``project``, ``state``, ``error``, and ``pareto``.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    rtl = {k[4:]: v for k, v in study.user_attrs.items() if k.startswith("rtl:")}
    names = [a.name for a in sweep.axes]
    rows: dict[str, dict[str, Any]] = {}
    for t in sorted(trials, key=lambda t: t.number):
        key = trial_key(t, sweep)
        if key is None or key in rows and rows[key]["state"] == "done":
            continue
        params = canonical_params({n: t.params[n] for n in names})
        if is_computed(t):
            a = t.user_attrs["figures"]
            row = {"trial": t.number, "key": key, "mode": _mode(t), **params,
                   **{f: a.get(f) for f in (*FIGURES, "float_accuracy")},
                   "seconds": (a.get("seconds") or {}).get("total"),
                   "host": t.user_attrs.get("worker", {}).get("host", ""), "project": a.get("project", ""),
                   "state": "done", "error": ""}
            row.update({f"rtl_{k}": v for k, v in rtl.get(key, {}).items()})
            rows[key] = row
        elif is_failed(t):
            error = t.user_attrs.get("error") or "its worker stopped sending heartbeats (killed?) and retries ran out"
            rows[key] = {"trial": t.number, "key": key, "mode": _mode(t), **params,
                         "host": (t.user_attrs.get("worker") or {}).get("host", ""), "state": "failed",
                         "error": error}
    pending = {trial_key(t, sweep) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)}
    out = [r for r in rows.values() if r["state"] == "done" or r["key"] not in pending]
    done = [r for r in out if r["state"] == "done"]
    mask = pareto_mask([tuple(float(r[o]) for o in sweep.objectives) for r in done],
                       [OBJECTIVES[o] == "maximize" for o in sweep.objectives])
    for r, on_front in zip(done, mask):
        r["pareto"] = on_front
    return sorted(out, key=lambda r: r["trial"])


def _mode(trial: Any) -> str:
    """How a trial's point was quantized: ``qat`` (trained) or ``ptq``; trials from before PTQ existed are QAT."""
    return str(trial.user_attrs.get("mode") or (trial.user_attrs.get("figures") or {}).get("mode") or "qat")


def label(row: dict[str, Any], sweep: Sweep) -> str:
    """Short point label for plots, e.g. ``w4 a3``."""
    parts = []
    for a in sweep.axes:
        if a.name == "pruning_method" and row[a.name] == "none":
            continue  # the unpruned point: pruning_amount 0 says it
        layer, _, fld = a.name.rpartition(".")
        prefix = (f"{layer}." if layer else "") + SHORT.get(fld, fld)
        value = row[a.name]
        parts.append(f"{prefix}{value}" if not isinstance(value, str) else value.replace("io_", ""))
    return " ".join(parts)


def _plot_front(rows: list[dict[str, Any]], x: str, xlabel: str, sweep: Sweep, stem: Path, log_x: bool) -> list[Path]:
    """Accuracy (y) against ``x``; the Pareto front of (max accuracy, min x) drawn as a step line."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pts = [r for r in rows if r.get(x) is not None and r.get("accuracy") is not None]
    mask = pareto_mask([(float(r["accuracy"]), float(r[x])) for r in pts], [True, False])
    front = sorted((r for r, m in zip(pts, mask) if m), key=lambda r: float(r[x]))
    first = sweep.axes[0]
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    values = [*first.values, *sorted({r[first.name] for r in rows} - set(first.values), key=str)]  # + pruning "none"
    cmap = plt.get_cmap("viridis", max(2, len(values)))
    for i, value in enumerate(values):
        sel = [r for r in pts if r[first.name] == value]
        if sel:
            ax.scatter([float(r[x]) for r in sel], [float(r["accuracy"]) for r in sel], s=28, color=cmap(i),
                       label=f"{first.name} = {value}", alpha=0.85, zorder=2)
    if front:
        ax.step([float(r[x]) for r in front], [float(r["accuracy"]) for r in front], where="post", color="crimson",
                lw=1.4, zorder=3, label="Pareto front")
        ax.scatter([float(r[x]) for r in front], [float(r["accuracy"]) for r in front], s=60, facecolors="none",
                   edgecolors="crimson", lw=1.4, zorder=4)
        for r in front:
            ax.annotate(label(r, sweep), (float(r[x]), float(r["accuracy"])), textcoords="offset points",
                        xytext=(4, -10), fontsize=7, color="crimson")
    if log_x:
        ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test accuracy (bit-exact emulator)")
    ax.set_title(f"{sweep.name}: {len(pts)} points, {len(front)} on the Pareto front", fontsize=10)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    fig.savefig(paths[0], dpi=150)
    fig.savefig(paths[1])
    plt.close(fig)
    return paths


def _columns(rows: list[dict[str, Any]], sweep: Sweep) -> list[str]:
    rtl = sorted({k for r in rows for k in r if k.startswith("rtl_")})
    figures = [*FIGURES, "float_accuracy"] if sweep.mode == "ptq" else list(FIGURES)
    return ["trial", "pareto", "mode", *[a.name for a in sweep.axes], *figures, *rtl, "seconds", "host", "project",
            "state", "error", "key"]


def write_csv(rows: list[dict[str, Any]], sweep: Sweep, path: Path) -> Path:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=_columns(rows, sweep), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    return path


def _cell(value: Any) -> str:
    if value is None:
        return "<td></td>"
    if isinstance(value, bool):
        return f'<td data-v="{int(value)}">{"★" if value else ""}</td>'
    if isinstance(value, float):
        text = f"{value:.4f}" if abs(value) < 1000 else f"{value:,.0f}"
        return f'<td data-v="{value!r}">{text}</td>'
    if isinstance(value, int):
        return f'<td data-v="{value}">{value:,}</td>'
    return f"<td>{html.escape(str(value))}</td>"


_MODE_TEXT = {"qat": "qat (quantization-aware training of every point)",
              "ptq": "ptq (one float model quantized to every point, no retraining)"}

_SORT_JS = """
document.querySelectorAll('table.sortable th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('data-order') !== 'asc';
    th.parentNode.querySelectorAll('th').forEach(function (h) { h.removeAttribute('data-order'); });
    th.setAttribute('data-order', asc ? 'asc' : 'desc');
    function val(r) { var c = r.cells[col]; return c.hasAttribute('data-v') ? c.getAttribute('data-v') : c.textContent; }
    rows.sort(function (a, b) {
      var x = val(a), y = val(b), nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : x.localeCompare(y);
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""


def _inline_svg(path: Path) -> str:
    text = path.read_text()
    start = text.find("<svg")
    return text[start:] if start >= 0 else ""


def write_html(rows: list[dict[str, Any]], sweep: Sweep, path: Path, figures: list[Path], storage: str) -> Path:
    cols = _columns(rows, sweep)
    done = [r for r in rows if r["state"] == "done"]
    failed = [r for r in rows if r["state"] == "failed"]
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = []
    for r in rows:
        cells = []
        for c in cols:
            v = r.get(c)
            if c == "project" and v:
                rel = os.path.relpath(v, path.parent) if r.get("host") == socket.gethostname() else v
                cells.append(f'<td><a href="{html.escape(rel)}">{html.escape(Path(v).name)}</a></td>')
            else:
                cells.append(_cell(v))
        cls = ' class="front"' if r.get("pareto") else (' class="failed"' if r["state"] == "failed" else "")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    plots = "".join(f'<figure>{_inline_svg(p)}</figure>' for p in figures if p.suffix == ".svg")
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>hlsflow sweep {html.escape(sweep.name)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }}
table {{ border-collapse: collapse; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; white-space: nowrap; }}
th {{ background: #f0f0f0; cursor: pointer; position: sticky; top: 0; }}
th[data-order=asc]::after {{ content: " ▲"; }} th[data-order=desc]::after {{ content: " ▼"; }}
tr.front td {{ background: #fff0f0; font-weight: 600; }} tr.failed td {{ color: #a00; }}
figure {{ display: inline-block; margin: 0 1em 1em 0; }} figure svg {{ max-width: 720px; height: auto; }}
</style></head><body>
<h1>Sweep <code>{html.escape(sweep.name)}</code></h1>
<p>Sweep file <code>{html.escape(str(sweep.path))}</code> · base spec <code>{html.escape(str(sweep.base_path))}</code>
· method {sweep.method} · mode {_MODE_TEXT[sweep.mode]} · study <code>{html.escape(sweep.study_name())}</code> · storage <code>{html.escape(storage)}</code></p>
<p>{len(done)} points done, {len(failed)} failed, target {sweep.target};
{sum(bool(r.get('pareto')) for r in done)} on the Pareto front (★) of {', '.join(
        f'{OBJECTIVES[o]} {o}' for o in sweep.objectives)}. Accuracy is measured with the bit-exact emulator on the
test split; {BOPS_FORMULA}. Generated {time.strftime('%Y-%m-%d %H:%M:%S')}.</p>
{plots}
<p>Click a column header to sort. CSV: <a href="points.csv">points.csv</a>.</p>
<table class="sortable"><thead><tr>{head}</tr></thead><tbody>
{chr(10).join(body)}
</tbody></table>
<script>{_SORT_JS}</script>
</body></html>
"""
    path.write_text(page)
    return path


def write_report(study: Any, sweep: Sweep, report_dir: Path, storage: str) -> dict[str, Path]:
    """Write ``points.csv``, ``pareto.png/.svg`` (accuracy vs BOPs), ``pareto_latency`` and ``pareto_luts``
    (.png/.svg) when RTL figures exist, and ``index.html`` into ``report_dir``; returns the paths by kind."""
    report_dir.mkdir(parents=True, exist_ok=True)
    rows = collect_rows(study, sweep)
    done = [r for r in rows if r["state"] == "done"]
    out = {"csv": write_csv(rows, sweep, report_dir / "points.csv")}
    figures: list[Path] = []
    if done:
        figures += _plot_front(done, "bops", "bit operations per inference (BOPs, log scale)", sweep,
                               report_dir / "pareto", log_x=True)
        for key, xlabel, stem in (("rtl_latency_cycles", "latency (clock cycles, from flow.commands.rtl_command)", "pareto_latency"),
                                  ("rtl_luts", "LUT4 (ECP5, Yosys synth_ecp5, from flow.commands.rtl_command)", "pareto_luts")):
            if any(r.get(key) is not None for r in done):
                figures += _plot_front(done, key, xlabel, sweep, report_dir / stem, log_x=False)
    for p in figures:
        out[p.stem + p.suffix.replace(".", "_")] = p
    out["html"] = write_html(rows, sweep, report_dir / "index.html", figures, storage)
    return out


def add_rtl_costs(study: Any, sweep: Sweep, which: str) -> int:
    """Ask :func:`flow.sweep.rtl_cost` for the figures of the Pareto points (``which='pareto'``) or of
    all points, and store them in the study (``rtl:<key>``); returns how many points got figures."""
    rows = [r for r in collect_rows(study, sweep) if r["state"] == "done" and (which == "all" or r.get("pareto"))]
    added = 0
    for r in rows:
        if f"rtl:{r['key']}" in study.user_attrs or not r.get("project") or not Path(r["project"]).is_dir():
            continue
        figures = rtl_cost(Path(r["project"]))
        if figures is None:
            print("hlsflow sweep: flow.commands.rtl_command is not available here: no RTL cost figures", file=sys.stderr)
            return added
        study.set_user_attr(f"rtl:{r['key']}", figures)
        added += 1
    return added


def choose(rows: list[dict[str, Any]], min_accuracy: float | None = None, trial: int | None = None,
           tolerance: float = 0.01) -> dict[str, Any]:
    """The point to export: ``trial`` if given; else the lowest-BOPs point whose accuracy is at least
    ``min_accuracy`` (default: the best accuracy minus ``tolerance``); ties go to higher accuracy."""
    done = [r for r in rows if r["state"] == "done"]
    if not done:
        raise FlowError("--export-best: the sweep has no finished point yet")
    if trial is not None:
        match = [r for r in done if r["trial"] == trial]
        if not match:
            raise FlowError(f"--trial {trial}: no finished point has that trial number; finished: "
                            + ", ".join(str(r["trial"]) for r in done))
        return match[0]
    best = max(float(r["accuracy"]) for r in done)
    threshold = best - tolerance if min_accuracy is None else min_accuracy
    ok = [r for r in done if float(r["accuracy"]) >= threshold]
    if not ok:
        raise FlowError(f"--min-accuracy {min_accuracy}: no point reaches it; the best accuracy is {best:.4f}")
    return min(ok, key=lambda r: (r["bops"], -float(r["accuracy"]), r["trial"]))


def export_spec(sweep: Sweep, rows: list[dict[str, Any]], out_path: str | Path, min_accuracy: float | None = None,
                trial: int | None = None) -> dict[str, Any]:
    """Write the chosen point (:func:`choose`) as a flow spec for ``hlsflow run``; returns its row.

    The spec is named after ``out_path``'s stem when that is an identifier, else ``<sweep>_best``.
    """
    row = choose(rows, min_accuracy, trial)
    out_path = Path(out_path)
    params = {a.name: row[a.name] for a in sweep.axes}
    assert point_key(params) == row["key"]
    name = out_path.stem if NAME_RE.match(out_path.stem) else f"{sweep.name}_best"
    raw = sweep.point_raw(params, name=name)
    base_epochs = (yaml.safe_load(sweep.base_path.read_text()).get("training") or {}).get("epochs")
    header = (f"{EXPORT_HEADER} {sweep.path} --export-best` from trial {row['trial']} (point {row['key']}):\n"
              f"#   {', '.join(f'{k} {v}' for k, v in params.items())}\n"
              f"#   accuracy {float(row['accuracy']):.4f} (bit-exact emulator, test split), {int(row['bops']):,} BOPs\n")
    if row.get("mode") == "ptq":
        header += ("# The sweep quantized a float model after training (PTQ); `hlsflow run` trains these bit\n"
                   f"# widths with QAT instead ({raw.get('training', {}).get('epochs')} epochs), so its accuracy "
                   f"can differ. The PTQ point itself\n# is the project {row.get('project')} (`hlsflow verify`).\n")
    else:
        header += (f"# Training as in the sweep ({raw.get('training', {}).get('epochs')} epochs; the base spec "
                   f"{sweep.base_path.name} has {base_epochs}), so `hlsflow run` reproduces this point.\n")
    with written_atomically(out_path) as tmp:
        tmp.write_text(header + yaml.safe_dump(raw, sort_keys=False))
    return row


EXPORT_HEADER = "# Exported by `hlsflow sweep"  # the first line of every exported spec: what --export-best may replace


def exported_by_hlsflow(path: Path) -> bool:
    """Whether ``path`` is a spec a previous ``--export-best`` wrote (its first line)."""
    return first_line_starts(path, EXPORT_HEADER)
