"""Order at the endpoint, end to end: the destinations ``migrator plan`` emits for an ordered
topic, run by a real bridge from a real broker through the local QStash server (delivering, its
own instance) to real endpoints on 127.0.0.1 that refuse records (503, several times,
Retry-After, timeouts).

The bridge configs are the plan's own (``bridge_config(build_plan(...))``), so what is proven is
what the plan emits: FIFO queues keep every key's order through retries and callbacks, with a
queue per partition (payg) and with partitions sharing queues (a short free-tier budget), for
two groups at once; the opt-in best-effort mode and workflow groups (a flow-control key,
parallelism 1) are shown reordering; a message that exhausts its retries in a FIFO queue goes
to QStash's DLQ, the queue moves on, and a DLQ retry arrives after the key's later records.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from migrator.bridge.config import BridgeConfig
from migrator.plan.builder import PlanOptions, build_plan
from migrator.plan.endpoints import EndpointFile, EndpointMap
from migrator.plan.scaffold import bridge_config
from migrator.plan.spec import Plan
from tests.bridge.harness import running_bridge
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.plan.factories import group, inventory, topic

pytestmark = [pytest.mark.stack, pytest.mark.qstash]

PARTITIONS = 3
KEYS = 12  # key k<i> lives in partition i % PARTITIONS
PER_KEY = 6
TIMEOUT_S = 1.0  # Upstash-Timeout of the tests' destinations


@dataclass(frozen=True)
class Fault:
    """How the endpoint answers the first attempts of one record."""

    refusals: int = 1
    status: int = 503
    retry_after: str | None = None  # scaled by the server's backoff_scale (0.01)
    hang: bool = False  # answer only after the server's timeout


@dataclass
class Script:
    """An endpoint's answers: faults per (key, seq), the rest accepted; what it accepted, in
    arrival order. A record is identified by the body the test produced, {"key", "seq"}."""

    faults: dict[tuple[str, int], Fault]
    accepted: list[tuple[str, int, int, int]] = field(default_factory=list)  # key, seq, p, offset
    attempts: Counter[tuple[str, int]] = field(default_factory=Counter)
    refuse_always: set[tuple[str, int]] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, req: ReceivedRequest) -> Reply:
        body = json.loads(req.body)
        rec = (str(body["key"]), int(body["seq"]))
        with self.lock:
            self.attempts[rec] += 1
            attempt = self.attempts[rec]
            fault = self.faults.get(rec)
            refused = rec in self.refuse_always or (fault is not None and attempt <= fault.refusals)
            if not refused:
                self.accepted.append((rec[0], rec[1], int(req.headers["kafka-partition"]),
                                      int(req.headers["kafka-offset"])))
                return Reply(200)
        assert fault is not None or rec in self.refuse_always
        if fault is not None and fault.hang:
            time.sleep(TIMEOUT_S + 0.5)  # the server gave up already: this answer is lost
        headers = {"Retry-After": fault.retry_after} if fault and fault.retry_after else {}
        return Reply(fault.status if fault else 503, b"refused", headers)

    def arrivals(self) -> dict[str, list[int]]:
        """key -> seqs in arrival order (accepted deliveries only)."""
        with self.lock:
            accepted = list(self.accepted)
        out: dict[str, list[int]] = {}
        for key, seq, _p, _o in accepted:
            out.setdefault(key, []).append(seq)
        return out

    def snapshot(self) -> str:
        with self.lock:
            attempts = sum(self.attempts.values())
        return f"{attempts} attempts; accepted per key: {self.arrivals()}"


def wait_for(what: str, done: Callable[[], bool], seen: Callable[[], str],
             timeout: float = 120.0) -> None:
    """Wait until ``done()``; on timeout raise with what was seen."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if done():
            return
        time.sleep(0.05)
    if not done():
        raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; saw: {seen()}")


def _callbacks_ok(ep: RecordingEndpoint) -> list[ReceivedRequest]:
    """Callbacks reporting a delivered attempt (QStash also calls back on refused ones)."""
    return [r for r in list(ep.requests) if 200 <= json.loads(r.body).get("status", 0) < 300]


def _count_reached(script: Script, n: int) -> Callable[[], bool]:
    return lambda: len(script.accepted) >= n


def produce_keys(kafka: KafkaKit, name: str, keys: int = KEYS, per_key: int = PER_KEY) -> None:
    """``per_key`` records for each of ``keys`` keys, keys interleaved within each partition."""
    kafka.create_topic(name, partitions=PARTITIONS)
    kafka.produce(name, (
        Rec(json.dumps({"key": f"k{k}", "seq": s}), key=f"k{k}", partition=k % PARTITIONS)
        for s in range(per_key) for k in range(keys)))


