"""SIGTERM and SIGHUP take the Ctrl-C path: what ``timeout``, CI cancellation and a closed terminal send.

:func:`terminate_like_interrupt` (the CLI, for the whole command) turns either signal into
:class:`Terminated`, a ``KeyboardInterrupt``: every clean-up written for Ctrl-C runs (the staging folder is
removed and the previous project stays, :mod:`flow.core.staging`; child tools get SIGINT and a grace period,
then SIGKILL, :mod:`flow.core.procs`), and the command exits with ``128 + signal`` (130 SIGINT, 129 SIGHUP,
143 SIGTERM) after one line. After the first such signal both are ignored, so a second one cannot cut
the clean-up short (``kill -9`` still can; :mod:`flow.core.reaper` then stops the children).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process got ``signum`` (SIGTERM or SIGHUP); handled like Ctrl-C."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    for sig in HANDLED:
        signal.signal(sig, signal.SIG_IGN)
    raise Terminated(signum)


@contextlib.contextmanager
def terminate_like_interrupt() -> Iterator[None]:
    """While inside, SIGTERM and SIGHUP raise :class:`Terminated` (main thread only; elsewhere nothing changes).
    The previous handlers are restored on exit."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _raise_terminated) for sig in HANDLED}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def exit_code(exc: KeyboardInterrupt) -> int:
    """``128 + signal``: 130 for Ctrl-C (SIGINT), 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + getattr(exc, "signum", signal.SIGINT)


def interruption(exc: KeyboardInterrupt) -> str:
    """How the command was stopped, for its one line: ``interrupted`` or ``terminated by SIGTERM``."""
    signum = getattr(exc, "signum", None)
    return "interrupted" if signum is None else f"terminated by {signal.Signals(signum).name}"
