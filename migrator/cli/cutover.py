"""``migrator cutover``: hand each replaced consumer group over to its endpoint, and back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator.errors import ConfigError

if TYPE_CHECKING:
    from migrator.cutover.coordinator import Coordinator, GroupStatus
    from migrator.cutover.state import GroupCutover, PartitionOffset

__all__ = ["command"]

_OFFSET = re.compile(r"^(?P<topic>.+):(?P<partition>\d+)=(?P<offset>\d+)$")


@click.group("cutover")
def command() -> None:
    """Switch consumer groups from their Kafka consumers to the bridge's endpoints, one group at
    a time, exactly (docs/cutover.md)."""


def _options(fn: Any) -> Any:
    for option in reversed([
        click.option("--config", "config_path", required=True, type=click.Path(dir_okay=False),
                     help="bridge.yaml: its destinations name the groups they replace."),
        click.option("-X", "x_options", multiple=True, metavar="KEY=VALUE",
                     help="librdkafka/Java client property (repeatable)."),
        click.option("--kafka-config", type=click.Path(dir_okay=False),
                     help="Java client properties file (overrides kafka.properties_file)."),
    ]):
        fn = option(fn)
    return fn


def _without_bridge(fn: Any) -> Any:
    fn = click.option("--bridge-wait", default="20s", show_default=True,
                      help="How long to wait for a bridge with this config to be running.")(fn)
    return click.option("--without-bridge", is_flag=True,
                        help="Go ahead although no bridge with this config is running (one "
                             "started later begins at the hand-off).")(fn)


def _coordinator(config_path: str, x_options: tuple[str, ...], kafka_config: str | None,
                 *, check_qstash: bool = False, bridge_wait: float = 20.0) -> Coordinator:
    from migrator.bridge.config import load_bridge_config
    from migrator.bridge.routes import check_qstash as check
    from migrator.cli.bridge import _connections
    from migrator.cutover.coordinator import Coordinator

    cfg = load_bridge_config(config_path)
    connection, qstash = _connections(cfg, config_path, kafka_config, x_options)
    if check_qstash and qstash is not None:
        check(qstash)
    return Coordinator(cfg, connection, qstash=qstash, bridge_wait=bridge_wait,
                       say=lambda text: click.echo(text, err=True), where=Path(config_path).name)


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def _duration(text: str, flag: str) -> float:
    """Seconds in ``text`` (``30s``, ``2m``, ``1h30m``, ``1d``; a bare number is seconds)."""
    found = _DURATION.fullmatch(text.strip())
    try:
        value = float(text) if re.fullmatch(r"\d+(?:\.\d+)?", text.strip()) else None
    except ValueError:
        value = None
    if value is None:
        if not text.strip() or found is None or not any(found.groups()):
            raise ConfigError(f"{flag} {text!r}: write a duration like 30s, 2m or 1h.")
        d, h, m, sec = (float(g) if g else 0.0 for g in found.groups())
        value = d * 86400 + h * 3600 + m * 60 + sec
    if value <= 0:
        raise ConfigError(f"{flag} {text!r}: must be more than zero.")
    return value


def _offsets_table(title: str, offsets: tuple[PartitionOffset, ...]) -> str:
    rows = [("topic", "partition", "offset", "from", "at")]
    rows += [(p.topic, str(p.partition), str(p.offset), p.source, p.at) for p in offsets]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [title]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


def _done(state: GroupCutover) -> None:
    steps = " or ".join(f"`migrator cutover {s} {state.group}`" for s in state.next_steps())
    click.echo(f"group {state.group}: {state.state.value}. Next: {steps}")


@command.command("prepare")
@click.argument("group")
@_options
def prepare(group: str, config_path: str, x_options: tuple[str, ...],
            kafka_config: str | None) -> None:
    """Record GROUP as prepared: the bridge delivers nothing for it until it is switched."""
    coord = _coordinator(config_path, x_options, kafka_config)
    try:
        _done(coord.prepare(group))
    finally:
        coord.close()


@command.command("shadow")
@click.argument("group")
@_options
@_without_bridge
def shadow(group: str, config_path: str, x_options: tuple[str, ...],
           kafka_config: str | None, without_bridge: bool, bridge_wait: str) -> None:
    """Deliver GROUP's records marked `Migrator-Shadow: true` while the old consumers stay
    authoritative (the endpoints must have no side effects for them)."""
    coord = _coordinator(config_path, x_options, kafka_config,
                         bridge_wait=_duration(bridge_wait, "--bridge-wait"))
    try:
        _done(coord.shadow(group, require_bridge=not without_bridge))
    finally:
        coord.close()


@command.command("switch")
@click.argument("group")
@_options
@click.option("--watch", default="30s", show_default=True,
              help="How long the stopped group's offsets must stay unchanged.")
@click.option("--timeout", default="15m", show_default=True,
              help="Give up (changing nothing) when the group is not quiet by then.")
@click.option("--offset", "offsets", multiple=True, metavar="TOPIC:PARTITION=OFFSET",
              help="Hand off at this offset instead of the group's committed one (your "
                   "application's own checkpoint); repeatable.")
@_without_bridge
def switch(group: str, config_path: str, x_options: tuple[str, ...], kafka_config: str | None,
           watch: str, timeout: str, offsets: tuple[str, ...], without_bridge: bool,
           bridge_wait: str) -> None:
    """Fence GROUP's old consumers, hand its committed offsets to the bridge, switch."""
    overrides: dict[tuple[str, int], int] = {}
    for text in offsets:
        m = _OFFSET.match(text)
        if m is None:
            raise ConfigError(f"--offset {text!r}: write TOPIC:PARTITION=OFFSET, e.g. orders:0=1200.")
        overrides[(m["topic"], int(m["partition"]))] = int(m["offset"])
    watch_s, timeout_s = _duration(watch, "--watch"), _duration(timeout, "--timeout")
    coord = _coordinator(config_path, x_options, kafka_config,
                         bridge_wait=_duration(bridge_wait, "--bridge-wait"))
    try:
        state = coord.switch(group, watch=watch_s, timeout=timeout_s, overrides=overrides,
                             require_bridge=not without_bridge)
    finally:
        coord.close()
    click.echo(_offsets_table(
        f"group {group} handed off at {state.handoff_at}; the bridge group {state.bridge_group} "
        "starts at:", state.handoff))
    _done(state)


