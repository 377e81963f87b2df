"""Benchmark: `migrator audit` against Kafka's own tools on the same estate, in one run.

Seeds TOPICS topics x PARTITIONS partitions and GROUPS consumer groups (each with committed
offsets on GROUP_TOPICS topics) in two halves. After each half it times

    migrator audit --include '<prefix>*' --sample-seconds 0 --sample-records 0 --format json
    TopicCommand --describe --topic '<prefix>.*'  +  ConsumerGroupCommand --describe --all-groups

(all as child processes, so JVM and Python start-up are both counted), and prints the ratio
(audit / tools: below 1.0 is faster), the audit's peak RSS against the 300 MB ceiling, and the
audit's cost per partition at both sizes (linear growth keeps it flat). One more audit with
--sample-records shows the cost of record sampling.

    python benchmarks/audit.py                       # 1,000 x 3, 100 groups
    python benchmarks/audit.py --topics 200 --groups 20

Connection details: --bootstrap-servers / --lib-dir, else KAFKA_BOOTSTRAP_SERVERS / KAFKA_LIB_DIR,
else the running local stack's own state (as `migrator dev env` reads it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid

from confluent_kafka import ConsumerGroupTopicPartitions, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

MEMORY_CEILING_MB = 300.0


def _seed_topics(admin: AdminClient, producer: Producer, names: list[str], partitions: int,
                 records: int) -> None:
    for start in range(0, len(names), 100):
        chunk = names[start:start + 100]
        futures = admin.create_topics(
            [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in chunk],
            operation_timeout=120)
        for future in futures.values():
            future.result(timeout=180)
    time.sleep(1.0)  # let metadata settle before producing
    for name in names:
        for part in range(partitions):
            for _ in range(records):
                while True:
                    try:
                        producer.produce(name, b"benchmark", partition=part)
                        break
                    except BufferError:
                        producer.poll(0.1)
        producer.poll(0)
    producer.flush(120)


def _seed_groups(admin: AdminClient, groups: list[str], topics: list[str], partitions: int,
                 per_group: int) -> None:
    futures = {}
    for i, group in enumerate(groups):
        chosen = [topics[(i * per_group + k) % len(topics)] for k in range(per_group)]
        offsets = [TopicPartition(t, p, 0) for t in chosen for p in range(partitions)]
        futures.update(admin.alter_consumer_group_offsets(
            [ConsumerGroupTopicPartitions(group, offsets)]))
        if len(futures) >= 50:
            for f in futures.values():
                f.result(timeout=120)
            futures = {}
    for f in futures.values():
        f.result(timeout=120)


def _timed(cmd: list[str]) -> tuple[float, str, float]:
    """Run a child; its wall time, stdout and own peak RSS in MB (os.wait4: this child only)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"{' '.join(cmd[:6])}... failed ({child.returncode}): "
                             f"{err.read().decode()[-2000:]}")
        return elapsed, out.read().decode(), usage.ru_maxrss / 1024.0


def _audit_cmd(bootstrap: str, prefix: str, sample_records: int) -> list[str]:
    return [sys.executable, "-m", "migrator", "audit", "-b", bootstrap, "--include", f"{prefix}*",
            "--sample-seconds", "0", "--sample-records", str(sample_records), "--format", "json",
            "--timeout", "120"]


