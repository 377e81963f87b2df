"""Accept-only ``/v2/batch`` fast path: the same answers, stored rows and logs as the full path.

The broker's fast path (cached configuration templates, records built without a ``Message``)
must be indistinguishable from the full path. Each test runs the same batches through two
brokers on real SQLite files, one with the fast path turned off, and compares everything
observable: answers, errors, stored message and dedup rows, queue lag, logs, look-ups.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
from pathlib import Path
from typing import Any

import pytest

from qstash_server import engine as engine_package
from qstash_server.engine import Broker
from qstash_server.engine.messages import Message
from qstash_server.problems import ApiError
from qstash_server.settings import ServerSettings

NOW = 1_700_000_000_000
URL = "http://127.0.0.1:9/sink"
BIG = "x" * (1024 * 1024 + 1)  # over the payg plan's 1 MiB


@pytest.fixture(autouse=True)
def _frozen_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # the full path reads the clock per item, the fast path once per batch
    modules = [engine_package] + [importlib.import_module(f"{engine_package.__name__}.{info.name}")
                                  for info in pkgutil.iter_modules(engine_package.__path__)]
    for module in modules:
        if hasattr(module, "now_ms"):
            monkeypatch.setattr(module, "now_ms", lambda: NOW)


def _broker(path: Path, *, fast: bool, accept_only: bool = True) -> Broker:
    b = Broker(ServerSettings(token="t", accept_only=accept_only, db=str(path)))
    b._id_prefix = "0123456789abcdef"  # the same ids from both brokers
    b.fast_batch = fast
    return b


def _pair(tmp_path: Path) -> tuple[Broker, Broker]:
    fast, full = _broker(tmp_path / "fast.db", fast=True), _broker(tmp_path / "full.db", fast=False)
    for b in (fast, full):
        b.upsert_queue("known", 1, None)
        b.upsert_endpoints("group", [{"url": URL + "/a"}, {"url": URL + "/b", "name": "b"}])
    return fast, full


def _bridge_item(n: int, **extra_headers: Any) -> dict[str, Any]:
    return {"destination": URL, "body": json.dumps({"id": n, "pad": "x" * 40}),
            "headers": {"Content-Type": "application/json",
                        "Upstash-Deduplication-Id": f"kb-0123-bench-0-{n}",
                        "Upstash-Forward-Kafka-Topic": "bench",
                        "Upstash-Forward-Kafka-Partition": "0",
                        "Upstash-Forward-Kafka-Offset": str(n), **extra_headers}}


def _varied_items() -> list[Any]:
    items: list[Any] = [_bridge_item(n) for n in range(5)]
    items += [
        _bridge_item(5, **{"Upstash-Delay": "10s"}),
        _bridge_item(6, **{"Upstash-Retries": "0", "Upstash-Retry-Delay": "1000 * retried"}),
        _bridge_item(7, **{"Upstash-Callback": URL + "/cb", "Upstash-Callback-Retries": "1",
                           "Upstash-Failure-Callback": URL + "/fcb",
                           "Upstash-Failure-Callback-Forward-X-F": "f"}),
        _bridge_item(8, **{"Upstash-Flow-Control-Key": "fk",
                           "Upstash-Flow-Control-Value": "parallelism=2"}),
        _bridge_item(9, **{"Upstash-Method": "PUT", "Upstash-Timeout": "30s",
                           "Upstash-Label": "a,b", "Upstash-Redact-Fields": "body"}),
        _bridge_item(10, **{"Upstash-Not-Before": "1900000000"}),
        _bridge_item(11, **{"Upstash-Content-Based-Deduplication": "true"}),
        _bridge_item(12, **{"Upstash-Delay": "400d"}),  # over the plan: per-item error
        _bridge_item(13, **{"Upstash-Timeout": "3h"}),  # over the plan: per-item error
        _bridge_item(14, **{"Upstash-Forward-Host": "evil", "Upstash-Whatever": "x",
                            "X-Plain": "dropped"}),
        _bridge_item(15, **{"Upstash-Forward-Kafka-Key": "  ", "Upstash-Forward-Empty": ""}),
        _bridge_item(27, **{"upstash-forward-kafka-topic": "2"}),  # same name, other case
        _bridge_item(16, **{"Upstash-Forward-Kafka-Key": 123, "Upstash-Retries": 2}),
        {**_bridge_item(17), "queue": "known"},
        {**_bridge_item(18), "queue": "fresh"},
        {**_bridge_item(19), "queue": ""},
        {**_bridge_item(20), "destination": "group"},
        {**_bridge_item(21), "destination": "no-such-group"},
        {**_bridge_item(22), "body": None},
        {**_bridge_item(23), "body": {"json": ["value"]}},
        {**_bridge_item(24), "body": "déjà vu ✓"},
        {**_bridge_item(25), "body": BIG},
        {**_bridge_item(26), "headers": {"Upstash-Deduplication-Id": "   "}},
        {"destination": URL},
        {"destination": URL, "headers": {"content-type": "text/plain",
                                         "UPSTASH-FORWARD-MIXED-case": "v"}, "body": "b"},
        _bridge_item(0),  # a duplicate of item 0 in the same batch
        _bridge_item(3, **{"Upstash-Delay": "10s"}),  # a duplicate, whatever its other headers
    ]
    return items


def _stored(b: Broker) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    b.store.commit()
    return list(b.store.load_messages()), dict(b.store.load_dedup())


def _logs(b: Broker) -> list[dict[str, Any]]:
    return b.list_logs(lambda _doc: True, None, 10_000)[0]


def test_fast_path_answers_rows_and_logs_match_the_full_path(tmp_path: Path) -> None:
    fast, full = _pair(tmp_path)
    for batch in (_varied_items(), _varied_items()[::-1], [_bridge_item(n) for n in range(100, 600)]):
        assert fast.batch(batch, "10.0.0.1") == full.batch(batch, "10.0.0.1")
    fast_rows, fast_dedup = _stored(fast)
    full_rows, full_dedup = _stored(full)
    assert len(fast_rows) > 500
    assert fast_rows == full_rows
    assert fast_dedup == full_dedup
    assert {n: q.backlog for n, q in fast.queues.items()} == {
        n: q.backlog for n, q in full.queues.items()} == {"known": 1, "fresh": 1}
    assert _logs(fast) == _logs(full)
    # each stored row is what the full path's Message gives, and loads back into one
    for row in fast_rows:
        assert Message.from_record(row).to_record() == row
    mid = fast_rows[0]["id"]
    assert fast.get_message(mid) == full.get_message(mid)
    assert fast.get_message(mid)["header"]["Kafka-Topic"] == ["bench"]


def test_fast_path_was_taken(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, _full = _pair(tmp_path)
    calls: list[str] = []
    original = Broker.accept

    def counting(self: Broker, *args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Broker, "accept", counting)
    answers = fast.batch([_bridge_item(n) for n in range(50)], None)
    assert len({a["messageId"] for a in answers}) == 50
    assert calls == []  # no item needed the full path
    fast.batch([{**_bridge_item(99), "destination": "group"}], None)
    assert calls == ["group"]


@pytest.mark.parametrize(
    ("bad", "index"),
    [
        ({"headers": {"Upstash-Deduplication-Id": "a:b"}}, 3),
        ({"headers": {"Upstash-Delay": "soon"}}, 2),
        ({"headers": {"Upstash-Method": "BREW", "Upstash-Deduplication-Id": "x:y"}}, 1),
        ({"headers": {"Upstash-Retries": "many"}}, 0),
        ({"headers": {"Upstash-Flow-Control-Value": "rate=1"}}, 4),
        ({"headers": ["not", "an", "object"]}, 2),
        ({"queue": 5}, 1),
        ({"destination": None}, 3),
    ],
)
def test_bad_item_gives_the_same_400_and_accepts_nothing(tmp_path: Path, bad: dict[str, Any],
                                                         index: int) -> None:
    fast, full = _pair(tmp_path)
    errors = []
    for b in (fast, full):
        items: list[Any] = [_bridge_item(n) for n in range(5)]
        items[index] = {**items[index], **bad}
        with pytest.raises(ApiError) as info:
            b.batch(items, None)
        errors.append((info.value.status, info.value.message))
        assert _stored(b) == ([], {})
    assert errors[0] == errors[1]
    assert errors[0][0] == 400 and errors[0][1].startswith(f"batch item {index}: ")


def test_fast_path_rows_survive_restart_dedup_lookup_and_cancel(tmp_path: Path) -> None:
    path = tmp_path / "restart.db"
    first = _broker(path, fast=True)
    first.upsert_queue("known", 1, None)
    answers = first.batch([{**_bridge_item(n), "queue": "known"} for n in range(3)], None)
    first.close()

    second = _broker(path, fast=True)
    assert second.queues["known"].backlog == 3
    assert second.batch([_bridge_item(1)], None) == [{**answers[1], "deduplicated": True}]
    second.cancel(answers[0]["messageId"])
    assert second.queues["known"].backlog == 2
    for unknown in (answers[0]["messageId"], "msg_nope",
                    "msg_ffffffffffffffff" + answers[1]["messageId"][20:]):
        with pytest.raises(ApiError) as info:
            second.get_message(unknown)
        assert info.value.status == 404
    second.close()

    # the same file without accept-only: the messages load for delivery
    normal = _broker(path, fast=True, accept_only=False)
    loaded = {m.id: m for m in normal.messages.values()}
    assert sorted(loaded) == sorted(a["messageId"] for a in answers[1:])
    msg = loaded[answers[2]["messageId"]]
    assert msg.body == json.dumps({"id": 2, "pad": "x" * 40}).encode()
    assert msg.header["Kafka-Offset"] == ["2"] and msg.queue == "known"
    assert msg.dedup_key == "id:kb-0123-bench-0-2"
    assert normal.dedup["id:kb-0123-bench-0-2"][0] == answers[2]
    normal.close()
