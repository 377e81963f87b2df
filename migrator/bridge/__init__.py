"""The bridge: consume Kafka, deliver every record over HTTP (through QStash or directly)."""

from __future__ import annotations

__all__: list[str] = []
