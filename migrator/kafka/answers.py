"""How the admin waits for its requests: one batch of futures at a time, bounded by the
timeout, stopped early by a fatal ``error_cb`` (refused credentials, no broker at all); each
resource's answer or, for a refused ACL, an :class:`~migrator.kafka.access.AccessDenied` kept."""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, TypeVar

from confluent_kafka import KafkaError, KafkaException

from migrator.errors import MigratorError
from migrator.kafka.access import AccessDenied, denial_for
from migrator.kafka.errors import REACH_HINT, ErrorKind, error_code, kind_of, translate

__all__ = ["AdminRequests", "map_kafka_error"]

log = logging.getLogger("migrator.kafka.admin")

T = TypeVar("T")
K = TypeVar("K")

# The admin's requests are bounded by the audit's --timeout: name it when Kafka does not answer.
_REACH_HINT = f"{REACH_HINT}, or raise --timeout"


def map_kafka_error(error: BaseException | KafkaError, what: str, servers: str) -> MigratorError:
    """The toolkit error for a librdkafka failure while doing ``what`` (see ``kafka.errors``)."""
    return translate(error, what, servers, reach_hint=_REACH_HINT)


class AdminRequests:
    """The waiting and error bookkeeping under :class:`~migrator.kafka.admin.KafkaAdmin`."""

    _client: Any

    def __init__(self, servers: str, timeout: float) -> None:
        self._servers = servers  # errors name the protocol and SASL mechanism
        self._timeout = timeout
        self._fatal: KafkaError | None = None
        self._lock = threading.Lock()
        self._denied: dict[AccessDenied, None] = {}  # insertion-ordered set

    def _on_error(self, error: KafkaError) -> None:
        log.debug("librdkafka error: %s", error)
        code = error.code()
        # Authorization errors are per resource (handled where the request is answered);
        # only refused credentials or no broker at all end everything.
        if kind_of(code) is ErrorKind.AUTHENTICATION or code == KafkaError._ALL_BROKERS_DOWN \
                or error.fatal():
            with self._lock:
                # An authentication failure explains a later "all brokers down": keep it.
                if self._fatal is None or not kind_of(self._fatal.code()).refused:
                    self._fatal = error

    def _wait(self, futures: Iterable[concurrent.futures.Future[Any]], what: str, *,
              fail_fast: bool) -> None:
        """Wait for futures until done or the deadline; with fail_fast, stop on a fatal error_cb."""
        pending = set(futures)
        deadline = time.monotonic() + self._timeout
        while pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise map_kafka_error(TimeoutError(), what, self._servers)
            _, pending = concurrent.futures.wait(pending, timeout=min(0.2, left))
            if pending:
                self._client.poll(0)
                fatal = self._fatal
                if fatal is not None and (fail_fast or kind_of(fatal.code()).refused):
                    raise map_kafka_error(KafkaException(fatal), what, self._servers)

    def _answers(
        self,
        futures: Mapping[K, concurrent.futures.Future[T]],
        what: str,
        *,
        operation: str,
        doing: str,
        resource: Literal["topic", "group", "cluster"],
        name: Callable[[K], str] = str,
        fail_fast: bool = False,
    ) -> Iterator[tuple[K, T]]:
        """Wait for one batch of per-resource requests and yield each resource's answer.

        A resource that is gone (deleted between listing and asking) is left out; one Kafka
        refused for lack of an ACL ``operation`` is recorded as a denial (the audit was
        ``doing`` something) and left out; any other failure raises the toolkit's error.
        ``fail_fast``: stop waiting on refused credentials or no broker at all (a first call).
        """
        self._wait(futures.values(), what, fail_fast=fail_fast)
        for key, future in futures.items():
            try:
                answer = future.result(timeout=0)
            except KafkaException as exc:
                if kind_of(error_code(exc)) is ErrorKind.NOT_FOUND:
                    continue
                named = name(key)
                if self._deny(exc, operation=operation, what=doing,
                              topic=named if resource == "topic" else None,
                              group=named if resource == "group" else None):
                    continue
                about = what if resource == "cluster" else f"{what} of {named!r}"
                raise map_kafka_error(exc, about, self._servers) from None
            yield key, answer

    def _get(self, future: concurrent.futures.Future[T], what: str) -> T:
        try:
            return future.result(timeout=0)
        except KafkaException as exc:
            raise map_kafka_error(exc, what, self._servers) from None
        except concurrent.futures.TimeoutError as exc:
            raise map_kafka_error(exc, what, self._servers) from None

    def _deny(self, exc: KafkaException, *, operation: str, what: str,
              topic: str | None = None, group: str | None = None) -> bool:
        """Record the denial an exception means; False when it is no authorization error."""
        kerr = exc.args[0] if exc.args else None
        if not isinstance(kerr, KafkaError):
            return False
        denial = denial_for(kerr.code(), operation=operation, what=what, topic=topic, group=group)
        if denial is None:
            return False
        log.info("Kafka refused %s on %s %s (%s)", operation, denial.resource, denial.name, what)
        with self._lock:
            self._denied[denial] = None
        return True

    @property
    def denied(self) -> list[AccessDenied]:
        """Every request refused for lack of an ACL so far, in the order seen (no repeats)."""
        with self._lock:
            return list(self._denied)

    @property
    def _request_timeout(self) -> float:
        return self._timeout
