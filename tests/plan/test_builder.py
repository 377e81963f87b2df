from __future__ import annotations

from pathlib import Path

import pytest

from migrator.errors import ConfigError
from migrator.inventory import Finding, TopicInfo
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.endpoints import EndpointFile, EndpointMap, load_endpoints
from migrator.plan.spec import is_placeholder

from .factories import connector, group, inventory, topic


def _routes(inv, endpoints=None, **opts):
    plan = build_plan(inv, endpoints or EndpointMap.empty(), PlanOptions(**opts))
    return plan, {r.topic: r for r in plan.routes}


def test_one_group_publishes_to_its_endpoint() -> None:
    eps = EndpointMap(EndpointFile(groups={"billing": "https://b.example.com/{topic}"}))
    plan, routes = _routes(inventory([topic("orders")], [group("billing", "orders")]), eps)
    r = routes["orders"]
    assert r.pattern == "publish"
    assert "one consumer group" in r.reason
    assert [t.endpoint for t in r.targets] == ["https://b.example.com/orders"]
    assert plan.resources.queues == [] and plan.resources.url_groups == []
    assert plan.placeholders() == []


def test_several_groups_fan_out_through_a_url_group() -> None:
    inv = inventory([topic("clicks")], [group("a", "clicks"), group("b", "clicks")])
    plan, routes = _routes(inv, prefix="k-")
    assert routes["clicks"].pattern == "url_group"
    assert routes["clicks"].url_group == "k-clicks"
    (ug,) = plan.resources.url_groups
    assert ug.name == "k-clicks" and [e.name for e in ug.endpoints] == ["a", "b"]
    assert all(is_placeholder(e.url) for e in ug.endpoints)
    assert len(plan.placeholders()) == 4  # 2 targets + 2 URL-group endpoints


def test_ordering_on_one_partition_uses_a_fifo_queue() -> None:
    inv = inventory([topic("payments", partitions=1, keyed=1.0, rps=2)], [group("ledger", "payments")])
    plan, routes = _routes(inv)
    r = routes["payments"]
    assert r.pattern == "fifo_queue" and r.ordering and r.ordering.queue == "payments"
    assert [q.name for q in plan.resources.queues] == ["payments-0"]
    assert plan.resources.queues[0].parallelism == 1


def test_ordering_over_many_partitions_uses_a_fifo_queue_per_partition() -> None:
    inv = inventory([topic("users", partitions=6, keyed=1.0)], [group("crm", "users")])
    plan, routes = _routes(inv)
    r = routes["users"]
    assert r.pattern == "fifo_queue"
    assert r.ordering and r.ordering.queues == 6 and r.ordering.parallelism == 1
    assert "6 queues for 6 partitions" in r.reason
    assert [q.name for q in plan.resources.queues] == [f"users-{i}" for i in range(6)]


def test_more_ordered_topics_than_queues_is_a_plan_limit_not_a_silent_downgrade() -> None:
    topics = [topic(f"t{i}", partitions=1, keyed=0.5) for i in range(12)]
    inv = inventory(topics, [group(f"g{i}", f"t{i}") for i in range(12)])
    plan, routes = _routes(inv, qstash_tier="free")
    assert {routes[f"t{i}"].pattern for i in range(12)} == {"fifo_queue"}
    assert any(b.code == "PLAN_LIMIT" and b.object == "qstash:queues" and "12 queues" in b.message
               for b in plan.blockers)


def test_audit_ordering_finding_makes_a_route_ordered() -> None:
    finding = Finding(code="ORDERING_SENSITIVE", severity="warning", object="topic:ev",
                      message="m", remedy="r")
    inv = inventory([topic("ev", partitions=1, keyed=0.0)], [group("g", "ev")], findings=[finding])
    _, routes = _routes(inv)
    assert routes["ev"].pattern == "fifo_queue" and "ordering-sensitive" in routes["ev"].reason


