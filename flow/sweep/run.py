"""``hlsflow sweep``: run or resume a sweep with N workers, then report; the CLI entry."""

from __future__ import annotations

import json
import os
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.core.outputs import SWEEP, SWEEP_RECORD, claim_file, claim_output
from flow.core.signals import exit_code, interruption
from flow.sweep.config import Sweep, load_sweep


@dataclass
class SweepResult:
    """What a sweep run produced: the study, the final counts, report files, and the storage used."""

    sweep: Sweep
    study: Any
    counts: Any  # flow.sweep.workers.Counts
    url: str
    out_dir: Path
    report: dict[str, Path] = field(default_factory=dict)


def run_sweep(sweep_path: str | Path, out_root: str | Path = "sweeps", storage: str | None = None,
              workers: int = 1, retry_failed: bool = False, run: bool = True, progress: bool = True,
              report: bool = True, rtl: str = "none", force: bool = False) -> SweepResult:
    """Run (or resume) a sweep and write its report into ``<out_root>/<name>/report/``.

    ``workers`` = 1 runs the points in this process; more spawns that many worker processes.
    ``run=False`` only reads the stored results. ``rtl`` = ``pareto``/``all`` asks :func:`rtl_cost`
    for the figures of those points. ``<out_root>/<name>`` must be absent, empty or a sweep folder
    (``sweep.db`` or ``hlsflow-sweep.json``: it is resumed); with ``force`` another folder is replaced
    (:func:`make_sweep_dir`).
    """
    from flow.sweep import report as sweep_report
    from flow.sweep.workers import (counts, next_action, open_storage, open_study, progress_bar, queue_budget, redact,
                                    requeue, run_workers, storage_url, work)

    if workers < 1:
        raise FlowError(f"--workers must be >= 1, got {workers}")
    sweep = load_sweep(sweep_path)
    if run and sweep.mode == "ptq" and sweep.float_model is not None:
        from flow.sweep.ptq import load_user_float_model

        load_user_float_model(sweep)  # bad float model: one line, before anything is written
    out_dir = Path(out_root) / sweep.name
    if storage is None and not run and not (out_dir / "sweep.db").is_file():
        raise FlowError(f"{out_dir / 'sweep.db'}: no stored results (run `hlsflow sweep {sweep_path}` first)")
    data = sweep.base.dataset.source if sweep.base is not None and sweep.base.dataset.source != "digits" else None
    claim_output(out_dir, SWEEP, force, inputs=(sweep_path, sweep.base_path, sweep.float_model, data))
    if storage is None:
        make_sweep_dir(out_dir)  # the SQLite file lives in it
    url = storage_url(storage, out_dir / "sweep.db")
    store = open_storage(url, sweep.heartbeat)
    study = open_study(store, sweep, create=run)
    make_sweep_dir(out_dir)  # an external database: only once it answered (nothing is touched otherwise)
    if run:
        queue_budget(store, study, sweep)
        requeue(study, sweep, retry_failed)
        if sweep.mode == "ptq" and next_action(study, sweep) != "done":
            from flow.sweep.ptq import prepare_float_model

            prepare_float_model(sweep, out_dir)  # trained here, once, before any worker starts
        bar, refresh = progress_bar(sweep, study, progress)
        try:
            if next_action(study, sweep) == "done":
                pass  # nothing left: no worker to start
            elif workers == 1:
                logs = out_dir / "logs"
                logs.mkdir(exist_ok=True)
                with open(logs / f"worker-{socket.gethostname()}-{os.getpid()}.log", "a", buffering=1) as log:
                    work(sweep, url, out_dir, 0, log, refresh)
            else:
                run_workers(sweep, url, out_dir, workers, study, refresh)
            refresh(study)
        finally:
            bar.close()
    result = SweepResult(sweep, study, counts(study, sweep), url, out_dir)
    if rtl != "none":
        sweep_report.add_rtl_costs(study, sweep, rtl)
    if report:
        result.report = sweep_report.write_report(study, sweep, out_dir / "report", redact(url))
    return result


def make_sweep_dir(out_dir: Path) -> None:
    """Make ``out_dir`` the sweep's folder (checked by :func:`flow.core.outputs.claim_output` before): a sweep folder or
    an empty one is kept (resumed), another one (allowed by --force) is removed first. The folder gets its record
    ``hlsflow-sweep.json``, which marks it as hlsflow's also when the database is elsewhere."""
    import shutil

    if out_dir.is_dir() and any(out_dir.iterdir()) and not SWEEP.owned(out_dir):
        print(f"hlsflow sweep: --force: replacing {out_dir}", file=sys.stderr)
        shutil.rmtree(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = out_dir / SWEEP_RECORD
    if not record.is_file():
        record.write_text(json.dumps({"generator": "hlsflow", "sweep": out_dir.name}, indent=2) + "\n")


def cli_sweep(args: Any) -> int:
    """``hlsflow sweep``: run/resume, report, optionally export the chosen point. Exit 0 when every
    point is done, 1 when some failed or are still unfinished, 2 on bad input (raised as FlowError)."""
    from flow.sweep import report as sweep_report
    from flow.sweep.workers import redact

    for given, flag in ((args.trial is not None, "--trial"), (args.min_accuracy is not None, "--min-accuracy")):
        if given and args.export_best is None:
            raise FlowError(f"{flag} chooses the point for --export-best; give --export-best OUT.yaml too")
    if args.export_best is not None:
        claim_file(args.export_best, args.force, inputs=(args.sweep,), shown=f"--export-best {args.export_best}",
                   ours=sweep_report.exported_by_hlsflow)
    try:
        result = run_sweep(args.sweep, args.out, args.storage, args.workers, args.retry_failed,
                           run=not args.report_only, progress=not args.no_progress, rtl=args.rtl_cost,
                           force=args.force)
    except KeyboardInterrupt as exc:
        print(f"hlsflow sweep: {interruption(exc)}; finished points are kept in the sweep's database and the "
              "interrupted ones are queued again: rerun the same command to resume", file=sys.stderr)
        return exit_code(exc)
    rows = sweep_report.collect_rows(result.study, result.sweep)
    summary: dict[str, Any] = {
        "sweep": result.sweep.name, "mode": result.sweep.mode, "study": result.sweep.study_name(),
        "storage": redact(result.url),
        "points": {"target": result.counts.target, "done": result.counts.done, "failed": result.counts.failed,
                   "running": result.counts.running},
        "pareto": [{"trial": r["trial"], **{a.name: r[a.name] for a in result.sweep.axes},
                    **{o: r[o] for o in result.sweep.objectives}} for r in rows if r.get("pareto")],
        "report": {k: str(v) for k, v in result.report.items()},
    }
    if args.export_best is not None:
        chosen = sweep_report.export_spec(result.sweep, rows, args.export_best, args.min_accuracy, args.trial)
        summary["exported"] = {"spec": str(args.export_best), "trial": chosen["trial"],
                               "accuracy": chosen["accuracy"], "bops": chosen["bops"]}
    print(json.dumps(summary, indent=2))
    c = result.counts
    if c.failed:
        print(f"hlsflow sweep: {c.failed} point(s) failed (errors in {result.report.get('html', 'the report')}); "
              f"rerun with --retry-failed to try them again", file=sys.stderr)
        return 1
    if c.done < c.target:
        print(f"hlsflow sweep: {c.done} of {c.target} points done ({c.running} running elsewhere or stale); "
              f"rerun the same command to resume", file=sys.stderr)
        return 1
    return 0
