"""The local stack: real Kafka (KRaft), Apicurio Registry, Kafka Connect and the local QStash server
on 127.0.0.1, started from Maven Central jars (or, optionally, containers)."""

from __future__ import annotations

from migrator.stack.local import ServerStatus, down, logs, status, up
from migrator.stack.state import StackInfo, default_run_dir, load_state

__all__ = ["ServerStatus", "StackInfo", "default_run_dir", "down", "load_state", "logs", "status", "up"]
