from __future__ import annotations

import pytest

from migrator.bridge.checkpoint import Checkpointer, PartitionCheckpoint

TP = ("orders", 0)


def test_releases_only_the_contiguous_acknowledged_prefix() -> None:
    cp = Checkpointer()
    cp.assign(TP)
    tickets = [cp.track(TP, off) for off in (10, 11, 12, 13)]
    assert cp.committable() == {}
    cp.ack(TP, 12, tickets[2])
    cp.ack(TP, 11, tickets[1])
    assert cp.committable() == {}  # 10 still pending
    cp.ack(TP, 10, tickets[0])
    assert cp.committable() == {TP: 13}
    cp.committed({TP: 13})
    assert cp.committable() == {}
    cp.ack(TP, 13, tickets[3])
    assert cp.committable() == {TP: 14}
    assert cp.pending(TP) == 0


def test_records_with_several_destinations_wait_for_all() -> None:
    cp = Checkpointer()
    cp.assign(TP)
    t = cp.track(TP, 0, outcomes=2)
    cp.ack(TP, 0, t)
    assert cp.committable() == {}
    cp.ack(TP, 0, t)
    assert cp.committable() == {TP: 1}


def test_gaps_in_offsets_are_fine_but_order_is_enforced() -> None:
    part = PartitionCheckpoint()
    part.track(5)
    part.track(9)  # compaction / transaction markers leave gaps
    with pytest.raises(ValueError, match="not above"):
        part.track(9)
    with pytest.raises(ValueError, match="not above"):
        part.track(3)
    part.ack(5)
    part.ack(9)
    assert part.to_commit() == 10
    with pytest.raises(ValueError, match="already acknowledged"):
        part.ack(9)


def test_revoked_partitions_are_never_committed_even_after_reassignment() -> None:
    cp = Checkpointer()
    cp.assign(TP)
    old = cp.track(TP, 0)
    cp.revoke(TP)
    assert not cp.ack(TP, 0, old)
    assert cp.committable() == {}
    cp.assign(TP)  # assigned again: a new incarnation
    new = cp.track(TP, 0)
    assert not cp.ack(TP, 0, old)  # the old ticket does not count for the new record
    assert cp.committable() == {}
    assert cp.owns(TP, new) and not cp.owns(TP, old)
    cp.ack(TP, 0, new)
    assert cp.committable() == {TP: 1}


def test_committable_can_be_limited_to_some_partitions() -> None:
    cp = Checkpointer()
    other = ("orders", 1)
    for tp in (TP, other):
        cp.assign(tp)
        cp.ack(tp, 0, cp.track(tp, 0))
    assert cp.committable({other}) == {other: 1}
    assert cp.snapshot() == {TP: (None, 0), other: (None, 0)}


def test_matches_a_brute_force_model_under_random_acks() -> None:
    """Whatever the order of outcomes, the offset offered for commit is the one after the
    longest fully acknowledged prefix (gaps in offsets included), never more."""
    import random

    rnd = random.Random(7)
    part = PartitionCheckpoint()
    offsets = sorted(rnd.sample(range(100, 3_000), 800))
    awaited = {off: rnd.choice((1, 1, 2)) for off in offsets}
    for off in offsets:
        part.track(off, awaited[off])
    outcomes = [off for off in offsets for _ in range(awaited[off])]
    rnd.shuffle(outcomes)
    done: dict[int, int] = dict.fromkeys(offsets, 0)
    for i, off in enumerate(outcomes):
        part.ack(off)
        done[off] += 1
        prefix_end = next((o for o in offsets if done[o] < awaited[o]), offsets[-1] + 1)
        expected = None if prefix_end == offsets[0] else prefix_end
        if i % 37 == 0 or expected == offsets[-1] + 1:
            assert part.to_commit() == expected
    assert part.pending == 0 and part.to_commit() == offsets[-1] + 1
