"""Switch on the real broker with real old-consumer processes while a producer keeps writing:
for each group, what the old consumer processed plus what the endpoint received is every offset
exactly once."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from migrator.bridge.config import BridgeConfig
from migrator.config import KafkaConnection
from migrator.cutover.coordinator import Coordinator
from migrator.cutover.state import GroupCutover, State
from migrator.errors import FenceTimeoutError, IllegalTransitionError
from tests.cutover.harness import (
    KeepProducing,
    OldConsumer,
    await_exactly_once,
    endpoint_coords,
    gated_bridges,
    wait_for,
)
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(180)


def _config(bootstrap: str, routes: list[dict[str, Any]], **extra: Any) -> BridgeConfig:
    data: dict[str, Any] = {
        "kafka": {"bootstrap_servers": bootstrap},
        "group": unique("mb"),
        "cutover_topic": unique("_cutover"),
        "routes": routes,
        "batch": {"count": 20, "linger_ms": 5},
        "retry": {"initial_backoff": 0.05, "max_backoff": 0.5},
        "shutdown_deadline": 10,
        **extra,
    }
    return BridgeConfig.model_validate(data)


def _switch_in_background(coord: Coordinator, group: str, **kw: Any) -> tuple[
        threading.Thread, list[GroupCutover | BaseException]]:
    result: list[GroupCutover | BaseException] = []

    def run() -> None:
        try:
            result.append(coord.switch(group, **kw))
        except BaseException as exc:
            result.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def _ends(kafka: KafkaKit, topic: str, partitions: int) -> dict[tuple[str, int], int]:
    return {(topic, p): end for p, end in kafka.end_offsets(topic, partitions).items()}


def _await_switch(thread: threading.Thread, result: list[Any]) -> GroupCutover:
    thread.join(90)
    assert result, "switch did not return"
    if isinstance(result[0], BaseException):
        raise result[0]
    state = result[0]
    assert isinstance(state, GroupCutover)
    return state


def test_switch_single_group_direct_http_exactly_once(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-single"), partitions=2)
    group = unique("billing")
    producer = KeepProducing(bootstrap, {topic: 2}, rate=150)
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    try:
        wait_for(lambda: len(old.processed()) >= 100, lambda: f"old saw {len(old.processed())}")
        cfg = _config(bootstrap, [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}])
        coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap), poll=0.2)
        with gated_bridges(cfg, bootstrap) as gate:
            assert coord.prepare(group).state is State.PREPARED
            time.sleep(1.0)
            assert not endpoint.requests, "a prepared group must get nothing"
            with pytest.raises(IllegalTransitionError, match=r"prepared.*not allowed.*switch"):
                coord.rollback(group, timeout=5)
            thread, result = _switch_in_background(coord, group, watch=2.0, timeout=60.0)
            time.sleep(1.5)  # the switch sees a member and waits
            assert thread.is_alive()
            old.stop()
            state = _await_switch(thread, result)
            assert state.state is State.SWITCHED
            committed = {(p.topic, p.partition): p.offset for p in state.handoff}
            assert committed == {(topic, p): 1 + max(o for t, pp, o in old.processed() if pp == p)
                                 for p in range(2)}
            wait_for(lambda: gate.modes()[group] == "live", lambda: str(gate.modes()))
            time.sleep(2.0)  # live traffic through the bridge
            producer.stop()
            ends = _ends(kafka, topic, 2)
            await_exactly_once(old.processed, lambda: endpoint_coords(endpoint), ends)
            # the endpoint starts exactly at the hand-off: its lowest offset per partition
            got = endpoint_coords(endpoint)
            for (_t, p), offset in committed.items():
                assert min(o for _tt, pp, o in got if pp == p) == offset
            # status counts what the bridge committed since the hand-off
            wait_for(lambda: coord.status([group])[0].to_json()["delivered_since_handoff"]
                     == len(got), lambda: str(coord.status([group])[0].to_json()))
        history = [h.state for h in coord.store.load(group, "").history]
        assert history == [State.PREPARED, State.SWITCHING, State.SWITCHED]
        coord.close()
    finally:
        producer.stop()
        old.kill()


def test_fan_out_two_groups_at_different_offsets_through_qstash(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    server = qstash_server_factory()
    topic = kafka.create_topic(unique("cut-fan"), partitions=2)
    billing, shipping = unique("billing"), unique("shipping")
    ep_billing, ep_shipping = endpoint_factory(), endpoint_factory()
    producer = KeepProducing(bootstrap, {topic: 2}, rate=150)
    old_b = OldConsumer(bootstrap, billing, [topic], tmp_path / "b.txt")
    old_s: OldConsumer | None = None
    try:
        wait_for(lambda: len(old_b.processed()) >= 100, lambda: f"billing saw {len(old_b.processed())}")
        old_s = OldConsumer(bootstrap, shipping, [topic], tmp_path / "s.txt")
        cfg = _config(bootstrap, [{"topic": topic, "destinations": [
            {"kind": "publish-url", "url": ep_billing.url, "replaces_group": billing},
            {"kind": "publish-url", "url": ep_shipping.url, "replaces_group": shipping},
        ]}], qstash={"url": server.url, "token": server.token})
        coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap),
                            qstash=server.connection, poll=0.2)
        with gated_bridges(cfg, bootstrap, qstash=server.connection) as gate:
            coord.prepare(billing)
            coord.prepare(shipping)
            # billing first; shipping's old consumer keeps running meanwhile
            old_b.stop()
            b_state = coord.switch(billing, watch=2.0, timeout=60.0)
            wait_for(lambda: gate.modes() == {billing: "live", shipping: None},
                     lambda: str(gate.modes()))
            time.sleep(2.0)
            old_s.stop()
            s_state = coord.switch(shipping, watch=2.0, timeout=60.0)
            assert b_state.handoff_map() != s_state.handoff_map(), "groups at different offsets"
            time.sleep(2.0)
            producer.stop()
            ends = _ends(kafka, topic, 2)
            await_exactly_once(old_b.processed, lambda: endpoint_coords(ep_billing), ends)
            await_exactly_once(old_s.processed, lambda: endpoint_coords(ep_shipping), ends)
        coord.close()
    finally:
        producer.stop()
        old_b.kill()
        if old_s is not None:
            old_s.kill()


def test_a_consumer_still_committing_during_the_watch_is_caught_and_nothing_changes(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint, tmp_path: Path
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    topic = kafka.create_topic(unique("cut-rogue"), partitions=1)
    group = unique("rogue")
    producer = KeepProducing(bootstrap, {topic: 1}, rate=100)
    # assigns by hand: never a member of the group, but commits with its id
    rogue = OldConsumer(bootstrap, group, [topic], tmp_path / "rogue.txt", assign=True)
    try:
        wait_for(lambda: len(rogue.processed()) >= 60, lambda: f"rogue saw {len(rogue.processed())}")
        cfg = _config(bootstrap, [{"topic": topic, "destinations": [
            {"kind": "direct-http", "url": endpoint.url, "replaces_group": group}]}])
        coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap), poll=0.2)
        coord.prepare(group)
        bridge_group = coord.load(group).bridge_group
        with pytest.raises(FenceTimeoutError, match="committed offsets moved"):
            coord.switch(group, watch=2.0, timeout=8.0, require_bridge=False)
        assert coord.load(group).state is State.PREPARED
        assert coord.admin.list_group_offsets([bridge_group]).get(bridge_group, {}) == {}
        assert not endpoint.requests
        coord.close()
    finally:
        producer.stop()
        rogue.kill()


def test_shadow_then_switch_live_starts_at_the_fence_not_where_shadow_got_to(
    kafka: KafkaKit, kafka_stack: EstateInfo, endpoint: RecordingEndpoint,
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    bootstrap = kafka_stack.bootstrap_servers
    server = qstash_server_factory()
    topic = kafka.create_topic(unique("cut-shadow"), partitions=2)
    group = unique("notify")
    producer = KeepProducing(bootstrap, {topic: 2}, rate=100)
    old = OldConsumer(bootstrap, group, [topic], tmp_path / "old.txt")
    try:
        wait_for(lambda: len(old.processed()) >= 60, lambda: f"old saw {len(old.processed())}")
        cfg = _config(bootstrap, [{"topic": topic, "destinations": [
            {"kind": "publish-url", "url": endpoint.url, "replaces_group": group}]}],
            qstash={"url": server.url, "token": server.token})
        qstash = server.connection
        coord = Coordinator(cfg, KafkaConnection(bootstrap_servers=bootstrap), qstash=qstash,
                            poll=0.2)

        def shadow() -> list[tuple[str, int, int]]:
            return [(r.headers["kafka-topic"], int(r.headers["kafka-partition"]),
                     int(r.headers["kafka-offset"])) for r in list(endpoint.requests)
                    if r.headers.get("migrator-shadow") == "true"]

        def live() -> list[tuple[str, int, int]]:
            return [(r.headers["kafka-topic"], int(r.headers["kafka-partition"]),
                     int(r.headers["kafka-offset"])) for r in list(endpoint.requests)
                    if "migrator-shadow" not in r.headers]

        with gated_bridges(cfg, bootstrap, qstash=qstash) as gate:
            coord.prepare(group)
            assert coord.shadow(group).state is State.SHADOW
            wait_for(lambda: len(shadow()) >= 100, lambda: f"shadow got {len(shadow())}")
            assert gate.modes()[group] == "shadow" and not live()
            old.stop()  # the old consumers were authoritative all along
            state = coord.switch(group, watch=2.0, timeout=60.0)
            fence = state.handoff_map()
            time.sleep(2.0)
            producer.stop()
            ends = _ends(kafka, topic, 2)
            await_exactly_once(old.processed, live, ends)
            # live delivery re-sent offsets shadow had delivered (distinct dedup ids) and began
            # at the fence on each partition
            assert set(live()) & set(shadow())
            for (t, p), offset in fence.items():
                assert min(o for tt, pp, o in live() if (tt, pp) == (t, p)) == offset
        coord.close()
    finally:
        producer.stop()
        old.kill()
