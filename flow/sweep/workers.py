"""The engine of ``hlsflow sweep`` (:mod:`flow.sweep`): Optuna storage and study, trial bookkeeping, and
the worker processes that run points.

Trials, their parameters and results live in an Optuna RDB storage: an SQLite file by default, or
any database URL (``postgresql://user@host/db``, driven by psycopg 3), which lets ``hlsflow sweep``
on several machines work on one sweep. While a trial runs, its worker records a heartbeat every
``heartbeat`` seconds; a trial whose worker died (kill -9, power loss) has no heartbeat for 3x that,
is failed by :func:`optuna.storages.fail_stale_trials` and queued again by Optuna's
``RetryHeartbeatStaleTrialCallback``. A trial stopped by Ctrl-C is marked ``interrupted`` and queued
again at once by its own worker (:func:`requeue`; the parent requeues any left over before it starts
workers). A grid uses Optuna's ``GridSampler`` (the same shuffled order in every process); tpe/nsga2
use Optuna's multi-objective samplers.

A search runs exactly its ``trials`` budget, with any number of workers: the budget is queued once as
``trials`` WAITING trials without parameters (:func:`queue_budget`, under a lock that only one process
can take: the creation of a marker study), and search workers open the storage with
``queued_only=True``, which refuses to create a trial that was not queued (:class:`NoTrialSlot`), so a
worker only ever takes a queued trial, and taking one is Optuna's atomic WAITING -> RUNNING update.
Retries of dead or interrupted trials are queued copies (``failed_trial`` system attribute) that stand
in for the failed trial, so finished trials = ``trials`` + the failed trials that a retry replaced.

Finished points are never recomputed: before computing, a trial looks for a twin with the same
parameters (one that finished computing it, or a running one with a lower trial number) and steps
aside (grid: pruned, ``duplicate_of``), or in a search reuses the twin's figures (``same_as``), waiting
for a running twin to finish.

Trial user attributes: ``key`` (point key), ``mode`` (``qat`` or ``ptq``), ``worker`` ({host, pid}),
``figures`` (the point's results, see :meth:`flow.sweep.PointEvaluator.evaluate`), ``error``,
``interrupted``, ``slot`` (search: index of the queued budget trial).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import signal
import socket
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flow.core.errors import FlowError
from flow.sweep.config import Sweep, load_sweep, point_key
from flow.sweep.evaluate import PointEvaluator


def redact(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL at all: show it as given
        return url


def storage_url(url: str | None, default_db: Path) -> str:
    """SQLAlchemy URL: ``default_db`` as SQLite when ``url`` is None; ``postgresql://`` uses psycopg 3."""
    if url is None:
        return f"sqlite:///{Path(default_db).resolve()}"
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


class NoTrialSlot(Exception):
    """A search worker found no queued trial to take (another worker took the last one): it never
    creates a trial of its own, so the search cannot run past its budget."""


@functools.cache
def _queued_only_storage() -> type:
    """An Optuna ``RDBStorage`` that creates only trials from a template (queued or retried trials).

    ``Study.ask()`` takes the oldest WAITING trial with an atomic WAITING -> RUNNING update and creates
    a new trial only when there is none; this storage refuses that creation with :class:`NoTrialSlot`.
    Optuna's cached storage calls ``RDBStorage._create_new_trial`` (Optuna is pinned at 5.0.0).
    """
    import optuna

    base = optuna.storages.RDBStorage
    if not callable(getattr(base, "_create_new_trial", None)):  # pragma: no cover - guards an Optuna upgrade
        raise RuntimeError("optuna.storages.RDBStorage._create_new_trial is gone: the search budget guard "
                           "in flow/sweep/workers.py needs updating for this Optuna version")

    class QueuedOnlyRDBStorage(base):
        def _create_new_trial(self, study_id: int, template_trial: Any = None) -> Any:
            if template_trial is None:
                raise NoTrialSlot("no queued trial left to take")
            return super()._create_new_trial(study_id, template_trial)

    return QueuedOnlyRDBStorage


