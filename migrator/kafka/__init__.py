"""Narrow wrappers around confluent-kafka: the only place the toolkit touches librdkafka clients."""

from __future__ import annotations

__all__: list[str] = []
