"""The server is its own package: it imports only the shared tier definitions from the toolkit,
and the toolkit never imports what only the server needs (the ``server`` extra).

The import-linter contracts state the first rule too; the second is about third-party packages.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SERVER_ONLY = {"starlette", "uvicorn", "jwt", "uvloop", "httptools"}
ALLOWED_FROM_TOOLKIT = {"migrator.qstash_tiers"}


def _imports(package: str) -> Iterator[tuple[Path, str]]:
    for path in sorted((ROOT / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    yield path, alias.name
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                yield path, node.module


def test_server_imports_nothing_from_the_toolkit_but_the_tiers() -> None:
    found = [(str(p.relative_to(ROOT)), m) for p, m in _imports("qstash_server")
             if m.split(".")[0] in ("migrator", "connectors") and m not in ALLOWED_FROM_TOOLKIT]
    assert found == []


def test_toolkit_never_imports_what_only_the_server_needs() -> None:
    # the local stack (migrator.stack) is installed with the `stack` extra, which includes the
    # server's: its OIDC issuer signs tokens with pyjwt
    found = [(str(p.relative_to(ROOT)), m) for package in ("migrator", "connectors")
             for p, m in _imports(package) if m.split(".")[0] in SERVER_ONLY
             and not str(p.relative_to(ROOT)).startswith("migrator/stack/")]
    assert found == []
