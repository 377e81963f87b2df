"""KafkaConsumer wrapper on the real broker."""

from __future__ import annotations

import time

import pytest

from migrator.config import KafkaConnection
from migrator.errors import ConfigError, KafkaAuthError, KafkaUnavailableError
from migrator.kafka.consumer import KafkaConsumer
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.wait import wait_until

pytestmark = pytest.mark.stack


def consume_n(consumer: KafkaConsumer, n: int, timeout: float = 30.0) -> list[object]:
    got: list[object] = []

    def more() -> int:
        got.extend(consumer.consume(100, 0.2))
        return len(got)

    wait_until(more, timeout, until=lambda k: k >= n, interval=0, what=f"{n} records consumed")
    return got


def test_nothing_is_committed_unless_asked_then_exactly_what_was_asked(kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("cons"), partitions=1)
    kafka.produce(topic, (Rec(f"v{i}") for i in range(20)))
    group = unique("cons-g")
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap)
    c = KafkaConsumer(conn, group, defaults={"enable.auto.commit": "true"})  # forced off
    c.subscribe([topic])
    assert len(consume_n(c, 20)) == 20
    time.sleep(0.5)
    assert c.committed([(topic, 0)]) == {}
    c.commit({(topic, 0): 7})
    assert c.committed([(topic, 0)]) == {(topic, 0): 7}
    c.close()
    c2 = KafkaConsumer(conn, group)
    c2.subscribe([topic])
    first = consume_n(c2, 1)[0]
    assert first.offset() == 7  # type: ignore[attr-defined]
    c2.close()


def test_errors_in_rebalance_callbacks_resurface_on_the_main_loop(kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("cons-cb"), partitions=1)
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap)
    c = KafkaConsumer(conn, unique("cons-g"))

    def boom(_partitions: object) -> None:
        raise RuntimeError("assignment handler failed")

    c.subscribe([topic], on_assign=boom)
    with pytest.raises(RuntimeError, match="assignment handler failed"):
        for _ in range(100):
            c.consume(10, 0.2)
    c.close()


def test_pause_resume_and_watermarks(kafka: KafkaKit) -> None:
    topic = kafka.create_topic(unique("cons-p"), partitions=1)
    kafka.produce(topic, (Rec(f"v{i}") for i in range(10)))
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap)
    c = KafkaConsumer(conn, unique("cons-g"))
    c.subscribe([topic])
    got = consume_n(c, 1)
    assert got
    assert c.watermarks((topic, 0)) == (0, 10)
    c.pause([(topic, 0)])
    c.resume([(topic, 0)])
    assert len(got) + len(consume_n(c, 10 - len(got))) == 10
    c.close()


def test_bad_settings_are_config_errors() -> None:
    conn = KafkaConnection(bootstrap_servers="127.0.0.1:9", extra={"fetch.max.bytes": "1"})
    with pytest.raises(ConfigError, match=r"fetch\.max\.bytes"):
        KafkaConsumer(conn, "g")


def test_unreachable_cluster_error_is_a_toolkit_error() -> None:
    conn = KafkaConnection(bootstrap_servers="127.0.0.1:9")
    c = KafkaConsumer(conn, unique("cons-g"))
    with pytest.raises(KafkaUnavailableError):
        c.committed([("t", 0)], timeout=1.0)
    c.close()


def test_sasl_settings_on_a_plaintext_listener_say_so(kafka: KafkaKit) -> None:
    conn = KafkaConnection(bootstrap_servers=kafka.bootstrap, security_protocol="SASL_PLAINTEXT",
                           sasl_mechanism="PLAIN", sasl_username="u", sasl_password="p")
    c = KafkaConsumer(conn, unique("cons-g"))
    c.subscribe([unique("cons-none")])
    try:
        with pytest.raises(KafkaAuthError, match=rf"Kafka at {kafka.bootstrap} \(SASL_PLAINTEXT [^)]*\) "
                                                 r"does not do SASL.*"
                                                 r"security\.protocol=PLAINTEXT"):
            for _ in range(100):
                c.consume(10, 0.2)
    finally:
        c.close()
