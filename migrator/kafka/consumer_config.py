"""librdkafka's configuration of a consumer: assembled in one place, :func:`consumer_settings`,
with one documented precedence; the bridge's tuning is :data:`BRIDGE_CONSUMER_DEFAULTS`."""

from __future__ import annotations

from collections.abc import Mapping

from migrator.config import KafkaConnection, LibrdkafkaConfig
from migrator.errors import ConfigError

__all__ = ["BRIDGE_CONSUMER_DEFAULTS", "consumer_settings"]

_FORCED = {"enable.auto.offset.store": "false", "enable.auto.commit": "false"}
_DEFAULTS = {"auto.offset.reset": "earliest"}

# The bridge's tuning of its consumer: defaults only, any of them can be set by the user.
BRIDGE_CONSUMER_DEFAULTS = {
    "queued.max.messages.kbytes": "8192",
    "queued.min.messages": "20000",
    # librdkafka postpones a partition's next fetch by this much whenever the prefetch queue is
    # over either limit above (default 1,000 ms): with records that do not compress much, a
    # bridge with a backlog then starved for most of each second (raw consume of 100-byte
    # records went from ~73,000 to over 1,000,000 rec/s with 10 ms)
    "fetch.queue.backoff.ms": "10",
    "fetch.max.bytes": "8388608",
    "session.timeout.ms": "10000",
    "heartbeat.interval.ms": "2000",
    # a member joining or leaving moves only the partitions that change hands; the others
    # keep flowing (eager rebalancing revoked, drained and re-fetched every partition)
    "partition.assignment.strategy": "cooperative-sticky",
    # librdkafka's statistics every second: whether any broker connection is up (brokers_up,
    # which the bridge's /readyz reports when it is not) and whether the client still knows any
    # broker at all (BrokerWatch); 0 turns both off
    "statistics.interval.ms": "1000",
}


def consumer_settings(
    connection: KafkaConnection, group: str, defaults: Mapping[str, str] | None = None
) -> LibrdkafkaConfig:
    """librdkafka's configuration of a consumer of ``group``: the one place it is assembled.

    Precedence, lowest first:

    1. built-in defaults: ``auto.offset.reset=earliest``, then the caller's ``defaults`` (the
       bridge passes :data:`BRIDGE_CONSUMER_DEFAULTS`);
    2. the user's settings, ``connection.to_librdkafka()`` (environment < properties file <
       config file < command-line flags < ``-X``, see :meth:`KafkaConnection.build`): they win;
    3. what this wrapper relies on: ``group.id`` and no automatic offset store or commit. A user
       setting that contradicts them is refused (:class:`ConfigError`), not silently replaced.

    Values are checked by librdkafka when the consumer is created (:class:`KafkaConsumer`).
    """
    user = connection.to_librdkafka()
    managed = {"group.id": group, **_FORCED}
    for key, value in managed.items():
        if key in user and str(user[key]).strip().lower() != value:
            why = ("the group is the config's `group`" if key == "group.id" else
                   "offsets are committed by the toolkit once records are handled")
            raise ConfigError(
                f"Kafka setting {key}={user[key]} cannot be changed ({why}); remove it from "
                "-X, kafka.options or the properties file."
            )
    return {**_DEFAULTS, **(defaults or {}), **user, **managed}
