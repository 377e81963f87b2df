"""The one Kafka error table and translator, and the three clients that use it (pure: fakes only
stand in for librdkafka's answers; the real broker's errors are covered by test_admin/test_access)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from migrator.config import KafkaConnection
from migrator.errors import KafkaAuthError, KafkaUnavailableError
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.answers import map_kafka_error
from migrator.kafka.consumer import KafkaConsumer
from migrator.kafka.errors import ErrorKind, error_code, is_fatal, kind_of, translate

KINDS = [
    (KafkaError._AUTHENTICATION, ErrorKind.AUTHENTICATION),
    (KafkaError.SASL_AUTHENTICATION_FAILED, ErrorKind.AUTHENTICATION),
    (KafkaError._SSL, ErrorKind.AUTHENTICATION),
    (KafkaError.TOPIC_AUTHORIZATION_FAILED, ErrorKind.AUTHORIZATION),
    (KafkaError.GROUP_AUTHORIZATION_FAILED, ErrorKind.AUTHORIZATION),
    (KafkaError.CLUSTER_AUTHORIZATION_FAILED, ErrorKind.AUTHORIZATION),
    (KafkaError._ALL_BROKERS_DOWN, ErrorKind.UNAVAILABLE),
    (KafkaError._TRANSPORT, ErrorKind.UNAVAILABLE),
    (KafkaError._TIMED_OUT, ErrorKind.UNAVAILABLE),
    (KafkaError.REQUEST_TIMED_OUT, ErrorKind.UNAVAILABLE),
    (KafkaError.COORDINATOR_NOT_AVAILABLE, ErrorKind.UNAVAILABLE),
    (KafkaError.UNKNOWN_MEMBER_ID, ErrorKind.MEMBERSHIP),
    (KafkaError.ILLEGAL_GENERATION, ErrorKind.MEMBERSHIP),
    (KafkaError.REBALANCE_IN_PROGRESS, ErrorKind.MEMBERSHIP),
    (KafkaError.UNKNOWN_TOPIC_OR_PART, ErrorKind.NOT_FOUND),
    (KafkaError.GROUP_ID_NOT_FOUND, ErrorKind.NOT_FOUND),
    (KafkaError.INVALID_REQUEST, ErrorKind.OTHER),
]


@pytest.mark.parametrize(("code", "kind"), KINDS)
def test_every_code_has_one_kind(code: int, kind: ErrorKind) -> None:
    assert kind_of(code) is kind
    assert kind.refused == (kind in (ErrorKind.AUTHENTICATION, ErrorKind.AUTHORIZATION))


@pytest.mark.parametrize(("code", "kind"), KINDS)
def test_the_translator_goes_by_code_never_by_text(code: int, kind: ErrorKind) -> None:
    # the text says the opposite of the code: the code wins
    text = "timed out, broker down" if kind.refused else "SASL authentication failed: denied"
    for raw in (KafkaError(code, text), KafkaException(KafkaError(code, text))):
        assert error_code(raw) == code
        err = translate(raw, "a thing", "h:1")
        assert type(err) is (KafkaAuthError if kind.refused else KafkaUnavailableError)
        assert "h:1" in str(err) and "a thing" in str(err)


def test_unanswered_requests_say_how_to_reach_the_cluster() -> None:
    down = translate(KafkaError(KafkaError._ALL_BROKERS_DOWN, "0/1 brokers are down"), "x", "h:1")
    assert "no broker could be reached" in str(down) and "--bootstrap-servers" in str(down)
    slow = map_kafka_error(concurrent.futures.TimeoutError(), "a listing", "h:1")
    assert isinstance(slow, KafkaUnavailableError) and "--timeout" in str(slow)
    assert "--timeout" not in str(translate(TimeoutError(), "consuming", "h:1"))
    assert isinstance(translate(RuntimeError("boom"), "x", "h:1"), KafkaUnavailableError)


def test_fatal_means_librdkafka_says_so_or_kafka_refused_us() -> None:
    assert is_fatal(KafkaError(KafkaError._SSL, "handshake failed"))
    assert is_fatal(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED, "no"))
    assert is_fatal(KafkaError(KafkaError._TRANSPORT, "x", fatal=True))
    assert not is_fatal(KafkaError(KafkaError._TRANSPORT, "authentication failed"))


# -- the consumer --------------------------------------------------------------------------


class _Msg:
    def __init__(self, code: int) -> None:
        self._err = KafkaError(code, "text that is never read")

    def error(self) -> KafkaError:
        return self._err


class _FakeConsumer:
    def __init__(self, conf: dict[str, Any]) -> None:
        self.codes: list[int] = []

    def consume(self, num_messages: int, timeout: float) -> list[_Msg]:
        return [_Msg(c) for c in self.codes]


def _consumer_answering(*codes: int) -> KafkaConsumer:
    fakes: list[_FakeConsumer] = []

    def factory(conf: dict[str, Any]) -> _FakeConsumer:
        fakes.append(_FakeConsumer(conf))
        return fakes[-1]

    consumer = KafkaConsumer(KafkaConnection.build(bootstrap_servers="h:1"), "g", factory=factory)
    fakes[0].codes = list(codes)
    return consumer


@pytest.mark.parametrize("code", [KafkaError._SSL, KafkaError.SASL_AUTHENTICATION_FAILED,
                                  KafkaError.CLUSTER_AUTHORIZATION_FAILED,
                                  KafkaError.TOPIC_AUTHORIZATION_FAILED])
def test_the_consumer_stops_on_every_refusal_in_the_table(code: int) -> None:
    with pytest.raises(KafkaAuthError, match=r"Kafka at h:1 \(PLAINTEXT\) refused consuming"):
        _consumer_answering(code).consume(10, 0.1)


def test_the_consumer_rides_out_an_outage_and_skips_end_of_partition() -> None:
    consumer = _consumer_answering(KafkaError._TRANSPORT, KafkaError._PARTITION_EOF)
    assert consumer.consume(10, 0.1) == []


# -- the admin's one futures loop ------------------------------------------------------------


def _answer(code: int | None, value: Any = None) -> concurrent.futures.Future[Any]:
    future: concurrent.futures.Future[Any] = concurrent.futures.Future()
    if code is None:
        future.set_result(value)
    else:
        future.set_exception(KafkaException(KafkaError(code, "whatever")))
    return future


class _Desc:
    def __init__(self, name: str) -> None:
        self.name, self.is_internal = name, False
        self.partitions: list[Any] = []


class _MixedClient:
    """describe_topics answers per topic: a description, gone, refused, or another error."""

    def __init__(self, codes: dict[str, int | None]) -> None:
        self.codes = codes

    def poll(self, _timeout: float) -> None:
        return None

    def describe_topics(self, collection: Any, **_kw: Any) -> dict[str, Any]:
        return {n: _answer(self.codes[n], _Desc(n)) for n in collection.topic_names}


def _admin(codes: dict[str, int | None]) -> KafkaAdmin:
    return KafkaAdmin(KafkaConnection.build(bootstrap_servers="h:1"), timeout=5,
                      client=_MixedClient(codes))


def test_gone_and_refused_resources_are_left_out_and_others_raise_naming_the_resource() -> None:
    admin = _admin({"a": None, "gone": KafkaError.UNKNOWN_TOPIC_OR_PART,
                    "secret": KafkaError.TOPIC_AUTHORIZATION_FAILED})
    assert list(admin.describe_topics(["a", "gone", "secret"])) == ["a"]
    assert [(d.resource, d.name) for d in admin.denied] == [("topic", "secret")]
    broken = _admin({"a": None, "bad": KafkaError.INVALID_REQUEST})
    with pytest.raises(KafkaUnavailableError, match=r"topic description of 'bad'"):
        broken.describe_topics(["a", "bad"])
