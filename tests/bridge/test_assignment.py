"""Commits, revocation and start offsets of the bridge's assignment, with a fake consumer."""

from __future__ import annotations

import threading
from typing import Any, cast

from migrator.bridge.assignment import Assignment, start_offsets
from migrator.bridge.batcher import Batcher
from migrator.bridge.config import BatchPolicy, BridgeConfig
from migrator.bridge.flow import Backpressure, Throttle
from migrator.bridge.retry import Backoff
from migrator.config import KafkaConnection
from migrator.kafka.consumer import OFFSET_BEGINNING, OFFSET_END
from tests.bridge.pieces import TOPIC, FakeConsumer, Rig, message

A, B = (TOPIC, 0), (TOPIC, 1)
CONN = KafkaConnection.model_validate({"bootstrap_servers": "127.0.0.1:1"})


def config(**kw: Any) -> BridgeConfig:
    return BridgeConfig.model_validate({"routes": [{"topic": TOPIC, "destinations": [
        {"kind": "direct-http", "url": "http://127.0.0.1:1/hook"}]}], **kw})


def assignment(rig: Rig, consumer: FakeConsumer, drained: list[bool] | None = None,
               batcher: Batcher | None = None) -> Assignment:
    def drain(pending: Any) -> bool:
        rig.cycle()
        if drained is not None:
            drained.append(pending())
        return not pending()

    cfg = config()
    bp = Backpressure(consumer, cfg.in_flight, rig.flow, Backoff(cfg.retry),
                      metrics=rig.metrics, throttle=Throttle(30.0))
    a = Assignment(cfg, CONN, cast(Any, consumer), rig.checkpoint,
                   batcher if batcher is not None else Batcher(BatchPolicy.model_validate({})),
                   rig.dispatch, bp, rig.flow,
                   drain=drain, stopping=threading.Event(), metrics=rig.metrics, stats=rig.stats)
    a.assigned.update({A, B})
    return a


def test_commit_offers_only_the_delivered_prefix_and_skips_a_refused_commit() -> None:
    rig, consumer = Rig(), FakeConsumer()
    a = assignment(rig, consumer)
    rig.dispatch.submit(rig.track([0, 1], partition=0))
    rig.track([5], partition=1)  # never delivered
    a.commit()
    assert consumer.commits == []
    rig.cycle()
    consumer.refuse = True
    a.commit()
    assert consumer.commits == [] and rig.checkpoint.committable() == {A: 2}
    consumer.refuse = False
    a.commit()
    assert consumer.commits == [{A: 2}] and rig.stats.commits == 1
    a.commit()
    assert consumer.commits == [{A: 2}]  # nothing new


def test_a_revoked_partition_is_drained_committed_and_forgotten() -> None:
    rig, consumer = Rig(), FakeConsumer()
    drained: list[bool] = []
    a = assignment(rig, consumer, drained)
    rig.dispatch.submit(rig.track([0, 1], partition=0))
    rig.dispatch.submit(rig.track([0], partition=1))
    a.on_revoke([A])
    assert drained == [False]  # A had nothing pending after one drain pass
    assert consumer.commits == [{A: 2}]
    assert a.assigned == {B} and rig.checkpoint.ticket(A) is None
    assert rig.stats.revoked == 1


def test_a_lost_partition_is_forgotten_without_a_commit() -> None:
    rig, consumer = Rig(), FakeConsumer()
    a = assignment(rig, consumer)
    batch = rig.track([0, 1], partition=0)
    rig.dispatch.submit(batch)
    rig.dispatch.submit(rig.track([2], partition=0))  # waits behind the first
    rig.metrics.ready = True
    a.on_lost([A])
    assert consumer.commits == [] and a.assigned == {B}
    assert rig.metrics.not_ready(0.0) == "not ready"  # /readyz: out of the group until rejoined
    assert rig.flow.records == 2  # the waiting one is dropped; the in-flight one settles later
    rig.cycle()
    assert rig.flow.records == 0 and rig.checkpoint.committable() == {}
    assert rig.stats.lost == 1


def test_start_offsets_only_for_partitions_without_a_committed_offset() -> None:
    consumer = FakeConsumer()
    consumer.group_offsets = {A: 7}
    use = cast(Any, consumer)
    assert start_offsets(config(), use, CONN, [A, B]) == {B: OFFSET_BEGINNING}
    assert start_offsets(config(start="latest"), use, CONN, [A, B]) == {B: OFFSET_END}
    assert start_offsets(config(), use, CONN, [A]) == {}


def test_messages_of_a_forgotten_partition_leave_the_in_flight_count() -> None:
    rig, consumer = Rig(), FakeConsumer()
    batcher = Batcher(BatchPolicy.model_validate({}))
    a = assignment(rig, consumer, batcher=batcher)
    rig.checkpoint.assign(A)
    ticket = rig.checkpoint.ticket(A)
    for off in range(3):
        rig.checkpoint.track(A, off)
        m = message(off, ticket)
        batcher.add((0, A), m)
        rig.flow.records += 1
        rig.flow.bytes += m.size
    a.forget({A})
    assert len(batcher) == 0 and (rig.flow.records, rig.flow.bytes) == (0, 0)