def test_streams_application_becomes_a_workflow_and_its_internal_topics_are_blocked() -> None:
    inv = inventory(
        [topic("orders"), topic("app1-store-changelog", configs={"cleanup.policy": "compact"}),
         topic("app1-agg-repartition")],
        [group("app1", "orders", "app1-agg-repartition")],
    )
    plan, routes = _routes(inv)
    assert routes["orders"].pattern == "workflow"
    assert routes["orders"].targets[0].workflow
    assert routes["app1-store-changelog"].pattern == "blocked"
    assert routes["app1-agg-repartition"].pattern == "blocked"
    codes = {(b.code, b.object) for b in plan.blockers}
    assert ("STREAMS_INTERNAL_TOPIC", "topic:app1-store-changelog") in codes


def test_a_plain_topic_named_changelog_is_routed_not_blocked() -> None:
    inv = inventory([topic("users-changelog")], [group("billing", "users-changelog")])
    _, routes = _routes(inv)
    assert routes["users-changelog"].pattern == "publish"


def test_compacted_and_too_large_topics_are_listed_with_remedies_never_dropped() -> None:
    inv = inventory(
        [topic("state", configs={"cleanup.policy": "compact"}),
         topic("blobs", size_max=5 * 1024 * 1024)],
        [group("g", "state", "blobs")],
    )
    plan, routes = _routes(inv, qstash_tier="free")
    assert routes["state"].pattern == "blocked" and routes["blobs"].pattern == "blocked"
    by_code = {b.code: b for b in plan.blockers}
    assert "claim check" in by_code["RECORD_TOO_LARGE"].remedy
    assert "database" in by_code["COMPACTED_TOPIC"].remedy
    _, payg = _routes(inv, qstash_tier="payg")
    assert payg["blobs"].pattern == "publish"  # 5 MB fits the 10 MB limit


def test_retry_and_dlq_topics_translate_into_retries_and_are_absorbed() -> None:
    inv = inventory(
        [topic("orders"), topic("orders-retry-1000"), topic("orders-retry-2000"),
         topic("orders.DLQ", records=10)],
        [group("billing", "orders")],
    )
    eps = EndpointMap(EndpointFile(groups={"billing": "https://b.example.com/x"},
                                   failure_callback="https://ops.example.com/failed"))
    _, routes = _routes(inv, eps)
    r = routes["orders"]
    assert r.retries == 2 and r.retry_delay == "1000 * pow(2, retried)"
    assert "orders.DLQ" in r.dead_letter and r.failure_callback == "https://ops.example.com/failed"
    assert routes["orders-retry-1000"].pattern == "absorbed"
    assert routes["orders.DLQ"].pattern == "absorbed"


def test_connector_error_settings_translate_into_retries() -> None:
    conn = connector("sink", "sink", ["orders"], **{
        "errors.retry.timeout": "30000", "errors.retry.delay.max.ms": "8000",
        "errors.tolerance": "all", "errors.deadletterqueue.topic.name": "dlq-sink"})
    inv = inventory([topic("orders"), topic("dlq-sink")], [group("connect-sink", "orders")],
                    connectors=[conn])
    _, routes = _routes(inv)
    r = routes["orders"]
    assert r.retry_delay == "min(8000, 1000 * pow(2, retried))"
    assert r.retries == 5  # waits 1+2+4+8+8 = 23 s fit in 30 s; a 6th (31 s) would not
    assert "dlq-sink" in r.dead_letter
    assert routes["dlq-sink"].pattern == "absorbed"


def test_flow_control_rate_and_parallelism_from_throughput() -> None:
    inv = inventory([topic("clicks", partitions=4, rps=10.2)], [group("g", "clicks")])
    _, routes = _routes(inv, headroom=2.0)
    assert routes["clicks"].rate == 21 and routes["clicks"].parallelism == 4


def test_schema_registry_framed_values_are_decoded() -> None:
    inv = inventory([topic("users", fmt="avro", subjects=["users-value"])], [group("g", "users")])
    _, routes = _routes(inv)
    assert routes["users"].decode == "decode" and routes["users"].subjects == ["users-value"]


