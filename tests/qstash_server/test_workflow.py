"""An Upstash Workflow endpoint (official ``upstash-workflow`` SDK, FastAPI) runs to completion
through the local server: several steps, a sleep, and a failing step that is retried."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from qstash import AsyncQStash, Receiver
from upstash_workflow import AsyncWorkflowContext
from upstash_workflow.fastapi import Serve

from tests.fixtures.endpoint import Reply
from tests.qstash_server.conftest import wait_until

pytestmark = pytest.mark.qstash


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class WorkflowApp:
    def __init__(self, qstash: Any, call_url: str | None = None) -> None:
        self.calls: dict[str, int] = {}
        self.results: list[dict[str, Any]] = []
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/wf"
        app = FastAPI()
        serve = Serve(app)
        outer = self

        @serve.post(  # type: ignore[untyped-decorator]  # upstash-workflow is untyped
            "/wf",
            qstash_client=AsyncQStash(qstash.token, base_url=qstash.url),
            receiver=Receiver(
                current_signing_key=qstash.current_signing_key,
                next_signing_key=qstash.next_signing_key,
            ),
            retries=3,
        )
        async def workflow(context: AsyncWorkflowContext[dict[str, int]]) -> None:
            # the payload is read inside a step: with context.call, the SDK replays the route
            # up to its first step on the call's callback, whose body is not the payload
            async def add_one() -> int:
                outer._count("add_one")
                return int(context.request_payload["n"]) + 1

            a = await context.run("add_one", add_one)

            async def double() -> int:
                outer._count("double")
                return int(a * 2)

            b = await context.run("double", double)
            await context.sleep("nap", 1)

            async def flaky() -> int:
                n = outer._count("flaky")
                if n < 2:
                    raise RuntimeError("flaky step fails on its first attempt")
                return int(b + 100)

            c = await context.run("flaky", flaky)
            called: Any = None
            if call_url is not None:
                response = await context.call(
                    "third-party", url=call_url, method="POST", body={"c": c}
                )
                called = (response.status, response.body)

            async def finish() -> None:
                outer._count("finish")
                outer.results.append(
                    {"run": context.workflow_run_id, "a": a, "b": b, "c": c, "called": called}
                )

            await context.run("finish", finish)

        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                           loop="asyncio")
        )
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def _count(self, name: str) -> int:
        self.calls[name] = self.calls.get(name, 0) + 1
        return self.calls[name]

    def __enter__(self) -> WorkflowApp:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, what="the workflow app to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def workflow_app(qstash_server: Any) -> Iterator[WorkflowApp]:
    with WorkflowApp(qstash_server) as app:
        yield app


def test_workflow_runs_to_completion(qstash_server, workflow_app):
    client = qstash_server.client()
    client.message.publish_json(url=workflow_app.url, body={"n": 1})
    [result] = wait_until(lambda: workflow_app.results, timeout=60)
    assert (result["a"], result["b"], result["c"]) == (2, 4, 104)
    # each step ran once, except the failing one, retried by the server after a 500
    assert workflow_app.calls == {"add_one": 1, "double": 1, "flaky": 2, "finish": 1}
    run_id = result["run"]
    assert run_id.startswith("wfr_")

    def run_state():
        return httpx.get(f"{qstash_server.url}/v2/workflows/runs/{run_id}",
                         headers=qstash_server.headers).json()

    run = wait_until(run_state, until=lambda r: r.get("workflowState") == "RUN_SUCCESS",
                     what=f"run {run_id} RUN_SUCCESS")
    assert run["workflowUrl"] == workflow_app.url
    assert len(run["steps"]) >= 5  # initial payload + add_one, double, nap, flaky, finish
    errors = httpx.get(f"{qstash_server.url}/v2/events", params={"state": "ERROR", "count": 1000},
                       headers=qstash_server.headers).json()["events"]
    assert any(e["url"] == workflow_app.url and e.get("responseStatus") == 500 for e in errors)


def test_trigger_api_starts_a_run_once_per_run_id(qstash_server, workflow_app):
    run_id = f"order-{time.time_ns()}"
    url = f"{qstash_server.url}/v2/trigger/{workflow_app.url}"
    first = httpx.post(url, json={"n": 10}, headers={
        **qstash_server.headers, "Upstash-Workflow-RunId": run_id, "Upstash-Retries": "2"})
    assert first.status_code == 200
    assert first.json()["workflowRunId"] == f"wfr_{run_id}"
    assert first.json()["workflowCreatedAt"] > 0
    again = httpx.post(url, json={"n": 99}, headers={
        **qstash_server.headers, "Upstash-Workflow-RunId": run_id})
    assert again.json() == {**first.json(), "deduplicated": True}
    [result] = wait_until(lambda: workflow_app.results, timeout=60)
    assert result["run"] == f"wfr_{run_id}"
    assert (result["a"], result["b"], result["c"]) == (11, 22, 122)
    batch = httpx.post(f"{qstash_server.url}/v2/batch/trigger", headers=qstash_server.headers,
                       json=[{"destination": workflow_app.url, "body": '{"n": 1}',
                              "headers": {"Upstash-Workflow-RunId": run_id}}])
    assert batch.status_code == 201 and batch.json()[0]["deduplicated"] is True
    time.sleep(0.3)
    assert len(workflow_app.results) == 1  # no second run


def test_workflow_context_call_round_trip(qstash_server, endpoint_factory):
    api = endpoint_factory(lambda req: Reply(201, b'{"ok": true, "echo": ' + req.body + b"}",
                                             {"Content-Type": "application/json"}))
    with WorkflowApp(qstash_server, call_url=f"{api.url}/api") as app:
        qstash_server.client().message.publish_json(url=app.url, body={"n": 2})
        [result] = wait_until(lambda: app.results, timeout=60)
    assert result["c"] == 106
    assert result["called"] == (201, {"ok": True, "echo": {"c": 106}})
    [call] = api.requests
    assert call.method == "POST" and json.loads(call.body) == {"c": 106}
