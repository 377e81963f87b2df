"""librdkafka's own log lines, routed to Python logging at DEBUG (noise for a user)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["librdkafka_logger"]


class _LibrdkafkaLog:
    """Routes librdkafka's log lines to Python logging at DEBUG: they are noise for a user."""

    def __init__(self, name: str) -> None:
        self._log = logging.getLogger(name)

    def log(self, level: int, msg: str, *args: Any) -> None:
        self._log.debug(msg, *args)


def librdkafka_logger() -> Any:
    """A ``logger`` for librdkafka client configs that keeps its chatter out of the terminal."""
    return _LibrdkafkaLog("migrator.kafka.librdkafka")
