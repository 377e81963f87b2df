"""`migrator cutover verify` on the real broker, the local QStash server and real endpoints:
after a switch with traffic it passes; each way of breaking delivery is named by offset and
makes it exit 1."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from connectors.codecs import BytesCodec
from connectors.sink import Record
from migrator.cutover.qstash_logs import coordinate
from migrator.cutover.scope import cutover_label
from tests.cutover.estate import (
    BEFORE,
    HANDOFF,
    Estate,
    await_endpoint,
    offset_of,
    problems,
    publish_url_estate,
    settled,
)
from tests.cutover.harness import run_cli, wait_for
from tests.fixtures.endpoint import ReceivedRequest, RecordingEndpoint, Reply
from tests.fixtures.kafka import KafkaKit, unique
from tests.fixtures.qstash import QStashServer
from tests.fixtures.stack import EstateInfo

pytestmark = pytest.mark.timeout(120)

def test_qstash_route_verified_then_dlq_cancel_and_second_delivery_named_by_offset(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    server = qstash_server_factory()

    def responder(req: ReceivedRequest) -> Reply:
        if req.body.startswith(b"fail-"):  # QStash's DLQ at once
            return Reply(489, b"no", {"Upstash-NonRetryable-Error": "true"})
        if req.body.startswith(b"slow-"):  # parked between retries (36 s scaled)
            return Reply(500, b"later")
        return Reply()

    endpoint = endpoint_factory(responder)
    est = Estate(kafka, kafka_stack.bootstrap_servers, tmp_path, [
        {"kind": "publish-url", "url": endpoint.url, "retries": 2,
         "retry_delay": "3600000",
         # few deliveries at once: the test endpoint's listen backlog refuses a burst, and a
         # refused delivery would wait the long retry delay meant for slow-1
         "flow_control": {"key": "verify-{topic}", "parallelism": 4}}], server)
    try:
        label = cutover_label(est.group, 1)
        with est.switched():
            est.produce([f"live-{i}" for i in range(30)])
            est.await_committed()
            wait_for(settled(server, label), lambda: "QStash still delivering")
            wait_for(lambda: len(endpoint.requests) >= 2 * (BEFORE - HANDOFF) + 30,
                     lambda: f"endpoint got {len(endpoint.requests)}: {est.verify()}")
            rc, report, err = est.verify()
            assert rc == 0, f"{err}\n{json.dumps(report, indent=1)[:3000]}"
            assert report["version"] == 2 and report["verdict"] == "verified"
            assert report["totals"]["delivered"] == 2 * (BEFORE - HANDOFF) + 30
            assert all(d["start"] == HANDOFF for d in report["destinations"])

            # now break it: one record failed into QStash's DLQ, one parked and cancelled
            est.produce(["fail-1"], partition=0)
            est.produce(["slow-1"], partition=1)
            est.await_committed()
            wait_for(lambda: any(r.body == b"fail-1" for r in endpoint.requests)
                     and any(r.body == b"slow-1" for r in endpoint.requests),
                     lambda: "endpoint did not see fail-1 and slow-1")
            failed_at = offset_of(endpoint, b"fail-1")
            slow_at = offset_of(endpoint, b"slow-1")
            logs = httpx.get(f"{server.url}/v2/logs", params={"label": label, "state": "RETRY"},
                             headers=server.headers).json()["logs"]
            slow_ids = {e["messageId"] for e in logs
                        if coordinate(e) == (est.topic, *slow_at)}
            assert len(slow_ids) == 1, logs
            r = httpx.delete(f"{server.url}/v2/messages/{slow_ids.pop()}",
                             headers=server.headers)
            assert r.status_code < 300, r.text
            # a replay beyond the dedup window: the same record published again under another
            # dedup id (the local server keeps ids 10 minutes; a distinct id stands in for an
            # expired one), with what the bridge stamps on it
            replay = next(r for r in endpoint.requests
                          if r.body == b"live-5")
            rp, ro = int(replay.headers["kafka-partition"]), int(replay.headers["kafka-offset"])
            r = httpx.post(f"{server.url}/v2/publish/{endpoint.url}", content=b"live-5",
                           headers={**server.headers, "Upstash-Label": label,
                                    "Upstash-Deduplication-Id": "replayed-later",
                                    "Upstash-Forward-Kafka-Topic": est.topic,
                                    "Upstash-Forward-Kafka-Partition": str(rp),
                                    "Upstash-Forward-Kafka-Offset": str(ro)})
            assert r.status_code < 300, r.text
            wait_for(lambda: sum(1 for q in endpoint.requests if q.body == b"live-5") == 2,
                     lambda: "the replay was not delivered")
            rc, report, err = est.verify("--format", "json")
        assert rc == 1, err
        assert "failed" in err and report["verdict"] == "failed"
        assert problems(report, "failed") == {failed_at[0]: [failed_at[1]]}
        assert problems(report, "cancelled") == {slow_at[0]: [slow_at[1]]}
        assert problems(report, "duplicate") == {rp: [ro]}
        assert problems(report, "gap") == {} and problems(report, "unproven") == {}
        failed = next(i for d in report["destinations"] for i in d["problems"].get("failed", []))
        assert failed["status"] == 489 and failed["dlq_id"], failed
        assert [(r["partition"], r["offset"]) for r in report["duplicate_risk"]] == [(rp, ro)]
        assert report["totals"]["delivered"] == 2 * (BEFORE - HANDOFF) + 30 - 1
        # the table and markdown forms name the same offsets
        for fmt in ("table", "markdown"):
            out = run_cli("cutover", "verify", est.group, "--config", str(est.path),
                          "--format", fmt)
            assert out.returncode == 1
            assert f"duplicate [1]: {ro}" in out.stdout, out.stdout
            assert server.token not in out.stdout + out.stderr
    finally:
        est.close()


def test_direct_http_dead_letters_and_tombstones(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint], tmp_path: Path,
) -> None:
    endpoint = endpoint_factory(
        lambda req: Reply(400, b"bad") if req.body.startswith(b"reject-") else Reply())
    dlq = kafka.create_topic(unique("verify-dlq"), partitions=1)
    est = Estate(kafka, kafka_stack.bootstrap_servers, tmp_path, [
        {"kind": "direct-http", "url": endpoint.url}], None,
        dead_letter={"topic": dlq}, route={"tombstone": "skip"})
    try:
        with est.switched():
            est.produce(["a", None, "b", "c"], partition=0)  # a tombstone at offset 21
            est.await_committed()
            rc, report, err = est.verify()
            assert rc == 0, f"{err}\n{json.dumps(report, indent=1)[:3000]}"
            assert report["totals"]["skipped"] == 1
            assert problems(report, "dead_lettered") == {}
            est.produce(["reject-1"], partition=1)
            est.await_committed()
            rc, report, err = est.verify()
            time.sleep(0.05)
            after = datetime.now(UTC).isoformat()
            est.produce(["d"], partition=1)
            est.await_committed()
            # --since a time after the rejected record: only "d" is in range, and it passes
            rc2, since, err2 = est.verify("--since", after)
            assert rc2 == 0, err2
            assert [(d["partition"], d["start"], d["end"]) for d in since["destinations"]] == [
                (0, BEFORE + 4, BEFORE + 4), (1, BEFORE + 1, BEFORE + 2)], since
            bad = run_cli("cutover", "verify", est.group, "--config", str(est.path),
                          "--since", "yesterday")
            assert bad.returncode == 3 and "--since 'yesterday'" in bad.stderr, bad.stderr
        assert rc == 1, err
        at = BEFORE  # the first record written to partition 1 after the first 20
        assert problems(report, "dead_lettered") == {1: [at]}
        item = report["destinations"][1]["problems"]["dead_lettered"][0]
        assert item["reason"] == "rejected" and item["status"] == 400, item
        assert report["totals"]["skipped"] == 1 and report["totals"]["gap"] == 0
    finally:
        est.close()


def test_deep_names_a_body_altered_on_its_way(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    est, server, endpoint = publish_url_estate(
        kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path)
    original = BytesCodec.encode

    def mangle(self: BytesCodec, record: Record) -> tuple[bytes, str]:
        body, ctype = original(self, record)
        if record.value == b"live-7":  # a codec bug on one record, in the bridge only
            body = b"live-7-mangled"
        return body, ctype

    monkeypatch.setattr(BytesCodec, "encode", mangle)
    try:
        with est.switched():
            est.produce([f"live-{i}" for i in range(10)])
            est.await_committed()
            label = cutover_label(est.group, 1)
            wait_for(settled(server, label), lambda: "QStash still delivering")
            await_endpoint(endpoint, 10)
            at = offset_of(endpoint, b"live-7-mangled")
            rc, report, err = est.verify()  # the CLI runs in its own process: no mangling
            assert rc == 0, err  # without --deep, a changed body goes unseen
            rc, report, err = est.verify("--deep")
        assert rc == 1, err
        assert problems(report, "body_mismatch") == {at[0]: [at[1]]}
        assert report["totals"]["delivered"] == 2 * (BEFORE - HANDOFF) + 10 - 1
        assert report["deep"] is True
    finally:
        est.close()


def test_sample_above_max_records_names_failures_and_says_what_it_cannot_prove(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    est, server, endpoint = publish_url_estate(
        kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path,
        retries=0,
        flow_control={"key": "verify-{topic}", "parallelism": 4},
        responder=lambda req: Reply(489, b"no", {"Upstash-NonRetryable-Error": "true"})
        if req.body == b"live-33" else Reply())
    try:
        with est.switched():
            est.produce([f"live-{i}" for i in range(200)])
            est.await_committed()
            wait_for(settled(server, cutover_label(est.group, 1)), lambda: "QStash busy")
            at = offset_of(endpoint, b"live-33")
            rc, report, err = est.verify("--max-records", "40", "--seed", "7")
        assert rc == 1, err
        assert problems(report, "failed") == {at[0]: [at[1]]}
        sample = report["sample"]
        assert sample["max_records"] == 40 and "does_not_prove" in sample
        t = report["totals"]
        assert t["not_sampled"] > 0, json.dumps(report)[:3000]
        assert t["delivered"] >= 40 and t["gap"] == 0
        assert t["delivered"] + t["not_sampled"] + t["failed"] == 2 * (BEFORE - HANDOFF) + 200
    finally:
        est.close()


def test_bad_input_not_switched_unknown_group_and_qstash_unreachable(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    est, server, _endpoint = publish_url_estate(
        kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path)
    try:
        rc, _report, err = est.verify()
        assert rc == 10 and "nothing was handed off" in err and "Traceback" not in err, err
        r = run_cli("cutover", "verify", "nobody", "--config", str(est.path))
        assert r.returncode == 3 and "no destination replaces" in r.stderr, r.stderr
        with est.switched():
            est.produce([f"live-{i}" for i in range(6)])
            est.await_committed()
        server.stop()
        start = time.monotonic()
        rc, report, err = est.verify()
        assert rc == 7 and "unreachable" in err and "unproven" in err, err
        assert time.monotonic() - start < 100
        assert report["verdict"] == "unproven" and not report["ok"]
        assert report["totals"]["unproven"] == 2 * (BEFORE - HANDOFF) + 6
        assert report["totals"]["delivered"] == 0
        assert server.token not in err + json.dumps(report)
    finally:
        est.close()


def test_a_second_hand_off_that_replays_what_the_first_delivered_is_a_duplicate(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    est, server, endpoint = publish_url_estate(
        kafka, kafka_stack, endpoint_factory, qstash_server_factory, tmp_path)
    try:
        with est.switched():
            est.produce([f"live-{i}" for i in range(10)])
            est.await_committed()
            wait_for(settled(server, cutover_label(est.group, 1)), lambda: "QStash busy")
            first = 2 * (BEFORE - HANDOFF) + 10
            wait_for(lambda: len(endpoint.requests) >= first,
                     lambda: f"endpoint got {len(endpoint.requests)}")
            back = est.coord.rollback(est.group, timeout=30.0)
            rolled = back.rollback_map()
            assert rolled == est.ends(), "everything was delivered: back at the end"
            est.coord.prepare(est.group)
            # the operator hands off again at an earlier checkpoint: 3 records per partition
            # the first hand-off delivered go out again, under the second hand-off's dedup ids
            again = {tp: off - 3 for tp, off in rolled.items()}
            est.coord.switch(est.group, watch=1.0, timeout=30.0, overrides=again,
                             require_bridge=False)
            est.await_committed()
            wait_for(settled(server, cutover_label(est.group, 2)), lambda: "QStash busy")
            wait_for(lambda: len(endpoint.requests) >= first + 6,
                     lambda: f"endpoint got {len(endpoint.requests)}")
            rc, report, err = est.verify()
        assert rc == 1, err
        assert report["handoffs"] == 2
        want = {p: list(range(off - 3, off)) for (_t, p), off in rolled.items()}
        assert problems(report, "duplicate") == want
        items = [i for d in report["destinations"] for i in d["problems"]["duplicate"]]
        assert all(i["earlier_handoffs"] == 1 for i in items), items
        assert sorted((r["partition"], r["offset"]) for r in report["duplicate_risk"]) == sorted(
            (p, o) for p, offs in want.items() for o in offs)
        assert report["totals"]["delivered"] == 0 and report["totals"]["gap"] == 0
    finally:
        est.close()


def test_url_group_each_endpoint_is_an_outcome_and_the_failing_one_is_named(
    kafka: KafkaKit, kafka_stack: EstateInfo,
    endpoint_factory: Callable[..., RecordingEndpoint],
    qstash_server_factory: Callable[..., QStashServer], tmp_path: Path,
) -> None:
    server = qstash_server_factory()
    good = endpoint_factory()
    picky = endpoint_factory(  # fails some records into QStash's DLQ at once
        lambda req: Reply(489, b"no", {"Upstash-NonRetryable-Error": "true"})
        if req.body.startswith(b"fail-") else Reply())
    group_name = unique("fanout")
    r = httpx.post(f"{server.url}/v2/topics/{group_name}/endpoints", headers=server.headers,
                   json={"endpoints": [{"url": good.url}, {"url": picky.url}]})
    assert r.status_code < 300, r.text
    est = Estate(kafka, kafka_stack.bootstrap_servers, tmp_path, [
        {"kind": "publish-url-group", "url_group": group_name, "retries": 0}], server)
    try:
        with est.switched():
            est.produce([f"live-{i}" for i in range(6)])
            est.produce(["fail-1", "fail-2"], partition=1)
            est.await_committed()
            wait_for(settled(server, cutover_label(est.group, 1)), lambda: "QStash busy")
            want = 2 * (BEFORE - HANDOFF) + 8
            wait_for(lambda: len(good.requests) >= want and len(picky.requests) >= want,
                     lambda: f"endpoints got {len(good.requests)}, {len(picky.requests)}")
            failed = sorted(offset_of(picky, b) for b in (b"fail-1", b"fail-2"))
            rc, report, err = est.verify()
        assert rc == 1, err
        rows = {(d["destination"], d["partition"]): d for d in report["destinations"]}
        assert {name for name, _p in rows} == {f"url-group {group_name} -> {good.url}",
                                               f"url-group {group_name} -> {picky.url}"}
        assert all(sum(d["counts"].values()) == d["records"] for d in rows.values())
        good_rows = [d for (name, _p), d in rows.items() if good.url in name]
        assert all(d["counts"]["delivered"] == d["records"] for d in good_rows), good_rows
        picky_failed = {(d["partition"], o)
                        for (name, _p), d in rows.items() if picky.url in name
                        for i in d["problems"].get("failed", [])
                        for o in range(i["offset"], i.get("through", i["offset"]) + 1)}
        assert sorted(picky_failed) == failed, report["destinations"]
        assert report["totals"]["failed"] == 2 and report["totals"]["gap"] == 0
        assert report["totals"]["delivered"] == 2 * want - 2
        out = run_cli("cutover", "verify", est.group, "--config", str(est.path))
        assert out.returncode == 1
        assert f"-> {picky.url}:" in out.stdout and "failed [2]" in out.stdout, out.stdout
    finally:
        est.close()