def open_storage(url: str, heartbeat: int, queued_only: bool = False) -> Any:
    """Optuna RDB storage with heartbeats (stale after 3 x ``heartbeat`` s) and retries of stale trials.

    ``queued_only``: the storage of a search worker, which takes queued trials and creates none
    (:class:`NoTrialSlot`).
    """
    import optuna
    from optuna.exceptions import ExperimentalWarning

    warnings.filterwarnings("ignore", category=ExperimentalWarning)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    engine_kwargs: dict[str, Any] = {}
    if url.startswith("sqlite"):
        engine_kwargs["connect_args"] = {"timeout": 120}
    elif url.startswith("postgresql"):
        engine_kwargs["connect_args"] = {"connect_timeout": 10}
    for attempt in range(5):
        try:
            cls = _queued_only_storage() if queued_only else optuna.storages.RDBStorage
            storage = cls(
                url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat, grace_period=3 * heartbeat,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=3))
            if url.startswith("sqlite"):
                _serialize_sqlite_transactions(storage.engine)
            return storage
        except Exception as exc:  # noqa: BLE001 - SQLAlchemy/driver errors: one line for the user
            text = str(exc)
            if attempt < 4 and ("IntegrityError" in type(exc).__name__ or "already exists" in text):
                time.sleep(0.5 + attempt)  # another process is creating the tables right now
                continue
            first = text.strip().splitlines()[0] if text.strip() else type(exc).__name__
            raise FlowError(f"--storage {redact(url)}: cannot open the database: {first}") from None
    raise AssertionError("unreachable")


def _serialize_sqlite_transactions(engine: Any) -> None:
    """Start every SQLite transaction with ``BEGIN IMMEDIATE`` (SQLAlchemy's recipe for pysqlite).

    SQLite ignores ``SELECT ... FOR UPDATE`` and Python's sqlite3 module begins a transaction only at
    the first write, so Optuna's check-and-set of a WAITING trial (read WAITING, write RUNNING) could
    succeed in two workers at once: both ran the same trial and the second one's result was refused
    ("Cannot tell a COMPLETE trial"). With the write lock taken first, the check-and-set is atomic.
    PostgreSQL honours ``FOR UPDATE`` and needs nothing.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _no_implicit_begin(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # sqlite3 leaves BEGIN/COMMIT to us

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()  # connections opened while the storage created its tables lack the first hook


def open_study(storage: Any, sweep: Sweep, create: bool = True, worker: int = 0) -> Any:
    """Create (or load) the sweep's study; with ``create=False`` a missing study is an error."""
    import optuna

    sampler = make_sampler(sweep, worker)
    if not create:
        try:
            return optuna.load_study(study_name=sweep.study_name(), storage=storage, sampler=sampler)
        except KeyError:
            raise FlowError(f"{sweep.path}: no results stored yet for this sweep (study {sweep.study_name()}); "
                            f"run `hlsflow sweep {sweep.path}` first") from None
    study = optuna.create_study(study_name=sweep.study_name(), storage=storage, sampler=sampler,
                                directions=sweep.directions, load_if_exists=True)
    if "sweep" not in study.user_attrs:
        study.set_user_attr("sweep", {"name": sweep.name, "file": str(sweep.path), "base": str(sweep.base_path),
                                      "axes": {a.name: list(a.values) for a in sweep.axes}, "method": sweep.method,
                                      "objectives": list(sweep.objectives)})
    return study


def make_sampler(sweep: Sweep, worker: int = 0) -> Any:
    """GridSampler over the axes, or a multi-objective TPE / NSGA-II sampler.

    The grid's shuffled order must be the same in every process (grid ids index it), so its seed is
    the sweep's; a search sampler gets a different seed per worker and host so they do not propose
    the same points.
    """
    import zlib

    import optuna

    if sweep.method == "grid":
        return optuna.samplers.GridSampler({a.name: list(a.values) for a in sweep.axes}, seed=sweep.seed)
    seed = sweep.seed + worker + zlib.crc32(socket.gethostname().encode()) % 1000 * 1000
    if sweep.method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, (sweep.trials or 10) // 3)))
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, (sweep.trials or 8) // 4)))


def is_retry(trial: Any) -> bool:
    """A queued copy of a failed trial (Optuna's ``RetryHeartbeatStaleTrialCallback``, or :func:`requeue`)."""
    return "failed_trial" in trial.system_attrs


BUDGET_WAIT_S = 60.0  # how long a process waits for another one that holds the budget lock


