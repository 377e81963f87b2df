"""``--cancel-delay-ms`` (env ``QSTASH_SERVER_CANCEL_DELAY_MS``): a filter-based bulk cancel runs
in the background as on QStash's newer API (202, ``cancelled`` = how many matched, ``actionId``
with ``async=true``, ``GET /v2/bulkActions/{id}``). The messages are logged
``CANCEL_REQUESTED`` at once and stay deliverable until the cancel takes effect: one whose retry
falls due in that window is delivered and logged ``DELIVERED``; the rest end ``CANCELED``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.qstash import QStashServer
from tests.qstash_server.conftest import wait_until

pytestmark = [pytest.mark.qstash, pytest.mark.timeout(120)]

DELAY_MS = 2500
LABEL = "bulk-async"


class Door:
    """Refuses everything while shut; once open, takes bodies starting with ``ok``."""

    def __init__(self) -> None:
        self.open = False
        self.taken: list[bytes] = []
        self._lock = threading.Lock()

    def __call__(self, req: ReceivedRequest) -> Reply:
        with self._lock:
            if self.open and req.body.startswith(b"ok"):
                self.taken.append(req.body)
                return Reply(200)
        return Reply(503, b"busy")


def _logs(server: QStashServer, **params: Any) -> list[dict[str, Any]]:
    r = httpx.get(f"{server.url}/v2/logs", params={"label": LABEL, "count": 100, **params},
                  headers=server.headers)
    r.raise_for_status()
    logs: list[dict[str, Any]] = r.json()["logs"]
    return logs


def _states(server: QStashServer) -> dict[str, list[str]]:
    """Per message, its states oldest first."""
    out: dict[str, list[str]] = {}
    for entry in reversed(_logs(server)):
        out.setdefault(entry["messageId"], []).append(entry["state"])
    return out


def test_a_filter_cancel_answers_at_once_and_takes_effect_later_delivering_what_fell_due(
    monkeypatch: pytest.MonkeyPatch, qstash_server_factory: Callable[..., QStashServer],
    endpoint_factory: Callable[..., RecordingEndpoint],
) -> None:
    monkeypatch.setenv("QSTASH_SERVER_CANCEL_DELAY_MS", str(DELAY_MS))
    server = qstash_server_factory(backoff_scale=1.0)
    door = Door()
    endpoint = endpoint_factory(door)
    ids: dict[str, str] = {}
    with httpx.Client(headers=server.headers) as http:
        for body in ("ok-1", "ok-2", "ok-3", "no-1", "no-2"):  # retried every 300 ms
            r = http.post(f"{server.url}/v2/publish/{endpoint.url}", content=body,
                          headers={"Upstash-Label": LABEL, "Upstash-Retries": "50",
                                   "Upstash-Retry-Delay": "300"})
            ids[body] = r.json()["messageId"]
        for body in ("later-1", "later-2"):  # not due before the cancel takes effect
            r = http.post(f"{server.url}/v2/publish/{endpoint.url}", content=body,
                          headers={"Upstash-Label": LABEL, "Upstash-Delay": "1h"})
            ids[body] = r.json()["messageId"]
        wait_until(lambda: _states(server), what="every refused message retrying",
                   until=lambda s: all("RETRY" in s.get(ids[b], [])
                                       for b in ("ok-1", "ok-2", "ok-3", "no-1", "no-2")))
        door.open = True
        r = http.delete(f"{server.url}/v2/messages", params={"label": LABEL, "async": "true"})
        # answered before the cancel took effect: everything matched, nothing cancelled yet
        assert r.status_code == 202, r.text
        answer = r.json()
        assert answer["cancelled"] == 7 and answer["actionId"].startswith("bulk_"), answer
        states = _states(server)
        assert all("CANCEL_REQUESTED" in states[m] for m in ids.values()), states
        assert not any("CANCELED" in s for s in states.values()), states
        assert http.get(f"{server.url}/v2/messages/{ids['later-1']}").status_code == 200
        action = http.get(f"{server.url}/v2/bulkActions/{answer['actionId']}").json()
        assert action["state"] == "IN_PROGRESS" and action["total"] == 7, action
        assert action["kind"] == "cancel" and action["filter"] == {"label": [LABEL]}, action
        # the same filters while it runs: the same action, no second CANCEL_REQUESTED
        again = http.delete(f"{server.url}/v2/messages", params={"label": LABEL, "async": "true"})
        assert again.json()["actionId"] == answer["actionId"], again.text

        done = wait_until(
            lambda: http.get(f"{server.url}/v2/bulkActions/{answer['actionId']}").json(),
            until=lambda a: a["state"] == "FINISHED", what="the bulk action finished")
        assert done["processed"] == 7 and done["completedAt"] >= done["createdAt"], done
        listed = http.get(f"{server.url}/v2/bulkActions", params={"state": "FINISHED"}).json()
        assert [a["actionId"] for a in listed["bulkActions"]] == [answer["actionId"]], listed
        assert http.get(f"{server.url}/v2/messages/{ids['later-1']}").status_code == 404
    states = _states(server)
    # delivered in the window, after the cancel was requested: DELIVERED, never CANCELED
    for body in ("ok-1", "ok-2", "ok-3"):
        s = states[ids[body]]
        assert s.count("CANCEL_REQUESTED") == 1 and s[-1] == "DELIVERED", (body, s)
        assert s.index("CANCEL_REQUESTED") < s.index("DELIVERED"), (body, s)
    for body in ("no-1", "no-2", "later-1", "later-2"):
        s = states[ids[body]]
        # (the refused ones were still attempted in the window: still deliverable until then)
        assert s.count("CANCEL_REQUESTED") == 1 and s[-1] == "CANCELED", (body, s)
        assert "DELIVERED" not in s, (body, s)
    assert sorted(door.taken) == [b"ok-1", b"ok-2", b"ok-3"]
    # the official SDK parses every state (qstash-py: LogState(value))
    client = server.client()
    seen = {str(e.state.value) for e in client.log.list(filter={"label": LABEL}).logs}
    assert {"CANCEL_REQUESTED", "CANCELED", "DELIVERED"} <= seen, seen


def test_without_async_the_cancel_waits_for_the_action_and_the_sdk_reads_the_count(
    monkeypatch: pytest.MonkeyPatch, qstash_server_factory: Callable[..., QStashServer],
    endpoint_factory: Callable[..., RecordingEndpoint],
) -> None:
    monkeypatch.setenv("QSTASH_SERVER_CANCEL_DELAY_MS", "300")
    server = qstash_server_factory()
    endpoint = endpoint_factory()
    client = server.client()
    mid = client.message.publish(url=endpoint.url, body="x", delay="1h", label=LABEL).message_id
    assert client.message.cancel_all() == 1  # qstash-py: a bodiless DELETE, waits for it
    assert _states(server)[mid][-2:] == ["CANCEL_REQUESTED", "CANCELED"]
    # cancelling by id stays synchronous
    other = client.message.publish(url=endpoint.url, body="y", delay="1h").message_id
    assert client.message.cancel_many([other]) == 1
    r = httpx.get(f"{server.url}/v2/messages/{other}", headers=server.headers)
    assert r.status_code == 404, r.text
