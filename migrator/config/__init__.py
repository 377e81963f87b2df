"""Connection settings, validated once at the edge into frozen models.

``KafkaConnection`` is built from flags, environment, a Java client properties file and ``-X``
pass-through, and becomes librdkafka's dict in exactly one place: :meth:`KafkaConnection.to_librdkafka`.
Secrets are ``SecretStr``: they print as ``**********`` and never reach logs or reports.

One module per concept, re-exported here (callers import from ``migrator.config``):

- :mod:`~migrator.config.frozen`: the base of every settings model;
- :mod:`~migrator.config.services`: REST services (registry, Connect) and QStash;
- :mod:`~migrator.config.kafka_connection`: a Kafka cluster and librdkafka's configuration of it;
- :mod:`~migrator.config.client_properties`: Java client properties (JAAS, TLS stores) onto it;
- :mod:`~migrator.config.msk_iam`: AWS MSK IAM (the ``msk`` extra's token signer as ``oauth_cb``);
- :mod:`~migrator.config.java_properties`: ``.properties`` files and ``-X`` options;
- :mod:`~migrator.config.redaction`: what is secret, and copies safe to print.
"""

from __future__ import annotations

from migrator.config.java_properties import parse_properties, parse_x_options
from migrator.config.kafka_connection import KafkaConnection, LibrdkafkaConfig, SaslMechanism, SecurityProtocol
from migrator.config.redaction import redact, redact_url
from migrator.config.services import UPSTASH_URL, BasicAuth, QStashConnection, RestConnection

__all__ = [
    "UPSTASH_URL",
    "BasicAuth",
    "KafkaConnection",
    "LibrdkafkaConfig",
    "QStashConnection",
    "RestConnection",
    "SaslMechanism",
    "SecurityProtocol",
    "parse_properties",
    "parse_x_options",
    "redact",
    "redact_url",
]
