"""SIGINT and SIGTERM as exceptions, so an interrupted command cleans up like a failed one.

Python turns SIGINT into KeyboardInterrupt but SIGTERM (what ``kill``, timeouts and job
schedulers send) ends the process at once, leaving temporary files behind. Inside
:func:`signals_as_exceptions` both raise :class:`Interrupted`, which unwinds every ``with``
block (``atomic_output`` removes its temporary file); the command then exits with the
shell's status for the signal, 128 + its number (130 for SIGINT, 143 for SIGTERM).
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading
from typing import Iterator

HANDLED = (signal.SIGINT, signal.SIGTERM)


class Interrupted(KeyboardInterrupt):
    """The command was stopped by a signal; ``exit_status`` is 128 + the signal number."""

    def __init__(self, signum: int):
        super().__init__(f"interrupted by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_status = 128 + signum


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Within the block, SIGINT and SIGTERM raise :class:`Interrupted` (once: later signals
    are ignored, so the clean-up they started is not itself interrupted). The previous
    handlers come back on exit. Outside the main thread (where Python cannot install
    handlers) the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in HANDLED}

    def raise_interrupted(signum, frame):
        for s in HANDLED:
            signal.signal(s, signal.SIG_IGN)
        raise Interrupted(signum)

    for s in HANDLED:
        signal.signal(s, raise_interrupted)
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler if handler is not None else signal.SIG_DFL)


def report_interrupt(command: str, error: KeyboardInterrupt, detail: str = "") -> int:
    """Print the one line saying which signal stopped ``command``; return the exit status."""
    signum = error.signum if isinstance(error, Interrupted) else int(signal.SIGINT)
    print(f"audiograd {command}: interrupted by {signal.Signals(signum).name}{detail}", file=sys.stderr)
    return 128 + signum
