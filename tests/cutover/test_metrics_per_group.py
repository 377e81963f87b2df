"""A gated bridge process's /metrics keeps one set of series per bridge consumer group: a fan-out
topic whose two replaced groups sit at different offsets, both switched through
`migrator cutover`, shows each group's own committed offsets and lag per partition (as Kafka has
them for that group), and a rolled-back group's series are gone."""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from migrator.bridge.config import load_bridge_config
from migrator.cutover.scope import bridge_group
from tests.bridge.harness import BridgeProcess
from tests.cutover.harness import run_cli, wait_for, write_config
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(240)

PER_PARTITION = 100
OLD_BILLING = {0: 20, 1: 35}  # where each old group had committed when it stopped
OLD_SHIPPING = {0: 60, 1: 45}
SHIPPING_REFUSES_FROM = {0: 80, 1: 90}  # shipping's endpoint answers 503 from these offsets on

Series = dict[tuple[str, str, int], float]  # (group, topic, partition) -> value


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _scrape(url: str) -> dict[str, Series]:
    """bridge_consumer_lag and bridge_committed_offset by (group, topic, partition)."""
    found: dict[str, Series] = {"bridge_consumer_lag": {}, "bridge_committed_offset": {}}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            if sample.name in found:
                labels = sample.labels
                key = (labels["group"], labels["topic"], int(labels["partition"]))
                found[sample.name][key] = sample.value
    return found


def _coords(body: bytes) -> tuple[int, int]:
    partition, offset = body.decode().split("-")
    return int(partition), int(offset)


@pytest.mark.stack
def test_each_bridge_group_has_its_own_lag_and_committed_series(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint_factory: Callable[..., RecordingEndpoint],
    tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("met-fan"), partitions=2)
    # the value is "<partition>-<offset>": each partition gets its records in order
    kafka.produce(topic, [Rec(f"{p}-{i}", partition=p) for p in (0, 1) for i in range(PER_PARTITION)])
    billing, shipping = unique("billing"), unique("shipping")
    kafka.commit_group(billing, {(topic, p): o for p, o in OLD_BILLING.items()})
    kafka.commit_group(shipping, {(topic, p): o for p, o in OLD_SHIPPING.items()})

    def shipping_reply(req: ReceivedRequest) -> Reply:
        p, offset = _coords(req.body)
        return Reply(503, b"not yet") if offset >= SHIPPING_REFUSES_FROM[p] else Reply()

    ep_billing, ep_shipping = endpoint_factory(), endpoint_factory(shipping_reply)
    cfg_path = write_config(tmp_path / "bridge.yaml", {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("mb"),
        "cutover_topic": unique("_cutover"), "shutdown_deadline": 5,
        "batch": {"count": 10, "linger_ms": 5},
        # shipping's refused records are retried for the whole test, never dead-lettered
        "retry": {"max_attempts": 100000, "initial_backoff": 0.05, "max_backoff": 0.2},
        "routes": [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": ep_billing.url, "replaces_group": billing},
            {"kind": "direct-http", "url": ep_shipping.url, "replaces_group": shipping}]}]})
    cfg = load_bridge_config(cfg_path)
    groups = {billing: bridge_group(cfg, billing), shipping: bridge_group(cfg, shipping)}
    port = _free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    bridge = BridgeProcess(str(cfg_path), {}, "--metrics-port", str(port))

    def cli(*args: str) -> None:
        done = run_cli("cutover", *args, "--config", str(cfg_path))
        assert done.returncode == 0, f"cutover {' '.join(args)}: {done.stderr}"

    try:
        for group in (billing, shipping):
            cli("prepare", group)
            cli("switch", group, "--watch", "1s", "--timeout", "60s")
        # billing's bridge group delivers to the end; shipping's commits up to the refused record
        want_committed = {
            groups[billing]: {p: PER_PARTITION for p in (0, 1)},
            groups[shipping]: dict(SHIPPING_REFUSES_FROM),
        }

        def kafka_committed() -> dict[str, dict[int, int]]:
            return {g: kafka.committed(g, topic, 2) for g in want_committed}

        wait_for(lambda: kafka_committed() == want_committed,
                 lambda: f"bridge groups committed {kafka_committed()}, want {want_committed}; "
                         f"bridge log: {bridge.output()[-2000:]}", timeout=90)
        # exactly each group's own records reached its endpoint, from its old group's offset on
        got_billing = sorted(_coords(r.body) for r in ep_billing.requests)
        assert got_billing == [(p, o) for p in (0, 1) for o in range(OLD_BILLING[p], PER_PARTITION)]
        assert min(_coords(r.body) for r in ep_shipping.requests if _coords(r.body)[0] == 0) == \
            (0, OLD_SHIPPING[0])

        ends = kafka.end_offsets(topic, 2)
        want_series = {
            name: {(g, topic, p): float(value(committed[p], ends[p]))
                   for g, committed in want_committed.items() for p in (0, 1)}
            for name, value in (("bridge_committed_offset", lambda c, _e: c),
                                ("bridge_consumer_lag", lambda c, e: e - c))}

        def series() -> dict[str, Series]:
            scraped = _scrape(url)
            return {name: {k: v for k, v in found.items() if k[1] == topic}
                    for name, found in scraped.items()}

        # Kafka's committed offsets of each bridge group are what its series show, per partition
        wait_for(lambda: series() == want_series,
                 lambda: f"/metrics shows {series()}, Kafka has {kafka_committed()} "
                         f"(want {want_series})", timeout=60)

        # billing rolled back: its bridge group's series go, shipping's stay as they were
        cli("rollback", billing)
        still = {name: {k: v for k, v in found.items() if k[0] == groups[shipping]}
                 for name, found in want_series.items()}
        wait_for(lambda: series() == still,
                 lambda: f"after rolling back {billing}: /metrics shows {series()}, want {still}",
                 timeout=60)
        text = httpx.get(url, timeout=10).text
        assert f'group="{groups[billing]}"' not in text, text[:3000]
        assert bridge.terminate() == 0, bridge.output()[-3000:]
    finally:
        bridge.kill()
