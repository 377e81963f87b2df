"""The audit against the seeded estate: inventory checked against Kafka's own tools and the
registry's and Connect's REST answers; every finding code fires where it should and nowhere else."""

from __future__ import annotations

import os
import re
import subprocess
from collections import defaultdict
from pathlib import Path

import httpx
import pytest

from migrator.audit import AuditOptions, run_audit
from migrator.config import KafkaConnection, RestConnection
from migrator.inventory import Inventory
from tests.audit.conftest import LARGE_RECORD, BackgroundProducer, SeededEstate

pytestmark = pytest.mark.stack


def _options(est: SeededEstate, **kw: object) -> AuditOptions:
    base: dict[str, object] = dict(
        kafka=KafkaConnection.build(bootstrap_servers=est.stack.bootstrap_servers),
        schema_registry=RestConnection(url=est.stack.schema_registry_url or ""),
        connect=RestConnection(url=est.stack.connect_url or ""),
        include=(est.include,),
        timeout=20.0,
        sample_seconds=0.0,
        sample_records=50,
    )
    base.update(kw)
    return AuditOptions(**base)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def payg(estate: SeededEstate) -> tuple[Inventory, int]:
    """The audit on the pay-as-you-go plan, sampling throughput while -clicks is written to."""
    with BackgroundProducer(estate.stack.bootstrap_servers, estate.t("clicks")) as producer:
        inv = run_audit(_options(estate, sample_seconds=3.0, qstash_tier="payg"))
    return inv, producer.sent


@pytest.fixture(scope="module")
def free(estate: SeededEstate) -> Inventory:
    return run_audit(_options(estate, qstash_tier="free"))


def _codes(inv: Inventory) -> dict[str, set[str]]:
    out: dict[str, set[str]] = defaultdict(set)
    for f in inv.findings:
        out[f.code].add(f.object)
    return dict(out)


# -- findings: where they should fire and nowhere else ------------------------------------------