@command.command("rollback")
@click.argument("group")
@_options
@click.option("--timeout", default="2m", show_default=True,
              help="How long to wait for the bridges to drain and leave the group.")
def rollback(group: str, config_path: str, x_options: tuple[str, ...], kafka_config: str | None,
             timeout: str) -> None:
    """Stop delivering GROUP, cancel what QStash still holds for it, and set the old group's
    offsets to the first record the endpoint did not get."""
    timeout_s = _duration(timeout, "--timeout")
    coord = _coordinator(config_path, x_options, kafka_config, check_qstash=True)
    try:
        state = coord.rollback(group, timeout=timeout_s)
    finally:
        coord.close()
    click.echo(_offsets_table(
        f"group {group} rolled back at {state.rollback_at} ({state.cancelled or 0} QStash "
        "message(s) cancelled); its committed offsets are now:", state.rollback))
    click.echo(f"Restart the old consumers of group {group} (same group.id); they resume at the "
               "offsets above. Check with: kafka-consumer-groups.sh --bootstrap-server ... "
               f"--describe --group {group}")
    _done(state)


@command.command("status")
@click.argument("groups", nargs=-1)
@_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def status(groups: tuple[str, ...], config_path: str, x_options: tuple[str, ...],
           kafka_config: str | None, fmt: str) -> None:
    """Per replaced group: state, old and bridge group, lag, hand-off, next command."""
    coord = _coordinator(config_path, x_options, kafka_config)
    try:
        found = coord.status(list(groups) or None)
    finally:
        coord.close()
    if fmt == "json":
        click.echo(json.dumps({"version": 1, "groups": [s.to_json() for s in found]}, indent=2))
        return
    click.echo("\n\n".join(_status_text(s) for s in found) or "no destination replaces a group")


def _status_text(s: GroupStatus) -> str:
    data = s.to_json()
    old, bridge = data["old_group"], data["bridge_group"]
    lines = [
        f"group {data['group']}: {data['state']}" + (f" since {data['since']}" if data["since"] else ""),
        f"  old group:    {old['state']}, {old['members']} member(s), lag {old['lag']}",
        f"  bridge group: {bridge['name']}: {bridge['state']}, {bridge['members']} member(s), "
        f"lag {bridge['lag']}",
    ]
    if data["delivered_since_handoff"] is not None:
        lines.append(f"  delivered since the hand-off: {data['delivered_since_handoff']:,}")
    if data["handoff_at"]:
        lines.append(f"  handed off at {data['handoff_at']}: " + ", ".join(
            f"{p['topic']}[{p['partition']}]={p['offset']}" for p in data["handoff"]))
    if data["rollback_at"]:
        lines.append(f"  rolled back at {data['rollback_at']}: " + ", ".join(
            f"{p['topic']}[{p['partition']}]={p['offset']}" for p in data["rollback"]))
    lines.append("  next: " + " or ".join(data["next"]))
    return "\n".join(lines)


@command.command("history")
@click.argument("group")
@_options
def history(group: str, config_path: str, x_options: tuple[str, ...],
            kafka_config: str | None) -> None:
    """Every recorded transition of GROUP, oldest first, as JSON lines."""
    coord = _coordinator(config_path, x_options, kafka_config)
    try:
        coord.load(group)  # refuses a group the config does not replace
        versions = coord.store.history(group)
    finally:
        coord.close()
    entries = versions[-1].history if versions else ()
    for entry in entries:
        click.echo(json.dumps(entry.model_dump(mode="json")))
