"""A switched group for verify and producers tests: a topic with records, the old group stopped
at offset 10 per partition, a bridge config whose destinations replace it, gated bridges in a
thread, and verify run through the CLI."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from migrator.bridge.config import BridgeConfig
from migrator.config import KafkaConnection
from migrator.cutover.coordinator import Coordinator
from migrator.kafka.group_offsets import GroupOffsetAdmin
from tests.cutover.harness import gated_bridges, run_cli, wait_for, write_config
from tests.fixtures.endpoint import RecordingEndpoint
from tests.fixtures.kafka import KafkaKit, Rec, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

PARTS = 2
BEFORE = 20  # records per partition written before the hand-off (the old group got 10 of them)
HANDOFF = 10


class Estate:
    """A topic with records, an old group stopped at offset 10 per partition, a bridge config
    whose destination replaces it, and the group switched (bridges running in a thread)."""

    def __init__(self, kafka: KafkaKit, bootstrap: str, tmp_path: Path,
                 dests: list[dict[str, Any]], qstash: QStashServer | None,
                 **extra: Any) -> None:
        self.kafka = kafka
        self.bootstrap = bootstrap
        self.topic = kafka.create_topic(unique("verify"), partitions=PARTS)
        self.group = unique("ledger")
        self.qstash = qstash
        for d in dests:
            d["replaces_group"] = self.group
        data: dict[str, Any] = {
            "kafka": {"bootstrap_servers": bootstrap},
            "group": unique("mb"),
            "cutover_topic": unique("_cutover"),
            "routes": [{"topic": self.topic, "destinations": dests,
                        **extra.pop("route", {})}],
            "batch": {"count": 20, "linger_ms": 5},
            "retry": {"initial_backoff": 0.05, "max_backoff": 0.5, "max_attempts": 2},
            "shutdown_deadline": 10,
            **extra,
        }
        if qstash is not None:
            data["qstash"] = {"url": qstash.url, "token": qstash.token}
        self.data = data
        self.cfg = BridgeConfig.model_validate(data)
        self.path = write_config(tmp_path / "bridge.yaml", data)
        self.produce([f"before-{i}" for i in range(BEFORE * PARTS)])
        admin = GroupOffsetAdmin(KafkaConnection(bootstrap_servers=bootstrap))
        admin.alter_group_offsets(self.group, {(self.topic, p): HANDOFF for p in range(PARTS)})
        admin.close()
        self.coord = Coordinator(self.cfg, KafkaConnection(bootstrap_servers=bootstrap),
                                 qstash=qstash.connection if qstash else None, poll=0.2)
        self.coord.prepare(self.group)

    def produce(self, values: list[str | None], partition: int | None = None) -> None:
        self.kafka.produce(self.topic, [
            Rec(v, key=f"k{i}", partition=partition if partition is not None else i % PARTS)
            for i, v in enumerate(values)])

    def ends(self) -> dict[tuple[str, int], int]:
        return {(self.topic, p): e for p, e in self.kafka.end_offsets(self.topic, PARTS).items()}

    @contextmanager
    def switched(self) -> Iterator[None]:
        qs = self.qstash.connection if self.qstash else None
        with gated_bridges(self.cfg, self.bootstrap, qstash=qs):
            self.coord.switch(self.group, watch=1.0, timeout=30.0, require_bridge=False)
            yield

    def await_committed(self) -> None:
        """Until the bridge group committed every partition's end."""
        bgroup = self.coord.load(self.group).bridge_group

        def committed() -> dict[tuple[str, int], int | None]:
            return self.coord.admin.list_group_offsets([bgroup]).get(bgroup, {})

        wait_for(lambda: committed() == self.ends(),
                 lambda: f"bridge committed {committed()}, ends {self.ends()}")

    def verify(self, *args: str) -> tuple[int, dict[str, Any], str]:
        r = run_cli("cutover", "verify", self.group, "--config", str(self.path),
                    "--format", "json", *args)
        try:
            report = json.loads(r.stdout) if r.stdout.strip() else {}
        except json.JSONDecodeError:
            raise AssertionError(f"verify printed no JSON: {r.stdout[-2000:]} {r.stderr[-2000:]}") from None
        return r.returncode, report, r.stderr

    def close(self) -> None:
        self.coord.close()


def await_endpoint(endpoint: RecordingEndpoint, live: int) -> None:
    """Until the endpoint got every record since the hand-off: the ones written before it
    (``BEFORE - HANDOFF`` per partition) and ``live`` written after the switch."""
    want = PARTS * (BEFORE - HANDOFF) + live
    wait_for(lambda: len(endpoint.requests) >= want,
             lambda: f"endpoint got {len(endpoint.requests)} of {want}")


def publish_url_estate(kafka: KafkaKit, stack: EstateInfo,
                       endpoint_factory: Callable[..., RecordingEndpoint],
                       qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
                       **dest: Any) -> tuple[Estate, QStashServer, RecordingEndpoint]:
    """An estate whose one destination publishes to a fresh endpoint through a fresh local
    QStash server (``dest``: more destination settings)."""
    server = qstash_server_factory()
    endpoint = endpoint_factory(dest.pop("responder")) if "responder" in dest \
        else endpoint_factory()
    est = Estate(kafka, stack.bootstrap_servers, tmp_path,
                 [{"kind": "publish-url", "url": endpoint.url, **dest}], server)
    return est, server, endpoint


def delivered_estate(kafka: KafkaKit, stack: EstateInfo,
                     endpoint_factory: Callable[..., RecordingEndpoint],
                     qstash_server_factory: Callable[..., QStashServer],
                     tmp_path: Path) -> Estate:
    """A publish-url estate switched, 10 live records delivered, the bridge stopped: what
    `cutover finish` passes on."""
    est, _server, endpoint = publish_url_estate(kafka, stack, endpoint_factory,
                                                qstash_server_factory, tmp_path)
    with est.switched():
        est.produce([f"live-{i}" for i in range(10)])
        est.await_committed()
        await_endpoint(endpoint, 10)
    return est


def problems(report: dict[str, Any], kind: str) -> dict[int, list[int]]:
    """{partition: [offsets]} of one problem kind (runs of offsets expanded)."""
    out: dict[int, list[int]] = {}
    for d in report["destinations"]:
        found = [o for i in d["problems"].get(kind, [])
                 for o in range(i["offset"], i.get("through", i["offset"]) + 1)]
        if found:
            out[d["partition"]] = sorted(found)
    return out


def offset_of(endpoint: RecordingEndpoint, body: bytes) -> tuple[int, int]:
    for r in list(endpoint.requests):
        if r.body == body:
            return int(r.headers["kafka-partition"]), int(r.headers["kafka-offset"])
    raise AssertionError(f"the endpoint never saw {body!r}")


def settled(server: QStashServer, label: str) -> Callable[[], bool]:
    """True when QStash holds nothing in flight for ``label`` but what the test parks."""
    def check() -> bool:
        r = httpx.get(f"{server.url}/v2/logs", params={"label": label, "state": "CREATED",
                                                         "count": 1000}, headers=server.headers)
        created = {e["messageId"] for e in r.json()["logs"]}
        done: set[str] = set()
        for st in ("DELIVERED", "FAILED", "RETRY", "CANCELED"):
            r = httpx.get(f"{server.url}/v2/logs", params={"label": label, "state": st,
                                                             "count": 1000},
                          headers=server.headers)
            done |= {e["messageId"] for e in r.json()["logs"]}
        return created <= done
    return check