def _tools(lib_dir: str, bootstrap: str, prefix: str) -> float:
    java = ["java", "-XX:TieredStopAtLevel=1", "-Xshare:auto", "-cp", f"{lib_dir}/*"]
    t_topics, _, _ = _timed([*java, "org.apache.kafka.tools.TopicCommand", "--bootstrap-server",
                          bootstrap, "--describe", "--topic", f"{prefix}.*"])
    t_groups, _, _ = _timed([*java, "org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                          "--bootstrap-server", bootstrap, "--describe", "--all-groups"])
    return t_topics + t_groups


def _in_process(bootstrap: str, prefix: str) -> float:
    """run_audit in this process: the audit's own work without Python start-up and imports."""
    from migrator.audit import AuditOptions, run_audit
    from migrator.config import KafkaConnection

    options = AuditOptions(kafka=KafkaConnection.build(bootstrap_servers=bootstrap),
                           include=(f"{prefix}*",), timeout=120, sample_seconds=0,
                           sample_records=0)
    run_audit(options)  # warm: connections, imports
    start = time.perf_counter()
    run_audit(options)
    return time.perf_counter() - start


def stack_defaults() -> tuple[str | None, str | None]:
    """(bootstrap servers, Kafka lib dir): the documented variables, else the stack's state."""
    from migrator.stack.state import stack_env

    env = stack_env()
    return env.get("KAFKA_BOOTSTRAP_SERVERS"), env.get("KAFKA_LIB_DIR")


def main() -> None:
    bootstrap, lib_dir = stack_defaults()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bootstrap-servers", default=bootstrap)
    parser.add_argument("--lib-dir", default=lib_dir)
    parser.add_argument("--topics", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--groups", type=int, default=100)
    parser.add_argument("--group-topics", type=int, default=10,
                        help="topics each group has committed offsets on")
    parser.add_argument("--records", type=int, default=1, help="records per partition")
    parser.add_argument("--sample-records", type=int, default=20)
    parser.add_argument("--keep", action="store_true", help="leave the seeded estate in place")
    args = parser.parse_args()
    if not args.bootstrap_servers or not args.lib_dir:
        raise SystemExit("need --bootstrap-servers and --lib-dir (or KAFKA_BOOTSTRAP_SERVERS and "
                         "KAFKA_LIB_DIR, or a running `migrator dev up` stack)")

    prefix = f"bench-audit-{uuid.uuid4().hex[:6]}"
    admin = AdminClient({"bootstrap.servers": args.bootstrap_servers})
    producer = Producer({"bootstrap.servers": args.bootstrap_servers, "linger.ms": 20})
    names = [f"{prefix}-{i:05d}" for i in range(args.topics)]
    groups = [f"{prefix}-group-{i:04d}" for i in range(args.groups)]
    halves = [(names[: len(names) // 2], groups[: len(groups) // 2]),
              (names[len(names) // 2:], groups[len(groups) // 2:])]
    print(f"estate: {args.topics} topics x {args.partitions} partitions, {args.groups} groups "
          f"({args.group_topics} topics each), prefix {prefix}")
    rows = []
    inproc: list[float] = []
    seeded: list[str] = []
    try:
        for half_topics, half_groups in halves:
            t0 = time.perf_counter()
            _seed_topics(admin, producer, half_topics, args.partitions, args.records)
            seeded += half_topics
            _seed_groups(admin, half_groups, seeded, args.partitions, args.group_topics)
            print(f"  seeded {len(seeded)} topics in {time.perf_counter() - t0:.1f} s")
            t_audit, out, rss = _timed(_audit_cmd(args.bootstrap_servers, prefix, 0))
            inv = json.loads(out)
            parts = sum(len(t["partitions"]) for t in inv["topics"])
            t_tools = _tools(args.lib_dir, args.bootstrap_servers, prefix)
            rows.append((len(seeded), parts, len(inv["consumer_groups"]), t_audit, t_tools, rss))
            inproc.append(_in_process(args.bootstrap_servers, prefix))
        t_sampled, _, rss_sampled = _timed(
            _audit_cmd(args.bootstrap_servers, prefix, args.sample_records))
    finally:
        if not args.keep and seeded:
            for start in range(0, len(seeded), 200):
                for f in admin.delete_topics(seeded[start:start + 200],
                                             operation_timeout=120).values():
                    try:
                        f.result(timeout=180)
                    except Exception as exc:  # cleanup is best effort
                        print(f"  cleanup: {exc}")
            for f in admin.delete_consumer_groups(groups, request_timeout=60).values():
                with contextlib.suppress(Exception):
                    f.result(timeout=120)

    print()
    print(f"{'topics':>7} {'partitions':>10} {'groups':>6} {'audit s':>8} {'tools s':>8} "
          f"{'ratio':>6} {'audit ms/partition':>19} {'peak RSS MB':>11}")
    for topics, parts, ngroups, t_audit, t_tools, rss in rows:
        print(f"{topics:>7} {parts:>10} {ngroups:>6} {t_audit:>8.2f} {t_tools:>8.2f} "
              f"{t_audit / t_tools:>6.2f} {1000 * t_audit / max(1, parts):>19.3f} {rss:>11.1f}")
    (_, p1, _, a1, _, _), (_, p2, _, a2, tools2, rss2) = rows
    growth = (a2 / a1) / (p2 / p1)
    print()
    print(f"ratio audit/tools at full size: {a2 / tools2:.2f} (target <= 1.00, ceiling = tools "
          f"{tools2:.2f} s in this run)")
    print(f"peak audit RSS: {rss2:.1f} MB (ceiling {MEMORY_CEILING_MB:.0f} MB)")
    print(f"growth: x{p2 / p1:.1f} partitions -> x{a2 / a1:.2f} audit time "
          f"(normalised {growth:.2f}; 1.0 = linear, below = sub-linear)")
    print(f"in-process run_audit (no interpreter start-up): {inproc[0]:.2f} s -> {inproc[1]:.2f} s "
          f"for x{p2 / p1:.1f} partitions (normalised {(inproc[1] / inproc[0]) / (p2 / p1):.2f})")
    print(f"with --sample-records {args.sample_records}: {t_sampled:.2f} s "
          f"({t_sampled / tools2:.2f} x tools), peak RSS {rss_sampled:.1f} MB")


if __name__ == "__main__":
    main()
