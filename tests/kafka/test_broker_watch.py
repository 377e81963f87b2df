"""BrokerWatch: a consumer whose client knows no broker at all for a while is stranded."""

from __future__ import annotations

from migrator.kafka.broker_watch import BrokerWatch, known_brokers

LEARNED = {"brokers": {
    "127.0.0.1:9092/1": {"source": "learned", "state": "DOWN", "nodeid": 1},
    "GroupCoordinator": {"source": "logical", "state": "INIT", "nodeid": -1},
}}
# what librdkafka reported after a metadata response without brokers: only the logical handle
NONE_LEFT = {"brokers": {"GroupCoordinator": {"source": "logical", "state": "INIT", "nodeid": -1}}}
BOOTSTRAP = {"brokers": {"127.0.0.1:9092/bootstrap": {"source": "configured", "state": "CONNECT"}}}


def test_only_bootstrap_and_learned_brokers_count() -> None:
    assert known_brokers(LEARNED) == 1
    assert known_brokers(BOOTSTRAP) == 1
    assert known_brokers(NONE_LEFT) == 0
    assert known_brokers({}) == 0
    assert known_brokers({"brokers": "garbage"}) == 0


def test_stranded_only_after_knowing_no_broker_for_the_whole_interval() -> None:
    w = BrokerWatch(after=10)
    w.observe(known_brokers(LEARNED), now=0)  # down, but known: an outage, not stranded
    assert not w.stranded(100)
    w.observe(known_brokers(NONE_LEFT), now=100)
    assert not w.stranded(109.9)
    w.observe(known_brokers(NONE_LEFT), now=105)  # still none: the clock runs from 100
    assert w.stranded(110)


def test_a_broker_seen_again_or_a_reset_starts_over() -> None:
    w = BrokerWatch(after=10)
    w.observe(0, now=0)
    w.observe(1, now=5)  # a re-bootstrap added the bootstrap server back
    assert not w.stranded(50)
    w.observe(0, now=50)
    assert w.stranded(60)
    w.reset()  # replaced by a new client
    assert not w.stranded(1000)
