"""``migrator cutover``: hand each replaced consumer group over to its endpoint, and back."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from migrator.errors import ConfigError

if TYPE_CHECKING:
    from migrator.cutover.coordinator import Coordinator
    from migrator.cutover.group_status import GroupStatus
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


def _connect(fn: Any) -> Any:
    """Kafka Connect's REST URL: source connectors writing to a routed topic are producers,
    sinks reading one are consumers (as `migrator audit`'s options)."""
    fn = click.option("--connect-password", envvar="KAFKA_CONNECT_PASSWORD", metavar="PASSWORD",
                      help="Connect basic-auth password.  [env: KAFKA_CONNECT_PASSWORD]")(fn)
    fn = click.option("--connect-user", envvar="KAFKA_CONNECT_USER", metavar="USER",
                      help="Connect basic-auth user.  [env: KAFKA_CONNECT_USER]")(fn)
    return click.option("--connect-url", envvar="KAFKA_CONNECT_URL", metavar="URL",
                        help="Kafka Connect REST URL: its connectors on the topic count.  "
                             "[env: KAFKA_CONNECT_URL]")(fn)


def _connection(url: str | None, user: str | None, password: str | None) -> Any:
    from migrator.cli.audit import rest_connection

    return rest_connection(url, user, password, flag="--connect-url", timeout=30.0)


def _without_bridge(fn: Any) -> Any:
    fn = click.option("--bridge-wait", default="20s", show_default=True,
                      help="How long to wait for a bridge with this config to be running.")(fn)
    return click.option("--without-bridge", is_flag=True,
                        help="Go ahead although no bridge with this config is running (one "
                             "started later begins at the hand-off).")(fn)


def _lease_ttl(fn: Any) -> Any:
    def keep(ctx: click.Context, _param: click.Parameter, value: str) -> None:
        ctx.meta["cutover.lease_ttl"] = _duration(value, "--lease-ttl")

    return click.option("--lease-ttl", default="30s", show_default=True, expose_value=False,
                        callback=keep,
                        help="How long this command's lease on the group outlives it if it is "
                             "killed (another machine's rerun waits that long; one on this "
                             "machine takes over at once).")(fn)


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
    ttl = click.get_current_context().meta.get("cutover.lease_ttl", 30.0)
    return Coordinator(cfg, connection, qstash=qstash, bridge_wait=bridge_wait,
                       say=lambda text: click.echo(text, err=True), where=Path(config_path).name,
                       lease_ttl=ttl)


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
@_lease_ttl
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
@_lease_ttl
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
@_lease_ttl
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
@_lease_ttl
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
    timeout_s = _duration(timeout, "--timeout")
    coord = _coordinator(config_path, x_options, kafka_config, check_qstash=True)
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
    _done(state)


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


@command.command("verify")
@click.argument("group")
@_options
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
    retention_s = _duration(log_retention, "--log-retention")
    coord = _coordinator(config_path, x_options, kafka_config)
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


@command.command("producers")
@click.argument("topic")
@_options
@click.option("--window", default="30s", show_default=True,
              help="How long the topic's end offsets must stay unchanged.")
@click.option("--timeout", default="10m", show_default=True,
              help="Give up when the topic is not quiet and drained by then.")
@_connect
def producers(topic: str, config_path: str, x_options: tuple[str, ...],
              kafka_config: str | None, window: str, timeout: str, connect_url: str | None,
              connect_user: str | None, connect_password: str | None) -> None:
    """Say when TOPIC's producers may publish to QStash directly: its Kafka producers stopped
    (end offsets unchanged for --window), every group's lag 0, nothing left in QStash."""
    from migrator.cutover.producers import await_producers_stopped

    window_s, timeout_s = _duration(window, "--window"), _duration(timeout, "--timeout")
    connect = _connection(connect_url, connect_user, connect_password)
    coord = _coordinator(config_path, x_options, kafka_config)
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


@command.command("finish")
@_options
@click.option("--window", default="10s", show_default=True,
              help="How long each routed topic's end offsets must stay unchanged.")
@click.option("--delete", is_flag=True,
              help="Delete the routed topics, consumer groups and the connectors on them "
                   "(needs --allow-destructive).")
@click.option("--allow-destructive", is_flag=True, help="Confirm --delete.")
@_connect
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
    window_s = _duration(window, "--window")
    connect = _connection(connect_url, connect_user, connect_password)
    coord = _coordinator(config_path, x_options, kafka_config)
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
                for item in delete_routed(coord.admin, plan, bootstrap, connect):
                    click.echo(f"deleted {item}")
    finally:
        coord.close()
