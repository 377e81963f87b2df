"""The closing commands of ``migrator cutover``: ``verify`` (every record since the hand-off
accounted for), ``producers`` (a topic's producers may move) and ``finish`` (Kafka can go)."""

from __future__ import annotations

from pathlib import Path

import click

from migrator.cli.cutover_options import (
    connect_connection,
    connect_options,
    coordinator,
    duration,
    kafka_options,
)
from migrator.errors import ConfigError

__all__ = ["finish", "producers", "verify"]


@click.command("verify")
@click.argument("group")
@kafka_options
@click.option("--since", default="handoff", show_default=True, metavar="HANDOFF|TIMESTAMP",
              help="From the hand-off, or from the first record at/after an ISO 8601 time.")
@click.option("--deep", is_flag=True,
              help="Also compare a digest of each delivered body with the Kafka record.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]),
              default="table", show_default=True)
@click.option("--max-records", default=100_000, show_default=True, type=click.IntRange(1),
              help="Read QStash's logs exhaustively up to this many records; above, a random "
                   "sample (stated in the report).")
@click.option("--log-retention", default="3d", show_default=True,
              help="How long your QStash plan keeps logs (3d free, 7d pay-as-you-go, 14d "
                   "fixed): older records are reported unproven.")
@click.option("--seed", type=int, default=None, help="Random seed of the sample.")
def verify(group: str, config_path: str, x_options: tuple[str, ...], kafka_config: str | None,
           since: str, deep: bool, fmt: str, max_records: int, log_retention: str,
           seed: int | None) -> None:
    """Account for every record of GROUP since its hand-off, exactly once (docs/verify.md).
    Exit 0 when nothing is missing, duplicated or failed; 1 otherwise."""
    from migrator.cutover.verify import verify_group
    from migrator.cutover.verify_report import render
    from migrator.errors import ServiceError

    since_ms: int | None = None
    if since.lower() != "handoff":
        from datetime import UTC, datetime

        try:
            when = datetime.fromisoformat(since.replace("Z", "+00:00"))
        except ValueError:
            raise ConfigError(f"--since {since!r}: write `handoff` or an ISO 8601 time like "
                              "2026-12-03T12:00:00Z.") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        since_ms = int(when.timestamp() * 1000)
    retention_s = duration(log_retention, "--log-retention")
    coord = coordinator(config_path, x_options, kafka_config)
    try:
        parts = coord.partitions(group)
        state = coord.load(group)
        report = verify_group(coord.cfg, state, parts, coord.admin, coord.connection,
                              qstash=coord.qstash, since_ms=since_ms, deep=deep,
                              max_records=max_records, log_retention_s=retention_s, seed=seed)
    finally:
        coord.close()
    click.echo(render(report, fmt))
    if report.qstash_error is not None:
        raise ServiceError(f"{report.qstash_error}; the offsets above marked unproven are not "
                           "verified. Rerun when QStash answers.")
    if not report.ok:
        click.echo(report.summary(), err=True)
        raise click.exceptions.Exit(1)


@click.command("producers")
@click.argument("topic")
@kafka_options
@click.option("--window", default="30s", show_default=True,
              help="How long the topic's end offsets must stay unchanged.")
@click.option("--timeout", default="10m", show_default=True,
              help="Give up when the topic is not quiet and drained by then.")
@connect_options
def producers(topic: str, config_path: str, x_options: tuple[str, ...],
              kafka_config: str | None, window: str, timeout: str, connect_url: str | None,
              connect_user: str | None, connect_password: str | None) -> None:
    """Say when TOPIC's producers may publish to QStash directly: its Kafka producers stopped
    (end offsets unchanged for --window), every group's lag 0, nothing left in QStash."""
    from migrator.cutover.producers import await_producers_stopped

    window_s, timeout_s = duration(window, "--window"), duration(timeout, "--timeout")
    connect = connect_connection(connect_url, connect_user, connect_password)
    coord = coordinator(config_path, x_options, kafka_config)
    click.echo(f"Stop every Kafka producer of {topic} now. Waiting until its end offsets stay "
               f"unchanged for {window_s:g}s and the bridge delivered everything "
               f"(timeout {timeout_s:g}s).", err=True)
    try:
        done = await_producers_stopped(
            coord.cfg, coord.admin, coord.store, topic, window=window_s, timeout=timeout_s,
            qstash=coord.qstash, where=Path(config_path).name,
            on_wait=lambda text: click.echo(text, err=True), connect=connect)
    finally:
        coord.close()
    ends = ", ".join(f"[{p}] {e}" for p, e in sorted(done.ends.items()))
    click.echo(f"topic {topic}: Kafka producers stopped (end offsets {ends} unchanged for "
               f"{window_s:g}s), lag 0 for " + ", ".join(sorted(done.lags)) + ", nothing left "
               "in QStash. Publish directly to QStash now (see the plan's producer scaffolds).")


@click.command("finish")
@kafka_options
@click.option("--window", default="10s", show_default=True,
              help="How long each routed topic's end offsets must stay unchanged.")
@click.option("--delete", is_flag=True,
              help="Delete the routed topics, consumer groups and the connectors on them "
                   "(needs --allow-destructive).")
@click.option("--allow-destructive", is_flag=True, help="Confirm --delete.")
@connect_options
def finish(config_path: str, x_options: tuple[str, ...], kafka_config: str | None, window: str,
           delete: bool, allow_destructive: bool, connect_url: str | None,
           connect_user: str | None, connect_password: str | None) -> None:
    """Decommission check: producers quiet, every group switched and verified, bridge lag 0,
    nothing pending or failed in QStash, old groups empty. Prints the removal commands;
    exit 1 while anything is outstanding."""
    from migrator.cutover.finish import check_finished, delete_routed
    from migrator.cutover.scope import replaced_groups
    from migrator.errors import DestructiveChangeError

    if delete and not allow_destructive:
        raise DestructiveChangeError(
            "--delete removes the routed Kafka topics, consumer groups and connectors for good; add "
            "--allow-destructive to confirm. Nothing was changed.")
    window_s = duration(window, "--window")
    connect = connect_connection(connect_url, connect_user, connect_password)
    coord = coordinator(config_path, x_options, kafka_config)
    try:
        # every replaced group's lease: no step may change a group while it is checked and
        # its topics and groups are deleted
        with coord.leased_all(replaced_groups(coord.cfg), "finish"):
            plan = check_finished(coord.cfg, coord.admin, coord.store, coord.connection,
                                  qstash=coord.qstash, window=window_s,
                                  where=Path(config_path).name, connect=connect)
            if not plan.done:
                click.echo("Outstanding before Kafka can be decommissioned:")
                for item in plan.outstanding:
                    click.echo(f"  - {item}")
                if delete:
                    click.echo("Nothing was deleted.", err=True)
                raise click.exceptions.Exit(1)
            bootstrap = coord.connection.bootstrap_servers
            click.echo("Everything routed is off Kafka. What can be removed now:")
            for line in plan.commands(bootstrap):
                click.echo(f"  {line}")
            click.echo("  and stop the bridge (`migrator bridge run --config ...`) and its "
                       "deployment.")
            if delete:
                coord.ensure_held("deleting the routed topics, groups and connectors")
                for item in delete_routed(coord.admin, plan, connect):
                    click.echo(f"deleted {item}")
    finally:
        coord.close()
