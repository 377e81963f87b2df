"""A live one-line status on a terminal (stderr), and JSON log lines on request."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from migrator.bridge.runner import Bridge, BridgeStats

__all__ = ["JsonFormatter", "StatusLine", "summary_line"]


def _n(count: int, one: str, many: str | None = None) -> str:
    return f"{count:,} {one if count == 1 else (many or one + 's')}"


def summary_line(stats: BridgeStats) -> str:
    """What a bridge did, each count with its unit: records read from Kafka; messages sent (one
    per record and destination: a QStash publish or enqueue, or a direct POST); QStash then makes
    one delivery per endpoint of a URL group's message."""
    return (f"{_n(stats.received, 'record')} read, {_n(stats.delivered, 'message')} sent (one "
            "per record and destination; QStash delivers a URL-group message to each endpoint of "
            f"the group), {_n(stats.dead_lettered, 'record')} dead-lettered, "
            f"{_n(stats.skipped, 'tombstone')} skipped, {_n(stats.retries, 'retry', 'retries')}")


class StatusLine:
    """Rewrites one stderr line about once a second while the bridge runs (TTY only)."""

    def __init__(self, stream: TextIO | None = None, interval: float = 1.0) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty()
        self.interval = interval
        self._last = 0.0
        self._last_delivered = 0

    def render(self, bridge: Bridge, rate: float) -> str:
        s = bridge.stats
        return (
            f"{_n(s.received, 'record')} read  {_n(s.delivered, 'message')} sent "
            f"({rate:,.0f}/s)  {_n(s.dead_lettered, 'record')} dead-lettered  "
            f"{_n(s.retries, 'retry', 'retries')}  {_n(bridge.in_flight, 'message')} in flight  "
            f"{_n(bridge.paused_count, 'partition')} paused"
        )

    def tick(self, bridge: Bridge) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if now - self._last < self.interval:
            return
        elapsed = now - self._last if self._last else 1.0
        rate = (bridge.stats.delivered - self._last_delivered) / elapsed
        self._last, self._last_delivered = now, bridge.stats.delivered
        self.stream.write("\r\x1b[2K" + self.render(bridge, rate))
        self.stream.flush()

    def close(self) -> None:
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()


class JsonFormatter(logging.Formatter):
    """One JSON object per log line: ts, level, logger, message (+ exc when present)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps(data)