def queue_budget(storage: Any, study: Any, sweep: Sweep) -> int:
    """Search only: queue the trial budget (``sweep.trials`` WAITING trials, user attribute ``slot``) once.

    Every trial that is not a retry counts (trials of a study started before budgets were queued too),
    so only the missing ones are queued, e.g. after ``search.trials`` was raised. One process queues:
    the one that creates the marker study ``<study>:budget-<trials>`` (a unique name in the database,
    so creating it is atomic); the others wait up to :data:`BUDGET_WAIT_S` seconds for the queue to
    fill (and fill it themselves if the marker's creator died meanwhile). Returns how many were queued.
    """
    import optuna
    from optuna.trial import TrialState

    if sweep.method == "grid":
        return 0
    budget = int(sweep.trials or 0)

    def originals() -> list[Any]:
        return [t for t in study.get_trials(deepcopy=False) if not is_retry(t)]

    have = originals()
    stale_slots = [t for t in have if t.state == TrialState.WAITING and t.user_attrs.get("slot", -1) >= budget]
    if stale_slots:
        raise FlowError(f"{sweep.path}: field `search.trials`: the study {sweep.study_name()} already queued "
                        f"{len(have)} trials for a larger budget; a smaller budget ({budget}) needs a new study "
                        f"(change the sweep's `name` or --storage)")
    if len(have) >= budget:
        return 0
    try:
        optuna.create_study(study_name=f"{sweep.study_name()}:budget-{budget}", storage=storage)
    except optuna.exceptions.DuplicatedStudyError:  # another process queues them: wait for it
        deadline = time.time() + BUDGET_WAIT_S
        while time.time() < deadline:
            if len(originals()) >= budget:
                return 0
            time.sleep(0.5)
    have = originals()
    for slot in range(len(have), budget):
        study.enqueue_trial({}, user_attrs={"slot": slot})
    return max(0, budget - len(have))


def trial_key(trial: Any, sweep: Sweep) -> str | None:
    """The point key of a trial, or None while it has not chosen all its parameters yet."""
    names = [a.name for a in sweep.axes]
    if any(n not in trial.params for n in names):
        return None
    return point_key({n: trial.params[n] for n in names})


def is_computed(trial: Any) -> bool:
    """A finished trial that computed its point (not a duplicate that stepped aside, not a cached repeat)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.COMPLETE and "figures" in trial.user_attrs


def is_failed(trial: Any) -> bool:
    """A trial that failed with an error, or whose worker died more often than the retries allow
    (not one stopped by Ctrl-C: that one is queued again)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and not trial.user_attrs.get("interrupted")


@dataclass
class Counts:
    """Progress of a sweep: ``done`` distinct points finished (search: trials), ``failed`` points that failed."""

    done: int
    failed: int
    running: int
    waiting: int
    target: int


def counts(study: Any, sweep: Sweep) -> Counts:
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    running = sum(t.state == TrialState.RUNNING for t in trials)
    waiting = sum(t.state == TrialState.WAITING for t in trials)
    computed = {trial_key(t, sweep) for t in trials if is_computed(t)}
    pending = {trial_key(t, sweep) for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)}
    failed = {trial_key(t, sweep) for t in trials if is_failed(t)} - computed - pending
    if sweep.method == "grid":
        done = len(computed)
    else:
        done = sum(t.state == TrialState.COMPLETE for t in trials)
    return Counts(done, len(failed - {None}), running, waiting, sweep.target)


def next_action(study: Any, sweep: Sweep) -> str:
    """``run`` a trial, ``wait`` for trials running elsewhere (they finish or go stale), or ``done``."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    if any(t.state == TrialState.WAITING for t in trials):
        return "run"
    running = [t for t in trials if t.state == TrialState.RUNNING]
    if sweep.method == "grid":
        finished = {trial_key(t, sweep) for t in trials if t.state.is_finished()}
        in_flight = {trial_key(t, sweep) for t in running} - {None}
        anonymous = sum(trial_key(t, sweep) is None for t in running)
        free = sweep.space_size - len(finished | in_flight) - anonymous
        if free > 0:
            return "run"
    # a search runs only its queued trials (queue_budget): none waiting means none left to start
    return "wait" if running else "done"


def requeue(study: Any, sweep: Sweep, retry_failed: bool = False, only: set[int] | None = None) -> list[int]:
    """Queue again the trials stopped by Ctrl-C (and, with ``retry_failed``, every other failed trial)
    whose point is neither computed nor queued; ``only`` limits it to those trial numbers. Returns the
    numbers of the trials retried."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    retried = {n for t in trials for n in RetryHeartbeatStaleTrialCallback.retry_history(t)}
    covered = {trial_key(t, sweep) for t in trials
               if is_computed(t) or t.state in (TrialState.RUNNING, TrialState.WAITING)}
    again = []
    for t in trials:
        key = trial_key(t, sweep)
        if t.state != TrialState.FAIL or t.number in retried or (key is not None and key in covered):
            continue
        if only is not None and t.number not in only:
            continue
        if t.user_attrs.get("interrupted") or retry_failed:
            RetryHeartbeatStaleTrialCallback()(study, copy.deepcopy(t))
            covered.add(key)
            again.append(t.number)
    return again


