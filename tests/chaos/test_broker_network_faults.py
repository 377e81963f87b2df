"""Network faults between the bridge and its Kafka broker: latency, a bandwidth cap, connections
reset, connections that accept and then hang, with traffic flowing.

Kafka clients connect to what the broker advertises, so the fault proxy is what the broker
advertises: a dedicated broker (the stack's own start code, never the shared one) whose
PLAINTEXT listener is advertised at the proxy's port. The test itself produces and reads
offsets through a second, direct listener (``DIRECT``, also the inter-broker one), so only the
bridge's connections cross the proxy."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from migrator.stack import servers
from migrator.stack.maven import resolve_jars
from migrator.stack.process import free_port, stop, wait_until
from tests.bridge.harness import bridge_config
from tests.chaos.checks import (
    assert_running,
    bridge_with_metrics,
    commits_behind_delivery,
    readyz,
    settle,
    wait_for,
)
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.faultproxy import HANG, PASS, RESET, FaultProxy, Mode, bandwidth, latency
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer

pytestmark = [pytest.mark.stack, pytest.mark.qstash, pytest.mark.chaos]

# librdkafka gives up on a request after socket.timeout.ms (60 s by default): 3 s here, so a
# hung connection ends in a timeout and a reconnect within the test, and within the session
# timeout (6 s), so the group keeps its member
CONSUMER = {"socket.timeout.ms": "3000", "reconnect.backoff.max.ms": "1000"}


@dataclass
class ProxiedBroker:
    proxy: FaultProxy
    direct: str  # bootstrap of the listener the test uses (no proxy)


@pytest.fixture(scope="module")
def proxied_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxiedBroker]:
    run = tmp_path_factory.mktemp("chaos-proxied-broker")
    jars = resolve_jars(log=run / "logs" / "maven.log")
    ports = servers.BrokerPorts(free_port(), free_port(), free_port(), free_port())
    direct = free_port()
    proxy = FaultProxy(("127.0.0.1", ports.plaintext))
    base = (f"SASL_PLAINTEXT://127.0.0.1:{ports.sasl},SSL://127.0.0.1:{ports.ssl},"
            f"CONTROLLER://127.0.0.1:{ports.controller},DIRECT://127.0.0.1:{direct}")
    servers.format_storage(
        jars, run, ports, servers.new_cluster_id(), "migrator", "unused-pw",
        extra_properties={
            "listeners": f"PLAINTEXT://127.0.0.1:{ports.plaintext},{base}",
            "advertised.listeners": f"PLAINTEXT://{proxy.address},{base}",
            "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,"
                                              "SASL_PLAINTEXT:SASL_PLAINTEXT,SSL:SSL,"
                                              "DIRECT:PLAINTEXT",
            "inter.broker.listener.name": "DIRECT",
        })
    proc = servers.start_broker(jars, run)
    try:
        wait_until(lambda: servers.broker_ready(proxy.address), timeout=120,
                   what="the proxied chaos broker", proc=proc, log=run / "logs" / "kafka.log")
        yield ProxiedBroker(proxy, f"127.0.0.1:{direct}")
    finally:
        stop(proc.pid, grace=10)
        proc.wait(30)
        proxy.close()


def test_latency_bandwidth_resets_and_hangs_between_the_bridge_and_its_broker(
    proxied_broker: ProxiedBroker, qstash_server: QStashServer, endpoint: RecordingEndpoint,
) -> None:
    """Four rounds, one fault each, records produced (directly) while the fault holds: every
    record arrives exactly once through QStash, commits never run ahead of deliveries, the
    bridge keeps running; while connections are reset or hang /readyz says the broker is
unreachable; a hang ends in timeouts and reconnects, and traffic resumes."""
    proxy = proxied_broker.proxy
    kafka = KafkaKit(proxied_broker.direct, None)
    through_proxy = KafkaKit(proxy.address, None)  # what the bridge is given
    topic = kafka.create_topic(unique("chaos-knet"), partitions=3)
    group = unique("chaos-g")
    cfg = bridge_config(group=group, batch={"count": 10, "linger_ms": 5},
                        in_flight={"batches": 2, "records": 100},
                        routes=[{"topic": topic, "destinations": [
                            {"kind": "publish-url", "url": endpoint.url + "/hook"}]}])
    per_round, produced = 150, 0
    seen: list[str] = []

    def produce() -> None:
        nonlocal produced
        kafka.produce(topic, (Rec(f"v{i}", partition=i % 3)
                              for i in range(produced, produced + per_round)))
        produced += per_round

    def arrived() -> int:
        return len(endpoint.requests)

    faults: list[tuple[str, Mode, Callable[[], None]]] = []
    with bridge_with_metrics(cfg, through_proxy, qstash_server.connection, stall_after=1.0,
                             consumer_overrides=CONSUMER) as (rb, metrics_port):
        produce()
        wait_for("first deliveries", arrived, lambda n: n >= 60)
        settle(endpoint, produced)

        def slow() -> None:  # traffic keeps flowing through the slow link
            produce()
            settle(endpoint, produced, timeout=60)

        def cut_off() -> None:  # nothing gets through; the bridge waits, alive, not ready
            before = arrived()
            produce()
            status = wait_for("/readyz to report the broker unreachable",
                              lambda: readyz(metrics_port),
                              lambda r: r[0] == 503 and r[1].startswith("kafka unreachable"),
                              timeout=15)
            seen.append(status[1])
            time.sleep(1.0)  # long enough for a 3 s request timeout, short of the session's
            assert_running(rb)
            assert arrived() == before, "records crossed a cut-off link"

        faults = [("latency 50 ms", latency(0.05), slow),
                  ("bandwidth 20 kB/s", bandwidth(20_000), slow),
                  ("connections reset", RESET, cut_off),
                  ("accept, then hang", HANG, cut_off)]
        for name, mode, during in faults:
            proxy.set(mode)
            started = time.monotonic()
            during()
            proxy.set(PASS)
            outcome = settle(endpoint, produced, timeout=60)
            assert outcome.lost == 0 and outcome.duplicates == 0, (name, outcome)
            assert_running(rb)
            wait_for("/readyz ready again", lambda: readyz(metrics_port), lambda r: r[0] == 200)
            seen.append(f"{name}: recovered {time.monotonic() - started:.1f}s after it began")
        kafka.wait_committed(group, topic, 3)
        commits_behind_delivery(kafka, group, topic, 3, endpoint)
        assert_running(rb)
        final = rb.stop()
    outcome = settle(endpoint, produced, timeout=10)
    assert outcome.lost == 0 and outcome.duplicates == 0, outcome
    assert final.dead_lettered == 0 and proxy.resets > 0 and proxy.hung > 0, (final, proxy)
    print(f"\nbridge<->broker faults: {len(faults)} survived, {outcome}, resets={proxy.resets} "
          f"hung={proxy.hung}; {seen}")
