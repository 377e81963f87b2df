"""Stateful fuzzing of the local QStash server's API: hypothesis drives random sequences of
calls through the official SDK (so every answer must parse as the SDK expects) against a real
server process and a real endpoint, and checks them against a model after every step.

Calls: publish (to a URL or a URL group; with or without a deduplication id, delayed or not,
some to a failing path with no retries so they land in the DLQ), enqueue, queue
upsert/pause/resume/delete, URL group endpoints add/remove and group delete, schedule
create/pause/resume/delete, message get/cancel/bulk cancel, DLQ list/delete, logs list, and
(once per example) a kill -9 and restart of the server on its state file.

Invariants: no answer is a 5xx; a deduplication id within the window gives back the same
message id; a cancelled message that was being held (delayed, or in a paused queue) is never
delivered and its get is a 404; queues, URL groups and schedules listed are exactly the model's;
a DLQ entry is always one of the messages sent to fail; deleted things are gone (404); a
paused queue's lag counts what it holds; all of it unchanged by a restart.

``SF_N``/``SF_STEPS`` (examples, steps) and ``SF_RANDOM=1`` (new sequences) widen a local run.

Every example works under its own name prefix on one shared server and removes what it made at
the end. Derandomized and bounded: the same sequences on every run, in well under a minute."""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from qstash import QStash
from qstash.errors import QStashError
from qstash.log import LogState

from tests.chaos.checks import free_port
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.qstash import start_qstash_server

pytestmark = [pytest.mark.qstash, pytest.mark.chaos]

HOLD = "1h"  # a delay no example outlives: the message stays held
NEVER = "0 0 1 1 *"  # a schedule that does not fire during the test
_examples = itertools.count()


@dataclass
class Msg:
    url: str
    queue: str | None
    held: bool  # delayed, or in a paused queue: certainly not delivered yet
    cancelled: bool = False
    never: bool = False  # cancelled (or its queue deleted) while held: must never arrive
    fails: bool = False  # sent to the failing path with no retries: ends in the DLQ
    group: str | None = None