def _twin(study: Any, trial_number: int, key: str, sweep: Sweep) -> Any | None:
    """Another trial of the same point that makes this one unnecessary: one that computed it, or one
    with a lower number that is computing it now."""
    from optuna.trial import TrialState

    best = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        if t.number == trial_number or trial_key(t, sweep) != key:
            continue
        if is_computed(t):
            return t
        if t.state == TrialState.RUNNING and t.number < trial_number:
            best = t
    return best


def make_objective(sweep: Sweep, evaluator: PointEvaluator, poll: float = 1.0) -> Callable[[Any], tuple[float, ...]]:
    """The Optuna objective: choose the point's values, step aside for a twin, else compute the point.

    A search trial whose twin is still running waits for it (``poll`` s between looks) and reuses its
    figures, so every trial of a search ends COMPLETE or FAIL and counts against the budget.
    """
    import optuna

    def objective(trial: Any) -> tuple[float, ...]:
        objective.stepped_aside = False
        objective.trial_number = trial.number
        params = {a.name: trial.suggest_categorical(a.name, list(a.values)) for a in sweep.axes}
        key = point_key(params)
        trial.set_user_attr("key", key)
        trial.set_user_attr("mode", sweep.mode)
        trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid()})
        for stale in ("interrupted", "error"):  # inherited by a retried trial
            if stale in trial.user_attrs:
                trial.set_user_attr(stale, None)
        try:
            twin = _twin(trial.study, trial.number, key, sweep)
            while twin is not None and not is_computed(twin) and sweep.method != "grid":
                waited = twin.number  # a search: a lower-numbered trial computes this point right now
                time.sleep(poll)
                optuna.storages.fail_stale_trials(trial.study)  # its worker may have died
                twin = _twin(trial.study, trial.number, key, sweep)
                if twin is None:
                    gone = next(t for t in trial.study.get_trials(deepcopy=False) if t.number == waited)
                    if is_failed(gone) and gone.user_attrs.get("error"):
                        raise FlowError(f"point {key} failed in trial {waited}: {gone.user_attrs['error']}")
            if twin is not None:
                if is_computed(twin) and sweep.method != "grid":  # a search repeated a point: reuse its figures
                    trial.set_user_attr("same_as", twin.number)
                    return tuple(twin.values)
                trial.set_user_attr("duplicate_of", twin.number)
                objective.stepped_aside = True
                raise optuna.TrialPruned(
                    f"point {key} is {'done' if is_computed(twin) else 'running'} in trial {twin.number}")
            figures = evaluator.evaluate(params)
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            raise
        except optuna.TrialPruned:
            raise
        except Exception as exc:
            text = str(exc).strip().splitlines()
            trial.set_user_attr("error", f"{type(exc).__name__}: {text[0] if text else ''}"[:500])
            raise
        trial.set_user_attr("figures", figures)
        return tuple(float(figures[o]) for o in sweep.objectives)

    objective.stepped_aside = False  # type: ignore[attr-defined]
    objective.trial_number = None  # type: ignore[attr-defined]
    return objective


def work(sweep: Sweep, url: str, out_dir: Path, worker: int = 0, log: Any | None = None,
         on_progress: Callable[[Any], None] | None = None) -> int:
    """Run trials of the sweep's study until no point is left; returns the number of trials this worker ran.

    Several workers (processes, machines) may run this on one database at the same time.
    """
    import optuna

    storage = open_storage(url, sweep.heartbeat, queued_only=sweep.method != "grid")
    study = open_study(storage, sweep, create=False, worker=worker)
    poll = min(2.0, sweep.heartbeat / 2)
    objective = make_objective(sweep, PointEvaluator(sweep, Path(out_dir) / "points", log), poll)
    ran = 0
    with _optuna_log_to(log):
        while True:
            optuna.storages.fail_stale_trials(study)
            action = next_action(study, sweep)
            if action == "done":
                break
            if action == "wait":
                if on_progress:
                    on_progress(study)
                time.sleep(poll)
                continue
            objective.trial_number = None
            try:
                study.optimize(objective, n_trials=1, catch=(Exception,), gc_after_trial=False)
            except NoTrialSlot:  # another worker took the last queued trial: look again
                time.sleep(min(poll, 0.2))
                continue
            except optuna.exceptions.UpdateFinishedTrialError as exc:  # another worker judged it stale
                print(f"hlsflow sweep worker: {exc}; its retry decides the point", file=sys.stderr)
            except KeyboardInterrupt:  # queue the interrupted point again now, so no other process has to
                if objective.trial_number is not None:
                    requeue(study, sweep, only={objective.trial_number})
                raise
            ran += 1
            if objective.stepped_aside:  # a twin holds the point: let the state settle before asking again
                time.sleep(poll)
            if on_progress:
                on_progress(study)
    return ran


