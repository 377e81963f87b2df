from __future__ import annotations

from connectors.sink import Message, Record
from migrator.bridge.batcher import Batcher
from migrator.bridge.config import BatchPolicy


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def msg(offset: int, partition: int = 0, size: int = 10) -> Message:
    rec = Record("t", partition, offset, None, b"x" * size, [], None)
    return Message(rec, b"x" * size, "text/plain", f"id-{offset}")


def test_count_fills_a_batch() -> None:
    b = Batcher(BatchPolicy(count=3, bytes=10**6, linger_ms=50))
    key = (0, None)
    assert b.add(key, msg(0)) is None
    assert b.add(key, msg(1)) is None
    full = b.add(key, msg(2))
    assert full is not None and [m.record.offset for m in full.messages] == [0, 1, 2]
    assert len(b) == 0


def test_bytes_limit_closes_the_batch_before_it_overflows() -> None:
    b = Batcher(BatchPolicy(count=100, bytes=500, linger_ms=50))  # Message.size = body + 200
    key = (0, None)
    assert b.add(key, msg(0, size=100)) is None  # 300
    full = b.add(key, msg(1, size=100))  # would be 600 > 500: the first goes alone
    assert full is not None and [m.record.offset for m in full.messages] == [0]
    assert len(b) == 1


def test_linger_and_keys() -> None:
    clock = Clock()
    b = Batcher(BatchPolicy(count=100, bytes=10**6, linger_ms=20), clock=clock)
    b.add((0, ("t", 0)), msg(0, 0))
    clock.now += 0.010
    b.add((0, ("t", 1)), msg(0, 1))
    assert b.next_due() == 100.020
    assert b.due() == []
    clock.now += 0.011
    due = b.due()
    assert [d.key for d in due] == [(0, ("t", 0))]
    clock.now += 0.010
    assert [d.key for d in b.due()] == [(0, ("t", 1))]
    assert b.next_due() is None


def test_flush_and_drop_by_partition() -> None:
    b = Batcher(BatchPolicy(count=100, bytes=10**6, linger_ms=20))
    b.add((0, None), msg(0, 0))
    b.add((0, None), msg(0, 1))
    b.add((1, ("t", 1)), msg(1, 1))
    dropped = b.drop(("t", 1))
    assert sorted(m.record.offset for m in dropped) == [0, 1]
    assert len(b) == 1
    assert [m.record.partition for bt in b.flush(("t", 0)) for m in bt.messages] == [0]
    assert b.flush() == []


def test_batch_size_per_destination_kind() -> None:
    """Unset, a QStash destination batches 500 records, a direct one 50; set, both follow it."""
    policy = BatchPolicy(bytes=10**9, linger_ms=50)
    assert (policy.count_for(direct=False), policy.count_for(direct=True)) == (500, 50)
    assert BatchPolicy(count=7).count_for(direct=True) == 7
    b = Batcher(policy, counts=[policy.count_for(direct=False), policy.count_for(direct=True)])
    qstash = [b.add((0, None), msg(i)) for i in range(500)]
    direct = [b.add((1, None), msg(i)) for i in range(50)]
    assert qstash[:-1] == [None] * 499 and qstash[-1] is not None
    assert len(qstash[-1].messages) == 500
    assert direct[:-1] == [None] * 49 and direct[-1] is not None
    assert len(direct[-1].messages) == 50
