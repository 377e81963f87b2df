"""Pure logic of :func:`migrator.cutover.outcome.settle`: which log entry decides a message's
outcome. A message QStash delivered (2xx) counts as delivered even when its logs also carry a
cancel, listed before or after the delivery: the endpoint has the record."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest

from migrator.cutover.outcome import settle
from migrator.cutover.qstash_logs import LogReader


def _entry(mid: str, state: str, offset: int) -> dict[str, Any]:
    return {"messageId": mid, "state": state,
            "header": {"Kafka-Topic": ["t"], "Kafka-Partition": ["0"],
                       "Kafka-Offset": [str(offset)]}}


class Logs:
    """QStash's log listing over fixed entries (newest first, as QStash lists them)."""

    def __init__(self, entries: list[dict[str, Any]]) -> None:
        self.entries = entries

    def logs(self, *, label: str, state: str | None = None, from_ms: int | None = None,
             to_ms: int | None = None) -> Iterator[dict[str, Any]]:
        return (e for e in self.entries if state is None or e["state"] == state)

    def logs_of(self, message_ids: list[str]) -> Iterator[dict[str, Any]]:
        return (e for e in self.entries if e["messageId"] in message_ids)


@pytest.mark.parametrize("newest_first", [["CANCELED", "DELIVERED"], ["DELIVERED", "CANCELED"]])
def test_a_delivered_message_counts_as_delivered_whatever_else_was_logged(
    newest_first: list[str],
) -> None:
    entries = [_entry("m1", s, 5) for s in newest_first]
    entries += [_entry("m2", "CANCELED", 6), _entry("m2", "CANCEL_REQUESTED", 6),
                _entry("m1", "CANCEL_REQUESTED", 5),
                _entry("m1", "CREATED", 5), _entry("m2", "CREATED", 6)]
    out = settle(cast(LogReader, Logs(entries)), "l", since_ms=0, timeout=1.0, poll=0.01)
    assert out.delivered == {("t", 0): {5}}
    assert out.not_delivered == {("t", 0): {6}}
    assert (out.messages, out.cancelled) == (2, 1)
