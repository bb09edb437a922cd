"""A client-side bound on a block of code: the wait a frozen dependency imposes ends with ``DeadlineExceeded``.

A server stopped by SIGSTOP (or a VM paused, a network black hole behind a NAT) still has a kernel that accepts
connections and acknowledges data: connect, statement and TCP keepalive timeouts never fire, and a read on an
already-open connection waits forever. Only the client can bound that wait: ``deadline(seconds)`` arms a
``SIGALRM`` timer, and the handler raises in whatever the block is waiting in (psycopg's wait loop, a socket
read, ``time.sleep``).

Signals reach only the main thread, so the bound applies there alone (a gunicorn sync worker runs each request
in its main thread); in any other thread ``deadline`` arms nothing. A timer already armed
by someone else (pytest-timeout, an outer ``deadline``) is put back, minus the time spent, when the block ends.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

# Once the deadline has passed, the alarm fires again at this interval until the block ends: code that catches
# the first exception (a rollback in transaction.atomic, a retry loop) and then waits again is interrupted too.
REPEAT_SECONDS = 0.5


class DeadlineExceeded(Exception):  # noqa: N818 - it reads as what happened, like TimeoutError
    """The block ran past its deadline. Deliberately not a ``KeyboardInterrupt``: on one of those psycopg sends a
    cancel to the server and waits for its answer, which a frozen server never gives."""


def can_bound() -> bool:
    """Whether ``deadline`` can bound code running in this thread (only the main thread receives signals)."""
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


class Bound:
    """What ``deadline`` yields: whether the bound is armed, whether it expired (the alarm fired), and the
    top-level packages of the code the first alarm interrupted (``{"psycopg", "django", ...}``): what the block
    was waiting on."""

    def __init__(self, *, armed: bool) -> None:
        self.armed = armed
        self.expired = False
        self.waiting_in: frozenset[str] = frozenset()


def _packages(frame: FrameType | None) -> frozenset[str]:
    packages = set()
    while frame is not None:
        packages.add(str(frame.f_globals.get("__name__", "")).partition(".")[0])
        frame = frame.f_back
    return frozenset(packages)


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[Bound]:
    """Raises ``DeadlineExceeded`` in the block once it has run ``seconds`` (and every ``REPEAT_SECONDS`` after).

    The ``Bound`` yielded is not armed when ``seconds`` is not positive or outside the main thread.
    """
    if seconds <= 0 or not can_bound():
        yield Bound(armed=False)
        return
    bound = Bound(armed=True)

    def _raise(signum: int, frame: FrameType | None) -> None:
        if not bound.expired:
            bound.expired = True
            bound.waiting_in = _packages(frame)
        raise DeadlineExceeded(f"deadline of {seconds:g} s exceeded")

    started = time.monotonic()
    previous_handler = signal.signal(signal.SIGALRM, _raise)
    previous_delay, previous_interval = signal.setitimer(signal.ITIMER_REAL, seconds, REPEAT_SECONDS)
    try:
        yield bound
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)
        if previous_delay > 0:
            # The outer timer keeps its own deadline; one already due fires at once rather than never.
            remaining = max(previous_delay - (time.monotonic() - started), 0.001)
            signal.setitimer(signal.ITIMER_REAL, remaining, previous_interval)
