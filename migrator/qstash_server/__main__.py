"""``python -m migrator.qstash_server --port N ...``: see ``migrator.qstash_server.cli``."""

from __future__ import annotations

import sys

from migrator.errors import ConfigError
from migrator.qstash_server.cli import qstash_command

__all__: list[str] = []

if __name__ == "__main__":
    try:
        qstash_command.main(prog_name="python -m migrator.qstash_server", standalone_mode=True)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(3)
