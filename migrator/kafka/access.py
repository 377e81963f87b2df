"""Access denials: a request Kafka's authorizer refused, kept as data instead of aborting.

A read-only audit principal in production seldom holds every ACL. Kafka hides the topics it may
not Describe from metadata; for the rest (a group it may not Describe, a topic whose configs it
may not DescribeConfigs or whose records it may not Read, the cluster) the broker answers with an
authorization error per resource. :func:`denial_for` turns such an error into an
:class:`AccessDenied` (``None`` for any other error); the audit reports each one as a
``PERMISSION_DENIED`` finding and keeps the rest of the report complete.

Authentication failures are not denials: they stay fatal. Which codes are which is decided in
:mod:`migrator.kafka.errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

from migrator.kafka.errors import ResourceKind, authorization_resource

__all__ = ["CLUSTER_RESOURCE", "AccessDenied", "ResourceKind", "denial_for"]

CLUSTER_RESOURCE = "kafka-cluster"


@dataclass(frozen=True, order=True)
class AccessDenied:
    """Kafka refused ``operation`` (an ACL operation name: Describe, DescribeConfigs, Read) on
    one resource while the audit was doing ``what`` (e.g. "reading its committed offsets")."""

    resource: ResourceKind
    name: str
    operation: str
    what: str


def denial_for(code: int, *, operation: str, what: str, topic: str | None = None,
               group: str | None = None) -> AccessDenied | None:
    """The denial an error code means for the resource named in the request, else ``None``.

    The error's kind says which resource was refused: a topic error names ``topic``, a group
    error ``group``, a cluster error the cluster (operation Describe unless given otherwise).
    """
    kind = authorization_resource(code)
    if kind == "topic":
        return AccessDenied("topic", topic or "*", operation, what)
    if kind == "group":
        return AccessDenied("group", group or "*", operation, what)
    if kind == "cluster":
        return AccessDenied("cluster", CLUSTER_RESOURCE, operation, what)
    return None
