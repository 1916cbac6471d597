"""SIGINT and SIGTERM while a lab starts or stops: noted, then acted on where it is safe.

A signal that lands between "started a process" and "wrote its pid down", or halfway
through tearing the lab down, is how a lab leaks namespaces and daemons. So while a lab
starts, a signal is only noted and `checkpoint()` (called between steps: each node made,
each hypervisor started, each poll of a wait) raises Interrupted; while it stops, a signal
is noted and nothing else (stop always finishes). At other times (checks running, the
Mininet CLI) SIGINT is a KeyboardInterrupt and SIGTERM raises Interrupted at once.

    interrupts.install()           # the CLI, once, in the main thread
    with interrupts.deferred():    # Lab.start / Lab.stop
        ...; interrupts.checkpoint(); ...
"""
from __future__ import annotations

import contextlib
import signal
import threading

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"interrupted by {signal.Signals(signum).name}")

    @property
    def exit_code(self) -> int:
        return 128 + self.signum


_state = {"installed": False, "deferring": 0, "pending": None}


def _handler(signum, frame):
    if _state["deferring"]:
        _state["pending"] = _state["pending"] or signum
        return
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise Interrupted(signum)


def install() -> None:
    """Take over SIGINT and SIGTERM for this process (main thread only)."""
    for s in SIGNALS:
        signal.signal(s, _handler)
    _state["installed"] = True


@contextlib.contextmanager
def deferred():
    """Signals inside are only noted. No-op outside the main thread or before install()."""
    if not _state["installed"] or threading.current_thread() is not threading.main_thread():
        yield
        return
    _state["deferring"] += 1
    try:
        yield
    finally:
        _state["deferring"] -= 1


def pending() -> int | None:
    return _state["pending"]


def checkpoint() -> None:
    """Raise Interrupted if a signal came while deferred (and forget it: it is handled)."""
    signum = _state["pending"]
    if signum:
        _state["pending"] = None
        raise Interrupted(signum)
