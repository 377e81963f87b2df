"""Generated scaffolds served by uvicorn, called by the real local QStash server (signed)."""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from pydantic import SecretStr

from migrator.config import QStashConnection
from migrator.plan.admin import QStashAdmin
from migrator.plan.apply import apply_actions
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.diff import diff
from migrator.plan.endpoints import EndpointFile, EndpointMap
from migrator.plan.scaffold import bridge_config, endpoint_files
from migrator.plan.state import read_state
from tests.bridge.harness import running_bridge
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.wait import wait_until

from .factories import group, inventory, topic
from .test_scaffold import _files, _load

pytestmark = pytest.mark.qstash


class Recorder:
    """ASGI middleware recording the headers of every request the app receives."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.headers: list[dict[str, str]] = []
        self.statuses: list[int] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.headers.append({k.decode().lower(): v.decode() for k, v in scope["headers"]})

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.statuses.append(message["status"])
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.fixture
def serve() -> Iterator[Callable[[Any], str]]:
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []

    def start(app: Any) -> str:
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", loop="asyncio"))
        thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
        thread.start()
        servers.append((server, thread))
        wait_until(lambda: server.started, 30, what="the scaffold app to start")
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

    yield start
    for server, thread in servers:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.parametrize("shadow", [False, True], ids=["live", "shadow"])
def test_workflow_scaffold_completes_a_run(
    qstash_server_factory: Callable[..., QStashServer], serve: Callable[[Any], str],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shadow: bool,
) -> None:
    server = qstash_server_factory()
    for name, value in (("QSTASH_URL", server.url), ("QSTASH_TOKEN", server.token),
                        ("QSTASH_CURRENT_SIGNING_KEY", server.current_signing_key),
                        ("QSTASH_NEXT_SIGNING_KEY", server.next_signing_key)):
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("UPSTASH_WORKFLOW_URL", raising=False)
    module = _load(tmp_path, f"wf_{uuid.uuid4().hex[:6]}", _files()["python/app_workflow.py"])
    recorder = Recorder(module.app)
    base = serve(recorder)
    record = {"id": "o-1", "amount": 12.5, "at": "2026-11-01T00:00:00Z", "lines": [{"sku": "a"}],
              "note": None}
    # as the bridge does (`migrator cutover shadow` adds Migrator-Shadow: true)
    server.client().message.publish_json(url=f"{base}/app", body=record,
                                         headers={"Migrator-Shadow": "true"} if shadow else None)

    def run_state() -> dict[str, Any]:
        runs = {h["upstash-workflow-runid"] for h in recorder.headers if "upstash-workflow-runid" in h}
        if not runs:
            return {}
        (run_id,) = runs
        reply = httpx.get(f"{server.url}/v2/workflows/runs/{run_id}", headers=server.headers)
        return reply.json() if reply.status_code == 200 else {}

    state = wait_until(run_state, 60, until=lambda s: s.get("workflowState") == "RUN_SUCCESS",
                       what="the workflow run to succeed", context=lambda: str(recorder.headers))
    bodies = [json.loads(base64.b64decode(step["body"])) for step in state["steps"]]
    assert bodies[0] == record  # the initial payload, which the scaffold parsed into Order
    step = bodies[1]
    # the step ran in a later call from QStash: the run still knows it is a shadow run
    assert (step["stepName"], step["stepType"], json.loads(step["out"])) == (
        "process", "Run", "shadow" if shadow else "done")
    assert len(recorder.headers) >= 2  # the first call and the step call, each signed
    assert all("upstash-signature" in h for h in recorder.headers)
    unsigned = httpx.post(f"{base}/app", json=record)  # straight to the endpoint, no QStash
    # upstash-workflow 2.0.0 refuses it with 500 WorkflowError (qstash.md says 400: older SDKs)
    assert unsigned.status_code >= 400 and "Failed to verify" in unsigned.text


def test_fastapi_scaffold_accepts_what_the_local_qstash_server_delivers(
    qstash_server_factory: Callable[..., QStashServer], serve: Callable[[Any], str],
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = qstash_server_factory()
    monkeypatch.setenv("QSTASH_CURRENT_SIGNING_KEY", server.current_signing_key)
    monkeypatch.setenv("QSTASH_NEXT_SIGNING_KEY", server.next_signing_key)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    module = _load(tmp_path, f"billing_{uuid.uuid4().hex[:6]}", _files()["python/billing.py"])
    recorder = Recorder(module.app)
    base = serve(recorder)
    good: dict[str, Any] = {"id": "o-1", "amount": "12.50", "at": "2026-11-01T00:00:00Z", "lines": [], "note": None}
    client = server.client()
    orders = {"Kafka-Topic": "orders"}  # billing's orders and raw share its URL, /billing
    client.message.publish_json(url=f"{base}/billing", body=good, headers=orders)
    client.message.publish_json(url=f"{base}/billing", body={"id": "o-2"}, headers=orders)  # bad
    wait_until(lambda: list(recorder.statuses), 30, until=lambda got: len(got) >= 2,
               what="two deliveries answered")
    assert sorted(recorder.statuses) == [200, 489]  # signed by the server and verified
    (dead,) = wait_until(lambda: client.dlq.list().messages, 30,
                         what="the 489 in the DLQ")  # 489 + Upstash-NonRetryable-Error: no retries
    assert json.loads(dead.body) == {"id": "o-2"} and len(recorder.statuses) == 2


class PathRecorder:
    """ASGI middleware noting (path, Kafka-Topic header, status) of every request."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.seen: list[tuple[str, str, int]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        topic = dict(scope["headers"]).get(b"kafka-topic", b"").decode()

        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                self.seen.append((scope["path"], topic, message["status"]))
            await send(message)

        await self.app(scope, receive, recording_send)


