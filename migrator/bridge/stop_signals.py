"""SIGTERM/SIGINT for ``migrator bridge run``, handled from the command's first line.

The handlers go in before the command's heavy imports (librdkafka, httpx, the config models) and
before the bridge exists: a stop requested in that window is remembered and handed to the bridge
(or the gated bridges) once it is attached, so it still ends in the two-phase shutdown (stop
polling, drain, commit, leave the group) and exit status 0, never in a default-action death (-15).
A second SIGINT exits at once (status 130).

Installing also unblocks SIGTERM/SIGINT: a supervisor (or a test) that starts the bridge with
them blocked gets a signal sent during start-up delivered here, not lost or fatal.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

__all__ = ["StopSignals"]

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopSignals:
    """Remember a stop request and pass it to whatever :meth:`attach` names (safe from handlers)."""

    def __init__(self) -> None:
        self._requested = threading.Event()
        self._stop: Callable[[], None] | None = None

    @classmethod
    def install(cls) -> StopSignals:
        """Handle SIGTERM/SIGINT from now on (main thread only, as any signal handler)."""
        signals = cls()
        for signum in _SIGNALS:
            signal.signal(signum, signals._handle)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        return signals

    @property
    def requested(self) -> bool:
        return self._requested.is_set()

    def attach(self, stop: Callable[[], None]) -> None:
        """Route stop requests to ``stop``; one requested already is passed on now."""
        self._stop = stop
        if self._requested.is_set():
            stop()

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        if self._requested.is_set() and signum == signal.SIGINT:
            os._exit(130)
        self._requested.set()
        log.info("stop requested (%s): draining and committing (send SIGINT again to exit at once)",
                 signal.Signals(signum).name)
        if self._stop is not None:
            self._stop()
