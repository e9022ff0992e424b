"""Child processes that die with hlsflow: the one place that starts external tools.

Two guards, because ``kill -9`` of hlsflow gives it no chance to clean up:

1. Every child started here (:func:`run`, :func:`popen`) gets its own process group and the Linux
   parent-death signal ``PR_SET_PDEATHSIG = SIGKILL`` (``prctl`` through ctypes, in ``preexec_fn``):
   the kernel kills it the moment the thread that started it dies. Ctrl-C (or any exception) while
   waiting kills the child's whole group (SIGINT first, SIGKILL after a grace period).
2. The parent-death signal reaches only the direct child, not what it starts (Yosys's ``yosys-abc``,
   ``make`` -> ``g++``, hls4ml's own ``g++`` build, cocotb's simulator), and third-party code starts
   processes without this module. So :func:`guard_children` (called by the CLI at start) marks this
   process's environment with a token (``HLSFLOW_OWNERS``, inherited by every descendant whoever starts
   it) and starts a small watchdog, :mod:`flow.core.reaper`, in its own session. The watchdog holds the read
   end of a pipe whose write end only this process has; when this process ends, however it ends, the
   pipe closes and the watchdog SIGKILLs every process whose environment carries the token.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import IO, Any

OWNERS_VAR = "HLSFLOW_OWNERS"
PR_SET_PDEATHSIG = 1
GRACE_SECONDS = 5.0

_libc = ctypes.CDLL(None, use_errno=True)  # loaded here, not in the forked child
_prctl = _libc.prctl
_reaper: subprocess.Popen | None = None
_reaper_pid_owner: int | None = None
_lock = threading.Lock()
_live: set[subprocess.Popen] = set()  # children of :func:`run` still being waited for (any thread)


def _die_with_parent(parent_pid: int) -> None:
    """``preexec_fn``: SIGKILL this child when its parent dies; exit now if the parent is already gone."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        os._exit(1)


def guard_children() -> None:
    """Make every descendant of this process, whoever starts it, die when this process dies (idempotent).

    Adds this process's token to ``HLSFLOW_OWNERS`` in ``os.environ`` and starts the watchdog. A forked
    copy of this process (pid changed) gets a token and a watchdog of its own.
    """
    global _reaper, _reaper_pid_owner
    with _lock:
        if _reaper is not None and _reaper_pid_owner == os.getpid() and _reaper.poll() is None:
            return
        token = f"{os.getpid()}.{secrets.token_hex(6)}"
        owners = [t for t in os.environ.get(OWNERS_VAR, "").split() if t]
        os.environ[OWNERS_VAR] = " ".join([*owners, token])
        _reaper = subprocess.Popen(
            [sys.executable, "-S", "-m", "flow.core.reaper", token], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True,
            env={**os.environ, "PYTHONPATH": _flow_root()},
        )
        _reaper_pid_owner = os.getpid()


def _flow_root() -> str:
    import flow

    return os.path.dirname(os.path.dirname(os.path.abspath(flow.__file__)))


def popen(cmd: list[str], **kwargs: Any) -> subprocess.Popen:
    """``subprocess.Popen`` in a new process group with the parent-death signal set (see the module doc)."""
    guard_children()
    kwargs.setdefault("process_group", 0)
    return subprocess.Popen(cmd, preexec_fn=lambda pid=os.getpid(): _die_with_parent(pid), **kwargs)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``proc``'s process group (its own, from :func:`popen`); ignore one that is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)


def _stop(proc: subprocess.Popen, interrupted: bool) -> None:
    """Stop ``proc``'s group: SIGINT and a grace period after Ctrl-C (the child cleans up), else SIGKILL."""
    if interrupted and proc.poll() is None:
        kill_group(proc, signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(GRACE_SECONDS)
    kill_group(proc, signal.SIGKILL)
    proc.wait()


def run(cmd: list[str], *, input: str | bytes | None = None, timeout: float | None = None, check: bool = False,
        capture_output: bool = False, started: Callable[[subprocess.Popen], None] | None = None,
        **kwargs: Any) -> subprocess.CompletedProcess:
    """Like ``subprocess.run`` (same arguments), with the child started by :func:`popen`.

    ``started(proc)`` is called once the child runs (e.g. to watch its process group, whose id is ``proc.pid``).

    ``stdout``/``stderr`` may be text streams without a file descriptor (pytest's capture): their output
    is then forwarded through pipes as it arrives. Raises ``subprocess.TimeoutExpired`` after
    ``timeout`` seconds and ``CalledProcessError`` with ``check``, as ``subprocess.run`` does; on
    timeout, Ctrl-C or any other exception the child's whole process group is stopped.
    """
    if capture_output:
        kwargs["stdout"] = kwargs["stderr"] = subprocess.PIPE
    forward = {name: kwargs[name] for name in ("stdout", "stderr") if _needs_forwarding(kwargs.get(name))}
    for name in forward:
        kwargs[name] = subprocess.PIPE
    if input is not None:
        kwargs["stdin"] = subprocess.PIPE
    proc = popen(cmd, **kwargs)
    with _lock:
        _live.add(proc)
    try:
        if started is not None:
            started(proc)
        if forward:
            out, err = _forward(proc, forward, timeout)
        else:
            out, err = proc.communicate(input, timeout=timeout)
    except BaseException as exc:
        _stop(proc, isinstance(exc, KeyboardInterrupt))
        raise
    finally:
        with _lock:
            _live.discard(proc)
    result = subprocess.CompletedProcess(cmd, proc.returncode, out, err)
    if check:
        result.check_returncode()
    return result


def stop_all(interrupted: bool) -> None:
    """Stop every child :func:`run` is waiting for in any thread (a Ctrl-C or SIGTERM reaches only the main
    thread, while worker threads wait for their tools, e.g. the two Yosys runs of
    :func:`flow.physical.estimate.yosys_estimate`): SIGINT to their groups and up to ``GRACE_SECONDS`` when
    ``interrupted``, then SIGKILL. The waiting threads then return."""
    import time

    with _lock:
        procs = list(_live)
    if interrupted:
        for proc in procs:
            kill_group(proc, signal.SIGINT)
        deadline = time.monotonic() + GRACE_SECONDS
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline:
            time.sleep(0.05)
    for proc in procs:
        kill_group(proc, signal.SIGKILL)


def _needs_forwarding(stream: Any) -> bool:
    if stream is None or isinstance(stream, int):
        return False
    try:
        stream.fileno()
        return False
    except (AttributeError, OSError, ValueError):
        return True


def _forward(proc: subprocess.Popen, streams: dict[str, IO[str]], timeout: float | None) -> tuple[Any, Any]:
    """Copy the child's piped stdout/stderr into ``streams`` (text) as it arrives; wait for the child."""
    def pump(pipe: IO[bytes], dest: IO[str]) -> None:
        for chunk in iter(lambda: pipe.read1(65536), b""):
            dest.write(chunk.decode(errors="replace"))
            dest.flush()

    threads = [threading.Thread(target=pump, args=(getattr(proc, name), dest), daemon=True)
               for name, dest in streams.items()]
    for t in threads:
        t.start()
    proc.wait(timeout)
    for t in threads:
        t.join()
    return None, None


@contextlib.contextmanager
def guarded() -> Iterator[None]:
    """``with guarded():`` run code that starts processes itself (hls4ml, cocotb) under :func:`guard_children`."""
    guard_children()
    yield
