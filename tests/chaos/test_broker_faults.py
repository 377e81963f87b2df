"""Chaos on the Kafka side: the bridge's broker killed (-9) for longer than the session
timeout, and restarted gracefully mid-batch, on the same ports and data; and a consumer client
left knowing no broker (what a graceful restart can do to librdkafka), forced. A dedicated
broker (the stack's own start code, in a run dir of this module), never the shared one."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from migrator.bridge.config import BridgeConfig
from migrator.stack import servers
from migrator.stack.maven import StackJars, resolve_jars
from migrator.stack.process import free_port, stop, wait_until
from tests.bridge.harness import bridge_config, running_bridge
from tests.chaos.checks import settle, wait_for
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer

pytestmark = [pytest.mark.stack, pytest.mark.qstash, pytest.mark.chaos]


@dataclass
class OwnBroker:
    jars: StackJars
    run: Path
    bootstrap: str
    proc: subprocess.Popen[bytes]

    def start(self) -> None:
        self.proc = servers.start_broker(self.jars, self.run)
        wait_until(lambda: servers.broker_ready(self.bootstrap), timeout=120,
                   what="the chaos test broker", proc=self.proc,
                   log=self.run / "logs" / "kafka.log")

    def kill9(self) -> None:
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def graceful_stop(self) -> None:
        """SIGTERM: controlled shutdown, waited for."""
        os.killpg(self.proc.pid, signal.SIGTERM)
        self.proc.wait(120)


@pytest.fixture(scope="module")
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OwnBroker]:
    run = tmp_path_factory.mktemp("chaos-broker")
    jars = resolve_jars(log=run / "logs" / "maven.log")
    ports = servers.BrokerPorts(free_port(), free_port(), free_port(), free_port())
    servers.format_storage(jars, run, ports, servers.new_cluster_id(), "migrator", "unused-pw")
    broker = OwnBroker(jars, run, f"127.0.0.1:{ports.plaintext}",
                       servers.start_broker(jars, run))
    try:
        wait_until(lambda: servers.broker_ready(broker.bootstrap), timeout=120,
                   what="the chaos test broker", proc=broker.proc, log=run / "logs" / "kafka.log")
        yield broker
    finally:
        stop(broker.proc, grace=10)


def _estate(broker: OwnBroker, endpoint: RecordingEndpoint, prefix: str
            ) -> tuple[KafkaKit, str, str, BridgeConfig]:
    """A 3-partition topic holding its first 300 records (v0..v299, round robin) and a bridge
    config publishing it through QStash to ``endpoint``, in small batches."""
    kafka = KafkaKit(broker.bootstrap, None)
    topic = kafka.create_topic(unique(prefix), partitions=3)
    kafka.produce(topic, (Rec(f"v{i}", partition=i % 3) for i in range(300)))
    group = unique("chaos-g")
    cfg = bridge_config(group=group, batch={"count": 10, "linger_ms": 5},
                        in_flight={"batches": 2, "records": 100},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url + "/hook"}]}])
    return kafka, topic, group, cfg


# a broker restart (a JVM start) can take a minute on a loaded machine, then up to 60 s to
# settle and 90 s for the commits: more than the suite's 120 s default
@pytest.mark.timeout(300)
@pytest.mark.parametrize("how", ["kill -9, down past the session timeout",
                                 "graceful restart (controlled shutdown) mid-batch"])
def test_the_bridge_rides_out_its_broker_going_away(
    own_broker: OwnBroker, qstash_server: QStashServer, endpoint: RecordingEndpoint, how: str
) -> None:
    """Records before, during and after the broker's absence all arrive exactly once through
    QStash; the bridge keeps running, rejoins, resumes from its commits and commits to the end."""
    kafka, topic, group, cfg = _estate(own_broker, endpoint, "chaos-broker")
    n, half = 600, 300
    with running_bridge(cfg, own_broker.bootstrap, qstash=qstash_server.connection) as rb:
        wait_for("deliveries before the fault", lambda: rb.bridge.stats.delivered,
                 lambda d: d >= 60)
        if how.startswith("kill"):
            own_broker.kill9()
            time.sleep(8)  # past session.timeout.ms (6 s)
        else:
            own_broker.graceful_stop()  # mid-batch: the backlog is still being delivered
        assert rb.thread.is_alive() and rb.error is None, rb.error
        # /readyz: thrown out of its group (session timeout) and not back yet
        wait_for("/readyz not ready while the broker is away",
                 lambda: rb.bridge.metrics.not_ready(time.monotonic()),
                 lambda why: why is not None, timeout=60)
        own_broker.start()
        kafka.produce(topic, (Rec(f"v{i}", partition=i % 3) for i in range(half, n)))
        try:
            outcome = settle(endpoint, n, timeout=60)
        except AssertionError as exc:
            b = rb.bridge
            raise AssertionError(f"{exc}; bridge thread alive {rb.thread.is_alive()}, error "
                                 f"{rb.error!r}, {b.stats}, assigned {sorted(b.assigned)}, "
                                 f"paused {b.paused_count}, in flight {b.in_flight}, consumer "
                                 f"renewals {b.consumer.renewals}, "
                                 f"committed {kafka.committed(group, topic, 3)}") from None
        wait_for("committed offsets at the end", lambda: kafka.committed(group, topic, 3),
                 lambda c: c == kafka.end_offsets(topic, 3), timeout=90)
        assert rb.thread.is_alive() and rb.error is None, rb.error
        wait_for("/readyz ready again", lambda: rb.bridge.metrics.not_ready(time.monotonic()),
                 lambda why: why is None, timeout=30)
        renewals = rb.bridge.consumer.renewals
        rb.stop()
    assert outcome.lost == 0 and outcome.duplicates == 0, outcome
    print(f"\nbroker {how}: {outcome}, consumer renewals {renewals}")


def test_a_consumer_stranded_without_any_broker_is_replaced_and_the_bridge_resumes(
    own_broker: OwnBroker, qstash_server: QStashServer, endpoint: RecordingEndpoint
) -> None:
    """The graceful restart above can leave librdkafka knowing no broker at all (see
    :class:`migrator.kafka.broker_watch.BrokerWatch`); it does not happen on every run, so here the
    watch is told so, mid-batch: the bridge replaces its client (the old one hands its
    partitions back, committing what was delivered), the new one joins and resumes from the
    commits, and every record arrives exactly once."""
    kafka, topic, group, cfg = _estate(own_broker, endpoint, "chaos-strand")
    n, half = 600, 300
    with running_bridge(cfg, own_broker.bootstrap, qstash=qstash_server.connection) as rb:
        consumer = rb.bridge.consumer
        assert consumer.watch is not None  # the bridge's consumers collect statistics
        wait_for("deliveries before the client is replaced", lambda: rb.bridge.stats.delivered,
                 lambda d: d >= 60)
        consumer.watch.observe(0, time.monotonic() - consumer.watch.after)
        wait_for("the stranded client replaced", lambda: consumer.renewals, lambda r: r >= 1)
        kafka.produce(topic, (Rec(f"v{i}", partition=i % 3) for i in range(half, n)))
        outcome = settle(endpoint, n, timeout=60)
        wait_for("committed offsets at the end", lambda: kafka.committed(group, topic, 3),
                 lambda c: c == kafka.end_offsets(topic, 3), timeout=90)
        assert rb.thread.is_alive() and rb.error is None, rb.error
        assert consumer.renewals == 1
        rb.stop()
    assert outcome.lost == 0 and outcome.duplicates == 0, outcome