def test_an_audit_without_registry_or_connect_makes_the_plan_say_what_it_lacks() -> None:
    framed = topic("payments", fmt="unknown")  # registry down: framed, type unknown
    framed = framed.model_copy(update={"sample": framed.sample.model_copy(  # type: ignore[union-attr]
        update={"schema_ids": [7]})})
    down = [Finding(code="SOURCE_UNAVAILABLE", severity="warning", object=o,
                    message=f"{o} at http://127.0.0.1:1 could not be read: refused", remedy="r")
            for o in ("schema-registry", "connect")]
    inv = inventory([framed], [group("ledger", "payments")], findings=down)
    plan, routes = _routes(inv)
    assert routes["payments"].decode == "decode"  # still decoded by schema id at run time
    lacking = {b.object: b for b in plan.blockers if b.code == "SOURCE_UNAVAILABLE"}
    assert set(lacking) == {"schema-registry", "connect"}
    assert all(b.severity == "warning" for b in lacking.values())
    assert "no schedules for source connectors" in lacking["connect"].message
    assert "re-run `migrator audit`" in lacking["schema-registry"].remedy


def test_source_connector_becomes_a_schedule_and_internal_topics_are_skipped() -> None:
    conn = connector("importer", "source", ["imports"], **{"poll.interval.ms": "300000"})
    inv = inventory([topic("imports"), topic("__consumer_offsets"), topic("connect-offsets")],
                    [], connectors=[conn])
    plan, routes = _routes(inv)
    (sched,) = plan.resources.schedules
    assert sched.schedule_id == "connector-importer" and sched.cron == "*/5 * * * *"
    assert is_placeholder(sched.destination)
    assert routes["__consumer_offsets"].pattern == "internal"
    assert routes["connect-offsets"].pattern == "internal"
    assert routes["imports"].pattern == "unconsumed"


def test_plan_fit_reports_daily_quota_and_cost() -> None:
    inv = inventory([topic("clicks", rps=10.0)], [group("a", "clicks"), group("b", "clicks")])
    plan, _ = _routes(inv, qstash_tier="free")
    assert any(b.code == "DAILY_QUOTA" for b in plan.blockers)
    plan, _ = _routes(inv, qstash_tier="payg")
    assert plan.cost is not None
    # 10 rec/s x 86400 x 2 endpoints = 1,728,000/day (the audit's figure); x 1.05 retries =
    # 1,814,400/day -> $18.14/day -> $544.32/month
    assert plan.cost.messages_per_day == pytest.approx(1_728_000)
    assert plan.cost.messages_with_retries_per_day == pytest.approx(1_814_400)
    assert plan.cost.monthly_usd == pytest.approx(544.32)


def test_endpoint_file_globs_and_unknown_groups(tmp_path: Path) -> None:
    f = tmp_path / "endpoints.yaml"
    f.write_text("groups:\n  'bill*': https://b.example.com/{group}\n  nobody: https://x.example.com/\n")
    with pytest.raises(ConfigError) as err:
        load_endpoints(f, groups=["billing"])
    assert str(err.value).startswith(f"{f}:3: groups.nobody: unknown consumer group 'nobody'")
    f.write_text("groups:\n  'bill*': https://b.example.com/{group}\n")
    eps = load_endpoints(f, groups=["billing"])
    assert eps.for_group("billing", "orders") == "https://b.example.com/billing"
    assert is_placeholder(eps.for_group("other", "orders"))


def test_configured_max_message_bytes_above_the_limit_is_a_warning() -> None:
    inv = inventory([topic("t", size_max=100, configs={"max.message.bytes": str(20 * 1024 * 1024)})],
                    [group("g", "t")])
    plan, routes = _routes(inv, qstash_tier="payg")
    assert routes["t"].pattern == "publish"
    (warning,) = plan.blockers
    assert (warning.code, warning.severity) == ("RECORD_TOO_LARGE", "warning")


