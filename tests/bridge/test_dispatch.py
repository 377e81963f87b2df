"""Dispatch order: one batch in flight per ordered partition, retries before later batches."""

from __future__ import annotations

from connectors.sink import Message
from migrator.errors import RetryableDeliveryError
from tests.bridge.pieces import TOPIC, MemorySink, Rig

TP = (TOPIC, 0)


def test_an_ordered_partition_has_one_batch_in_flight_and_keeps_their_order() -> None:
    sink = MemorySink()
    rig = Rig(sink)
    for offsets in ([0, 1], [2, 3], [4]):
        rig.dispatch.submit(rig.track(offsets))
    assert len(rig.pool.pending) == 1  # the others wait behind the first
    for _ in range(3):
        rig.pool.run()
        rig.settler.settle_ready()
    assert sink.batches == [[0, 1], [2, 3], [4]]
    assert rig.checkpoint.committable() == {TP: 5}


def test_unordered_batches_run_in_parallel() -> None:
    rig = Rig()
    for offsets in ([0, 1], [2, 3], [4]):
        rig.dispatch.submit(rig.track(offsets, ordered=False))
    assert len(rig.pool.pending) == 3


def test_partitions_are_ordered_independently() -> None:
    sink = MemorySink()
    rig = Rig(sink)
    rig.dispatch.submit(rig.track([0], partition=0))
    rig.dispatch.submit(rig.track([0], partition=1))
    assert len(rig.pool.pending) == 2


def test_a_retry_goes_before_the_partition_s_later_batches() -> None:
    failures = {2: 2}  # offset 2 fails twice

    def reply(m: Message) -> RetryableDeliveryError | None:
        left = failures.get(m.record.offset, 0)
        if left:
            failures[m.record.offset] = left - 1
            return RetryableDeliveryError("503", status=503)
        return None

    sink = MemorySink(reply=reply)
    rig = Rig(sink)
    rig.dispatch.submit(rig.track([1, 2]))
    rig.dispatch.submit(rig.track([3, 4]))
    for _ in range(5):
        rig.cycle()
    assert sink.batches == [[1, 2], [2], [2], [3, 4]]
    assert rig.checkpoint.committable() == {TP: 5}
    assert rig.stats.batches == 4


def test_a_partition_with_batches_queued_behind_it_is_crowded() -> None:
    rig = Rig()
    rig.dispatch.submit(rig.track([0]))
    for off in range(1, 4):
        rig.dispatch.submit(rig.track([off]))
    assert list(rig.dispatch.crowded()) == []  # three waiting
    rig.dispatch.submit(rig.track([4]))
    assert list(rig.dispatch.crowded()) == [TP]


def test_dropping_a_revoked_partition_forgets_its_waiting_batches() -> None:
    rig = Rig()
    rig.dispatch.submit(rig.track([0]))
    rig.dispatch.submit(rig.track([1, 2]))
    rig.dispatch.submit(rig.track([0], partition=1))
    done: list[int] = []
    rig.dispatch.drop([TP], lambda m: done.append(m.record.offset))
    assert done == [1, 2]
    rig.pool.run()
    rig.settler.settle_ready()
    assert rig.pool.pending == []  # nothing of TP was waiting any more


def test_a_sink_that_raises_fails_its_batch_retryably_instead_of_losing_it() -> None:
    class Broken(MemorySink):
        def write_batch(self, messages):
            raise RuntimeError("bug")

    rig = Rig(Broken())
    rig.dispatch.submit(rig.track([0]))
    rig.pool.run()
    rig.settler.settle_ready()
    assert rig.stats.retries == 1 and rig.checkpoint.committable() == {}