def planned(
    kafka: KafkaKit,
    name: str,
    endpoints: dict[str, str],
    *,
    qstash_plan: str = "payg",
    ordering: dict[str, str] | None = None,
    other_ordered_topics: int = 0,
    retries: int = 5,
    callback: str | None = None,
    workflows: list[str] | None = None,
) -> tuple[Plan, BridgeConfig]:
    """The plan for ``name`` read by the groups of ``endpoints`` (group -> URL), and the bridge
    config it generates, tuned only in delivery timing (retry delay, timeout, batches).

    ``other_ordered_topics`` single-partition ordered topics with unmapped groups share the
    tier's queue budget (and stay out of the bridge config)."""
    others = [f"{name}-other{i}" for i in range(other_ordered_topics)]
    inv = inventory(
        [topic(name, partitions=PARTITIONS, keyed=1.0, rps=1.0),
         *(topic(t, partitions=1, keyed=1.0, rps=1.0) for t in others)],
        [*(group(g, name) for g in endpoints), *(group(f"{t}-g", t) for t in others)])
    eps = EndpointMap(EndpointFile(groups=endpoints, ordering=ordering or {},
                                   workflows=workflows or []))
    plan = build_plan(inv, eps, PlanOptions(qstash_tier=qstash_plan))  # type: ignore[arg-type]
    config, _ = bridge_config(plan, unique("ord-bridge"))
    assert config is not None
    data = config.model_dump(mode="json", exclude_defaults=True)
    data["kafka"] = {"bootstrap_servers": kafka.bootstrap}
    data["batch"] = {"count": 20, "linger_ms": 5}
    data["retry"] = {"initial_backoff": 0.05, "max_backoff": 0.5, "max_attempts": 50}
    for route in data["routes"]:
        for dest in route["destinations"]:
            # 1,000 ms between QStash retries (10 ms at the test server's backoff scale of 0.01;
            # Retry-After is scaled the same way); attempts give up after TIMEOUT_S
            dest.update(retries=retries, retry_delay="1000", timeout=f"{TIMEOUT_S:g}s")
            if callback is not None:
                dest["callback"] = callback
    return plan, BridgeConfig.model_validate(data)


def check_order(script: Script, expected: Iterable[tuple[str, int]]) -> None:
    """Every expected record accepted exactly once, every key's records in offset order."""
    want = set(expected)
    with script.lock:
        accepted = list(script.accepted)
    counts = Counter((k, s) for k, s, _p, _o in accepted)
    assert set(counts) == want, f"missing {sorted(want - set(counts))[:10]}"
    dupes = {r: c for r, c in counts.items() if c > 1}
    assert not dupes, f"accepted more than once: {dupes}"
    offsets: dict[str, list[int]] = {}
    for key, _s, _p, offset in accepted:
        offsets.setdefault(key, []).append(offset)
    broken = {k: o for k, o in offsets.items() if o != sorted(o)}
    assert not broken, f"keys out of offset order at the endpoint: {broken}"


def faults_for(shift: int) -> dict[tuple[str, int], Fault]:
    """Refusals spread over keys and partitions: once, three times, with Retry-After (1 s at the
    test scale), a hang past the timeout, and the first record of k0 refused once."""
    faults: dict[tuple[str, int], Fault] = {("k0", 0): Fault(retry_after="200")}
    for k in range(KEYS):
        for s in range(PER_KEY):
            n = k * PER_KEY + s + shift
            if (k, s) == (0, 0):
                continue
            if n % 7 == 0:
                faults[(f"k{k}", s)] = Fault()
            elif n % 11 == 3:
                faults[(f"k{k}", s)] = Fault(refusals=3)
            elif n % 13 == 5:
                faults[(f"k{k}", s)] = Fault(status=429, retry_after="100")
            elif n % 31 == 9:
                faults[(f"k{k}", s)] = Fault(hang=True)
    return faults


ALL = [(f"k{k}", s) for k in range(KEYS) for s in range(PER_KEY)]


@pytest.mark.parametrize(("qstash_plan", "others", "queues"), [
    ("payg", 0, PARTITIONS),  # a queue per partition
    ("free", 5, 2),  # 10 queues for 7 routes x groups: the two groups get 2 each, p0 and p2 share
])
def test_fifo_queues_keep_every_keys_order_through_refusals(
    kafka: KafkaKit, qstash_server_factory: Any, endpoint_factory: Any,
    qstash_plan: str, others: int, queues: int,
) -> None:
    server = qstash_server_factory()
    name = unique("ord-fifo")
    produce_keys(kafka, name)
    scripts = {"ledger": Script(faults_for(0)), "audit": Script(faults_for(4))}
    eps = {g: endpoint_factory(s) for g, s in scripts.items()}
    callbacks = endpoint_factory()  # every delivery also calls back (a message of its own)
    plan, cfg = planned(kafka, name, {g: ep.url + "/hook" for g, ep in eps.items()},
                        qstash_plan=qstash_plan, other_ordered_topics=others,
                        callback=callbacks.url + "/cb")
    (route,) = [r for r in plan.routes if r.topic == name]
    assert route.pattern == "fifo_queue" and route.ordering and route.ordering.queues == queues
    kinds = [(d.kind, getattr(d, "queues", None)) for d in cfg.routes[0].destinations]
    assert kinds == [("enqueue-queue", queues)] * 2 and cfg.routes[0].ordered
    hangs = sum(f.hang for s in scripts.values() for f in s.faults.values())
    assert hangs >= 2  # the script really holds timeouts
    with running_bridge(cfg, kafka.bootstrap, qstash=server.connection) as rb:
        for g, script in scripts.items():
            wait_for(f"{len(ALL)} records accepted at {g}", _count_reached(script, len(ALL)),
                     script.snapshot, timeout=180)
        wait_for("a callback per delivered record", lambda: len(_callbacks_ok(callbacks)) >= 2
                 * len(ALL), lambda: f"{len(_callbacks_ok(callbacks))} callbacks", timeout=60)
        time.sleep(1.0)  # a late duplicate would show now
        stats = rb.stop()
    assert stats.dead_lettered == 0
    for g, script in scripts.items():
        check_order(script, ALL)
        refused = [r for r, f in script.faults.items() if script.attempts[r] < f.refusals + 1]
        assert not refused, f"{g}: scripted refusals never happened for {refused}"
    live = sorted(q.name for q in server.client().queue.list())
    assert live == sorted(f"{name}.{g}-{i}" for g in scripts for i in range(queues))


