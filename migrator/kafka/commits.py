"""A consumer's offset commits: which failures wait for the next commit, and the one
asynchronous commit awaiting the group's answer."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaError, KafkaException, TopicPartition

from migrator.errors import MigratorError
from migrator.kafka.errors import ErrorKind, error_code, kind_of, translate

__all__ = ["ASYNC_COMMIT_TIMEOUT", "AsyncCommit", "commit_refusal"]

log = logging.getLogger(__name__)

# Seconds an asynchronous commit may stay unanswered before another one may be started.
ASYNC_COMMIT_TIMEOUT = 30.0

Done = Callable[[bool], None]


def commit_refusal(failure: KafkaException | KafkaError, servers: str) -> MigratorError | None:
    """The error a failed commit raises; None (logged) when the group cannot take it now and
    its offsets go with the next one: this member's generation is over, or the coordinator
    is away."""
    if kind_of(error_code(failure)) in (ErrorKind.MEMBERSHIP, ErrorKind.UNAVAILABLE):
        log.warning("commit not done, offsets kept for the next one: %s",
                    translate(failure, "a commit", servers))
        return None
    return translate(failure, "a commit", servers)


class AsyncCommit:
    """At most one asynchronous commit at a time: its offsets, ``done(ok)`` and when it started.

    librdkafka reports the result of every commit (synchronous ones too) to ``on_commit``; the
    result that carries this commit's offsets settles it (:meth:`settle`).
    """

    def __init__(self, timeout: float = ASYNC_COMMIT_TIMEOUT) -> None:
        self.timeout = timeout
        self._held: tuple[dict[tuple[str, int], int], Done, float] | None = None

    def busy(self, now: float) -> bool:
        """An earlier commit is unanswered, for less than ``timeout`` seconds."""
        return self._held is not None and now - self._held[2] < self.timeout

    def start(self, offsets: Mapping[tuple[str, int], int], done: Done, now: float) -> None:
        self._held = (dict(offsets), done, now)

    def forget(self) -> None:
        """No answer is awaited any more (given up on, or its client replaced)."""
        self._held = None

    def settle(
        self, err: KafkaError | None, partitions: list[TopicPartition], servers: str
    ) -> tuple[Done, bool, MigratorError | None] | None:
        """For the result of a commit (``on_commit``'s arguments) that answers the commit
        awaited: its ``done``, whether it committed, and the error to raise (see
        :func:`commit_refusal`). None when the result answers another commit."""
        held = self._held
        if held is None:
            return None
        offsets, done, _started = held
        if {(tp.topic, tp.partition): tp.offset for tp in partitions} != offsets:
            return None
        self._held = None
        failed = err if err is not None else next((tp.error for tp in partitions if tp.error),
                                                  None)
        if failed is None:
            return done, True, None
        return done, False, commit_refusal(failed, servers)
