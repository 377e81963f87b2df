"""The options and plumbing the ``migrator cutover`` subcommands share: the bridge config and
Kafka client options, Kafka Connect's, ``--without-bridge``, ``--lease-ttl``, durations, and the
:class:`~migrator.cutover.coordinator.Coordinator` they run on."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator.cli.options import bridge_config_options
from migrator.errors import ConfigError

if TYPE_CHECKING:
    from migrator.cutover.coordinator import Coordinator
    from migrator.cutover.state import GroupCutover

__all__ = [
    "bridge_options",
    "connect_connection",
    "connect_options",
    "coordinator",
    "duration",
    "kafka_options",
    "lease_ttl_option",
    "say_done",
]


def kafka_options(fn: Any) -> Any:
    for option in reversed(bridge_config_options(
            "bridge.yaml: its destinations name the groups they replace.")):
        fn = option(fn)
    return fn


def connect_options(fn: Any) -> Any:
    """Kafka Connect's REST URL: source connectors writing to a routed topic are producers,
    sinks reading one are consumers (as `migrator audit`'s options)."""
    fn = click.option("--connect-password", envvar="KAFKA_CONNECT_PASSWORD", metavar="PASSWORD",
                      help="Connect basic-auth password.  [env: KAFKA_CONNECT_PASSWORD]")(fn)
    fn = click.option("--connect-user", envvar="KAFKA_CONNECT_USER", metavar="USER",
                      help="Connect basic-auth user.  [env: KAFKA_CONNECT_USER]")(fn)
    return click.option("--connect-url", envvar="KAFKA_CONNECT_URL", metavar="URL",
                        help="Kafka Connect REST URL: its connectors on the topic count.  "
                             "[env: KAFKA_CONNECT_URL]")(fn)


def connect_connection(url: str | None, user: str | None, password: str | None) -> Any:
    from migrator.cli.audit import rest_connection

    return rest_connection(url, user, password, flag="--connect-url", timeout=30.0)


def bridge_options(fn: Any) -> Any:
    fn = click.option("--bridge-wait", default="20s", show_default=True,
                      help="How long to wait for a bridge with this config to be running.")(fn)
    return click.option("--without-bridge", is_flag=True,
                        help="Go ahead although no bridge with this config is running (one "
                             "started later begins at the hand-off).")(fn)


def lease_ttl_option(fn: Any) -> Any:
    def keep(ctx: click.Context, _param: click.Parameter, value: str) -> None:
        ctx.meta["cutover.lease_ttl"] = duration(value, "--lease-ttl")

    return click.option("--lease-ttl", default="30s", show_default=True, expose_value=False,
                        callback=keep,
                        help="How long this command's lease on the group outlives it if it is "
                             "killed (another machine's rerun waits that long; one on this "
                             "machine takes over at once).")(fn)


def coordinator(config_path: str, x_options: tuple[str, ...], kafka_config: str | None,
                 *, check_qstash: bool = False, bridge_wait: float = 20.0) -> Coordinator:
    from migrator.bridge.config import load_bridge_config
    from migrator.bridge.routes import check_qstash as check
    from migrator.cli.bridge import _connections
    from migrator.cutover.coordinator import Coordinator

    cfg = load_bridge_config(config_path)
    connection, qstash = _connections(cfg, config_path, kafka_config, x_options)
    if check_qstash and qstash is not None:
        check(qstash)
    ttl = click.get_current_context().meta.get("cutover.lease_ttl", 30.0)
    return Coordinator(cfg, connection, qstash=qstash, bridge_wait=bridge_wait,
                       say=lambda text: click.echo(text, err=True), where=Path(config_path).name,
                       lease_ttl=ttl)


_DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+(?:\.\d+)?)s)?")


def duration(text: str, flag: str) -> float:
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


def say_done(state: GroupCutover) -> None:
    steps = " or ".join(f"`migrator cutover {s} {state.group}`" for s in state.next_steps())
    click.echo(f"group {state.group}: {state.state.value}. Next: {steps}")
