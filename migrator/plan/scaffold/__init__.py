"""Files generated beside the plan: bridge.yaml, RUNBOOK.md and endpoint scaffolds."""

from __future__ import annotations

from migrator.plan.scaffold.bridge import bridge_config, bridge_yaml
from migrator.plan.scaffold.endpoints import endpoint_files
from migrator.plan.scaffold.runbook import runbook

__all__ = ["bridge_config", "bridge_yaml", "endpoint_files", "runbook"]
