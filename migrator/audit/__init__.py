"""`migrator audit`: inventory a live Kafka estate and report what maps to QStash.

Modules, one per concept: cluster, topics, groups, records, throughput, registry, connect
(collectors); findings (the rules); report (table, JSON, Markdown renderers) and html (the
self-contained HTML report); progress; runner (orchestration into an Inventory).
"""

from __future__ import annotations

from migrator.audit.runner import AuditOptions, run_audit

__all__ = ["AuditOptions", "run_audit"]