def test_each_finding_fires_exactly_where_expected_on_payg(
        payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    t = lambda s: f"topic:{estate.t(s)}"  # noqa: E731
    g = lambda s: f"group:{estate.g(s)}"  # noqa: E731
    assert _codes(inv) == {
        "COMPACTED_TOPIC": {t("customers")},
        "TOMBSTONES": {t("customers")},
        "STREAMS_INTERNAL_TOPIC": {t("app-store-changelog"), t("app-x-repartition")},
        "DEAD_LETTER_TOPIC": {t("orders.DLQ")},
        "ORDERING_SENSITIVE": {t("orders")},
        "FAN_OUT": {t("orders")},
        "CONSUMER_LAG": {g("shipping")},
        "STALE_CONSUMER_GROUP": {g("billing"), g("shipping"), g("app")},
        "RECORD_TOO_LARGE": {t("bigcfg")},
        "SCHEMA_ENCODED_PAYLOADS": {t("avro"), t("jsonschema"), t("proto")},
        "CONNECTOR_NEEDS_MAPPING": {f"connector:{estate.connector}"},
    }
    too_large = next(f for f in inv.findings if f.code == "RECORD_TOO_LARGE")
    assert too_large.severity == "warning" and "max.message.bytes" in too_large.message


def test_free_plan_adds_size_blocker_and_daily_quota(free: Inventory, estate: SeededEstate) -> None:
    codes = _codes(free)
    # the stack's brokers allow 10 MiB (message.max.bytes): one cluster-wide warning on free
    assert codes["RECORD_TOO_LARGE"] == {f"topic:{estate.t('big')}", f"topic:{estate.t('bigcfg')}",
                                         "cluster"}
    big = next(f for f in free.findings
               if f.code == "RECORD_TOO_LARGE" and f.object.endswith(estate.t("big")))
    assert big.severity == "blocker"
    assert codes["DAILY_QUOTA"] == {"cluster"}
    quota = next(f for f in free.findings if f.code == "DAILY_QUOTA")
    assert quota.severity == "blocker" and estate.t("single") in quota.message
    assert "SOURCE_UNAVAILABLE" not in codes


def test_fixed_plan_has_neither_size_nor_quota_findings(estate: SeededEstate) -> None:
    inv = run_audit(_options(estate, qstash_tier="fixed", sample_records=0))
    codes = _codes(inv)
    assert "RECORD_TOO_LARGE" not in codes and "DAILY_QUOTA" not in codes


def test_unavailable_registry_and_connect_degrade_to_a_complete_report(
        estate: SeededEstate, endpoint_factory: object) -> None:
    from tests.fixtures.endpoint import Reply

    refusing = endpoint_factory(lambda req: Reply(401, b'{"error_code":401}'))  # type: ignore[operator]
    inv = run_audit(_options(
        estate,
        schema_registry=RestConnection(url=refusing.url),
        connect=RestConnection(url="http://127.0.0.1:9", timeout=2.0),
    ))
    assert not inv.schema_registry.status.available
    assert inv.schema_registry.status.error == "HTTP 401 Unauthorized"
    assert not inv.connect.status.available and inv.connect.connectors == []
    assert {f.object for f in inv.findings if f.code == "SOURCE_UNAVAILABLE"} == {
        "schema-registry", "connect"}
    # The Kafka part is whole: topics, groups and framed payloads (type unknown without registry).
    assert {t.name for t in inv.topics} == set(estate.topics.values())
    avro = inv.topic(estate.t("avro"))
    assert avro and avro.sample and avro.sample.formats == {"unknown": 6}
    assert "SCHEMA_ENCODED_PAYLOADS" in _codes(inv)


# -- inventory: records, throughput, registry, connect ------------------------------------------


def test_record_samples(payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    orders = inv.topic(estate.t("orders"))
    assert orders and orders.sample
    assert orders.sample.sampled == 30 and orders.sample.keyed_ratio == 1.0
    assert orders.sample.header_names == ["source", "trace-id"]
    assert orders.sample.value_format == "json"
    customers = inv.topic(estate.t("customers"))
    assert customers and customers.sample and customers.sample.tombstones == 2
    big = inv.topic(estate.t("big"))
    assert big and big.sample and big.sample.size_max == LARGE_RECORD
    single = inv.topic(estate.t("single"))
    assert single and single.sample
    assert single.sample.sampled == 50 and single.sample.keyed_ratio == 0.0
    assert single.sample.value_format == "text"
    fmt = {s: inv.topic(estate.t(s)).sample.value_format for s in ("avro", "jsonschema", "proto")}  # type: ignore[union-attr]
    assert fmt == {"avro": "avro", "jsonschema": "json_schema", "proto": "protobuf"}
    for short in ("avro", "jsonschema", "proto"):
        sampled = inv.topic(estate.t(short))
        assert sampled and sampled.sample and sampled.sample.subjects == [estate.subjects[short]]


def test_throughput_from_watermark_deltas(payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, sent = payg
    clicks = inv.topic(estate.t("clicks"))
    assert sent > 0 and clicks and clicks.records_per_second and clicks.records_per_second > 0
    others = [t for t in inv.topics if t.name != estate.t("clicks")
              and t.name != estate.t("connect-in")]
    assert all(t.records_per_second == 0 for t in others)
    single = inv.topic(estate.t("single"))
    assert single and single.records_last_24h == 1200


def test_registry_section_matches_the_rest_answers(
        payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    url = estate.stack.schema_registry_url
    by_subject = {s.subject: s for s in inv.schema_registry.subjects}
    expected = {estate.subjects[k] for k in ("address", "avro", "jsonschema", "proto", "proto-dep")}
    assert expected <= set(by_subject)
    for subject in expected:
        latest = httpx.get(f"{url}/subjects/{subject.replace('/', '%2F')}/versions/latest").json()
        versions = httpx.get(f"{url}/subjects/{subject.replace('/', '%2F')}/versions").json()
        info = by_subject[subject]
        assert info.latest_id == latest["id"] and info.latest_version == latest["version"]
        assert info.versions == sorted(versions)
        assert info.schema_type == latest.get("schemaType", "AVRO")
        assert [(r.name, r.subject, r.version) for r in info.references] == [
            (r["name"], r["subject"], r["version"]) for r in latest.get("references") or []]
    assert by_subject[estate.subjects["avro"]].references[0].subject == estate.subjects["address"]
    assert [r.subject for r in by_subject[estate.subjects["proto"]].references] == [
        estate.subjects["proto-dep"]]
    assert by_subject[estate.subjects["avro"]].topic == estate.t("avro")
    assert by_subject[estate.subjects["avro"]].role == "value"
    assert by_subject[estate.subjects["address"]].topic is None


def test_connect_section_matches_the_rest_answer_and_hides_the_secret(
        payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    status = httpx.get(f"{estate.stack.connect_url}/connectors/{estate.connector}/status").json()
    [connector] = inv.connect.connectors
    assert connector.name == estate.connector and connector.kind == "source"
    assert connector.state == status["connector"]["state"]
    assert connector.task_states == [t["state"] for t in status["tasks"]]
    assert connector.topics == [estate.t("connect-in")]
    assert connector.config["connection.password"] == "**********"
    assert estate.connector_secret not in inv.model_dump_json()
    assert "user=app&password=**********" in connector.config["connection.url"]


def test_groups_members_and_reads_only(payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    groups = {g.group_id: g for g in inv.consumer_groups}
    assert set(groups) == {estate.g("billing"), estate.g("shipping"), estate.g("live"),
                           estate.g("app")}
    live = groups[estate.g("live")]
    assert live.state == "Stable" and len(live.members) == 1
    assert live.members[0].client_id == "live-client"
    assert sorted(live.members[0].assignment) == [f"{estate.t('events')}[0]",
                                                 f"{estate.t('events')}[1]"]
    assert live.total_lag == 0 and live.topics == [estate.t("events")]
    assert groups[estate.g("shipping")].total_lag == 12
    assert groups[estate.g("billing")].total_lag == 0
    assert groups[estate.g("shipping")].committed_moving is False
    # The sampler never created a group.
    listed = {g.group_id for g in estate.kit.admin.list_consumer_groups().result(30).valid}
    assert not any(g.startswith("migrator-audit") for g in listed)


# -- inventory against Kafka's own tools ---------------------------------------------------------


def _kafka_tool(estate: SeededEstate, main_class: str, *args: str) -> str:
    lib = estate.stack.lib_dir or os.environ.get("KAFKA_LIB_DIR")
    if not lib:
        pytest.fail("no Kafka lib dir (kafka_stack.lib_dir / KAFKA_LIB_DIR) for Kafka's tools")
    result = subprocess.run(
        ["java", "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", f"{lib}/*", main_class,
         "--bootstrap-server", estate.stack.bootstrap_servers, *args],
        capture_output=True, text=True, timeout=180, check=True,
    )
    return result.stdout


def test_topics_match_topic_command(payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    out = _kafka_tool(estate, "org.apache.kafka.tools.TopicCommand", "--describe",
                      "--topic", re.escape(estate.prefix) + ".*")
    tool: dict[tuple[str, int], dict[str, str]] = {}
    counts: dict[str, int] = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\w+): ?(\S*)", line))
        if "Partition" in fields:
            tool[(fields["Topic"], int(fields["Partition"]))] = fields
        elif "PartitionCount" in fields:
            counts[fields["Topic"]] = int(fields["PartitionCount"])
    ours = {(t.name, p.partition): p for t in inv.topics for p in t.partitions}
    assert set(ours) == set(tool)
    assert {t.name: len(t.partitions) for t in inv.topics} == counts
    for key, p in ours.items():
        assert str(p.leader) == tool[key]["Leader"]
        assert ",".join(map(str, p.replicas)) == tool[key]["Replicas"]
        assert ",".join(map(str, p.isr)) == tool[key]["Isr"]
    # Overridden configs TopicCommand prints, e.g. Configs: cleanup.policy=compact
    customers = next(line for line in out.splitlines()
                     if f"Topic: {estate.t('customers')}\t" in line and "PartitionCount" in line)
    assert "cleanup.policy=compact" in customers
    t = inv.topic(estate.t("customers"))
    assert t and t.configs["cleanup.policy"].source == "topic"


def test_groups_match_consumer_group_command(
        payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    out = _kafka_tool(estate, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                      "--describe", "--all-groups")
    tool: dict[tuple[str, str, int], tuple[str, str, str]] = {}
    for line in out.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0].startswith(estate.prefix) and cols[2].isdigit():
            tool[(cols[0], cols[1], int(cols[2]))] = (cols[3], cols[4], cols[5])
    ours = {
        (g.group_id, o.topic, o.partition): (str(o.committed), str(o.high_watermark), str(o.lag))
        for g in inv.consumer_groups for o in g.offsets
    }
    assert ours == tool
    states = _kafka_tool(estate, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                         "--describe", "--all-groups", "--state")
    known = {"Empty", "Stable", "PreparingRebalance", "CompletingRebalance", "Dead",
             "Assigning", "Reconciling"}
    tool_states = {c[0]: next(tok for tok in c if tok in known)
                   for c in (line.split() for line in states.splitlines())
                   if c and c[0].startswith(estate.prefix)}
    for g in inv.consumer_groups:
        assert tool_states.get(g.group_id, "").lower() == g.state.lower(), (g.group_id, states)


def test_json_output_is_the_snapshot_plan_reads(
        payg: tuple[Inventory, int], tmp_path: Path) -> None:
    inv, _ = payg
    from migrator.audit.report import render_json

    text = render_json(inv)
    again = Inventory.model_validate_json(text)
    assert again == inv
    import json

    data = json.loads(text)
    assert data["schema_version"] == "1.0"
    assert {"cluster", "topics", "consumer_groups", "schema_registry", "connect",
            "findings"} <= set(data)


def test_topic_configs_match_config_command(
        payg: tuple[Inventory, int], estate: SeededEstate) -> None:
    inv, _ = payg
    sources = {"DYNAMIC_TOPIC_CONFIG": "topic", "STATIC_BROKER_CONFIG": "static-broker",
               "DEFAULT_CONFIG": "default", "DYNAMIC_DEFAULT_BROKER_CONFIG": "cluster",
               "DYNAMIC_BROKER_CONFIG": "broker"}
    for short in ("big", "customers"):
        out = _kafka_tool(estate, "kafka.admin.ConfigCommand", "--entity-type", "topics",
                          "--entity-name", estate.t(short), "--describe", "--all")
        tool: dict[str, tuple[str, str]] = {}
        for line in out.splitlines():
            m = re.match(r"\s+([\w.]+)=(\S*) sensitive=\w+ synonyms=\{(\w*)", line)
            if m:
                tool[m[1]] = (m[2], sources.get(m[3], "default"))
        topic = inv.topic(estate.t(short))
        assert topic is not None
        for key, value in topic.configs.items():
            assert (value.value, value.source) == tool[key], key
    big = inv.topic(estate.t("big"))
    assert big and big.configs["max.message.bytes"].value == str(3 * 1024 * 1024)
