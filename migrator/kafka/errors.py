"""Kafka's error codes, once: what each means to the toolkit, and the one translator into its errors.

Every librdkafka / Kafka error code the toolkit acts on is classified here, by code (never by the
error's text), into an :class:`ErrorKind`:

* ``AUTHENTICATION``: the credentials were refused (SASL, SSL). Permanent: nothing can be read;
  :class:`~migrator.errors.KafkaAuthError`.
* ``AUTHORIZATION``: the principal lacks an ACL on a topic, a group or the cluster
  (:func:`authorization_resource` says which). Permanent for that resource: the audit keeps it as
  an access denial (:mod:`migrator.kafka.access`), anything else raises
  :class:`~migrator.errors.KafkaAuthError`.
* ``UNAVAILABLE``: no broker answered, or not in time. Retryable:
  :class:`~migrator.errors.KafkaUnavailableError`.
* ``MEMBERSHIP``: a consumer's group generation moved on (a commit refused during or after a
  rebalance): not an outage, the partitions are someone else's.
* ``NOT_FOUND``: the topic or group is gone (deleted between listing and asking).
* ``OTHER``: anything else (reported as the cluster failing the request).

:func:`translate` turns any librdkafka failure into the toolkit's error, with one wording for
every client (admin, consumer, sampler).
"""

from __future__ import annotations

import concurrent.futures
import enum
import re
from collections.abc import Mapping
from typing import Any, Literal

from confluent_kafka import KafkaError, KafkaException

from migrator.config import redact
from migrator.errors import ConfigError, KafkaAuthError, KafkaUnavailableError, MigratorError

__all__ = [
    "AUTHENTICATION_CODES",
    "AUTHORIZATION_RESOURCES",
    "REACH_HINT",
    "SASL_CODES",
    "ErrorKind",
    "ResourceKind",
    "authorization_resource",
    "error_code",
    "is_authentication_error",
    "is_authorization_error",
    "is_fatal",
    "kind_of",
    "no_sasl_listener",
    "rejected_settings",
    "translate",
]

ResourceKind = Literal["cluster", "topic", "group"]


class ErrorKind(enum.Enum):
    AUTHENTICATION = "authentication"
    AUTHORIZATION = "authorization"
    UNAVAILABLE = "unavailable"
    MEMBERSHIP = "membership"
    NOT_FOUND = "not_found"
    OTHER = "other"

    @property
    def refused(self) -> bool:
        """Kafka refused us (credentials or ACLs): retrying does not help."""
        return self in (ErrorKind.AUTHENTICATION, ErrorKind.AUTHORIZATION)


AUTHENTICATION_CODES: frozenset[int] = frozenset(
    {KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError._SSL}
)
# The SASL handshake or login failed (the TLS layer's _SSL aside): what ``doctor`` calls its sasl step.
SASL_CODES: frozenset[int] = (AUTHENTICATION_CODES - {KafkaError._SSL}) | {
    KafkaError.UNSUPPORTED_SASL_MECHANISM, KafkaError.ILLEGAL_SASL_STATE,
}
AUTHORIZATION_RESOURCES: dict[int, ResourceKind] = {
    KafkaError.TOPIC_AUTHORIZATION_FAILED: "topic",
    KafkaError.GROUP_AUTHORIZATION_FAILED: "group",
    KafkaError.CLUSTER_AUTHORIZATION_FAILED: "cluster",
}
_TABLE: dict[int, ErrorKind] = {
    **{code: ErrorKind.AUTHENTICATION for code in AUTHENTICATION_CODES},
    **{code: ErrorKind.AUTHORIZATION for code in AUTHORIZATION_RESOURCES},
    **{
        code: ErrorKind.UNAVAILABLE
        for code in (
            KafkaError._ALL_BROKERS_DOWN,
            KafkaError._TRANSPORT,
            KafkaError._RESOLVE,
            KafkaError._TIMED_OUT,
            KafkaError.REQUEST_TIMED_OUT,
            KafkaError._WAIT_COORD,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.LEADER_NOT_AVAILABLE,
            KafkaError.NOT_COORDINATOR,
        )
    },
    **{
        code: ErrorKind.MEMBERSHIP
        for code in (
            KafkaError.UNKNOWN_MEMBER_ID,
            KafkaError.ILLEGAL_GENERATION,
            KafkaError.REBALANCE_IN_PROGRESS,
            KafkaError.FENCED_INSTANCE_ID,
        )
    },
    KafkaError.UNKNOWN_TOPIC_OR_PART: ErrorKind.NOT_FOUND,
    KafkaError.GROUP_ID_NOT_FOUND: ErrorKind.NOT_FOUND,
}

