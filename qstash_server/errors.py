"""The local QStash server's own errors (it imports nothing from the toolkit's error tree).

``python -m qstash_server`` turns a ``ServerConfigError`` into one line on stderr and exit code 3;
``migrator dev qstash`` maps it to the toolkit's ``ConfigError`` (also exit 3) at its CLI edge.
"""

from __future__ import annotations

__all__ = ["EXIT_CONFIG", "ServerConfigError", "ServerError", "StorageError"]

EXIT_CONFIG = 3


class ServerError(Exception):
    """Root of the local QStash server's errors."""


class ServerConfigError(ServerError):
    """A bad option or an unusable database path: one line saying what, where and how to fix."""


class StorageError(ServerError):
    """The state file could not be written (disk full, file size limit, I/O error): the
    changes are held and written by a later commit; until then no request is acknowledged."""
