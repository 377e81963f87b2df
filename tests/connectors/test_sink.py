from __future__ import annotations

import re

from connectors.sink import Record, dedup_id, forward_headers, header_text, route_tag


def test_dedup_ids_use_only_characters_qstash_accepts_and_are_unique() -> None:
    tag = route_tag("orders", "publish-url https://x/y")
    assert re.fullmatch(r"[0-9a-f]{10}", tag)
    ids = {dedup_id(tag, "orders.v1_eu", p, o) for p in range(3) for o in range(100)}
    assert len(ids) == 300
    for i in ids:
        assert re.fullmatch(r"[A-Za-z0-9._-]+", i) and ":" not in i
    assert dedup_id(tag, "a", 1, 23) != dedup_id(tag, "a", 12, 3)
    assert route_tag("orders", "direct-http a") != route_tag("orders", "direct-http b")


def test_forward_headers_carry_coordinates_key_and_headers() -> None:
    rec = Record("t", 2, 41, b"\xff\x00", b"v", [("trace id", b"abc"), ("bin", b"\x01\x02"),
                                                  ("empty", None)], 1_700_000_000_000)
    h: dict[str, str] = {}
    forward_headers(rec, h, "Upstash-Forward-")
    assert h["Upstash-Forward-Kafka-Topic"] == "t"
    assert h["Upstash-Forward-Kafka-Partition"] == "2"
    assert h["Upstash-Forward-Kafka-Offset"] == "41"
    assert h["Upstash-Forward-Kafka-Timestamp"] == "1700000000000"
    assert h["Upstash-Forward-Kafka-Key"] == "/wA="
    assert h["Upstash-Forward-Kafka-Key-Encoding"] == "base64"
    assert h["Upstash-Forward-Kafka-Header-trace-id"] == "abc"
    assert h["Upstash-Forward-Kafka-Header-bin"] == "AQI="
    assert h["Upstash-Forward-Kafka-Header-bin-Encoding"] == "base64"
    assert h["Upstash-Forward-Kafka-Header-empty"] == ""
    assert header_text(b"plain") == ("plain", False)
    assert header_text(b"new\nline") == ("bmV3CmxpbmU=", True)
    assert header_text("café".encode()) == ("Y2Fmw6k=", True)  # httpx sends ASCII headers
