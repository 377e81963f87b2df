"""A local QStash-compatible server: the v2 REST API, signed delivery, SQLite state.

Run it with ``python -m qstash_server --port 8080`` or ``migrator dev qstash``. It is a separate
package from the toolkit (``pip install 'kafka-qstash-migrator[server]'``) and imports nothing
from ``migrator`` but the shared, pure QStash tier definitions (``migrator.qstash_tiers``).
"""

from __future__ import annotations

import importlib.util

from qstash_server.settings import ServerSettings

__all__ = ["EXTRA", "REQUIRED_MODULES", "ServerSettings", "missing_dependencies"]

EXTRA = "kafka-qstash-migrator[server]"
# what the server imports beyond the toolkit's own dependencies (uvloop/httptools are optional)
REQUIRED_MODULES = ("starlette", "uvicorn", "jwt", "croniter", "orjson", "httpx")


def missing_dependencies() -> str | None:
    """One line naming what is missing and how to install it, or None when the server can run."""
    missing = [name for name in REQUIRED_MODULES if importlib.util.find_spec(name) is None]
    if not missing:
        return None
    return (f"the local QStash server needs the 'server' extra ({', '.join(missing)} not installed); "
            f"install it with: pip install '{EXTRA}'")
