"""The read-only commands of ``migrator cutover``: ``status`` and ``history``."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from migrator.cli.cutover_options import coordinator, kafka_options

if TYPE_CHECKING:
    from migrator.cutover.group_status import GroupStatus

__all__ = ["history", "status"]


@click.command("status")
@click.argument("groups", nargs=-1)
@kafka_options
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
def status(groups: tuple[str, ...], config_path: str, x_options: tuple[str, ...],
           kafka_config: str | None, fmt: str) -> None:
    """Per replaced group: state, old and bridge group, lag, hand-off, next command."""
    coord = coordinator(config_path, x_options, kafka_config)
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
    if data["qstash_since_handoff"] is not None:
        q = data["qstash_since_handoff"]
        lines.append(f"  QStash since the hand-off: {q['delivered']:,} delivered, "
                     f"{q['pending']:,} pending, {q['failed']:,} failed (DLQ), "
                     f"{q['cancelled']:,} cancelled")
    elif data["qstash_error"]:
        lines.append(f"  QStash since the hand-off: unknown ({data['qstash_error']})")
    if data["handoff_at"]:
        lines.append(f"  handed off at {data['handoff_at']}: " + ", ".join(
            f"{p['topic']}[{p['partition']}]={p['offset']}" for p in data["handoff"]))
    if data["rollback_at"]:
        lines.append(f"  rolled back at {data['rollback_at']}: " + ", ".join(
            f"{p['topic']}[{p['partition']}]={p['offset']}" for p in data["rollback"]))
    for sk in data["skip"]:
        lines.append(f"  skip {sk['topic']}[{sk['partition']}]: " + ", ".join(
            str(a) if a == b else f"{a}-{b}" for a, b in sk["ranges"]))
    lines.append("  next: " + " or ".join(data["next"]))
    return "\n".join(lines)


@click.command("history")
@click.argument("group")
@kafka_options
def history(group: str, config_path: str, x_options: tuple[str, ...],
            kafka_config: str | None) -> None:
    """Every recorded transition of GROUP, oldest first, as JSON lines."""
    coord = coordinator(config_path, x_options, kafka_config)
    try:
        coord.load(group)  # refuses a group the config does not replace
        versions = coord.store.history(group)
    finally:
        coord.close()
    entries = versions[-1].history if versions else ()
    for entry in entries:
        click.echo(json.dumps(entry.model_dump(mode="json")))
