"""``migrator doctor``: check, step by step, that the toolkit can reach and use an estate."""

from __future__ import annotations

import json
from pathlib import Path

import click

from migrator.cli.audit import service_connections
from migrator.cli.options import ServiceFlags, kafka_options, service_options
from migrator.config import KafkaConnection

__all__ = ["command"]

_MARK = {"ok": "ok", "warn": "WARN", "fail": "FAIL", "skipped": "-"}


@click.command("doctor")
@kafka_options
@click.option("--config", "bridge_config", type=click.Path(dir_okay=False), metavar="BRIDGE_YAML",
              help="Take the Kafka settings, topics and group from a bridge config.")
@click.option("--topic", "topics", multiple=True, metavar="TOPIC",
              help="Check the ACLs on this topic (repeatable).")
@click.option("--group", "groups", multiple=True, metavar="GROUP",
              help="Check the ACLs on this consumer group (repeatable): the bridge's group, and "
                   "the legacy groups a cutover reads and moves.")
@service_options
@click.option("--timeout", type=click.FloatRange(min=0.5), default=10.0, show_default=True,
              help="Seconds for any one step.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def command(
    bootstrap_servers: str | None,
    kafka_config: str | None,
    x_options: tuple[str, ...],
    bridge_config: str | None,
    topics: tuple[str, ...],
    groups: tuple[str, ...],
    services: ServiceFlags,
    timeout: float,
    fmt: str,
) -> None:
    """Check the connection to Kafka and its services, step by step, with the fix for each
    failure: DNS and TCP, TLS (certificate subject, expiry, trust), SASL mechanism and
    authentication, the ACLs audit and bridge need, Schema Registry and Connect.

    Read-only: joins no group, commits nothing. Exit codes: 0 every step passed (warnings
    allowed), 1 a step failed, 2 usage error, 3 bad configuration. Secrets are never printed.
    """
    from migrator.kafka.diagnosis import diagnose

    all_topics, all_groups = list(topics), list(groups)
    if bridge_config is not None:
        from migrator.bridge.config import load_bridge_config

        cfg = load_bridge_config(bridge_config)
        connection = cfg.kafka.connection(base_dir=Path(bridge_config).parent,
                                          properties_file=kafka_config, x_options=x_options)
        all_topics += [r.topic for r in cfg.routes if r.topic not in all_topics]
        all_groups += [g for g in (cfg.group, cfg.start_from_group) if g and g not in all_groups]
    else:
        connection = KafkaConnection.build(bootstrap_servers=bootstrap_servers,
                                           properties_file=kafka_config, x_options=x_options)
    registry, connect = service_connections(services, timeout)
    result = diagnose(connection, topics=all_topics, groups=all_groups, registry=registry,
                      connect=connect, timeout=timeout)
    if fmt == "json":
        click.echo(json.dumps({"kafka": connection.describe(), **result.to_json()}, indent=2))
    else:
        click.echo(f"Kafka {connection.describe()}")
        width = max((len(c.step) for c in result.checks), default=4)
        for check in result.checks:
            click.echo(f"  {_MARK[check.status]:<4}  {check.step:<{width}}  {check.target}: "
                       f"{check.detail}")
            if check.fix:
                click.echo(f"  {'':<4}  {'':<{width}}  fix: {check.fix}")
        failed = sum(c.status == "fail" for c in result.checks)
        click.echo("every step passed" if not failed else f"{failed} step(s) failed")
    if result.failed:
        raise SystemExit(1)