# librdkafka's own wording for these is confusing ("0/2 brokers are down"): say what happened.
_REASONS = {
    KafkaError._ALL_BROKERS_DOWN: "no broker could be reached (refused, unresolvable or no route)",
    KafkaError._RESOLVE: "the broker host name does not resolve",
    KafkaError._TIMED_OUT: "no answer in time",
}
_AUTH_HINT = "Check the SASL/SSL settings (--kafka-config, -X) and the principal's ACLs."
REACH_HINT = "Check --bootstrap-servers and that the brokers are reachable"


def kind_of(code: int | None) -> ErrorKind:
    """What a Kafka error code means to the toolkit."""
    return _TABLE.get(code, ErrorKind.OTHER) if code is not None else ErrorKind.OTHER


def authorization_resource(code: int) -> ResourceKind | None:
    """The kind of resource an authorization error refers to (``None``: no authorization error)."""
    return AUTHORIZATION_RESOURCES.get(code)


def is_authorization_error(code: int) -> bool:
    """The principal is known but lacks an ACL (topic, group or cluster authorization failed)."""
    return kind_of(code) is ErrorKind.AUTHORIZATION


def is_authentication_error(code: int) -> bool:
    """The credentials themselves were refused (SASL or SSL): nothing can be read."""
    return kind_of(code) is ErrorKind.AUTHENTICATION


def is_fatal(error: KafkaError) -> bool:
    """A client error that ends the work: librdkafka says so, or Kafka refused us."""
    return bool(error.fatal()) or kind_of(error.code()).refused


def _kafka_error(error: BaseException | KafkaError) -> KafkaError | None:
    if isinstance(error, KafkaError):
        return error
    if isinstance(error, KafkaException) and error.args and isinstance(error.args[0], KafkaError):
        return error.args[0]
    return None


def error_code(error: BaseException | KafkaError) -> int | None:
    """The Kafka error code a librdkafka failure carries (``None`` for any other exception)."""
    kerr = _kafka_error(error)
    return kerr.code() if kerr is not None else None


# librdkafka's complaint when a listener without SASL answers a SASL handshake: it lists the
# mechanisms the broker offers, and there are none ("broker's supported mechanisms:  (after...").
_NO_SASL = re.compile(r"supported mechanisms:\s*(\(|$)")


def no_sasl_listener(detail: str, servers: str) -> str | None:
    """What to say when ``detail`` shows SASL settings sent to a listener that does no SASL."""
    if not _NO_SASL.search(detail):
        return None
    return (f"Kafka at {servers} does not do SASL: the listener offered no SASL mechanism, so it "
            "is a PLAINTEXT or SSL listener. Try security.protocol=PLAINTEXT (or SSL if it "
            "expects TLS) without the sasl.* settings, or use the cluster's SASL listener address.")


def translate(
    error: BaseException | KafkaError,
    what: str,
    servers: str,
    *,
    reach_hint: str = REACH_HINT,
) -> MigratorError:
    """The toolkit error for a librdkafka failure while doing ``what`` against ``servers``.

    Refused credentials or ACLs: :class:`KafkaAuthError`; everything else (no answer, a timeout,
    any other failure): :class:`KafkaUnavailableError`. ``reach_hint`` is the advice given when
    the cluster did not answer (a command with a timeout flag names it).
    """
    kerr = _kafka_error(error)
    if kerr is not None:
        kind = kind_of(kerr.code())
        reason = _REASONS.get(kerr.code(), kerr.str().rstrip("."))
        if kind.refused and (hint := no_sasl_listener(kerr.str(), servers)):
            return KafkaAuthError(hint)
        if kind.refused:
            return KafkaAuthError(f"Kafka at {servers} refused {what}: {reason}. {_AUTH_HINT}")
        if kind is ErrorKind.UNAVAILABLE:
            return KafkaUnavailableError(
                f"Kafka at {servers} did not answer {what}: {reason}. {reach_hint}."
            )
        return KafkaUnavailableError(f"Kafka at {servers} failed {what}: {reason}.")
    if isinstance(error, concurrent.futures.TimeoutError | TimeoutError):
        return KafkaUnavailableError(f"Kafka at {servers} did not answer {what} in time. {reach_hint}.")
    return KafkaUnavailableError(f"Kafka at {servers} failed {what}: {error}.")


def rejected_settings(exc: KafkaException, client: str, conf: Mapping[str, Any],
                      fix: str) -> ConfigError:
    """One line for a client librdkafka would not create: what it refused, with the value it
    was given (unless secret), and where to fix it (``fix``)."""
    err = exc.args[0] if exc.args else exc
    detail = (err.str() if isinstance(err, KafkaError) else str(err)).strip()
    for key, value in conf.items():
        if f'"{key}"' in detail and isinstance(value, str) and value not in detail:
            detail = f"{detail.rstrip('.')} (given: {key}={redact({key: value})[key]})"
            break
    return ConfigError(f"Kafka {client} settings rejected: {detail}; {fix}")