@pytest.mark.stack
def test_generated_bridge_yaml_delivers_to_the_generated_fastapi_apps_deployed_as_mapped(
    qstash_server_factory: Callable[..., QStashServer], kafka: KafkaKit, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """plan -> apply -> bridge.yaml -> bridge -> local QStash -> each generated FastAPI app on the
    port and path its group is mapped to: every record arrives, signed, with 200."""
    server = qstash_server_factory()
    monkeypatch.setenv("QSTASH_CURRENT_SIGNING_KEY", server.current_signing_key)
    monkeypatch.setenv("QSTASH_NEXT_SIGNING_KEY", server.next_signing_key)
    monkeypatch.delenv("PUBLIC_URL", raising=False)
    p = unique("scaf")
    orders, clicks, views = (kafka.create_topic(f"{p}.{t}", partitions=2) for t in ("orders", "clicks", "views"))
    sockets = {g: socket.socket() for g in ("billing", "analytics")}
    for sock in sockets.values():
        sock.bind(("127.0.0.1", 0))
    port = {g: s.getsockname()[1] for g, s in sockets.items()}
    inv = inventory([topic(orders), topic(clicks), topic(views)],
                    [group("billing", orders, clicks), group("analytics", clicks, views)])
    eps = EndpointMap(EndpointFile(groups={  # billing: a URL per topic; analytics: one for both
        "billing": f"http://127.0.0.1:{port['billing']}/kafka/{{topic}}",
        "analytics": f"http://127.0.0.1:{port['analytics']}/ingest"}))
    plan = build_plan(inv, eps, PlanOptions(prefix=p + "-"))
    files = endpoint_files(plan, inv)
    recorders: dict[str, PathRecorder] = {}
    servers: list[tuple[uvicorn.Server, threading.Thread]] = []
    try:
        for g in ("billing", "analytics"):
            module = _load(tmp_path, f"{g}_{uuid.uuid4().hex[:6]}", files[f"python/{g}.py"])
            recorders[g] = PathRecorder(module.app)
            uv = uvicorn.Server(uvicorn.Config(recorders[g], log_level="warning", lifespan="off"))
            thread = threading.Thread(target=uv.run, kwargs={"sockets": [sockets[g]]}, daemon=True)
            thread.start()
            servers.append((uv, thread))
        conn = QStashConnection(url=server.url, token=SecretStr(server.token))
        with QStashAdmin(conn) as admin:
            report = apply_actions(admin, diff(plan, read_state(admin)).actions)
        assert not report.failed, report.lines()
        config, left_out = bridge_config(plan, group=unique("scaf-bridge"))
        assert config is not None and not left_out
        n = 6
        for t in (orders, clicks, views):
            kafka.produce(t, (Rec(json.dumps({"topic": t, "i": i})) for i in range(n)))
        expected = {("billing", f"/kafka/{orders}", orders): n, ("billing", f"/kafka/{clicks}", clicks): n,
                    ("analytics", "/ingest", clicks): n, ("analytics", "/ingest", views): n}

        def arrived() -> dict[tuple[str, str, str], int]:
            counts: dict[tuple[str, str, str], int] = {}
            for g, rec in recorders.items():
                for path, t, status in list(rec.seen):
                    if status == 200:
                        counts[(g, path, t)] = counts.get((g, path, t), 0) + 1
            return counts

        with running_bridge(config, kafka.bootstrap, qstash=server.connection):
            wait_until(arrived, 90, until=lambda got: got == expected,
                       what=f"every record at its scaffold ({expected})",
                       context=lambda: str([s for rec in recorders.values() for s in rec.seen]))
        seen = [s for rec in recorders.values() for s in rec.seen]
        assert all(status == 200 for _, _, status in seen), seen  # no 404, no 401
    finally:
        for uv, thread in servers:
            uv.should_exit = True
            thread.join(timeout=10)