@contextlib.contextmanager
def _optuna_log_to(log: Any | None):
    """Send Optuna's messages (failed trials with their tracebacks) to ``log`` instead of the console."""
    import optuna

    if log is None:
        yield
        return
    handler = logging.StreamHandler(log)
    logger = logging.getLogger("optuna")
    optuna.logging.disable_default_handler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        optuna.logging.enable_default_handler()


def _interrupt_once(signum: int, frame: Any) -> None:
    """SIGINT handler of a worker: the first one stops the point (Ctrl-C), later ones are ignored so that
    the interrupted trial is recorded as such."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise KeyboardInterrupt


def _worker_main(sweep_path: str, url: str, out_dir: str, worker: int, log_path: str, threads: int) -> None:
    """Entry point of a spawned worker process: output to its log file, then :func:`work`."""
    signal.signal(signal.SIGINT, _interrupt_once)
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - lives as long as the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    sys.stdout = sys.stderr = log
    if threads > 0:  # read by TensorFlow when it starts (before the first point)
        os.environ["TF_NUM_INTRAOP_THREADS"] = os.environ["TF_NUM_INTEROP_THREADS"] = str(threads)
    try:
        n = work(load_sweep(sweep_path), url, Path(out_dir), worker)
        print(f"worker {worker} (pid {os.getpid()}): ran {n} trials", flush=True)
    except KeyboardInterrupt:
        sys.exit(130)


def progress_bar(sweep: Sweep, study: Any, enabled: bool) -> tuple[Any, Callable[[Any], None]]:
    from tqdm import tqdm

    c = counts(study, sweep)
    bar = tqdm(total=c.target, initial=min(c.target, c.done + c.failed), desc=f"sweep {sweep.name}", unit="point",
               file=sys.stderr, disable=not enabled, dynamic_ncols=True)

    def refresh(study: Any) -> None:
        c = counts(study, sweep)
        bar.n = min(c.target, c.done + c.failed)
        bar.set_postfix(running=c.running, failed=c.failed, refresh=False)
        bar.refresh()

    return bar, refresh


def run_workers(sweep: Sweep, url: str, out_dir: Path, workers: int, study: Any,
                 refresh: Callable[[Any], None]) -> None:
    """Spawn ``workers`` processes (TensorFlow is not fork-safe) and wait for them, updating the bar."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    logs = out_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    threads = max(1, (os.cpu_count() or 1) // workers)
    host = socket.gethostname()
    procs, log_paths = [], []
    for i in range(workers):
        log_path = logs / f"worker-{host}-{os.getpid()}-{i}.log"
        p = ctx.Process(target=_worker_main, name=f"hlsflow-sweep-worker-{i}",
                        args=(str(sweep.path), url, str(out_dir), i, str(log_path), threads))
        p.start()
        procs.append(p)
        log_paths.append(log_path)
    try:
        while any(p.is_alive() for p in procs):
            time.sleep(1.0)
            refresh(study)
    except KeyboardInterrupt:  # Ctrl-C reaches the workers too; forward it in case only we got it
        deadline = time.time() + 30
        for p in procs:
            if p.is_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGINT)
        for p in procs:
            p.join(max(0.1, deadline - time.time()))
            if p.is_alive():
                p.terminate()
        raise
    for p, log_path in zip(procs, log_paths):
        p.join()
        if p.exitcode not in (0, None):
            print(f"hlsflow sweep: worker {p.name} (pid {p.pid}) ended with exit code {p.exitcode} (log: {log_path}); "
                  f"a point it was running is retried once its heartbeat is stale", file=sys.stderr)
