"""The bridge's I/O: Kafka source, QStash / HTTP / workflow sinks, payload codecs, dead letters."""

from __future__ import annotations

__all__: list[str] = []
