"""The local QStash server's own errors (it imports nothing from the toolkit's error tree).

``python -m qstash_server`` turns a ``ServerConfigError`` into one line on stderr and exit code 3;
``migrator dev qstash`` maps it to the toolkit's ``ConfigError`` (also exit 3) at its CLI edge.
"""

from __future__ import annotations

__all__ = ["EXIT_CONFIG", "ServerConfigError", "ServerError"]

EXIT_CONFIG = 3


class ServerError(Exception):
    """Root of the local QStash server's errors."""


class ServerConfigError(ServerError):
    """A bad option or an unusable database path: one line saying what, where and how to fix."""