class Env:
    """What every example shares: the server (on a state file, restartable on the same port),
    an SDK client, the endpoint, and every answer seen (method, path, status)."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.port = free_port()
        self.endpoint = RecordingEndpoint(_respond)
        self.statuses: list[tuple[str, str, int]] = []
        self.restarts = 0
        self.server = start_qstash_server(db=db, port=self.port, backoff_scale=0.01)
        self.client = self._client()

    def _record(self, response: httpx.Response) -> None:
        self.statuses.append((response.request.method, response.request.url.path,
                              response.status_code))

    def _client(self) -> QStash:
        client = QStash(self.server.token, base_url=self.server.url, retry=False)
        http = client.http._client
        http.event_hooks = {**http.event_hooks,
                            "response": [*http.event_hooks["response"], self._record]}
        return client

    def restart(self) -> None:
        """kill -9 and start again on the same file, port, token and keys."""
        old = self.server
        old.kill()
        self.client.http._client.close()
        try:
            self.server = start_qstash_server(
                db=self.db, port=self.port, backoff_scale=0.01, token=old.token,
                current_signing_key=old.current_signing_key, next_signing_key=old.next_signing_key)
        finally:
            old.close()  # its stderr capture, also when the restart failed
        self.client = self._client()
        self.restarts += 1

    def close(self) -> None:
        self.client.http._client.close()
        self.server.close()
        self.endpoint.close()


def _respond(req: ReceivedRequest) -> Reply:
    return Reply(500, b"failing on purpose") if "/fail/" in req.path else Reply()


class QStashApiMachine(RuleBasedStateMachine):
    env: Env

    messages = Bundle("messages")
    schedules = Bundle("schedules")

    def __init__(self) -> None:
        super().__init__()
        self.prefix = f"sf{next(_examples)}x{id(self) % 10_000}"
        self.msgs: dict[str, Msg] = {}
        self.dedup: dict[str, str] = {}  # dedup id -> message id
        self.group_dedup: dict[str, dict[str, str]] = {}  # dedup id -> {url: message id}
        self.queues: dict[str, dict[str, Any]] = {}  # name -> parallelism, paused
        self.groups: dict[str, set[str]] = {}  # name -> endpoint urls
        self.scheds: set[str] = set()
        self.scheds_paused: dict[str, bool] = {}
        self.seen_statuses = len(self.env.statuses)
        self.restarted = False  # one restart per example at most (each takes a second)

    # ---------------------------------------------------------------- helpers
    @property
    def c(self) -> QStash:
        return self.env.client

    def url(self, path: str) -> str:
        return f"{self.env.endpoint.url}/{path}/{self.prefix}"

    def queue_name(self, i: int) -> str:
        return f"{self.prefix}-q{i}"

    def group_name(self, i: int) -> str:
        return f"{self.prefix}-g{i}"

    def last_status(self) -> int:
        return self.env.statuses[-1][2]

    def refused(self, call: Any, *args: Any, **kwargs: Any) -> int:
        """Call what must fail; the status it failed with."""
        with pytest.raises(QStashError):
            call(*args, **kwargs)
        return self.last_status()

    def _record_publish(self, answer: Any, dedup: str | None, msg: Msg) -> str:
        message_id: str = answer.message_id
        if dedup is not None and dedup in self.dedup:
            assert message_id == self.dedup[dedup], (dedup, message_id, self.dedup[dedup])
            assert answer.deduplicated is True
            assert self.last_status() == 202
            return message_id
        assert message_id not in self.msgs, message_id
        if dedup is not None:
            self.dedup[dedup] = message_id
        self.msgs[message_id] = msg
        return message_id

    # ---------------------------------------------------------------- rules: messages
    @initialize()
    def start(self) -> None:
        """Every example starts with a paused queue (q0), so held queue messages are common."""
        assert not [q for q in self.c.queue.list() if q.name.startswith(self.prefix)]
        self.c.queue.upsert(self.queue_name(0), parallelism=1, paused=True)
        self.queues[self.queue_name(0)] = {"parallelism": 1, "paused": True}

    @rule(target=messages, delayed=st.booleans(), dedup=st.none() | st.integers(0, 2),
          fails=st.booleans())
    def publish(self, delayed: bool, dedup: int | None, fails: bool) -> str:
        dedup_id = None if dedup is None else f"{self.prefix}-d{dedup}"
        fails = fails and not delayed
        url = self.url("fail" if fails else "ok")
        answer = self.c.message.publish(
            url=url, body=f"b-{self.prefix}", delay=HOLD if delayed else None,
            deduplication_id=dedup_id, retries=0 if fails else None)
        assert not isinstance(answer, list)
        return self._record_publish(answer, dedup_id, Msg(url, None, held=delayed, fails=fails))

    @rule(target=messages, q=st.integers(0, 2), dedup=st.none() | st.integers(0, 2))
    def enqueue(self, q: int, dedup: int | None) -> str:
        name = self.queue_name(q)
        dedup_id = None if dedup is None else f"{self.prefix}-d{dedup}"
        answer = self.c.message.enqueue(queue=name, url=self.url("ok"), body="e",
                                        deduplication_id=dedup_id)
        assert not isinstance(answer, list)
        if dedup_id is not None and dedup_id in self.dedup:  # nothing new, not even a queue
            return self._record_publish(answer, dedup_id, Msg(self.url("ok"), name, False))
        if name not in self.queues:  # created by the enqueue
            self.queues[name] = {"parallelism": 1, "paused": False}
        paused = bool(self.queues[name]["paused"])
        return self._record_publish(answer, dedup_id, Msg(self.url("ok"), name, held=paused))

    @rule(g=st.integers(0, 1), dedup=st.none() | st.integers(0, 1))
    def publish_to_group(self, g: int, dedup: int | None) -> None:
        name = self.group_name(g)
        dedup_id = None if dedup is None else f"{self.prefix}-gd{dedup}"
        if name not in self.groups:
            assert self.refused(self.c.message.publish, url_group=name, body="g",
                                deduplication_id=dedup_id, delay=HOLD) == 404
            return
        answers = self.c.message.publish(url_group=name, body="g", deduplication_id=dedup_id,
                                         delay=HOLD)
        assert isinstance(answers, list)
        got = {a.url: a.message_id for a in answers}
        if dedup_id is not None and dedup_id in self.group_dedup:
            # the first answer again, whatever the group holds now
            assert got == self.group_dedup[dedup_id] and all(a.deduplicated for a in answers)
            return
        assert set(got) == self.groups[name] and not any(a.deduplicated for a in answers)
        for url, message_id in got.items():
            assert message_id not in self.msgs
            self.msgs[message_id] = Msg(url, None, held=True, group=name)
        if dedup_id is not None:
            self.group_dedup[dedup_id] = got

    @rule(message_id=messages)
    def get(self, message_id: str) -> None:
        m = self.msgs[message_id]
        if m.never:
            assert self.refused(self.c.message.get, message_id) == 404
            return
        if not m.held or m.cancelled:  # (a cancelled delivery may still be under way)
            try:
                got = self.c.message.get(message_id)
            except QStashError:
                assert self.last_status() == 404  # delivered (or failed) already
                return
        else:
            got = self.c.message.get(message_id)
        assert got.message_id == message_id and got.url == m.url, got
        assert (got.queue, got.url_group) == (m.queue, m.group), got

    @rule(message_id=messages)
    def cancel(self, message_id: str) -> None:
        m = self.msgs[message_id]
        if m.never:
            assert self.refused(self.c.message.cancel, message_id) == 404
            return
        if m.held:
            self.c.message.cancel(message_id)
            m.cancelled = m.never = True
            return
        try:
            self.c.message.cancel(message_id)
        except QStashError:
            assert self.last_status() == 404  # delivered (or failed) already
        m.cancelled = True

    @rule(ids=st.lists(messages, min_size=1, max_size=3, unique=True))
    def cancel_many(self, ids: list[str]) -> None:
        """Bulk cancel by ids: counts exactly the held ones (the others may be gone)."""
        held = [i for i in ids if self.msgs[i].held and not self.msgs[i].never]
        unknown = [i for i in ids if self.msgs[i].never]
        cancelled = self.c.message.cancel_many(ids)
        assert len(held) <= cancelled <= len(ids) - len(unknown), (cancelled, held, unknown)
        for i in ids:
            m = self.msgs[i]
            m.never = m.never or m.held
            m.cancelled = True

    @rule(message_id=messages)
    def logs(self, message_id: str) -> None:
        found = self.c.log.list(filter={"message_id": message_id}).logs
        assert all(entry.message_id == message_id for entry in found), found
        states = {entry.state for entry in found}
        if found and not self.restarted:
            assert LogState.CREATED in states, states
        if self.msgs[message_id].never:
            assert LogState.DELIVERED not in states and LogState.ACTIVE not in states, states
            if found and not self.restarted:  # (logs are not kept over a restart)
                assert LogState.CANCELED in states, states

    @precondition(lambda self: not self.restarted)
    @rule()
    def restart(self) -> None:
        """kill -9 and a restart on the same file: everything acknowledged is still there
        (the invariants compare it all with the model; logs are kept in memory only)."""
        self.env.restart()
        self.restarted = True

    # ---------------------------------------------------------------- rules: queues
    @rule(q=st.integers(0, 2), parallelism=st.integers(1, 3), paused=st.booleans())
    def upsert_queue(self, q: int, parallelism: int, paused: bool) -> None:
        name = self.queue_name(q)
        self.c.queue.upsert(name, parallelism=parallelism, paused=paused)
        self.queues[name] = {"parallelism": parallelism, "paused": paused}
        if not paused:
            self._released(name)

    @rule(q=st.integers(0, 2), pause=st.booleans())
    def pause_or_resume(self, q: int, pause: bool) -> None:
        name = self.queue_name(q)
        call = self.c.queue.pause if pause else self.c.queue.resume
        if name not in self.queues:
            assert self.refused(call, name) == 404
            return
        call(name)
        self.queues[name]["paused"] = pause
        if not pause:
            self._released(name)

    def _released(self, queue: str) -> None:
        for m in self.msgs.values():
            if m.queue == queue and not m.cancelled:
                m.held = False

    @rule(q=st.integers(0, 2))
    def delete_queue(self, q: int) -> None:
        name = self.queue_name(q)
        if name not in self.queues:
            assert self.refused(self.c.queue.delete, name) == 404
            return
        self.c.queue.delete(name)
        del self.queues[name]
        for m in self.msgs.values():  # its messages go with it
            if m.queue == name and not m.cancelled:
                m.cancelled = True
                m.never = m.never or m.held
        assert self.refused(self.c.queue.get, name) == 404

    # ---------------------------------------------------------------- rules: URL groups
    @rule(g=st.integers(0, 1), e=st.integers(0, 2))
    def add_endpoint(self, g: int, e: int) -> None:
        name, url = self.group_name(g), self.url(f"group{e}")
        self.c.url_group.upsert_endpoints(name, [{"url": url}])
        self.groups.setdefault(name, set()).add(url)

    @rule(g=st.integers(0, 1), e=st.integers(0, 2))
    def remove_endpoint(self, g: int, e: int) -> None:
        name, url = self.group_name(g), self.url(f"group{e}")
        if name not in self.groups:
            assert self.refused(self.c.url_group.remove_endpoints, name, [{"url": url}]) == 404
            return
        self.c.url_group.remove_endpoints(name, [{"url": url}])
        self.groups[name].discard(url)
        if not self.groups[name]:  # a group goes when its last endpoint does
            del self.groups[name]

    @rule(g=st.integers(0, 1))
    def delete_group(self, g: int) -> None:
        name = self.group_name(g)
        if name not in self.groups:
            assert self.refused(self.c.url_group.delete, name) == 404
            return
        self.c.url_group.delete(name)
        del self.groups[name]
        assert self.refused(self.c.url_group.get, name) == 404

    # ---------------------------------------------------------------- rules: schedules
    @rule(target=schedules)
    def create_schedule(self) -> str:
        schedule_id = self.c.schedule.create(destination=self.url("sched"), cron=NEVER)
        assert schedule_id not in self.scheds
        self.scheds.add(schedule_id)
        self.scheds_paused[schedule_id] = False
        got = self.c.schedule.get(schedule_id)
        assert (got.destination, got.cron) == (self.url("sched"), NEVER)
        return schedule_id

    @rule(schedule_id=schedules, pause=st.booleans())
    def pause_or_resume_schedule(self, schedule_id: str, pause: bool) -> None:
        if schedule_id not in self.scheds:
            return
        (self.c.schedule.pause if pause else self.c.schedule.resume)(schedule_id)
        self.scheds_paused[schedule_id] = pause
        assert self.c.schedule.get(schedule_id).paused is pause

    @rule(schedule_id=consumes(schedules))
    def delete_schedule(self, schedule_id: str) -> None:
        self.c.schedule.delete(schedule_id)
        self.scheds.discard(schedule_id)
        assert self.refused(self.c.schedule.get, schedule_id) == 404

    # ---------------------------------------------------------------- rules: DLQ
    def mine_in_dlq(self) -> list[Any]:
        entries = self.c.dlq.list(count=100, filter={"url": self.url("fail")}).messages
        return [d for d in entries if d.message_id in self.msgs]

    @precondition(lambda self: any(m.fails for m in self.msgs.values()))
    @rule()
    def delete_from_dlq(self) -> None:
        mine = self.mine_in_dlq()
        if not mine:
            return  # the failing deliveries have not happened yet
        entry = mine[0]
        assert entry.response_status == 500, entry
        self.c.dlq.delete(entry.dlq_id)
        assert self.refused(self.c.dlq.get, entry.dlq_id) == 404
        assert entry.dlq_id not in {d.dlq_id for d in self.mine_in_dlq()}

    # ---------------------------------------------------------------- invariants
    @invariant()
    def no_server_errors(self) -> None:
        errors = [s for s in self.env.statuses[self.seen_statuses:] if s[2] >= 500]
        assert not errors, errors

    @invariant()
    def listings_match_the_model(self) -> None:
        queues = {q.name: {"parallelism": q.parallelism, "paused": q.paused}
                  for q in self.c.queue.list() if q.name.startswith(self.prefix)}
        assert queues == self.queues
        groups = {g.name: {e.url for e in g.endpoints}
                  for g in self.c.url_group.list() if g.name.startswith(self.prefix)}
        assert groups == self.groups
        scheds = {s.schedule_id: s.paused for s in self.c.schedule.list()
                  if s.destination.endswith("/" + self.prefix)}
        assert scheds == {i: self.scheds_paused[i] for i in self.scheds}

    @invariant()
    def paused_queues_count_what_they_hold(self) -> None:
        for q in self.c.queue.list():
            if q.name in self.queues and q.paused:
                mine = [m for m in self.msgs.values() if m.queue == q.name and not m.cancelled]
                held = sum(1 for m in mine if m.held)  # the rest may have been delivered
                assert held <= q.lag <= len(mine), (q, held, len(mine))

    @invariant()
    def held_and_cancelled_never_delivered(self) -> None:
        never = {mid for mid, m in self.msgs.items() if m.never}
        arrived = {r.headers.get("upstash-message-id") for r in list(self.env.endpoint.requests)}
        assert not never & arrived, never & arrived

    @invariant()
    def cancelled_messages_are_gone(self) -> None:
        for message_id in [i for i, m in self.msgs.items() if m.never][-4:]:
            assert self.refused(self.c.message.get, message_id) == 404, message_id

    @invariant()
    def dlq_holds_only_failing_messages(self) -> None:
        if self.msgs:
            wrong = [d.message_id for d in self.mine_in_dlq() if not self.msgs[d.message_id].fails]
            assert not wrong, wrong

    def teardown(self) -> None:
        """Remove what this example made (the invariants have checked the server already)."""
        with contextlib.suppress(QStashError):
            for mid, m in self.msgs.items():
                if m.held and not m.cancelled:
                    self.c.message.cancel(mid)
            for name in list(self.queues):
                self.c.queue.delete(name)
            for name in list(self.groups):
                self.c.url_group.delete(name)
            for schedule_id in list(self.scheds):
                self.c.schedule.delete(schedule_id)
            for d in self.mine_in_dlq():
                self.c.dlq.delete(d.dlq_id)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    e = Env(str(tmp_path_factory.mktemp("stateful") / "qstash.db"))
    try:
        yield e
    finally:
        e.close()


def test_random_api_sequences_keep_the_server_consistent_with_its_model(env: Env) -> None:
    QStashApiMachine.env = env
    run_state_machine_as_test(QStashApiMachine, settings=settings(
        max_examples=int(os.environ.get("SF_N", "20")),
        stateful_step_count=int(os.environ.get("SF_STEPS", "20")),
        derandomize=os.environ.get("SF_RANDOM") is None, database=None, deadline=None,
        suppress_health_check=[HealthCheck.too_slow], phases=[Phase.explicit, Phase.generate]))
    final = [s for s in env.statuses if s[2] >= 500]
    assert not final, final
    print(f"\nstateful API fuzz: {len(env.statuses)} calls, {env.restarts} restarts, "
          f"{len({p for _m, p, _s in env.statuses})} paths, statuses "
          f"{sorted({s for _m, _p, s in env.statuses})}")