@pytest.mark.parametrize("kind", ["publish-url", "workflow"])
def test_best_effort_flow_control_reorders_a_key_on_a_retry(
    kafka: KafkaKit, qstash_server_factory: Any, endpoint_factory: Any, kind: str,
) -> None:
    """The plan's flow-control destinations: a group that opted into best effort (publish-url),
    and a workflow group (its runs' first invocations; the endpoint stands in for the workflow
    SDK, which would create a run per request)."""
    server = qstash_server_factory()
    name = unique("ord-fc")
    produce_keys(kafka, name, keys=6, per_key=5)
    # the first record of k0 is refused once with Retry-After: 400 (4 s at the server's 0.01
    # scale: time enough for the key's four later records under any load)
    script = Script({("k0", 0): Fault(retry_after="400")})
    ep = endpoint_factory(script)
    workflow = kind == "workflow"
    plan, cfg = planned(kafka, name, {"crm": ep.url + "/hook"},
                        ordering=None if workflow else {"crm": "best_effort"},
                        workflows=["crm"] if workflow else None)
    (route,) = plan.routes
    assert route.pattern == ("workflow" if workflow else "flow_control")
    assert plan.resources.queues == [] and route.ordering and route.ordering.best_effort == ["crm"]
    (dest,) = cfg.routes[0].destinations
    assert dest.kind == kind and dest.kind != "direct-http" and dest.flow_control is not None
    assert (dest.flow_control.key, dest.flow_control.parallelism) == ("{topic}-{key}", 1)
    with running_bridge(cfg, kafka.bootstrap, qstash=server.connection) as rb:
        wait_for("30 records accepted", lambda: len(script.accepted) >= 30, script.snapshot)
        rb.stop()
    # every record once, but k0's first record arrived after the key's later ones
    assert Counter((k, s) for k, s, _p, _o in script.accepted) == Counter(
        (f"k{k}", s) for k in range(6) for s in range(5))
    assert script.arrivals()["k0"] == [1, 2, 3, 4, 0], script.snapshot()


def test_fifo_message_exhausting_its_retries_goes_to_the_dlq_and_the_queue_moves_on(
    kafka: KafkaKit, qstash_server_factory: Any, endpoint_factory: Any,
) -> None:
    server = qstash_server_factory()
    name = unique("ord-dlq")
    produce_keys(kafka, name, keys=3, per_key=4)
    script = Script({})
    script.refuse_always.add(("k0", 1))
    ep = endpoint_factory(script)
    _, cfg = planned(kafka, name, {"ledger": ep.url + "/hook"}, retries=1)
    with running_bridge(cfg, kafka.bootstrap, qstash=server.connection) as rb:
        wait_for("11 records accepted", lambda: len(script.accepted) >= 11, script.snapshot)
        rb.stop()
    # the queue moved on: k0's records after the failed one arrived without it
    assert script.arrivals()["k0"] == [0, 2, 3], script.snapshot()
    assert script.attempts[("k0", 1)] == 2  # the first attempt and one retry
    client = server.client()

    def dlq() -> list[Any]:
        return list(client.dlq.list().messages)

    wait_for("the failed record in the DLQ", lambda: len(dlq()) == 1, lambda: str(dlq()))
    (entry,) = dlq()
    assert json.loads(entry.body) == {"key": "k0", "seq": 1}
    assert entry.queue == f"{name}-0"  # partition 0's queue
    # the operator fixes the endpoint and retries the DLQ entry: it arrives last
    script.refuse_always.clear()
    resp = httpx.post(f"{server.url}/v2/dlq/retry/{entry.dlq_id}", headers=server.headers)
    assert resp.status_code in (200, 201), resp.text
    wait_for("the DLQ retry accepted", lambda: len(script.accepted) >= 12, script.snapshot)
    assert script.arrivals()["k0"] == [0, 2, 3, 1]
