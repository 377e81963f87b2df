"""Pure logic of the audit: format detection, sample statistics, rules, redaction, renderers."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest

from migrator.audit.connect import connector_topics, redact_connector_config
from migrator.audit.findings import (
    CATALOG,
    evaluate,
)
from migrator.audit.html import bar_chart, render_html
from migrator.audit.progress import TerminalProgress
from migrator.audit.records import RecordStats, SchemaRef, detect_format, framed_schema_id
from migrator.audit.registry import subject_topic
from migrator.audit.report import render_markdown, render_table
from migrator.audit.throughput import topic_rates
from migrator.audit.topics import TopicFilter
from migrator.cli.audit import rest_connection, write_atomically
from migrator.errors import ConfigError
from migrator.inventory import (
    ClusterInfo,
    ConfigValue,
    ConnectInfo,
    ConnectorInfo,
    ConsumerGroupInfo,
    Inventory,
    PartitionInfo,
    RecordSample,
    SchemaRegistryInfo,
    SectionStatus,
    TopicInfo,
)
from migrator.kafka.sampler import PartitionRange, plan_ranges
from migrator.topic_roles import dead_letter_base, is_streams_internal
from migrator.volume import estimate_volume

# -- records ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "expected"), [
    (None, "empty"),
    (b"", "empty"),
    (b'{"a": 1}', "json"),
    (b"[1, 2]", "json"),
    (b"{not json", "text"),
    (b"hello world\n", "text"),
    ("héllo".encode(), "text"),
    (b"\xff\xfe\x00\x01", "binary"),
    (b"\x01\x02\x03", "binary"),
    (b"\x00\x00\x00\x00\x07\x02ab", "framed"),
])
def test_detect_format(value: bytes | None, expected: str) -> None:
    assert detect_format(value) == expected


def test_framed_schema_id_is_big_endian_after_magic_byte() -> None:
    assert framed_schema_id(b"\x00\x00\x00\x01\x02rest") == 258
    assert framed_schema_id(b"\x00\x00\x01") is None
    assert framed_schema_id(b"\x01\x00\x00\x00\x01") is None


def test_record_stats_percentiles_keys_headers_tombstones() -> None:
    stats = RecordStats()
    for size in range(1, 101):
        stats.add(size=size, key=b"k" if size % 4 == 0 else None, value=b"x" * size,
                  header_names=["h1"] if size == 50 else [])
    stats.add(size=3, key=b"k", value=None)
    sample = stats.result()
    assert sample.sampled == 101
    assert (sample.size_p50, sample.size_p95, sample.size_p99, sample.size_max) == (50, 95, 99, 100)
    assert sample.keyed_ratio == round(26 / 101, 4)
    assert sample.tombstones == 1 and sample.header_names == ["h1"]
    assert sample.value_format == "text"


def test_record_stats_types_framed_values_by_registry() -> None:
    stats = RecordStats()
    for schema_id in (5, 5, 6, 9):
        stats.add(size=10, key=None, value=b"\x00" + schema_id.to_bytes(4, "big") + b"\x02")
    sample = stats.result({5: SchemaRef("AVRO", ("t-value",)), 6: SchemaRef("PROTOBUF", ("p",))})
    assert sample.formats == {"avro": 2, "protobuf": 1, "unknown": 1}
    assert sample.value_format == "avro"
    assert sample.schema_ids == [5, 6, 9] and sample.subjects == ["p", "t-value"]
    shared = RecordStats()
    shared.add(size=10, key=None, value=b"\x00\x00\x00\x00\x05\x02")
    refs = {5: SchemaRef("JSON", ("other-value", "t-value"))}
    assert shared.result(refs, topic="t").subjects == ["t-value"]
    assert shared.result(refs, topic="u").subjects == ["other-value", "t-value"]


def test_all_tombstones_is_empty_format() -> None:
    stats = RecordStats()
    stats.add(size=1, key=b"k", value=None)
    assert stats.result().value_format == "empty"


# -- sampling plan, throughput, filters -----------------------------------------------------------


def test_plan_ranges_spreads_newest_records_over_partitions() -> None:
    ranges = plan_ranges({("t", 0): (0, 100), ("t", 1): (10, 12), ("t", 2): (5, 5),
                          ("u", 0): (0, 3)}, per_topic=10)
    assert sorted(ranges, key=lambda r: (r.topic, r.partition)) == [
        PartitionRange("t", 0, 92, 100), PartitionRange("t", 1, 10, 12),
        PartitionRange("u", 0, 0, 3),
    ]
    assert plan_ranges({("t", 0): (0, 100)}, per_topic=0) == []


def test_topic_rates() -> None:
    rates = topic_rates({("a", 0): 10, ("a", 1): 0, ("b", 0): 5, ("c", 0): 9},
                        {("a", 0): 30, ("a", 1): 20, ("b", 0): 5, ("c", 0): 2}, 4.0)
    assert rates == {"a": 10.0, "b": 0.0, "c": 0.0}
    assert topic_rates({("a", 0): 1}, {("a", 0): 2}, 0) == {}


def test_topic_filter_globs() -> None:
    f = TopicFilter(include=("orders*", "pay?"), exclude=("*.DLQ",))
    assert f("orders") and f("orders-eu") and f("pays")
    assert not f("orders.DLQ") and not f("billing")
    assert TopicFilter()("anything") and not TopicFilter().active


@pytest.mark.parametrize(("name", "streams", "dlq"), [
    ("app-store-changelog", True, False),  # the application's group "app" exists
    ("my-app-store-changelog", True, False),  # application ids may hold dashes
    ("other-KSTREAM-AGGREGATE-STATE-STORE-0000000003-repartition", True, False),  # generated
    ("orders-changelog", False, False),  # a plain (say CDC) topic: no application "orders"
    ("unknown-store-changelog", False, False),  # no group "unknown"
    ("app-changelog", False, False),  # no store name between the id and the suffix
    ("changelog", False, False),
    ("orders.DLQ", False, True),
    ("orders-dlq", False, True),
    ("payments_dead_letter", False, True),
    ("deadline-events", False, False),
])
def test_topic_name_patterns(name: str, streams: bool, dlq: bool) -> None:
    assert is_streams_internal(name, {"app", "my-app", "orders-consumer"}) is streams
    assert (dead_letter_base(name) is not None) is dlq


def test_a_plain_topic_named_changelog_is_not_streams_internal() -> None:
    keyed = RecordSample(sampled=10, keyed_ratio=1.0, tombstones=2, value_format="json")
    compact = {"cleanup.policy": ConfigValue(value="compact", source="topic", is_default=False)}
    topics = [_topic("users-changelog", sample=keyed, configs=compact),
              _topic("app-store-changelog", sample=keyed, configs=compact)]
    groups = [_group("billing", ["users-changelog"]), _group("app", ["app-store-changelog"])]
    codes = {(f.code, f.object) for f in evaluate(_inv(topics, groups))}
    assert ("STREAMS_INTERNAL_TOPIC", "topic:app-store-changelog") in codes
    assert ("STREAMS_INTERNAL_TOPIC", "topic:users-changelog") not in codes
    # the CDC-style topic gets the findings of an ordinary compacted, keyed topic instead
    assert {("COMPACTED_TOPIC", "topic:users-changelog"), ("ORDERING_SENSITIVE",
            "topic:users-changelog"), ("TOMBSTONES", "topic:users-changelog")} <= codes
    assert not {c for c in codes if c[1] == "topic:app-store-changelog"} - {
        ("STREAMS_INTERNAL_TOPIC", "topic:app-store-changelog")}


def test_subject_topic_strategy() -> None:
    assert subject_topic("orders-value") == ("orders", "value")
    assert subject_topic("orders-key") == ("orders", "key")
    assert subject_topic("com.acme.Address") == (None, None)
    assert subject_topic("-value") == (None, None)


# -- connect redaction ------------------------------------------------------------------------------


def test_connector_config_redaction() -> None:
    config = {
        "connector.class": "io.confluent.connect.jdbc.JdbcSinkConnector",
        "connection.password": "s3cret",
        "connection.url": "jdbc:postgresql://db/x?user=app&password=s3cret",
        "http.url": "https://bob:s3cret@example.com/hook",
        "aws.secret.access.key": "s3cret",
        "sasl.jaas.config": 'ScramLoginModule required username="u" password="s3cret";',
        "db.password": "${file:/secrets.properties:db.password}",
        "topics": "a, b",
    }
    redacted = redact_connector_config(config)
    assert "s3cret" not in json.dumps(redacted)
    assert redacted["connection.password"] == "**********"
    assert redacted["http.url"] == "https://bob:**********@example.com/hook"
    assert redacted["db.password"] == "${file:/secrets.properties:db.password}"
    assert redacted["topics"] == "a, b"
    assert connector_topics(config) == ["a", "b"]
    assert connector_topics({"topic": "x"}) == ["x"]


def test_rest_connection_moves_url_credentials_into_auth() -> None:
    conn = rest_connection("https://user:p%40ss@sr.example.com/apis", None, None,
                           flag="--schema-registry-url", timeout=5)
    assert conn is not None and conn.url == "https://sr.example.com/apis"
    assert conn.httpx_auth() == ("user", "p@ss")
    assert "p@ss" not in repr(conn)
    assert rest_connection(None, None, None, flag="x", timeout=1) is None
    with pytest.raises(ConfigError):
        rest_connection("http://h", None, "pw", flag="--connect-url", timeout=1)


def test_write_atomically(tmp_path: Path) -> None:
    target = tmp_path / "r.txt"
    write_atomically(target, "one")
    write_atomically(target, "two")
    assert target.read_text() == "two" and [p.name for p in tmp_path.iterdir()] == ["r.txt"]
    mask = os.umask(0o022)
    os.umask(mask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~mask  # like a plain write, not 0600
    with pytest.raises(ConfigError):
        write_atomically(tmp_path / "nope" / "r.txt", "x")


# -- rules on hand-built inventories -----------------------------------------------------------------


def _topic(name: str, *, parts: int = 1, records: int = 10, sample: RecordSample | None = None,
           configs: dict[str, ConfigValue] | None = None, internal: bool = False,
           rate: float | None = None, last_day: int | None = None) -> TopicInfo:
    return TopicInfo(
        name=name, internal=internal, replication_factor=1, configs=configs or {},
        partitions=[PartitionInfo(partition=i, leader=1, replicas=[1], isr=[1], low_watermark=0,
                                  high_watermark=records) for i in range(parts)],
        sample=sample, records_per_second=rate, records_last_24h=last_day,
    )


def _inv(topics: list[TopicInfo], groups: list[ConsumerGroupInfo] | None = None,
         plan: str = "payg", **kw: object) -> Inventory:
    return Inventory(
        generated_at="2026-01-01T00:00:00+00:00", tool_version="test", qstash_plan=plan,
        cluster=ClusterInfo(cluster_id="c", controller_id=1, brokers=[], bootstrap_servers="b"),
        topics=topics, consumer_groups=groups or [], **kw,
    )


def _group(gid: str, topics: list[str], *, lag: int = 0, members: int = 0,
           moving: bool | None = False) -> ConsumerGroupInfo:
    from migrator.inventory import GroupMember

    return ConsumerGroupInfo(
        group_id=gid, state="Stable" if members else "Empty", topics=topics, total_lag=lag,
        members=[GroupMember(member_id=f"m{i}", client_id="c", host="h") for i in range(members)],
        committed_moving=moving,
    )


def test_no_findings_for_a_plain_topic() -> None:
    inv = _inv([_topic("plain", sample=RecordSample(sampled=5, value_format="json"))],
               [_group("g", ["plain"], members=1, moving=True)])
    assert evaluate(inv) == []


def test_daily_quota_counts_fan_out_and_respects_plans() -> None:
    topics = [_topic("hot", last_day=600), _topic("rated", rate=0.01)]  # 864/day
    groups = [_group("a", ["hot"], members=1), _group("b", ["hot"], members=1)]
    volume = estimate_volume(_inv(topics, groups))
    assert {v.topic: v.messages_per_day for v in volume.topics} == {"hot": 1200, "rated": 864}
    assert volume.messages_per_day == 2064
    assert [f.code for f in evaluate(_inv(topics, groups, plan="free"))
            if f.code == "DAILY_QUOTA"] == ["DAILY_QUOTA"]
    assert not [f for f in evaluate(_inv(topics, groups, plan="payg")) if f.code == "DAILY_QUOTA"]
    assert not [f for f in evaluate(_inv(topics, groups, plan="fixed")) if f.code == "DAILY_QUOTA"]


def test_record_too_large_by_plan_and_by_config_override() -> None:
    big = _topic("big", sample=RecordSample(sampled=1, size_max=2 * 1024 * 1024))
    cfg = _topic("cfg", configs={"max.message.bytes": ConfigValue(
        value=str(20 * 1024 * 1024), source="topic", is_default=False)})
    broker_wide = _topic("wide", configs={"max.message.bytes": ConfigValue(
        value=str(20 * 1024 * 1024), source="static-broker", is_default=False)})
    kafka_default = _topic("plain", configs={"max.message.bytes": ConfigValue(
        value="1048588", source="default", is_default=True)})
    found = {(f.object, f.severity) for f in evaluate(_inv([big, cfg, broker_wide, kafka_default],
                                                            plan="free"))
             if f.code == "RECORD_TOO_LARGE"}
    # a broker-wide setting is one finding on the cluster, not one per topic; Kafka's default
    # (1,048,588 bytes, a hair above 1 MiB because it counts batch overhead) is never flagged
    assert found == {("topic:big", "blocker"), ("topic:cfg", "warning"), ("cluster", "warning")}
    wide = next(f for f in evaluate(_inv([broker_wide], plan="payg")) if f.code == "RECORD_TOO_LARGE")
    assert wide.object == "cluster" and "20.0 MiB" in wide.message and "payg" in wide.message
    on_fixed = {f.object for f in evaluate(_inv([big, cfg, broker_wide], plan="fixed"))
                if f.code == "RECORD_TOO_LARGE"}
    assert on_fixed == set()


def test_stale_only_without_members_and_without_progress() -> None:
    groups = [_group("idle", ["t"]), _group("busy", ["t"], members=2),
              _group("catching-up", ["t"], moving=True), _group("unknown", ["t"], moving=None)]
    stale = {f.object for f in evaluate(_inv([_topic("t")], groups))
             if f.code == "STALE_CONSUMER_GROUP"}
    assert stale == {"group:idle", "group:unknown"}


def test_internal_topics_are_never_flagged() -> None:
    inv = _inv([_topic("__consumer_offsets", internal=True, configs={
        "cleanup.policy": ConfigValue(value="compact", source="topic", is_default=False)})])
    assert evaluate(inv) == []


def test_source_unavailable_only_for_configured_sources() -> None:
    down = SectionStatus(available=False, error="HTTP 401 Unauthorized")
    inv = _inv([], schema_registry=SchemaRegistryInfo(url="http://sr", status=down),
               connect=ConnectInfo())
    assert [(f.code, f.object) for f in evaluate(inv)] == [("SOURCE_UNAVAILABLE", "schema-registry")]


def test_every_code_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "audit.md").read_text()
    for code, info in CATALOG.items():
        assert f"`{code}`" in doc, code
        assert info.severity in doc


# -- renderers ---------------------------------------------------------------------------------------


def _rich_inventory() -> Inventory:
    topics = [_topic("orders", parts=3, rate=12.5, sample=RecordSample(
        sampled=3, size_p95=120, size_max=130, keyed_ratio=1.0, value_format="json")),
        _topic("<script>alert(1)</script>", rate=0.0)]
    groups = [_group("billing", ["orders"], lag=42)]
    connect = ConnectInfo(url="http://connect", connectors=[ConnectorInfo(
        name="sink", connector_class="a.b.HttpSink", kind="sink", state="RUNNING",
        config={"connection.password": "**********"}, topics=["orders"])])
    inv = _inv(topics, groups, connect=connect,
               schema_registry=SchemaRegistryInfo(url="http://sr", status=SectionStatus(
                   available=False, error="timed out")))
    return inv.model_copy(update={"findings": evaluate(inv)})


def test_html_is_self_contained_and_escaped() -> None:
    html = render_html(_rich_inventory())
    assert html.startswith("<!DOCTYPE html>") and html.count("<svg") == 2
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "<link" not in html and "src=" not in html and "@import" not in html
    assert "Unavailable." in html and "CONSUMER_LAG" in html and "Remedy:" in html


def test_bar_chart_scales_to_the_largest_value() -> None:
    svg = bar_chart([("a", 10.0), ("b", 5.0), ("c", 0.0)], color="#000", unit="/s")
    assert 'width="300.0"' in svg and 'width="150.0"' in svg
    assert ">c<" not in svg and "+ 1 more (all at 0)" in svg
    zeros = bar_chart([("x", 0.0), ("y", 0.0)], color="#000", unit="")
    assert ">x<" in zeros and ">y<" in zeros
    assert bar_chart([], color="#000", unit="") .startswith("<p")


def test_table_and_markdown_name_every_section() -> None:
    inv = _rich_inventory()
    table = render_table(inv)
    md = render_markdown(inv)
    for text in (table, md):
        assert "orders" in text and "billing" in text and "CONNECTOR_NEEDS_MAPPING" in text
        assert "UNAVAILABLE" in text.upper()
    assert md.startswith("# Kafka → QStash audit")


def test_terminal_progress_draws_and_clears() -> None:
    stream = io.StringIO()
    progress = TerminalProgress(stream, min_interval=0)
    progress.step("describing topics", 4)
    progress.advance(2)
    progress.step("listing groups")
    progress.finish()
    text = stream.getvalue()
    assert "describing topics" in text and "2/4" in text and "listing groups" in text
    assert text.endswith("\r")


def test_group_progress_between_two_offset_snapshots() -> None:
    from migrator.audit.groups import GroupSnapshot, build_groups
    from migrator.kafka.descriptions import GroupListing

    listing = {g: GroupListing(g, "EMPTY", "CLASSIC", False) for g in ("a", "b", "c", "d")}
    snap = GroupSnapshot(listings=listing, descriptions={}, offsets={
        "a": {("t", 0): 0}, "b": {("t", 0): 5}, "c": {("t", 0): None}, "d": {("t", 0): None}})
    later: dict[str, dict[tuple[str, int], int | None]] = {
        "a": {("t", 0): 3}, "b": {("t", 0): 5}, "c": {("t", 0): None}, "d": {("t", 0): 0}}
    groups = {g.group_id: g for g in build_groups(
        snap, {("t", 0): 10}, later_offsets=later, earlier_high={("t", 0): 8})}
    assert groups["a"].committed_moving is True and groups["a"].total_lag == 7
    assert groups["b"].committed_moving is False and groups["b"].lag_moving is True
    assert groups["c"].committed_moving is False and groups["c"].offsets[0].lag is None
    assert groups["d"].committed_moving is True  # first commit at offset 0 is progress
    assert groups["a"].state == "Empty" and groups["a"].type == "classic"
