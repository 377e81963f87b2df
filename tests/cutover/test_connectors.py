"""Kafka Connect on the real worker: a FileStreamSource connector writing to a routed topic is a
producer (`cutover producers` refuses while it runs, naming it), a FileStreamSink reading one is
a consumer (`cutover finish` names it while it runs), finish prints both for removal, and
`finish --delete --allow-destructive` deletes them."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cutover.estate import await_endpoint, publish_url_estate
from tests.cutover.harness import run_cli, wait_for
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(240)


class Connector:
    """A connector created on the stack's Connect worker (deleted by ``delete``)."""

    def __init__(self, url: str, name: str, config: dict[str, str]) -> None:
        self.url, self.name = url, name
        r = httpx.put(f"{url}/connectors/{name}/config", json=config, timeout=30)
        assert r.status_code in (200, 201), r.text
        self.await_state("RUNNING")

    def status(self) -> dict[str, Any]:
        r = httpx.get(f"{self.url}/connectors/{self.name}/status", timeout=10)
        return r.json() if r.status_code == 200 else {}

    def await_state(self, state: str) -> None:
        def ok() -> bool:
            s = self.status()
            tasks = s.get("tasks") or []
            return bool(s.get("connector", {}).get("state") == state and (
                state != "RUNNING" or (tasks and tasks[0].get("state") == "RUNNING")))
        wait_for(ok, lambda: f"connector {self.name} is not {state}: {self.status()}")

    def stop(self) -> None:
        r = httpx.put(f"{self.url}/connectors/{self.name}/stop", timeout=30)
        assert r.status_code in (200, 202, 204), r.text
        self.await_state("STOPPED")

    def delete(self) -> None:
        httpx.delete(f"{self.url}/connectors/{self.name}", timeout=30)


def test_a_running_source_connector_is_a_producer_and_a_running_sink_a_consumer(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    connect = kafka_stack.connect_url
    if not connect:
        pytest.fail("no Kafka Connect (KAFKA_CONNECT_URL) in the stack")
    est, _server, endpoint = publish_url_estate(kafka, kafka_stack, endpoint_factory,
                                                qstash_server_factory, tmp_path)
    lines = tmp_path / "source.txt"
    lines.write_text("".join(f"line-{i}\n" for i in range(4)))
    made: list[Connector] = []
    flags = ["--config", str(est.path), "--connect-url", connect]
    try:
        with est.switched():
            source = Connector(connect, unique("src"), {
                "connector.class": "org.apache.kafka.connect.file.FileStreamSourceConnector",
                "tasks.max": "1", "file": str(lines), "topic": est.topic})
            made.append(source)
            # its 4 lines are written, then it idles: the topic is quiet, yet it still runs
            wait_for(lambda: sum(est.ends().values()) >= 2 * 20 + 4,
                     lambda: f"the source wrote nothing: ends {est.ends()}")
            est.await_committed()
            await_endpoint(endpoint, 4)
            r = run_cli("cutover", "producers", est.topic, *flags, "--window", "1s",
                        "--timeout", "4s")
            assert r.returncode == 11, r.stdout + r.stderr
            assert f"source connector '{source.name}' (RUNNING) writes to {est.topic}" in \
                r.stderr, r.stderr
            assert "Kafka producers still write" not in r.stderr
            source.stop()
            r = run_cli("cutover", "producers", est.topic, *flags, "--window", "1s",
                        "--timeout", "30s")
            assert r.returncode == 0, r.stderr
            assert "Publish directly to QStash now" in r.stdout
        sink = Connector(connect, unique("sink"), {
            "connector.class": "org.apache.kafka.connect.file.FileStreamSinkConnector",
            "tasks.max": "1", "file": str(tmp_path / "sink.txt"), "topics": est.topic})
        made.append(sink)
        r = run_cli("cutover", "finish", *flags, "--window", "1s")
        assert r.returncode == 1, r.stdout + r.stderr
        assert f"sink connector '{sink.name}' (RUNNING) reads {est.topic}" in r.stdout, r.stdout
        sink.stop()
        r = run_cli("cutover", "finish", *flags, "--window", "1s")
        assert r.returncode == 0, r.stdout + r.stderr
        for c in (source, sink):
            assert f"curl -fsS -X DELETE {connect}/connectors/{c.name}" in r.stdout, r.stdout
        # without a Connect URL nothing is said about connectors
        r = run_cli("cutover", "finish", "--config", str(est.path), "--window", "1s",
                    "--connect-url", "")
        assert r.returncode == 0 and "connectors/" not in r.stdout, r.stdout
        # --delete removes the connectors on the routed topic too (before the topic)
        r = run_cli("cutover", "finish", *flags, "--window", "1s", "--delete",
                    "--allow-destructive")
        assert r.returncode == 0, r.stdout + r.stderr
        for c in (source, sink):
            assert f"deleted connector {c.name}" in r.stdout, r.stdout
            gone = httpx.get(f"{connect}/connectors/{c.name}", timeout=10)
            assert gone.status_code == 404, (c.name, gone.status_code, gone.text)
        assert f"deleted topic {est.topic}" in r.stdout, r.stdout
    finally:
        for c in made:
            c.delete()
        est.close()
