"""``python -m qstash_server --port N ...``: see ``qstash_server.cli``."""

from __future__ import annotations

import sys

from qstash_server.errors import EXIT_CONFIG, ServerConfigError

__all__: list[str] = []

if __name__ == "__main__":
    from qstash_server import missing_dependencies

    missing = missing_dependencies()
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
    from qstash_server.cli import qstash_command

    try:
        qstash_command.main(prog_name="python -m qstash_server", standalone_mode=True)
    except ServerConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(EXIT_CONFIG)
