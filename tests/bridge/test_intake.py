"""Intake: tracking, encoding and batching a poll's records, without Kafka or sleeps."""

from __future__ import annotations

from typing import Any

from connectors.codecs import BytesCodec
from connectors.sink import Record
from migrator.bridge.batcher import Batcher
from migrator.bridge.config import BatchPolicy, InFlightLimits, RetryPolicy, Route
from migrator.bridge.flow import Backpressure, Throttle
from migrator.bridge.intake import Intake
from migrator.bridge.retry import Backoff
from migrator.bridge.routes import DestinationRuntime, RouteRuntime
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError
from tests.bridge.pieces import TOPIC, FakeConsumer, MemorySink, Rig

A, B = (TOPIC, 0), (TOPIC, 1)


class ScriptedCodec(BytesCodec):
    """Passes values through, but raises ``errors[value]`` for the values named there."""

    def __init__(self, errors: dict[bytes, Exception]) -> None:
        self.errors = errors

    def encode(self, record: Record) -> tuple[bytes, str]:
        error = self.errors.get(record.value or b"")
        if error is not None:
            raise error
        return super().encode(record)


class Kit:
    def __init__(self, *, destinations: int = 1, codec: Any = None, **route: Any) -> None:
        self.rig = rig = Rig(*[MemorySink(f"d{i}") for i in range(destinations)])
        self.consumer = FakeConsumer()
        self.batcher = Batcher(BatchPolicy.model_validate({"count": 3, "linger_ms": 10_000}))
        self.backpressure = Backpressure(
            self.consumer, InFlightLimits.model_validate({}), rig.flow, Backoff(RetryPolicy.model_validate({})),
            metrics=rig.metrics, throttle=Throttle(30.0))
        cfg = Route.model_validate({"topic": TOPIC, "destinations": [
            {"kind": "direct-http", "url": f"http://127.0.0.1:1/{i}"} for i in range(destinations)],
            **route})
        dests = [DestinationRuntime(i, s.name, s, f"kb-{i}-orders-", 3)
                 for i, s in enumerate(rig.sinks)]
        routes = {TOPIC: RouteRuntime(cfg, codec or BytesCodec(), dests)}
        self.assigned = {A, B}
        for tp in self.assigned:
            rig.checkpoint.assign(tp)
        self.intake = Intake(routes, rig.checkpoint, self.batcher, rig.dispatch, rig.flow,
                             self.backpressure, rig.dead, self.assigned, count_outages=False,
                             metrics=rig.metrics, stats=rig.stats)


def rec(offset: int, value: bytes | None = b"v", partition: int = 0) -> Record:
    return Record(TOPIC, partition, offset, None, value, [], None)


def test_records_are_tracked_once_per_destination_and_full_batches_are_sent() -> None:
    kit = Kit(destinations=2)
    kit.intake.ingest([rec(0), rec(1), rec(2), rec(3)])
    rig = kit.rig
    assert rig.stats.received == 4
    assert rig.flow.records == 8  # one message per record and destination
    assert len(rig.pool.pending) == 2  # a full batch of 3 per destination, sent at once
    assert len(kit.batcher) == 2  # offset 3, once per destination, waits for its linger
    rig.cycle()
    assert rig.checkpoint.committable() == {A: 3}  # 3 still waits for both destinations
    batch_ids = [m.dedup_id for b in kit.batcher.flush() for m in b.messages]
    assert sorted(batch_ids) == ["kb-0-orders-0-3", "kb-1-orders-0-3"]


def test_records_of_partitions_not_owned_or_already_tracked_are_ignored() -> None:
    kit = Kit()
    kit.assigned.discard(B)
    kit.intake.ingest([rec(0), rec(1), rec(0, partition=1)])
    kit.intake.ingest([rec(1), rec(2)])  # 1 again (re-delivered), then 2
    assert kit.rig.stats.received == 3
    assert kit.rig.checkpoint.pending(A) == 3 and kit.rig.checkpoint.pending(B) == 0


def test_tombstones_follow_the_route_policy() -> None:
    skip = Kit()
    skip.intake.ingest([rec(0, None), rec(1, None)])
    assert skip.rig.stats.skipped == 2 and skip.rig.checkpoint.committable() == {A: 2}
    dead = Kit(tombstone="dead_letter")
    dead.intake.ingest([rec(0, None)])
    dead.rig.dead.poll()
    assert [why.reason for _r, why in dead.rig.writer.written] == ["tombstone"]
    assert dead.rig.checkpoint.committable() == {A: 1}
    forward = Kit(tombstone="forward_empty")
    forward.intake.ingest([rec(0, None)])
    assert len(forward.batcher) == 1


def test_an_undecodable_record_is_dead_lettered_and_the_rest_flows() -> None:
    kit = Kit(codec=ScriptedCodec({b"bad": PermanentDeliveryError("not Avro")}))
    kit.intake.ingest([rec(0), rec(1, b"bad"), rec(2)])
    for batch in kit.batcher.flush():
        kit.rig.dispatch.submit(batch)
    kit.rig.cycle()
    [(record, why)] = kit.rig.writer.written
    assert (record.offset, why.reason) == (1, "undecodable")
    assert kit.rig.sinks[0].batches == [[0, 2]]
    assert kit.rig.checkpoint.committable() == {A: 3}


def test_a_registry_outage_holds_the_partition_at_that_record() -> None:
    outage = RetryableDeliveryError("registry down", outage=True)
    kit = Kit(codec=ScriptedCodec({b"framed": outage}))
    kit.intake.ingest([rec(0), rec(1, b"framed"), rec(2), rec(0, partition=1)])
    assert kit.consumer.seeks == [(A, 1)] and A in kit.backpressure.held
    assert kit.rig.writer.written == []
    assert kit.rig.checkpoint.pending(A) == 1  # offset 0 only: 2 comes again after the seek
    assert kit.rig.checkpoint.pending(B) == 1  # another partition of the same poll flows
    kit.intake.ingest([rec(1)])  # decodable again, but the partition is still held: not taken
    assert kit.rig.checkpoint.pending(A) == 1
