"""Cutover: hand each replaced consumer group from its Kafka consumers to the bridge, and back."""

from __future__ import annotations

__all__: list[str] = []
