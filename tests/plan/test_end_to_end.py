"""The issue's proof: a seeded Kafka estate -> audit -> plan (endpoint file) -> apply to the local
QStash server -> check through the SDK -> no-op re-apply -> endpoint change -> the generated
bridge.yaml, once `migrator cutover` hands each group over, delivers the records each group had
not consumed to its mapped endpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from confluent_kafka import KafkaError, KafkaException

from migrator.inventory import Inventory
from migrator.plan.spec import load_plan
from migrator.stack.sample import seed_sample_estate
from tests.fixtures.cli import migrator
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo
from tests.fixtures.wait import wait_until

from .test_apply_qstash import check_live

pytestmark = [pytest.mark.stack, pytest.mark.qstash]


def cli(server: QStashServer, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    # in-process; the bridge below runs as a process (it is stopped with SIGTERM)
    result = migrator(*args, env={"QSTASH_URL": server.url, "QSTASH_TOKEN": server.token})
    assert server.token not in result.stdout + result.stderr
    return result


@pytest.fixture
def estate(kafka_stack: EstateInfo, kafka: KafkaKit, tmp_path: Path) -> Iterator[SimpleNamespace]:
    """The sample estate (keyed orders, Avro payments fanned out, unkeyed clicks fanned out,
    compacted customers, DLQ, sink connector) plus a one-partition keyed topic (FIFO queue) and a
    FileStream source connector (schedule)."""
    prefix = unique("pl")
    info = SimpleNamespace(bootstrap_servers=kafka_stack.bootstrap_servers,
                           schema_registry_url=kafka_stack.schema_registry_url,
                           connect_url=kafka_stack.connect_url, run_dir=str(tmp_path))
    sample = seed_sample_estate(info, prefix, orders=24, payments=10, clicks=12)  # type: ignore[arg-type]
    audit_log, imports = f"{prefix}.audit-log", f"{prefix}.imports"
    for name in (audit_log, imports):
        try:
            kafka.create_topic(name, 1)
        except KafkaException as exc:  # a retried CreateTopics on a busy broker: it is ours
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    kafka.produce(audit_log, [Rec(json.dumps({"n": i}), key=f"k{i % 3}") for i in range(8)])
    kafka.commit_group(f"{prefix}-auditor", {(audit_log, 0): 0})
    (tmp_path / "imports.txt").write_text("")
    source = f"{prefix}-imports"
    reply = httpx.put(f"{kafka_stack.connect_url}/connectors/{source}/config", timeout=30, json={
        "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
        "tasks.max": "1", "file": str(tmp_path / "imports.txt"), "topic": imports})
    assert reply.status_code in (200, 201), reply.text
    yield SimpleNamespace(prefix=prefix, sample=sample, source=source,
                          records={**sample.records, audit_log: 8})
    for connector in (source, sample.connector):
        httpx.delete(f"{kafka_stack.connect_url}/connectors/{connector}", timeout=30)


def test_audit_plan_apply_bridge(
    kafka_stack: EstateInfo, estate: SimpleNamespace, endpoint: RecordingEndpoint,
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    server = qstash_server_factory()
    p = estate.prefix
    inv_file, out = tmp_path / "inventory.json", tmp_path / "plan"
    audit = cli(server, "audit", "-b", kafka_stack.bootstrap_servers,
                "--schema-registry-url", kafka_stack.schema_registry_url or "",
                "--connect-url", kafka_stack.connect_url or "", "--include", f"{p}*",
                "--sample-seconds", "1", "--sample-records", "50", "--format", "json",
                "-o", str(inv_file))
    assert audit.returncode in (0, 1), audit.stderr
    inv = Inventory.model_validate_json(inv_file.read_text())

    # Map every group of the estate to a path of one recording endpoint.
    groups = sorted(g.group_id for g in inv.consumer_groups)
    assert {f"{p}-fulfilment", f"{p}-billing", f"{p}-ledger", f"{p}-auditor", f"{p}-analytics",
            f"{p}-marketing"} <= set(groups)

    def write_endpoints(marketing_path: str) -> Path:
        lines = ["groups:"]
        lines += [f"  {g}: {endpoint.url}/{marketing_path if g == f'{p}-marketing' else g}/{{topic}}"
                  for g in groups]
        lines += ["schedules:", f"  {estate.source}: {endpoint.url}/jobs/import"]
        path = tmp_path / "endpoints.yaml"
        path.write_text("\n".join(lines) + "\n")
        return path

    def plan(endpoints_file: Path) -> None:
        made = cli(server, "plan", str(inv_file), "--endpoints", str(endpoints_file), "-o",
                   str(out), "--bridge-group", f"{p}-bridge")
        assert made.returncode == 0, made.stderr

    plan(write_endpoints(f"{p}-marketing"))
    the_plan = load_plan(out / "plan.yaml")
    routes = {r.topic: r for r in the_plan.routes}
    assert routes[f"{p}.audit-log"].pattern == "fifo_queue"
    assert routes[f"{p}.clicks"].pattern == "url_group"
    assert routes[f"{p}.orders"].pattern == "fifo_queue"  # keyed, 3 partitions: 3 queues
    assert routes[f"{p}.payments"].pattern == "fifo_queue"  # keyed, 2 partitions, 2 groups: 4
    assert routes[f"{p}.payments"].decode == "decode"  # Schema-Registry framed Avro
    assert routes[f"{p}.customers"].pattern == "blocked"  # compacted
    assert routes[f"{p}.orders.DLQ"].pattern == "absorbed"
    assert {s.schedule_id for s in the_plan.resources.schedules} == {f"connector-{estate.source}"}
    assert the_plan.placeholders() == [] and the_plan.reviewed_state is not None

    first = cli(server, "apply", str(out / "plan.yaml"))
    assert first.returncode == 0, first.stderr
    queues = len(the_plan.resources.queues)  # a queue per partition and group of ordered topics
    assert queues > 3
    assert f"Applied {queues + 2}, failed 0" in first.stdout  # queues, URL group, schedule
    check_live(server, the_plan)
    again = cli(server, "apply", str(out / "plan.yaml"))
    assert again.returncode == 0 and "Nothing to do" in again.stdout

    plan(write_endpoints("marketing-v2"))  # the marketing group's endpoint moves
    changed = cli(server, "apply", str(out / "plan.yaml"))
    assert changed.returncode == 0, changed.stderr
    assert f"~ update  url_group:{p}.clicks" in changed.stdout
    assert f"0 to create, 1 to update, 0 to delete, {queues + 1} unchanged." in changed.stdout
    check_live(server, load_plan(out / "plan.yaml"))

    env = {k: v for k, v in os.environ.items() if not k.startswith("QSTASH_")}
    env.update(QSTASH_URL=server.url, QSTASH_TOKEN=server.token)
    log = (tmp_path / "bridge.log").open("w")
    bridge = subprocess.Popen([sys.executable, "-m", "migrator", "bridge", "run", "--config",
                               str(out / "bridge.yaml")], stdout=log, stderr=log, env=env)
    try:
        # every destination names the group it replaces: each endpoint receives what its group had
        # not consumed yet, once the group is handed over
        kit = KafkaKit(kafka_stack.bootstrap_servers, None)
        reads = {f"{p}-fulfilment": f"{p}.orders", f"{p}-billing": f"{p}.payments",
                 f"{p}-ledger": f"{p}.payments", f"{p}-auditor": f"{p}.audit-log",
                 f"{p}-analytics": f"{p}.clicks", f"{p}-marketing": f"{p}.clicks"}
        partitions = {f"{p}.orders": 3, f"{p}.payments": 2, f"{p}.audit-log": 1, f"{p}.clicks": 2}
        expected = {}
        for group, topic_name in reads.items():
            ends = kit.end_offsets(topic_name, partitions[topic_name])
            done = kit.committed(group, topic_name, partitions[topic_name])
            path = "marketing-v2" if group == f"{p}-marketing" else group
            expected[(path, topic_name)] = sum(e - max(0, done.get(q, 0)) for q, e in ends.items())
            for step in (["prepare", group], ["switch", group, "--watch", "1s", "--timeout", "60s"]):
                handed = cli(server, "cutover", *step, "--config", str(out / "bridge.yaml"))
                assert handed.returncode == 0, handed.stderr
        assert expected[(f"{p}-auditor", f"{p}.audit-log")] == estate.records[f"{p}.audit-log"]

        def received() -> dict[tuple[str, str], dict[tuple[str, str], bytes]]:
            """(path group, topic) -> {(Kafka partition, offset): body}: each record once."""
            got: dict[tuple[str, str], dict[tuple[str, str], bytes]] = {}
            for req in list(endpoint.requests):
                parts = req.path.strip("/").split("/")
                if len(parts) == 2 and "kafka-offset" in req.headers:
                    coords = (req.headers["kafka-partition"], req.headers["kafka-offset"])
                    got.setdefault((parts[0], parts[1]), {})[coords] = req.body
            return got

        wait_until(lambda: {k: len(received().get(k, ())) for k in expected}, 120,
                   until=lambda counts: all(counts[k] >= n for k, n in expected.items()),
                   what=f"every record at its path: {expected}",
                   context=lambda: (tmp_path / "bridge.log").read_text()[-3000:])
    finally:
        bridge.send_signal(signal.SIGTERM)
        try:
            bridge.wait(timeout=60)
        except subprocess.TimeoutExpired:
            bridge.kill()
            bridge.wait()
        log.close()
    got = received()
    bridge_log = (tmp_path / "bridge.log").read_text()
    for key, n in expected.items():
        assert len(got.get(key, ())) == n, f"{key}: {len(got.get(key, ()))} of {n}\n{bridge_log[-3000:]}"
    assert not any(k[0] == f"{p}-marketing" for k in got)  # the old endpoint got nothing
    payment = json.loads(next(iter(got[(f"{p}-ledger", f"{p}.payments")].values())))
    assert payment["payment_id"].startswith("p-") and not isinstance(payment["amount"], dict)
    # every delivery was signed by the local QStash server with its keys
    receiver = server.receiver()
    req = next(r for r in endpoint.requests if f"/{p}-auditor/" in r.path)
    receiver.verify(signature=req.headers["upstash-signature"], body=req.body.decode(),
                    url=f"{endpoint.url}{req.path}")
    assert server.token not in bridge_log
