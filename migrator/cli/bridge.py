"""``migrator bridge``: forward Kafka records to HTTP endpoints through QStash or directly."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import click

from migrator.errors import ConfigError

__all__ = ["command"]


@click.group("bridge")
def command() -> None:
    """Consume Kafka topics and deliver every record over HTTP, effectively once."""


def _start_overrides(start: str | None, group: str | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if start is not None:
        if start in ("earliest", "latest"):
            out["start"] = start
        else:
            try:
                datetime.fromisoformat(start.replace("Z", "+00:00"))
            except ValueError:
                raise ConfigError(
                    f"--start {start!r}: expected earliest, latest or an ISO 8601 timestamp "
                    "such as 2026-01-31T12:00:00Z."
                ) from None
            out["start"], out["start_timestamp"] = "timestamp", start
    if group is not None:
        out["start"], out["start_from_group"] = "start_from_group", group
    return out


@command.command("run")
@click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="bridge.yaml (or .json).")
@click.option("-X", "x_options", multiple=True, metavar="KEY=VALUE",
              help="librdkafka/Java client property (repeatable).")
@click.option("--kafka-config", type=click.Path(dir_okay=False),
              help="Java client properties file (overrides kafka.properties_file).")
@click.option("--start-from-group", metavar="GROUP",
              help="Start partitions without offsets at GROUP's committed offsets.")
@click.option("--start", metavar="earliest|latest|ISO-TIME",
              help="Where partitions without committed offsets start.")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve /metrics, /healthz and /readyz on this port.")
@click.option("--json-logs", is_flag=True, help="Log one JSON object per line to stderr.")
def run(
    config_path: str,
    x_options: tuple[str, ...],
    kafka_config: str | None,
    start_from_group: str | None,
    start: str | None,
    metrics_port: int | None,
    json_logs: bool,
) -> None:
    """Run the bridge until SIGTERM/SIGINT (a second SIGINT exits at once)."""
    from migrator.bridge.config import load_bridge_config
    from migrator.bridge.metrics import BridgeMetrics, MetricsServer
    from migrator.bridge.routes import check_qstash
    from migrator.bridge.runner import Bridge, install_signal_handlers
    from migrator.bridge.status import JsonFormatter, StatusLine

    overrides = _start_overrides(start, start_from_group)
    if metrics_port is not None:
        overrides["metrics_port"] = metrics_port
    if json_logs:
        overrides["json_logs"] = True
    cfg = load_bridge_config(config_path, overrides)
    if cfg.json_logs:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.handlers[:] = [handler]
        root.setLevel(min(root.level, logging.INFO) if root.level else logging.INFO)
    connection = cfg.kafka.connection(
        base_dir=Path(config_path).parent, properties_file=kafka_config, x_options=x_options
    )
    qstash = None
    if cfg.uses_qstash():
        url, token = cfg.qstash.resolved()
        qstash = (url, token.get_secret_value())
        check_qstash(*qstash)
    metrics = BridgeMetrics()
    server = MetricsServer(metrics, cfg.metrics_port) if cfg.metrics_port is not None else None
    bridge = Bridge(cfg, connection, qstash=qstash, metrics=metrics)
    install_signal_handlers(bridge)
    status = StatusLine()
    logging.getLogger("migrator.bridge").info(
        "bridge starting: group %s, kafka %s", cfg.group, connection.describe()
    )
    try:
        stats = bridge.run(on_tick=status.tick)
    finally:
        status.close()
        if server is not None:
            server.close()
    summary = {
        "received": stats.received,
        "delivered": stats.delivered,
        "dead_lettered": stats.dead_lettered,
        "skipped": stats.skipped,
        "retries": stats.retries,
    }
    click.echo("bridge stopped: " + json.dumps(summary), err=True)


@command.command("schema")
def schema() -> None:
    """Print the JSON Schema of bridge.yaml."""
    from migrator.bridge.config import BridgeConfig

    click.echo(json.dumps(BridgeConfig.model_json_schema(), indent=2))
