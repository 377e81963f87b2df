"""`migrator audit`: inventory a live Kafka estate and report what maps to QStash.

Modules, one per concept: cluster, topics, groups, records, throughput, registry, connect
(collectors); findings (the rules); report (table, JSON, Markdown renderers) and html (the
self-contained HTML report); progress; runner (orchestration into an Inventory).

``run_audit`` and ``AuditOptions`` are loaded on first use, so the pure rules
(``migrator.audit.findings``, which ``migrator plan`` shares) import without the Kafka client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrator.audit.runner import AuditOptions, run_audit

__all__ = ["AuditOptions", "run_audit"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from migrator.audit import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'migrator.audit' has no attribute {name!r}")
