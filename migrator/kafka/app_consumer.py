"""A typical application's Kafka consumer: the "old consumer" that `migrator demo` and the
cutover tests start as a process, stop and restart around a cutover.

    python -m migrator.kafka.app_consumer BOOTSTRAP GROUP OUT_FILE TOPIC [TOPIC ...] [--assign]
        [--skip SKIP_FILE]

Subscribes with GROUP (auto.offset.reset=earliest), appends ``topic partition offset`` to OUT_FILE
(flushed) for every record it processes, then stores the offset; commits the stored offsets
automatically every 5 s and by hand after every 50 records, and once more on SIGTERM before it
leaves the group. ``--assign`` assigns every partition by hand instead of joining the group (it
still commits with the group id: a consumer the group's membership does not show). A line
``READY`` on stdout once it has partitions. ``--skip`` honours a rollback's skip list (the JSON
of ``migrator cutover rollback --skip-file``): records the endpoint already processed are
passed over (their offsets still stored), as docs/cutover.md asks of an application.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from confluent_kafka import Consumer, TopicPartition

__all__ = ["main"]


def _skip_list(path: str) -> set[tuple[str, int, int]]:
    data = json.loads(Path(path).read_text())
    return {(topic, int(part), o) for topic, parts in data["skip"].items()
            for part, runs in parts.items() for first, last in runs
            for o in range(first, last + 1)}


def main(argv: list[str]) -> int:
    assign = "--assign" in argv
    argv = [a for a in argv if a != "--assign"]
    skip: set[tuple[str, int, int]] = set()
    if "--skip" in argv:
        at = argv.index("--skip")
        skip = _skip_list(argv[at + 1])
        del argv[at:at + 2]
    bootstrap, group, out_path, *topics = argv
    consumer = Consumer({
        "bootstrap.servers": bootstrap, "group.id": group, "auto.offset.reset": "earliest",
        "enable.auto.commit": True, "auto.commit.interval.ms": 5000,
        "enable.auto.offset.store": False, "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500, "client.id": f"old-consumer-{group}",
    })
    stopping = False

    def stop(_signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    ready = False
    if assign:
        md = consumer.list_topics(timeout=10)
        tps = [TopicPartition(t, p) for t in topics for p in md.topics[t].partitions]
        committed = {(tp.topic, tp.partition): tp.offset
                     for tp in consumer.committed(tps, timeout=10)}
        for tp in tps:
            off = committed.get((tp.topic, tp.partition), -1)
            tp.offset = off if off >= 0 else -2  # OFFSET_BEGINNING
        consumer.assign(tps)
        print("READY", flush=True)
        ready = True
    else:
        consumer.subscribe(topics)
    processed = 0
    with open(out_path, "a", buffering=1) as out:
        while not stopping:
            msg = consumer.poll(0.1)
            if not ready and consumer.assignment():
                print("READY", flush=True)
                ready = True
            if msg is None or msg.error():
                continue
            if (msg.topic(), msg.partition(), msg.offset()) not in skip:
                out.write(f"{msg.topic()} {msg.partition()} {msg.offset()}\n")  # the "work"
                out.flush()
            consumer.store_offsets(msg)
            processed += 1
            if processed % 50 == 0:
                consumer.commit(asynchronous=False)
    try:
        consumer.commit(asynchronous=False)  # commit on shutdown
    except Exception as exc:  # nothing stored yet
        print(f"final commit: {exc}", file=sys.stderr)
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
