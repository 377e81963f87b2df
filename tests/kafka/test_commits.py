"""The consumer's commit bookkeeping (pure logic; the commits themselves are tested end to end
in tests/bridge and tests/chaos): one asynchronous commit at a time, settled only by the result
carrying its offsets, and which failures wait for the next commit."""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from migrator.errors import KafkaAuthError
from migrator.kafka.commits import AsyncCommit, commit_refusal

SERVERS = "127.0.0.1:9092 (PLAINTEXT)"


def test_one_async_commit_at_a_time_until_its_timeout() -> None:
    slot = AsyncCommit(timeout=30.0)
    assert not slot.busy(100.0)
    slot.start({("t", 0): 5}, lambda ok: None, now=100.0)
    assert slot.busy(129.9) and not slot.busy(130.0)
    slot.forget()
    assert not slot.busy(100.0)


def test_only_the_result_with_its_offsets_settles_it() -> None:
    seen: list[bool] = []
    slot = AsyncCommit()
    slot.start({("t", 0): 5, ("t", 1): 7}, seen.append, now=0.0)
    assert slot.settle(None, [TopicPartition("t", 0, 5)], SERVERS) is None  # another commit
    settled = slot.settle(None, [TopicPartition("t", 0, 5), TopicPartition("t", 1, 7)], SERVERS)
    assert settled is not None
    done, ok, error = settled
    done(ok)
    assert seen == [True] and error is None and not slot.busy(0.0)
    assert slot.settle(None, [TopicPartition("t", 0, 5)], SERVERS) is None  # settled once


def test_a_failed_commit_settles_with_its_error_or_none_when_it_waits() -> None:
    slot = AsyncCommit()
    slot.start({("t", 0): 5}, lambda ok: None, now=0.0)
    refused = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)
    settled = slot.settle(refused, [TopicPartition("t", 0, 5)], SERVERS)
    assert settled is not None and settled[1] is False
    assert isinstance(settled[2], KafkaAuthError)
    slot.start({("t", 0): 6}, lambda ok: None, now=0.0)
    moved = KafkaError(KafkaError.ILLEGAL_GENERATION)
    settled = slot.settle(moved, [TopicPartition("t", 0, 6)], SERVERS)
    assert settled is not None and settled[1:] == (False, None)


@pytest.mark.parametrize("code", [KafkaError.REBALANCE_IN_PROGRESS, KafkaError.NOT_COORDINATOR])
def test_a_commit_the_group_cannot_take_now_waits_for_the_next(
        code: int, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="migrator.kafka.commits"):
        assert commit_refusal(KafkaException(KafkaError(code)), SERVERS) is None
        assert commit_refusal(KafkaError(code), SERVERS) is None
    assert "offsets kept for the next one" in caplog.text


def test_any_other_commit_failure_is_raised() -> None:
    error = commit_refusal(KafkaException(KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)),
                           SERVERS)
    assert isinstance(error, KafkaAuthError) and "a commit" in str(error)
