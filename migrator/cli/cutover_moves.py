"""The moves of ``migrator cutover``: ``prepare``, ``shadow``, ``switch`` and ``rollback`` (each
changes one group's state, holding its lease)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import click

from migrator.cli.cutover_options import (
    bridge_options,
    coordinator,
    duration,
    kafka_options,
    lease_ttl_option,
    say_done,
)
from migrator.errors import ConfigError

if TYPE_CHECKING:
    from migrator.cutover.state import GroupCutover, PartitionOffset

__all__ = ["prepare", "rollback", "shadow", "switch"]

_OFFSET = re.compile(r"^(?P<topic>.+):(?P<partition>\d+)=(?P<offset>\d+)$")


def _offsets_table(title: str, offsets: tuple[PartitionOffset, ...]) -> str:
    rows = [("topic", "partition", "offset", "from", "at")]
    rows += [(p.topic, str(p.partition), str(p.offset), p.source, p.at) for p in offsets]
    widths = [max(len(r[i]) for r in rows) for i in range(5)]
    lines = [title]
    lines += ["  " + "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


@click.command("prepare")
@click.argument("group")
@kafka_options
@lease_ttl_option
def prepare(group: str, config_path: str, x_options: tuple[str, ...],
            kafka_config: str | None) -> None:
    """Record GROUP as prepared: the bridge delivers nothing for it until it is switched."""
    coord = coordinator(config_path, x_options, kafka_config)
    try:
        say_done(coord.prepare(group))
    finally:
        coord.close()


@click.command("shadow")
@click.argument("group")
@kafka_options
@lease_ttl_option
@bridge_options
def shadow(group: str, config_path: str, x_options: tuple[str, ...],
           kafka_config: str | None, without_bridge: bool, bridge_wait: str) -> None:
    """Deliver GROUP's records marked `Migrator-Shadow: true` while the old consumers stay
    authoritative (the endpoints must have no side effects for them)."""
    coord = coordinator(config_path, x_options, kafka_config,
                         bridge_wait=duration(bridge_wait, "--bridge-wait"))
    try:
        say_done(coord.shadow(group, require_bridge=not without_bridge))
    finally:
        coord.close()


@click.command("switch")
@click.argument("group")
@kafka_options
@lease_ttl_option
@click.option("--watch", default="30s", show_default=True,
              help="How long the stopped group's offsets must stay unchanged.")
@click.option("--timeout", default="15m", show_default=True,
              help="Give up (changing nothing) when the group is not quiet by then.")
@click.option("--offset", "offsets", multiple=True, metavar="TOPIC:PARTITION=OFFSET",
              help="Hand off at this offset instead of the group's committed one (your "
                   "application's own checkpoint); repeatable.")
@bridge_options
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
    watch_s, timeout_s = duration(watch, "--watch"), duration(timeout, "--timeout")
    coord = coordinator(config_path, x_options, kafka_config,
                         bridge_wait=duration(bridge_wait, "--bridge-wait"))
    try:
        state = coord.switch(group, watch=watch_s, timeout=timeout_s, overrides=overrides,
                             require_bridge=not without_bridge)
    finally:
        coord.close()
    click.echo(_offsets_table(
        f"group {group} handed off at {state.handoff_at}; the bridge group {state.bridge_group} "
        "starts at:", state.handoff))
    say_done(state)


@click.command("rollback")
@click.argument("group")
@kafka_options
@lease_ttl_option
@click.option("--timeout", default="2m", show_default=True,
              help="How long to wait for the bridges to drain and leave the group, and for "
                   "the messages QStash is delivering to settle.")
@click.option("--skip-file", type=click.Path(dir_okay=False, writable=True),
              help="Write the skip list (records above the rollback offsets the endpoint "
                   "already processed) to this JSON file for the old consumers.")
def rollback(group: str, config_path: str, x_options: tuple[str, ...], kafka_config: str | None,
             timeout: str, skip_file: str | None) -> None:
    """Stop delivering GROUP, cancel what QStash still holds for it, and set the old group's
    offsets to the first record the endpoint did not get (records above it that the endpoint
    did get form the skip list)."""
    timeout_s = duration(timeout, "--timeout")
    coord = coordinator(config_path, x_options, kafka_config, check_qstash=True)
    try:
        state = coord.rollback(group, timeout=timeout_s)
    finally:
        coord.close()
    click.echo(_offsets_table(
        f"group {group} rolled back at {state.rollback_at} ({state.cancelled or 0} QStash "
        "message(s) cancelled); its committed offsets are now:", state.rollback))
    if state.skip:
        click.echo("Skip list: the endpoint already processed these records above those "
                   "offsets; the old consumers must not process them again:")
        for s in state.skip:
            runs = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in s.ranges)
            click.echo(f"  {s.topic}[{s.partition}]: {runs}")
    if skip_file:
        _write_skip_file(Path(skip_file), state)
        click.echo(f"skip list written to {skip_file} ({sum(len(s.offsets()) for s in state.skip)} "
                   "record(s))")
    click.echo(f"Restart the old consumers of group {group} (same group.id); they resume at the "
               "offsets above. Check with: kafka-consumer-groups.sh --bootstrap-server ... "
               f"--describe --group {group}")
    say_done(state)


def _write_skip_file(path: Path, state: GroupCutover) -> None:
    """The skip list as JSON: {"group", "rollback_at", "skip": {topic: {partition: [[first,
    last], ...]}}}, written whole (a temporary file renamed over the target)."""
    skip: dict[str, dict[str, list[list[int]]]] = {}
    for s in state.skip:
        skip.setdefault(s.topic, {})[str(s.partition)] = [list(r) for r in s.ranges]
    data = {"version": 1, "group": state.group, "rollback_at": state.rollback_at, "skip": skip}
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        tmp.replace(path)
    except OSError as exc:
        raise ConfigError(f"--skip-file {path}: cannot write it ({exc.strerror}); the rollback "
                          "is done, its skip list is in `migrator cutover status --format "
                          "json`.") from None