def test_broker_wide_max_message_bytes_is_one_cluster_warning_and_kafkas_default_none() -> None:
    from migrator.inventory import ConfigValue

    def with_source(name: str, value: int, source: str) -> TopicInfo:
        t = topic(name, size_max=100)
        conf = ConfigValue(value=str(value), source=source, is_default=source == "default")
        return t.model_copy(update={"configs": {"max.message.bytes": conf}})

    inv = inventory([with_source(f"t{i}", 10 * 1024 * 1024, "static-broker") for i in range(3)]
                    + [with_source("d", 1_048_588, "default")], [group("g", "t0")])
    plan, _ = _routes(inv, qstash_tier="free")
    sizes = [(b.object, b.severity) for b in plan.blockers if b.code == "RECORD_TOO_LARGE"]
    assert sizes == [("cluster", "warning")]
    only_default = inventory([with_source("d", 1_048_588, "default")], [group("g", "d")])
    assert not [b for b in _routes(only_default, qstash_tier="free")[0].blockers
                if b.code == "RECORD_TOO_LARGE"]


def test_connector_secrets_never_reach_the_plan_outputs(tmp_path: Path) -> None:
    from migrator.plan.output import build_output

    secret = "hunter2-s3cr3t"
    conn = connector("sink", "sink", ["orders"], **{"connection.password": secret,
                                                    "errors.retry.timeout": "1000"})
    src = connector("src", "source", ["orders"], **{"connection.password": secret})
    inv = inventory([topic("orders")], [group("connect-sink", "orders")], connectors=[conn, src])
    out = build_output(build_plan(inv, EndpointMap.empty()), inv)
    out.write(tmp_path)
    assert all(secret not in text for text in out.files.values())
    assert all(secret not in p.read_text() for p in tmp_path.rglob("*") if p.is_file())


def test_plan_file_refuses_duplicate_resources() -> None:
    from pydantic import ValidationError

    from migrator.plan.spec import QueueSpec, Resources

    with pytest.raises(ValidationError, match="queue q is declared more than once"):
        Resources(queues=[QueueSpec(name="q"), QueueSpec(name="q", parallelism=2)])


def test_ordered_topic_read_only_by_a_streams_app_is_a_best_effort_workflow() -> None:
    from migrator.plan.scaffold import bridge_config

    inv = inventory([topic("ev", partitions=4, keyed=1.0), topic("app-agg-repartition")],
                    [group("app", "ev", "app-agg-repartition")])
    eps = EndpointMap(EndpointFile(groups={"app": "https://wf.example.com/app"}))
    plan, routes = _routes(inv, eps)
    r = routes["ev"]
    assert r.pattern == "workflow" and r.ordering and r.ordering.key == "{topic}-{key}"
    assert r.ordering.best_effort == ["app"] and "order can break on a retry" in r.reason
    assert plan.resources.queues == []
    (warning,) = [b for b in plan.blockers if b.code == "ORDERING_BEST_EFFORT"]
    assert warning.severity == "warning" and "workflow group app" in warning.message
    config, _ = bridge_config(plan)
    assert config is not None
    (dest,) = config.routes[0].destinations
    assert dest.kind == "workflow" and dest.flow_control is not None
    assert (dest.flow_control.key, dest.flow_control.parallelism) == ("{topic}-{key}", 1)


def test_fifo_topic_with_a_plain_and_a_workflow_group() -> None:
    from migrator.plan.scaffold import bridge_config

    inv = inventory([topic("pay", partitions=1, keyed=1.0), topic("app-s-changelog")],
                    [group("ledger", "pay"), group("app", "pay")])
    eps = EndpointMap(EndpointFile(groups={"*": "https://x.example.com/{group}"}))
    plan, routes = _routes(inv, eps)
    assert routes["pay"].pattern == "fifo_queue"
    assert [q.name for q in plan.resources.queues] == ["pay-0"]
    config, _ = bridge_config(plan)
    assert config is not None
    kinds = {d.kind: d for d in config.routes[0].destinations}
    assert set(kinds) == {"enqueue-queue", "workflow"}
    wf = kinds["workflow"]
    assert wf.kind == "workflow" and wf.flow_control is not None
    assert (wf.flow_control.key, wf.flow_control.parallelism) == ("{topic}.app-{key}", 1)
