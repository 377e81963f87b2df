"""Progress of slow audit steps: a protocol the core calls, a terminal renderer the CLI picks.

Core code only calls :class:`Progress`; the CLI decides whether anything is drawn (stderr is a
terminal) so pipes, files and CI logs stay clean.
"""

from __future__ import annotations

import time
from typing import Protocol, TextIO

__all__ = ["NullProgress", "Progress", "TerminalProgress"]


class Progress(Protocol):
    def step(self, label: str, total: int | None = None) -> None:
        """A new step begins (``total`` units of work, if known)."""

    def advance(self, n: int = 1) -> None:
        """``n`` units of the current step are done."""

    def finish(self) -> None:
        """The audit is over: clear whatever was drawn."""


class NullProgress:
    """Draws nothing."""

    def step(self, label: str, total: int | None = None) -> None:
        return None

    def advance(self, n: int = 1) -> None:
        return None

    def finish(self) -> None:
        return None


class TerminalProgress:
    """One self-rewriting status line on a terminal stream (stderr)."""

    def __init__(self, stream: TextIO, *, min_interval: float = 0.1) -> None:
        self._stream = stream
        self._label = ""
        self._total: int | None = None
        self._done = 0
        self._started = time.monotonic()
        self._last = 0.0
        self._min_interval = min_interval
        self._width = 0

    def step(self, label: str, total: int | None = None) -> None:
        self._label, self._total, self._done = label, total, 0
        self._started = time.monotonic()
        self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        self._done += n
        self._draw()

    def _draw(self, *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < self._min_interval:
            return
        self._last = now
        elapsed = now - self._started
        if self._total:
            width = 24
            filled = int(width * min(self._done, self._total) / self._total)
            bar = "█" * filled + "░" * (width - filled)
            line = f"  {self._label:<28} {bar} {self._done}/{self._total}  {elapsed:4.0f}s"
        else:
            spinner = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"[int(elapsed * 10) % 10]
            count = f" {self._done}" if self._done else ""
            line = f"  {spinner} {self._label}{count}  {elapsed:4.0f}s"
        pad = max(0, self._width - len(line))
        self._width = len(line)
        self._stream.write("\r" + line + " " * pad)
        self._stream.flush()

    def finish(self) -> None:
        if self._width:
            self._stream.write("\r" + " " * self._width + "\r")
            self._stream.flush()
        self._width = 0
