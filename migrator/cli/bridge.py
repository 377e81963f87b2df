"""``migrator bridge``: forward Kafka records to HTTP endpoints through QStash or directly."""

from __future__ import annotations

import json
import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator.cli.options import bridge_config_options
from migrator.errors import ConfigError

if TYPE_CHECKING:
    from migrator.bridge.config import BridgeConfig
    from migrator.bridge.preflight import Preflight
    from migrator.config import KafkaConnection, QStashConnection

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


def _connection_options(fn: Any) -> Any:
    """The options ``run`` and ``check`` share: the config, Kafka overrides, start position."""
    for option in reversed([
        *bridge_config_options("bridge.yaml (or .json)."),
        click.option("--start-from-group", metavar="GROUP",
                     help="Start partitions without offsets at GROUP's committed offsets."),
        click.option("--start", metavar="earliest|latest|ISO-TIME",
                     help="Where partitions without committed offsets start."),
    ]):
        fn = option(fn)
    return fn


def _connections(
    cfg: BridgeConfig, config_path: str, kafka_config: str | None, x_options: tuple[str, ...]
) -> tuple[KafkaConnection, QStashConnection | None]:
    """The Kafka connection (config file, properties file, -X) and the QStash endpoint when a
    route goes through QStash."""
    connection = cfg.kafka.connection(
        base_dir=Path(config_path).parent, properties_file=kafka_config, x_options=x_options
    )
    if not cfg.uses_qstash():
        return connection, None
    return connection, cfg.qstash.resolved()


@command.command("run")
@_connection_options
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
    from migrator.bridge.stop_signals import StopSignals

    signals = StopSignals.install()  # first: a stop during the imports below still drains
    from migrator.bridge.config import load_bridge_config
    from migrator.bridge.metrics import BridgeMetrics, MetricsServer
    from migrator.bridge.routes import check_qstash
    from migrator.bridge.runner import Bridge
    from migrator.bridge.status import JsonFormatter, StatusLine, summary_line

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
    connection, qstash = _connections(cfg, config_path, kafka_config, x_options)
    if qstash is not None:
        check_qstash(qstash)
    from migrator.cutover.scope import replaced_groups

    if replaced_groups(cfg):  # destinations replace consumer groups: gated by `migrator cutover`
        from migrator.bridge.gate import GatedBridges

        gate = GatedBridges(cfg, connection, qstash=qstash)
        signals.attach(gate.stop)
        server = MetricsServer(gate.metrics, cfg.metrics_port) if cfg.metrics_port is not None else None
        try:
            stats = gate.run()
        finally:
            if server is not None:
                server.close()
        click.echo("bridge stopped: " + summary_line(stats), err=True)
        return
    metrics = BridgeMetrics()
    server = MetricsServer(metrics, cfg.metrics_port) if cfg.metrics_port is not None else None
    bridge = Bridge(cfg, connection, qstash=qstash, metrics=metrics)
    signals.attach(bridge.stop)
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
    click.echo("bridge stopped: " + summary_line(stats), err=True)


@command.command("check")
@_connection_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.pass_context
def check(
    ctx: click.Context,
    config_path: str,
    x_options: tuple[str, ...],
    kafka_config: str | None,
    start_from_group: str | None,
    start: str | None,
    fmt: str,
) -> None:
    """Show where a bridge would start on each partition and its backlog, and what would stop
    it (missing topics, URL groups, registry), without consuming or committing anything.
    Exit 1 when a problem is found."""
    from migrator.bridge.config import load_bridge_config
    from migrator.bridge.preflight import preflight

    cfg = load_bridge_config(config_path, _start_overrides(start, start_from_group))
    connection, qstash = _connections(cfg, config_path, kafka_config, x_options)
    result = preflight(cfg, connection, qstash=qstash)
    if fmt == "json":
        click.echo(json.dumps(result.to_json(), indent=2))
    else:
        click.echo(_check_table(result))
    if result.problems:
        ctx.exit(1)


def _check_table(result: Preflight) -> str:
    rows = [("topic", "partition", "committed", "start", "from", "end", "backlog")]
    for p in result.partitions:
        rows.append((p.topic, str(p.partition), "-" if p.committed is None else str(p.committed),
                     str(p.start), p.source, str(p.end), f"{p.backlog:,}"))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"bridge group {result.group}: {len(result.partitions)} partitions, "
             f"backlog {result.backlog:,} records", ""]
    lines += ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
              for row in rows]
    lines += ["", *[f"ok: {line}" for line in result.checked]]
    lines += [f"warning: {line}" for line in result.warnings]
    lines += [f"problem: {line}" for line in result.problems]
    if not result.problems:
        lines.append("no problems found")
    return "\n".join(lines)


@command.command("schema")
def schema() -> None:
    """Print the JSON Schema of bridge.yaml."""
    from migrator.bridge.config import BridgeConfig

    click.echo(json.dumps(BridgeConfig.model_json_schema(), indent=2))
