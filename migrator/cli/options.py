"""Click options more than one command declares the same way: the Kafka connection, and the
Schema Registry and Kafka Connect services beside it (``audit``, ``doctor``); a bridge config
with its Kafka overrides (``bridge``, ``cutover``). The service
options reach the command as one :class:`ServiceFlags` (parameter ``services``)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

__all__ = ["ServiceFlags", "bridge_config_options", "kafka_options", "service_options"]

F = TypeVar("F", bound=Callable[..., object])
R = TypeVar("R")


@dataclass(frozen=True)
class ServiceFlags:
    """The Schema Registry and Kafka Connect flags as given (validated by ``rest_connection``)."""

    schema_registry_url: str | None = None
    schema_registry_user: str | None = None
    schema_registry_password: str | None = None
    connect_url: str | None = None
    connect_user: str | None = None
    connect_password: str | None = None


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


def bridge_config_options(config_help: str) -> list[Callable[[F], F]]:
    """``--config`` (a bridge.yaml, described by ``config_help``), ``-X`` and ``--kafka-config``
    (parameters ``config_path``, ``x_options``, ``kafka_config``): the options of the commands
    that read a bridge config (``bridge``, ``cutover``), in ``--help`` order."""
    return [
        click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                     help=config_help),
        click.option("-X", "x_options", multiple=True, metavar="KEY=VALUE",
                     help="librdkafka/Java client property (repeatable)."),
        click.option("--kafka-config", type=click.Path(dir_okay=False),
                     help="Java client properties file (overrides kafka.properties_file)."),
    ]


def service_options(fn: Callable[..., R]) -> Callable[..., R]:
    """The Schema Registry and Kafka Connect URLs with their basic-auth user and password (each
    also from its env), handed to ``fn`` as ``services``: one :class:`ServiceFlags`."""

    @functools.wraps(fn)
    def run(*args: Any, schema_registry_url: str | None, schema_registry_user: str | None,
            schema_registry_password: str | None, connect_url: str | None,
            connect_user: str | None, connect_password: str | None, **kwargs: Any) -> R:
        services = ServiceFlags(schema_registry_url, schema_registry_user,
                                schema_registry_password, connect_url, connect_user,
                                connect_password)
        return fn(*args, services=services, **kwargs)

    return _stack(run, [
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
