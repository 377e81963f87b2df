"""Backpressure: which partitions are paused, decided from counters and a given clock."""

from __future__ import annotations

from migrator.bridge.config import InFlightLimits, RetryPolicy
from migrator.bridge.flow import PAUSE_AFTER, Backpressure, InFlight, Throttle
from migrator.bridge.metrics import BridgeMetrics
from migrator.bridge.retry import Backoff
from migrator.errors import RetryableDeliveryError
from tests.bridge.pieces import FakeConsumer

A, B = ("t", 0), ("t", 1)


def rig(records: int = 100) -> tuple[Backpressure, InFlight, FakeConsumer]:
    flow, consumer = InFlight(), FakeConsumer()
    policy = RetryPolicy.model_validate({"initial_backoff": 2.0, "max_backoff": 8.0, "jitter": 0})
    bp = Backpressure(consumer, InFlightLimits.model_validate({"records": records, "bytes": 10**9}), flow,
                      Backoff(policy), metrics=BridgeMetrics().for_group("flow"), throttle=Throttle(30.0))
    return bp, flow, consumer


def test_everything_pauses_after_the_limit_held_and_resumes_at_half() -> None:
    bp, flow, consumer = rig(records=100)
    flow.records = 100
    assert bp.at_limit(0.0)
    bp.update(0.0, {A, B})
    assert consumer.paused == set()  # not yet: the loop waits for batches first
    bp.at_limit(PAUSE_AFTER)
    bp.update(PAUSE_AFTER, {A, B})
    assert consumer.paused == {A, B} and bp.stalled
    flow.records = 60
    assert not bp.at_limit(PAUSE_AFTER + 1)
    bp.update(PAUSE_AFTER + 1, {A, B})
    assert consumer.paused == {A, B}  # still more than half the limit in flight
    flow.records = 50
    bp.update(PAUSE_AFTER + 2, {A, B})
    assert consumer.paused == set() and not bp.stalled


def test_a_held_partition_is_sought_back_paused_and_resumed_after_its_backoff() -> None:
    bp, _flow, consumer = rig()
    bp.hold(A, 42, RetryableDeliveryError("registry down", outage=True), 10.0)
    assert consumer.seeks == [(A, 42)] and consumer.paused == {A}
    bp.update(11.0, {A, B})
    assert consumer.paused == {A}
    bp.update(12.0, {A, B})  # initial_backoff 2 s later
    assert consumer.paused == set()
    bp.hold(A, 42, RetryableDeliveryError("registry down", outage=True), 12.0)
    bp.update(15.9, {A, B})
    assert consumer.paused == {A}  # the second hold in a row waits twice as long
    bp.update(16.0, {A, B})
    assert consumer.paused == set()


def test_crowded_partitions_pause_and_partitions_not_owned_never_do() -> None:
    bp, _flow, consumer = rig()
    bp.update(0.0, {A}, crowded=[A, B])
    assert consumer.paused == {A}
    bp.update(1.0, {A}, crowded=[])
    assert consumer.paused == set()


def test_forgetting_a_partition_drops_its_hold() -> None:
    bp, _flow, _consumer = rig()
    bp.hold(A, 1, RetryableDeliveryError("down", outage=True), 0.0)
    bp.forget(A)
    assert A not in bp.held and A not in bp.paused
