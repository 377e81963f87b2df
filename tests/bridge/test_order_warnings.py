"""Which destinations keep order (migrator.bridge.ordering), the queue template's {index}, and
the warning for an ordered route that cannot keep order: logged by the bridge at start and
listed by `migrator bridge check`."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from migrator.bridge.config import BridgeConfig, EnqueueQueueDestination, load_bridge_config
from migrator.bridge.ordering import destination_order, order_risks
from migrator.bridge.preflight import preflight
from migrator.config import KafkaConnection
from migrator.errors import ConfigError
from tests.bridge.harness import running_bridge
from tests.fixtures.kafka import KafkaKit, Rec, unique

FC1 = {"key": "{topic}-{key}", "parallelism": 1}


def _config(topic: str, bootstrap: str = "127.0.0.1:9092") -> dict[str, Any]:
    return {
        "kafka": {"bootstrap_servers": bootstrap}, "group": unique("ow-g"),
        "routes": [
            {"topic": topic, "ordered": True, "destinations": [
                {"kind": "enqueue-queue", "queue": "q-{index}", "queues": 2,
                 "url": "http://127.0.0.1:9/a"},
                {"kind": "publish-url", "url": "http://127.0.0.1:9/b", "flow_control": FC1},
                {"kind": "publish-url", "url": "http://127.0.0.1:9/c"},
                {"kind": "workflow", "url": "http://127.0.0.1:9/w", "flow_control": FC1},
                {"kind": "direct-http", "url": "http://127.0.0.1:9/d"}]},
            {"topic": topic + "-unordered", "destinations": [
                {"kind": "publish-url", "url": "http://127.0.0.1:9/e"}]},
        ],
    }


def test_each_destination_kind_is_classified() -> None:
    cfg = BridgeConfig.model_validate(_config("t"))
    kinds = [destination_order(d)[0] for d in cfg.routes[0].destinations]
    assert kinds == ["kept", "best_effort", "none", "best_effort", "kept"]
    fc_many = BridgeConfig.model_validate({"routes": [{"topic": "t", "destinations": [
        {"kind": "publish-url-group", "url_group": "g",
         "flow_control": {"key": "{topic}", "parallelism": 4}}]}]})
    assert destination_order(fc_many.routes[0].destinations[0])[0] == "none"
    risks = order_risks(cfg)
    assert [(r.route, r.destination, r.guarantee) for r in risks] == [
        (0, 1, "best_effort"), (0, 2, "none"), (0, 3, "best_effort")]
    assert "order can break on a retry" in risks[0].line()
    assert "steps of consecutive workflow runs" in risks[2].line()
    assert "QStash delivers publishes in parallel" in risks[1].line()


def test_queue_template_index_maps_partitions_modulo_queues(tmp_path: Path) -> None:
    def dest(**kw: Any) -> EnqueueQueueDestination:
        return EnqueueQueueDestination.model_validate(
            {"kind": "enqueue-queue", "url": "http://h/x", **kw})

    d = dest(queue="{topic}-{index}", queues=3)
    assert [d.queue_name("o", p) for p in range(7)] == [
        "o-0", "o-1", "o-2", "o-0", "o-1", "o-2", "o-0"]
    assert dest(queue="o-{partition}").queue_name("o", 5) == "o-5"
    path = tmp_path / "bridge.yaml"
    for queue, extra, message in (
        ("o-{index}", {}, r"\{index\} needs `queues: N`"),
        ("o-{partition}", {"queues": 2}, r"queues: N is only used with \{index\}"),
        ("o-{key}", {}, r"unknown placeholder\(s\) \['key'\]"),
        ("o/{index}", {"queues": 2}, r"queue names may only hold"),
    ):
        path.write_text(yaml.safe_dump({"routes": [{"topic": "t", "destinations": [
            {"kind": "enqueue-queue", "url": "http://h/x", "queue": queue, **extra}]}]}))
        with pytest.raises(ConfigError, match=message):
            load_bridge_config(path)


@pytest.mark.stack
@pytest.mark.qstash
def test_bridge_check_and_bridge_start_say_order_can_break(
    kafka: KafkaKit, qstash_server: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    topic = kafka.create_topic(unique("ow"), partitions=1)
    kafka.create_topic(topic + "-unordered", partitions=1)
    kafka.produce(topic, [Rec("v")])
    data = _config(topic, kafka.bootstrap)
    path = tmp_path / "bridge.yaml"
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "QSTASH_URL": qstash_server.url, "QSTASH_TOKEN": qstash_server.token}
    proc = subprocess.run([sys.executable, "-m", "migrator", "bridge", "check", "--config",
                           str(path)], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr  # warnings stop nothing
    warnings = [ln for ln in proc.stdout.splitlines() if ln.startswith("warning: ")]
    assert [w.split(" ")[1] for w in warnings] == [
        "routes[0].destinations[1]", "routes[0].destinations[2]", "routes[0].destinations[3]"]
    assert "order can break on a retry" in warnings[0] and "publish-url" in warnings[0]
    # the bridge says the same when it starts
    cfg = BridgeConfig.model_validate({**data, "routes": data["routes"][:1],
                                       "shutdown_deadline": 1})
    with caplog.at_level(logging.WARNING, logger="migrator.bridge"), running_bridge(
            cfg, kafka.bootstrap, qstash=qstash_server.connection) as rb:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(
                "ordered route" in r.getMessage() for r in caplog.records) < 3:
            time.sleep(0.05)
        rb.stop()
    logged = [r.getMessage() for r in caplog.records if "ordered route" in r.getMessage()]
    assert [m.split(" ")[0] for m in logged] == [w.split(" ")[1] for w in warnings], logged


@pytest.mark.stack
@pytest.mark.qstash
def test_bridge_check_warns_about_an_ordered_routes_queue_with_parallelism_above_1(
    kafka: KafkaKit, qstash_server_factory: Any,
) -> None:
    server = qstash_server_factory()
    topic = kafka.create_topic(unique("ow-par"), partitions=3)
    client = server.client()
    client.queue.upsert("ow-0", parallelism=1)
    client.queue.upsert("ow-1", parallelism=2)  # made by hand: delivers two at a time
    cfg = BridgeConfig.model_validate({"group": unique("ow-g"), "routes": [
        {"topic": topic, "ordered": True, "destinations": [
            {"kind": "enqueue-queue", "queue": "ow-{index}", "queues": 2,
             "url": "http://127.0.0.1:9/a"}]}]})
    result = preflight(cfg, KafkaConnection(bootstrap_servers=kafka.bootstrap),
                       qstash=server.connection)
    assert result.problems == []
    assert result.warnings == [
        "routes[0].destinations[0].queue: QStash queue 'ow-1' has parallelism 2: it delivers "
        "that many messages at once, so order can break; set it to 1 (`migrator apply` the "
        "plan, or upsert the queue)"]
    assert "QStash FIFO queues of ordered routes: 2 of 2 exist" in " ".join(result.checked)
