"""The demo's scenario: seed, audit, plan, apply (twice), bridge, and the cutover of every group
while a producer keeps writing; what arrived where goes into a :class:`DemoResult`."""

from __future__ import annotations

import json
import os
import re
import time
import uuid
from pathlib import Path

from migrator.demo.processes import (
    OldConsumer,
    Progress,
    bridge_counts,
    routed,
    run_bridge,
    run_migrator,
)
from migrator.demo.receiver import Receiver
from migrator.demo.result import DemoResult
from migrator.errors import StackError
from migrator.stack.sample import SampleEstate, seed_sample_estate
from migrator.stack.state import StackInfo

__all__ = ["run_demo"]


def run_demo(info: StackInfo, workdir: Path, progress: Progress, *, timeout: float = 180.0) -> DemoResult:
    """Seed, audit, plan, apply (twice), bridge and cut every group over; return what arrived
    where."""
    if not (info.qstash_url and info.qstash_token and info.qstash_current_signing_key
            and info.qstash_next_signing_key):
        raise StackError("The stack has no local QStash server; restart it: `migrator dev down && migrator dev up`.")
    workdir.mkdir(parents=True, exist_ok=True)
    prefix = f"demo{uuid.uuid4().hex[:6]}"
    progress(f"seeding a sample estate with prefix {prefix!r}")
    estate = seed_sample_estate(info, prefix)
    receiver = Receiver(info.qstash_current_signing_key, info.qstash_next_signing_key)
    env = {**os.environ, "QSTASH_URL": info.qstash_url, "QSTASH_TOKEN": info.qstash_token,
           "KAFKA_BOOTSTRAP_SERVERS": info.bootstrap_servers}
    result = DemoResult(workdir)
    try:
        inventory = workdir / "inventory.json"
        common = ["-b", info.bootstrap_servers, "--schema-registry-url", info.schema_registry_url,
                  "--connect-url", info.connect_url, "--include", f"{prefix}.*", "--sample-seconds", "2"]
        run_migrator(["audit", *common, "--format", "json", "-o", str(inventory)], env, progress)
        run_migrator(["audit", *common, "--format", "html", "-o", str(workdir / "audit.html")], env, progress)
        endpoints = workdir / "endpoints.yaml"
        snapshot = json.loads(inventory.read_text(encoding="utf-8"))
        result.audit = (f"{len(snapshot['topics'])} topics, {len(snapshot['consumer_groups'])} "
                        f"consumer groups, {len(snapshot['findings'])} findings "
                        "(inventory.json, audit.html)")
        groups = {g["group_id"]: g["topics"] for g in snapshot["consumer_groups"]}
        paths = {group: "/" + re.sub(r"[-.]+", "-", group.replace(prefix, "")).strip("-") for group in groups}
        endpoints.write_text("groups:\n" + "".join(f"  {g}: {receiver.url}{p}\n" for g, p in paths.items()),
                             encoding="utf-8")
        plan_dir = workdir / "plan"
        planned = run_migrator(["plan", str(inventory), "--endpoints", str(endpoints), "-o", str(plan_dir)],
                            env, progress)
        result.plan = next((line for line in planned.splitlines() if " topics: " in line), "")
        applied = run_migrator(["apply", str(plan_dir / "plan.yaml")], env, progress)
        result.apply = next((line for line in applied.splitlines() if line.startswith("Applied ")),
                            "Nothing to apply.")
        result.second_apply = run_migrator(["apply", str(plan_dir / "plan.yaml")], env, progress).strip()
        check = json.loads(run_migrator(["bridge", "check", "--config", str(plan_dir / "bridge.yaml"),
                                      "--format", "json"], env, progress))
        result.backlog = int(check["backlog"])
        result.routed_records = sum(estate.records.get(t, 0) for t in routed(plan_dir / "bridge.yaml"))

        def hand_over() -> dict[str, int]:
            return _cut_over(info, estate, paths, plan_dir / "bridge.yaml", env, progress,
                             receiver, result)

        result.expected, log = run_bridge(plan_dir / "bridge.yaml", env, receiver, hand_over,
                                       timeout, progress)
        result.records_read, result.messages_sent = bridge_counts(log)
        result.received = {p: receiver.count(p) for p in result.expected}
        result.deliveries, result.bad_signatures = receiver.deliveries, receiver.bad_signatures
    finally:
        receiver.close()
    return result


