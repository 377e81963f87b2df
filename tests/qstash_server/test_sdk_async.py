"""The official ``qstash.AsyncQStash`` client drives every namespace against the server."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from qstash.errors import QStashError

from tests.fixtures.endpoint import Reply
from tests.fixtures.wait import wait_until_async
from tests.qstash_server.conftest import wait_until

pytestmark = pytest.mark.qstash


def test_async_client_every_namespace(qstash_server, endpoint_factory):
    ep = endpoint_factory()
    failing = endpoint_factory(lambda _r: Reply(500, b"x"))
    tag = uuid.uuid4().hex[:8]

    async def scenario() -> None:
        client = qstash_server.async_client()
        # message
        res = await client.message.publish_json(url=f"{ep.url}/a", body={"x": 1})
        queue = f"aq-{tag}"
        await client.queue.upsert(queue, parallelism=1)
        enq = await client.message.enqueue(queue=queue, url=f"{ep.url}/q", body="q")
        batch = await client.message.batch_json([{"url": f"{ep.url}/b", "body": [1]}])
        delayed = await client.message.publish(url=f"{ep.url}/later", body="l", delay="1h")
        assert (await client.message.get(delayed.message_id)).url == f"{ep.url}/later"
        await client.message.cancel(delayed.message_id)
        assert await client.message.cancel_many([]) == 0
        # queue
        q = await client.queue.get(queue)
        assert q.name == queue and q.parallelism == 1
        await client.queue.pause(queue)
        await client.queue.resume(queue)
        assert queue in [x.name for x in await client.queue.list()]
        # url group
        group = f"ag-{tag}"
        await client.url_group.upsert_endpoints(group, [{"url": f"{ep.url}/g"}])
        assert (await client.url_group.get(group)).endpoints[0].url == f"{ep.url}/g"
        assert group in [g.name for g in await client.url_group.list()]
        await client.url_group.remove_endpoints(group, [{"url": f"{ep.url}/g"}])
        with pytest.raises(QStashError):
            await client.url_group.get(group)
        # schedule
        sid = await client.schedule.create(destination=ep.url, cron="0 * * * *", body="s")
        await client.schedule.pause(sid)
        assert (await client.schedule.get(sid)).paused
        await client.schedule.resume(sid)
        assert sid in [s.schedule_id for s in await client.schedule.list()]
        await client.schedule.delete(sid)
        # dlq
        label = f"al-{tag}"
        await client.message.publish(url=failing.url, body="f", retries=0, label=label)
        listed = await wait_until_async(lambda: client.dlq.list(filter={"label": label}), 20,
                                        until=lambda found: found.messages,
                                        what=f"a DLQ message labelled {label}")
        dlq_id = listed.messages[0].dlq_id
        assert (await client.dlq.get(dlq_id)).response_status == 500
        assert await client.dlq.delete_many([dlq_id]) == 1
        # logs
        logs = await client.log.list(filter={"message_id": res.message_id})
        assert logs.logs and logs.logs[-1].message_id == res.message_id
        # signing keys
        keys = await client.signing_key.get()
        assert keys.current == qstash_server.current_signing_key
        # flow control
        key = f"afc-{tag}"
        await client.message.publish(url=f"{ep.url}/fc", body="f",
                                      flow_control={"key": key, "rate": 100})
        await client.flow_control.pause(key)
        assert (await client.flow_control.get(key)).is_paused
        await client.flow_control.resume(key)
        await client.flow_control.pin(key, {"parallelism": 2})
        await client.flow_control.unpin(key, {"parallelism": True})
        await client.flow_control.reset_rate(key)
        assert (await client.flow_control.get_global_parallelism()).parallelism_max > 0
        assert enq.message_id and batch[0].message_id

    asyncio.run(scenario())
    paths = {r.path for r in ep.wait_for(4)}
    assert {"/a", "/q", "/b"} <= paths
    wait_until(lambda: {r.path for r in ep.requests}, until=lambda paths: "/fc" in paths,
               what="the flow-controlled message at /fc")
