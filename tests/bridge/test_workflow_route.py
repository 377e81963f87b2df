"""A `workflow` route starts one Upstash Workflow run per record (official upstash-workflow SDK
serving the endpoint, the local QStash server in between), and a replay starts no second run."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from qstash import AsyncQStash, Receiver
from upstash_workflow import AsyncWorkflowContext
from upstash_workflow.fastapi import Serve

from tests.bridge.harness import bridge_config, running_bridge, wait_until
from tests.fixtures.kafka import KafkaKit, Rec, unique

pytestmark = [pytest.mark.stack, pytest.mark.qstash]


class OrderWorkflow:
    """Two steps per run; records each finished run's payload."""

    def __init__(self, qstash: Any) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.url = f"http://127.0.0.1:{self.port}/orders"
        self.finished: list[tuple[str, dict[str, Any]]] = []
        app = FastAPI()
        serve = Serve(app)
        outer = self

        @serve.post(  # type: ignore[untyped-decorator]  # upstash-workflow is untyped
            "/orders",
            qstash_client=AsyncQStash(qstash.token, base_url=qstash.url),
            receiver=Receiver(current_signing_key=qstash.current_signing_key,
                              next_signing_key=qstash.next_signing_key),
        )
        async def workflow(context: AsyncWorkflowContext[dict[str, Any]]) -> None:
            payload = context.request_payload

            async def total() -> int:
                return int(payload["qty"]) * 10

            amount = await context.run("total", total)

            async def record() -> None:
                outer.finished.append((context.workflow_run_id, {**payload, "amount": amount}))

            await context.run("record", record)

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_level="warning", loop="asyncio"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> OrderWorkflow:
        self.thread.start()
        wait_until(lambda: self.server.started, 20, what="the workflow app to start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def order_workflow(qstash_server: Any) -> Iterator[OrderWorkflow]:
    with OrderWorkflow(qstash_server) as wf:
        yield wf


def test_one_workflow_run_per_record_and_none_on_replay(
    kafka: KafkaKit, qstash_server: Any, order_workflow: OrderWorkflow
) -> None:
    topic = kafka.create_topic(unique("wf"), partitions=2)
    n = 12
    kafka.produce(topic, (Rec(f'{{"order":{i},"qty":{i}}}', partition=i % 2,
                              headers=[("content-type", b"application/json")]) for i in range(n)))
    route = [{"topic": topic, "destinations": [{"kind": "workflow", "url": order_workflow.url}]}]
    qstash = qstash_server.connection
    with running_bridge(bridge_config(group=unique("g"), routes=route), kafka.bootstrap,
                        qstash=qstash) as rb:
        wait_until(lambda: len(order_workflow.finished), 90, until=lambda k: k >= n,
                   what=f"{n} workflow runs finished")
        rb.stop()
    runs = {run for run, _ in order_workflow.finished}
    assert len(runs) == n and all(r.startswith("wfr_") for r in runs)
    assert sorted(p["amount"] for _, p in order_workflow.finished) == [i * 10 for i in range(n)]
    # a second bridge group replays the topic from the start: same dedup ids, no new runs
    with running_bridge(bridge_config(group=unique("g"), routes=route), kafka.bootstrap,
                        qstash=qstash) as rb:
        wait_until(lambda: rb.bridge.stats.delivered, 60, until=lambda d: d >= n,
                   what=f"{n} delivered")
        rb.stop()
    time.sleep(2)
    assert len(order_workflow.finished) == n
