"""The watchdog of :func:`flow.core.procs.guard_children`: ``python -S -m flow.core.reaper TOKEN`` (standard library only).

It waits until its standard input reaches end of file, which happens when the hlsflow process that
started it ends (normally, by an exception, or by ``kill -9``: the kernel closes the pipe), then sends
SIGKILL to every process whose environment's ``HLSFLOW_OWNERS`` holds ``TOKEN`` (every descendant of
that hlsflow process, whoever started it), rounds after rounds until none is left (a child may fork
while it is being killed), and exits. It runs in its own session, so Ctrl-C in the terminal or a
signal to hlsflow's process group does not stop it first.
"""

from __future__ import annotations

import os
import signal
import sys
import time

OWNERS_VAR = b"HLSFLOW_OWNERS="


def marked(token: str, me: int) -> list[int]:
    """Pids of live processes (not ``me``) whose initial environment lists ``token`` in ``HLSFLOW_OWNERS``."""
    found = []
    want = token.encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                env = f.read()
        except OSError:  # gone, or not ours
            continue
        for var in env.split(b"\0"):
            if var.startswith(OWNERS_VAR) and want in var[len(OWNERS_VAR):].split():
                found.append(int(entry))
                break
    return found


def reap(token: str, rounds: int = 50, pause: float = 0.05) -> int:
    """SIGKILL every process marked with ``token`` until none is left; returns how many were killed."""
    killed = 0
    me = os.getpid()
    for _ in range(rounds):
        victims = marked(token, me)
        if not victims:
            break
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        time.sleep(pause)
    return killed


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    token = argv[0]
    while sys.stdin.buffer.read(4096):
        pass
    reap(token)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
