"""Settling a finished batch into acks, retries and dead letters, without Kafka or sleeps."""

from __future__ import annotations

import pytest

from connectors.sink import Message
from connectors.statuses import CredentialsRefusedError
from migrator.errors import PermanentDeliveryError, RetryableDeliveryError, ServiceError
from tests.bridge.pieces import TOPIC, MemorySink, Rig

TP = (TOPIC, 0)


def test_an_accepted_batch_is_acked_counted_and_frees_its_key() -> None:
    rig = Rig()
    rig.dispatch.submit(rig.track([0, 1, 2]))
    rig.cycle()
    assert rig.checkpoint.committable() == {TP: 3}
    assert (rig.flow.records, rig.flow.bytes) == (0, 0)
    assert rig.stats.delivered == 3
    assert rig.stats.latencies and len(rig.stats.latencies) == 3
    rig.dispatch.submit(rig.track([3]))  # the key is free: sent at once, not queued
    assert len(rig.pool.pending) == 1


def test_a_retryable_failure_retries_only_that_record_and_commits_after_it() -> None:
    failed: list[int] = []

    def reply(m: Message) -> RetryableDeliveryError | None:
        if m.record.offset == 1 and not failed:
            failed.append(1)
            return RetryableDeliveryError("503", status=503)
        return None

    sink = MemorySink(reply=reply)
    rig = Rig(sink)
    rig.dispatch.submit(rig.track([0, 1, 2]))
    rig.pool.run()
    rig.settler.settle_ready()
    assert rig.checkpoint.committable() == {TP: 1}  # 0 delivered, 1 waits, 2 beyond the gap
    assert rig.stats.retries == 1 and rig.flow.records == 1
    rig.cycle()  # the retry is due: sent
    rig.cycle()  # and settled
    assert sink.batches == [[0, 1, 2], [1]]
    assert rig.checkpoint.committable() == {TP: 3}
    assert rig.flow.records == 0 and rig.stats.delivered == 3


def test_a_permanent_failure_is_dead_lettered_and_acked_only_once_written() -> None:
    sink = MemorySink(reply=lambda m: PermanentDeliveryError("422", status=422)
                      if m.record.offset == 0 else None)
    rig = Rig(sink)
    rig.dispatch.submit(rig.track([0, 1]))
    rig.pool.run()
    rig.settler.settle_ready()
    [(record, why)] = rig.writer.written
    assert (record.offset, why.reason, why.status, why.attempts) == (0, "rejected", 422, 1)
    assert rig.checkpoint.committable() == {}  # the dead letter is not acknowledged yet
    assert rig.flow.records == 1
    rig.dead.poll()
    assert rig.checkpoint.committable() == {TP: 2}
    assert rig.stats.dead_lettered == 1 and rig.flow.records == 0


def test_a_failed_dead_letter_write_is_fatal() -> None:
    rig = Rig(MemorySink(reply=lambda _m: PermanentDeliveryError("400", status=400)))
    rig.writer.error = "broker down"
    rig.dispatch.submit(rig.track([0]))
    rig.cycle()
    assert rig.dead.fatal is not None and "broker down" in str(rig.dead.fatal)
    assert rig.checkpoint.committable() == {}


def test_retries_exhausted_are_dead_lettered_as_such() -> None:
    rig = Rig(MemorySink(reply=lambda _m: RetryableDeliveryError("500", status=500)),
              retry={"max_attempts": 3})
    rig.dispatch.submit(rig.track([0]))
    for _ in range(5):
        rig.cycle()
    [(_record, why)] = rig.writer.written
    assert (why.reason, why.attempts) == ("retries-exhausted", 3)
    assert rig.checkpoint.committable() == {TP: 1}


@pytest.mark.parametrize("count_outages", [False, True])
def test_outages_do_not_use_up_attempts_unless_counted(count_outages: bool) -> None:
    down = [True]
    sink = MemorySink(reply=lambda _m: RetryableDeliveryError("429", status=429, outage=True)
                      if down[0] else None)
    rig = Rig(sink, retry={"max_attempts": 2, "count_outages": count_outages})
    rig.dispatch.submit(rig.track([0, 1]))
    for _ in range(6):
        rig.cycle()
    assert rig.metrics.unavailable.labels("dest")._value.get() == 1
    down[0] = False
    rig.cycle()
    rig.cycle()
    if count_outages:
        assert [why.reason for _r, why in rig.writer.written] == ["retries-exhausted"] * 2
        assert rig.stats.delivered == 0
    else:
        assert rig.writer.written == [] and rig.stats.delivered == 2
        assert rig.metrics.unavailable.labels("dest")._value.get() == 0
    assert rig.checkpoint.committable() == {TP: 2}


def test_a_revoked_partition_s_results_are_dropped_not_acked() -> None:
    rig = Rig(MemorySink(reply=lambda _m: RetryableDeliveryError("503", status=503)))
    rig.dispatch.submit(rig.track([0, 1]))
    rig.pool.run()
    rig.checkpoint.revoke(TP)
    rig.checkpoint.assign(TP)  # assigned again: a new ticket, the old results are stale
    rig.settler.settle_ready()
    assert rig.stats.retries == 0 and rig.writer.written == []
    assert rig.flow.records == 0 and rig.checkpoint.committable() == {}


def test_a_refused_credential_stops_the_bridge() -> None:
    rig = Rig(MemorySink(reply=lambda _m: CredentialsRefusedError("QStash refused the token",
                                                                  status=401)))
    rig.dispatch.submit(rig.track([0]))
    rig.pool.run()
    with pytest.raises(ServiceError, match="refused the token") as err:
        rig.settler.settle_ready()
    assert err.value.status == 401
    assert rig.writer.written == []
