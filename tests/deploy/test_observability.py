"""The Grafana dashboard and the Prometheus rules name only metrics and labels a running bridge
exports: a real bridge (shared broker, the local QStash server, real endpoints) delivers, retries
and dead-letters, its /metrics is scraped, and every selector of every query is checked."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from migrator.bridge.metrics import BridgeMetrics, MetricsServer
from migrator.bridge.runner import Bridge
from migrator.config import KafkaConnection
from tests.bridge.harness import FAST_GROUP, RunningBridge, bridge_config, wait_until
from tests.deploy.conftest import CHART, ROOT
from tests.deploy.toolchain import CrdSchemas
from tests.fixtures.endpoint import RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer

DASHBOARD = ROOT / "deploy" / "grafana" / "bridge-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "bridge-alerts.yaml"
# Labels Prometheus attaches at scrape time rather than the bridge. `group` is not one of them:
# the bridge exports it (its consumer group, one per replaced group in a gated bridge).
SCRAPE_LABELS = {"job", "instance", "namespace", "pod"}

_METRIC = re.compile(r"\b(bridge_[a-z0-9_]+)\b")
_MATCHER = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)\s*\"")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")
_LABEL_VALUES = re.compile(r"label_values\(\s*([^,]+?)\s*,\s*(\w+)\s*\)")
_LEGEND = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_TEMPLATE_LABEL = re.compile(r"\$labels\.(\w+)")


def labels_in(expr: str) -> set[str]:
    """Label names a PromQL expression selects, matches or groups on."""
    found: set[str] = set()
    for selector in re.findall(r"\{([^{}]*)\}", expr):
        found.update(_MATCHER.findall(selector))
    for names in _GROUPING.findall(expr):
        found.update(n.strip() for n in names.split(",") if n.strip())
    for _metric, label in _LABEL_VALUES.findall(expr):
        found.add(label)
    return found


def dashboard_queries() -> Iterator[tuple[str, str, set[str]]]:
    """(where, expression, labels its legend names) of every query in the dashboard."""
    dash = json.loads(DASHBOARD.read_text())
    for var in dash["templating"]["list"]:
        if var["type"] == "query":
            yield f"variable {var['name']}", var["query"]["query"], set()
    for panel in dash["panels"]:
        for target in panel.get("targets", []):
            legend = set(_LEGEND.findall(target.get("legendFormat", "")))
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"], legend


def alert_rules() -> list[dict[str, Any]]:
    data = yaml.safe_load(ALERTS.read_text())
    return [rule for group in data["groups"] for rule in group["rules"]]


def alert_queries() -> Iterator[tuple[str, str, set[str]]]:
    for rule in alert_rules():
        text = " ".join(str(v) for v in rule.get("annotations", {}).values())
        yield f"alert {rule['alert']}", rule["expr"], set(_TEMPLATE_LABEL.findall(text))


def check_against(exported: dict[str, set[str]], queries: list[tuple[str, str, set[str]]]) -> None:
    """Every metric a query names is exported; every label it uses is on one of its metrics."""
    problems: list[str] = []
    for where, expr, legend in queries:
        metrics = set(_METRIC.findall(expr))
        if not metrics:
            problems.append(f"{where}: names no bridge metric: {expr}")
        available = set(SCRAPE_LABELS)
        for metric in metrics:
            if metric not in exported:
                problems.append(f"{where}: {metric} is not exported")
            else:
                available |= exported[metric]
        for label in sorted((labels_in(expr) | legend) - available):
            problems.append(f"{where}: label {label!r} is on none of {sorted(metrics)}")
    assert not problems, "\n".join(problems)


def scrape(url: str) -> dict[str, set[str]]:
    """Sample name -> label names seen, from a Prometheus text exposition."""
    exported: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(httpx.get(url, timeout=10).text):
        for sample in family.samples:
            exported.setdefault(sample.name, set()).update(sample.labels)
    return exported


@pytest.fixture(scope="module")
def exported(
    kafka: KafkaKit, qstash_server: QStashServer, endpoint_factory_module: Callable[..., RecordingEndpoint]
) -> Iterator[dict[str, set[str]]]:
    """The series of a bridge that delivered through QStash and directly, retried a 503 and
    dead-lettered a 400."""
    receiver = endpoint_factory_module()
    seen: set[bytes] = set()

    def direct(req: Any) -> Reply:
        if req.body.startswith(b"bad"):
            return Reply(400, b"rejected")
        if req.body.startswith(b"flaky") and req.body not in seen:
            seen.add(req.body)
            return Reply(503, b"try again")
        return Reply()

    direct_ep = endpoint_factory_module(direct)
    via_qstash = kafka.create_topic(unique("obs-q"), partitions=2)
    straight = kafka.create_topic(unique("obs-d"), partitions=2)
    dlq = kafka.create_topic(unique("obs-dlq"), partitions=1)
    kafka.produce(via_qstash, (Rec(f"q{i}", partition=i % 2) for i in range(20)))
    kafka.produce(straight, (Rec(v, partition=i % 2) for i, v in
                             enumerate(["ok1", "flaky1", "bad1", "ok2", "flaky2", "bad2"])))
    cfg = bridge_config(group=unique("obs-g"), dead_letter={"topic": dlq}, routes=[
        {"topic": via_qstash, "destinations": [{"kind": "publish-url", "url": receiver.url}]},
        {"topic": straight, "destinations": [{"kind": "direct-http", "url": direct_ep.url}]},
    ])
    metrics = BridgeMetrics()
    server = MetricsServer(metrics, 0, host="127.0.0.1")
    bridge = Bridge(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap), metrics=metrics,
                    qstash=qstash_server.connection, consumer_overrides=FAST_GROUP)
    rb = RunningBridge(bridge)
    url = f"http://127.0.0.1:{server.port}/metrics"
    try:
        settled = wait_until(lambda: bridge.stats.delivered >= 24 and bridge.stats.dead_lettered >= 2
                             and bridge.stats.retries >= 2, 90)
        assert settled, f"bridge did not settle: {bridge.stats}, error {rb.error}"
        lagged = wait_until(lambda: "bridge_consumer_lag" in scrape(url), 30)
        assert lagged, f"no bridge_consumer_lag series after settling: {sorted(scrape(url))}"
        yield scrape(url)
    finally:
        rb.stop()
        server.close()


@pytest.fixture(scope="module")
def endpoint_factory_module() -> Iterator[Callable[..., RecordingEndpoint]]:
    made: list[RecordingEndpoint] = []

    def make(responder: Any = None) -> RecordingEndpoint:
        made.append(RecordingEndpoint(responder))
        return made[-1]

    yield make
    for ep in made:
        ep.close()


@pytest.mark.stack
@pytest.mark.qstash
def test_dashboard_uses_only_exported_metrics_and_labels(exported: dict[str, set[str]]) -> None:
    queries = list(dashboard_queries())
    check_against(exported, queries)
    used = {m for _w, expr, _l in queries for m in _METRIC.findall(expr)}
    # what issue 15 asks the dashboard to show
    assert {"bridge_consumer_lag", "bridge_committed_offset", "bridge_records_delivered_total",
            "bridge_batches_total", "bridge_retries_total", "bridge_dead_lettered_total",
            "bridge_delivery_latency_seconds_bucket", "bridge_in_flight_records",
            "bridge_destination_unavailable"} <= used
    # lag is shown per group and per partition
    lag = [expr for _w, expr, _l in queries if "bridge_consumer_lag" in expr]
    assert any(labels_in(e) >= {"group", "partition"} for e in lag)


@pytest.mark.stack
@pytest.mark.qstash
def test_alert_rules_use_only_exported_metrics_and_labels(exported: dict[str, set[str]]) -> None:
    check_against(exported, list(alert_queries()))


@pytest.mark.stack
@pytest.mark.qstash
def test_every_bridge_series_carries_its_group(exported: dict[str, set[str]]) -> None:
    bridge = {name: labels for name, labels in exported.items() if name.startswith("bridge_")}
    assert bridge and not [name for name, labels in bridge.items() if "group" not in labels]


def test_the_chart_leaves_the_bridges_group_label_alone() -> None:
    monitor = (CHART / "templates" / "servicemonitor.yaml").read_text()
    assert "targetLabel: group" not in monitor  # would overwrite the bridge's own group label
    grouped = [w for w, expr, _l in [*dashboard_queries(), *alert_queries()]
               if "group" in labels_in(expr)]
    assert grouped


def test_per_partition_queries_never_mix_groups() -> None:
    """A query on a per-partition gauge that aggregates keeps `group` (two groups reading one
    topic sit at different offsets), except a plain total over everything."""
    mixed = []
    for where, expr, _l in [*dashboard_queries(), *alert_queries()]:
        if not re.search(r"bridge_(consumer_lag|committed_offset)\b", expr):
            continue
        for names in _GROUPING.findall(expr):
            labels = {n.strip() for n in names.split(",") if n.strip()}
            if labels & {"topic", "partition"} and "group" not in labels:
                mixed.append(f"{where}: {expr}")
    assert not mixed, "\n".join(mixed)


def test_the_checker_catches_unknown_metrics_and_labels() -> None:
    exported = {"bridge_consumer_lag": {"topic", "partition"}}
    with pytest.raises(AssertionError, match="bridge_consumer_lags is not exported"):
        check_against(exported, [("q", "sum(bridge_consumer_lags)", set())])
    with pytest.raises(AssertionError, match="label 'route' is on none of"):
        check_against(exported, [("q", "sum by (route) (bridge_consumer_lag)", set())])
    with pytest.raises(AssertionError, match="label 'status' is on none of"):
        check_against(exported, [("q", 'bridge_consumer_lag{status="ok"}', set())])
    with pytest.raises(AssertionError, match="label 'reason' is on none of"):
        check_against(exported, [("q", "bridge_consumer_lag", {"reason"})])


def test_alert_rules_are_well_formed(crds: CrdSchemas) -> None:
    from tests.deploy.test_chart import validate

    spec = yaml.safe_load(ALERTS.read_text())
    rule = {"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
            "metadata": {"name": "kafka-qstash-bridge"}, "spec": spec}
    validate([rule], crds)  # the PrometheusRule CRD's schema covers groups, rules, for, labels
    names = [r["alert"] for r in alert_rules()]
    assert len(names) == len(set(names))
    for r in alert_rules():
        assert r["labels"]["severity"] in ("warning", "critical"), r["alert"]
        assert r["annotations"]["summary"] and r["annotations"]["description"], r["alert"]
        assert r["expr"].count("(") == r["expr"].count(")"), r["alert"]


def test_dashboard_is_well_formed() -> None:
    dash = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dash["panels"]:
        for key in ("x", "y", "w", "h"):
            assert isinstance(panel["gridPos"][key], int), panel["title"]
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24, panel["title"]
        refs = [t["refId"] for t in panel.get("targets", [])]
        assert len(refs) == len(set(refs)), panel["title"]
        for target in panel.get("targets", []):
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
            expr = target["expr"]
            assert expr.count("(") == expr.count(")") and expr.count("{") == expr.count("}"), expr
    assert {v["name"] for v in dash["templating"]["list"]} == {"datasource", "group", "route"}
