"""The cluster section: id, controller, brokers."""

from __future__ import annotations

from migrator.inventory import BrokerInfo, ClusterInfo
from migrator.kafka.admin import KafkaAdmin

__all__ = ["collect_cluster"]


def collect_cluster(admin: KafkaAdmin, bootstrap_servers: str) -> ClusterInfo:
    """Describe the cluster; the audit's first call, so an unreachable cluster fails here, fast."""
    desc = admin.describe_cluster()
    return ClusterInfo(
        cluster_id=desc.cluster_id,
        controller_id=desc.controller_id,
        brokers=[BrokerInfo(id=b.id, host=b.host, port=b.port, rack=b.rack) for b in desc.brokers],
        bootstrap_servers=bootstrap_servers,
    )
