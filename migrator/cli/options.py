"""Click options more than one command declares the same way: the Kafka connection, and the
Schema Registry and Kafka Connect services beside it (``audit``, ``doctor``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click

__all__ = ["kafka_options", "service_options"]

F = TypeVar("F", bound=Callable[..., object])


def _stack(fn: F, options: list[Callable[[F], F]]) -> F:
    """Apply ``options`` so that ``--help`` lists them in the order given."""
    for option in reversed(options):
        fn = option(fn)
    return fn


def kafka_options(fn: F) -> F:
    """``--bootstrap-servers/-b``, ``--kafka-config``, ``-X`` (parameters ``bootstrap_servers``,
    ``kafka_config``, ``x_options``): the settings :meth:`KafkaConnection.build` takes."""
    return _stack(fn, [
        click.option("--bootstrap-servers", "-b", metavar="HOST:PORT[,...]",
                     help="Kafka bootstrap servers.  [env: KAFKA_BOOTSTRAP_SERVERS]"),
        click.option("--kafka-config", metavar="FILE",
                     help="Java client properties file (security.protocol, sasl.*, ssl.* in PEM "
                          "form)."),
        click.option("-X", "x_options", multiple=True, metavar="KEY=VALUE",
                     help="librdkafka property pass-through (repeatable)."),
    ])


def service_options(fn: F) -> F:
    """The Schema Registry and Kafka Connect URLs with their basic-auth user and password
    (parameters ``schema_registry_url`` ... ``connect_password``; each also from its env)."""
    return _stack(fn, [
        click.option("--schema-registry-url", envvar="SCHEMA_REGISTRY_URL", metavar="URL",
                     help="Confluent-compatible Schema Registry.  [env: SCHEMA_REGISTRY_URL]"),
        click.option("--schema-registry-user", envvar="SCHEMA_REGISTRY_USER", metavar="USER",
                     help="Registry basic-auth user.  [env: SCHEMA_REGISTRY_USER]"),
        click.option("--schema-registry-password", envvar="SCHEMA_REGISTRY_PASSWORD",
                     metavar="PASSWORD",
                     help="Registry basic-auth password.  [env: SCHEMA_REGISTRY_PASSWORD]"),
        click.option("--connect-url", envvar="KAFKA_CONNECT_URL", metavar="URL",
                     help="Kafka Connect REST URL.  [env: KAFKA_CONNECT_URL]"),
        click.option("--connect-user", envvar="KAFKA_CONNECT_USER", metavar="USER",
                     help="Connect basic-auth user.  [env: KAFKA_CONNECT_USER]"),
        click.option("--connect-password", envvar="KAFKA_CONNECT_PASSWORD", metavar="PASSWORD",
                     help="Connect basic-auth password.  [env: KAFKA_CONNECT_PASSWORD]"),
    ])
