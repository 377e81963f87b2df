"""A local QStash-compatible server: the v2 REST API, signed delivery, SQLite state.

Run it with ``python -m migrator.qstash_server --port 8080`` or ``migrator dev qstash``.
"""

from __future__ import annotations

from migrator.qstash_server.settings import ServerSettings

__all__ = ["ServerSettings"]