def _cut_over(info: StackInfo, estate: SampleEstate, paths: dict[str, str], bridge_file: Path,
              env: dict[str, str], progress: Progress, receiver: Receiver,
              result: DemoResult) -> dict[str, int]:
    """The cutover, per group, while a producer keeps writing: start the group's old consumer
    (a real process; the sample's archive connector is one already), ``cutover prepare``, stop
    the old consumer, ``cutover switch``; then roll the first group back, let its old consumer
    run again, and switch it again. Checks, per group, that old consumer + endpoint processed
    every offset from the group's position before the demo to the end exactly once (into
    ``result.groups``); returns the records each endpoint path must receive."""
    import httpx

    from migrator.bridge.config import load_bridge_config
    from migrator.config import KafkaConnection
    from migrator.cutover.scope import replaced_groups, routed_topics
    from migrator.kafka.admin import KafkaAdmin
    from migrator.kafka.app_producer import KeepProducing

    cfg = load_bridge_config(bridge_file)
    config = ["--config", str(bridge_file)]
    admin = KafkaAdmin(KafkaConnection.from_properties({"bootstrap.servers": info.bootstrap_servers}))
    groups = replaced_groups(cfg)
    topics = {g: routed_topics(cfg, g) for g in groups}
    parts = {t: estate.topics.get(t, 1) for ts in topics.values() for t in ts}
    before = {g: admin.list_group_offsets([g]).get(g, {}) for g in groups}
    workdir = bridge_file.parent
    # producers keep writing (not to decode routes: their values are Schema-Registry framed)
    plain = {t: n for t, n in parts.items()
             if all(r.payload.mode == "bytes" for r in cfg.routes if r.topic == t)}
    producer = KeepProducing(info.bootstrap_servers, plain, rate=20.0)
    consumers: dict[str, OldConsumer] = {}
    try:
        for g in groups:
            if estate.connector and g == f"connect-{estate.connector}":
                continue
            consumers[g] = OldConsumer(info.bootstrap_servers, g, topics[g],
                                        workdir / f"old-{paths[g].strip('/')}.txt", progress)
        time.sleep(2.0)  # the old consumers process live records
        for g in groups:
            run_migrator(["cutover", "prepare", g, *config], env, progress)
            if g in consumers:
                consumers[g].stop(progress)
            else:
                progress(f"stopping connector {estate.connector} (the old consumer of {g})")
                httpx.put(f"{info.connect_url}/connectors/{estate.connector}/stop", timeout=30)
            run_migrator(["cutover", "switch", g, *config, "--watch", "2s", "--timeout", "2m"],
                      env, progress)
        if consumers:
            g = next(iter(consumers))
            time.sleep(1.0)
            skip = workdir / f"skip-{paths[g].strip('/')}.json"
            # the old consumer honours the rollback's skip list (records an unordered route
            # delivered above the rollback point: docs/cutover.md)
            run_migrator(["cutover", "rollback", g, *config, "--skip-file", str(skip)], env,
                         progress)
            consumers[g].start(progress, skip=skip)
            time.sleep(2.0)
            run_migrator(["cutover", "prepare", g, *config], env, progress)
            consumers[g].stop(progress)
            run_migrator(["cutover", "switch", g, *config, "--watch", "2s", "--timeout", "2m"],
                      env, progress)
        time.sleep(1.0)
    finally:
        producer.stop()
        for consumer in consumers.values():
            consumer.kill()
    ends = admin.list_offsets([(t, p) for t, n in parts.items() for p in range(n)], "latest")
    for g in groups:
        if g not in consumers:  # what the connector processed is not observable: check the
            # endpoint from its hand-off on
            status = json.loads(run_migrator(["cutover", "status", g, *config, "--format", "json"],
                                          env, progress))["groups"][0]
            before[g] = {(h["topic"], h["partition"]): h["offset"] for h in status["handoff"]}
    span = {g: {(t, p, o) for t in topics[g] for p in range(parts[t])
                for o in range(before[g].get((t, p)) or 0, ends[(t, p)])} for g in groups}
    old = {g: consumers[g].processed() if g in consumers else [] for g in groups}
    expected: dict[str, int] = {}
    for g in groups:
        wanted = span[g] - set(old[g])
        if wanted:
            expected[paths[g]] = len(wanted)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not all(
            span[g] - set(old[g]) <= set(receiver.coords.get(paths[g], [])) for g in groups):
        time.sleep(0.25)
    for g in groups:
        new = receiver.coords.get(paths[g], [])
        both = [c for c in old[g] + new if c in span[g]]
        missing = len(span[g] - set(both))
        result.groups[g] = (len(old[g]), len(new), missing, len(both) - len(set(both)))
    return expected
