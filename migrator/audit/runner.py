"""The audit, start to end: Kafka (cluster, topics, groups, records, throughput), the Schema
Registry and Kafka Connect, folded into one :class:`~migrator.inventory.Inventory` with findings.

Kafka failures abort (the report would be meaningless); registry and Connect failures degrade to
a section marked unavailable plus a SOURCE_UNAVAILABLE finding. A principal lacking some ACLs
degrades too: each refused group, topic operation or cluster call becomes a PERMISSION_DENIED
finding and the rest of the report stays complete; only a principal refused everything (bad
credentials, or no cluster Describe and no visible topic or group) aborts.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime

from migrator import __version__
from migrator.audit.cluster import collect_cluster
from migrator.audit.connect import ConnectReader
from migrator.audit.findings import evaluate, permission_findings
from migrator.audit.groups import build_groups, committed_offsets, snapshot_groups
from migrator.audit.progress import NullProgress, Progress
from migrator.audit.records import RecordStats, SchemaRef
from migrator.audit.registry import RegistryReader, subject_topic
from migrator.audit.throughput import topic_rates
from migrator.audit.topics import TopicFilter, build_topics, snapshot_topics
from migrator.config import KafkaConnection, RestConnection
from migrator.errors import KafkaAuthError
from migrator.inventory import (
    ConnectInfo,
    Inventory,
    RecordSample,
    SchemaRegistryInfo,
    TopicInfo,
)
from migrator.kafka.access import AccessDenied
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.descriptions import TopicDescription
from migrator.kafka.sampler import plan_ranges, read_records
from migrator.qstash_tiers import TierName
from migrator.topic_roles import is_internal

__all__ = ["AuditOptions", "principal_of", "run_audit"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditOptions:
    kafka: KafkaConnection
    schema_registry: RestConnection | None = None
    connect: RestConnection | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    timeout: float = 30.0
    sample_seconds: float = 10.0
    sample_records: int = 100
    qstash_tier: TierName = "payg"


def run_audit(options: AuditOptions, progress: Progress | None = None) -> Inventory:
    """Inventory the estate and evaluate the findings. Reads only."""
    progress = progress or NullProgress()
    selected = TopicFilter(options.include, options.exclude)
    admin = KafkaAdmin(options.kafka, timeout=options.timeout)
    try:
        progress.step("connecting to Kafka")
        cluster = collect_cluster(admin, options.kafka.bootstrap_servers)
        _require_some_access(admin, options.kafka)
        # Groups are read in the background while the topics are (progress follows the topics).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-groups") as pool:
            f_groups = pool.submit(snapshot_groups, admin, selected, filtered=selected.active)
            snap = snapshot_topics(admin, selected, progress)
            progress.step("reading consumer groups")
            groups_snap = f_groups.result()
        topic_names = set(snap.descriptions)

        registry = SchemaRegistryInfo()
        read_denied: list[AccessDenied] = []
        with contextlib.ExitStack() as readers:
            reader: RegistryReader | None = None
            if options.schema_registry is not None:
                reader = readers.enter_context(RegistryReader(options.schema_registry))
                subjects_wanted = _subject_filter(selected)
                progress.step("reading the schema registry")
                registry = reader.read(subjects_wanted, topic_names, progress=progress.advance)

            connect = ConnectInfo()
            if options.connect is not None:
                progress.step("reading Kafka Connect")
                with ConnectReader(options.connect) as connect_reader:
                    connect = connect_reader.read(_ConnectorFilter(selected))

            samples = _sample_records(options, snap.low, snap.high, snap.descriptions, reader,
                                      registry, progress, read_denied.append)

        rates: dict[str, float] | None = None
        later_high = None
        later_offsets = None
        if options.sample_seconds > 0:
            wait = snap.taken_at + options.sample_seconds - time.monotonic()
            progress.step(f"measuring throughput ({options.sample_seconds:g} s)",
                          max(1, round(wait)))
            _sleep(wait, progress)
            later_high = admin.list_offsets(snap.partitions, "latest")
            elapsed = time.monotonic() - snap.taken_at
            later_offsets = committed_offsets(admin, sorted(groups_snap.listings), selected)
            rates = topic_rates(snap.high, later_high, elapsed)
        topics = build_topics(snap, high=later_high, rates=rates)
        topics = [_with_sample(t, samples.get(t.name)) for t in topics]
        groups = build_groups(
            groups_snap, later_high or snap.high, later_offsets=later_offsets,
            earlier_high=snap.high if later_high is not None else None,
        )
        denied = [*admin.denied, *read_denied]
    finally:
        admin.close()
        progress.finish()

    inventory = Inventory(
        generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tool_version=__version__,
        qstash_plan=options.qstash_tier,
        cluster=cluster,
        topics=topics,
        consumer_groups=groups,
        schema_registry=registry,
        connect=connect,
    )
    refused = permission_findings(denied, principal_of(options.kafka),
                                  options.kafka.bootstrap_servers)
    return inventory.model_copy(update={"findings": evaluate(inventory, extra=refused)})


def principal_of(kafka: KafkaConnection) -> str | None:
    """The Kafka principal the audit connects as, for the ACL remedies (None: unknown, e.g. an
    SSL client certificate's distinguished name)."""
    if kafka.sasl_username:
        return f"User:{kafka.sasl_username}"
    if kafka.security_protocol in ("PLAINTEXT", "SSL") and not kafka.ssl_certificate_pem:
        return "User:ANONYMOUS"
    return None


def _require_some_access(admin: KafkaAdmin, kafka: KafkaConnection) -> None:
    """Abort (exit 5) when the cluster refuses everything: no Describe on the cluster and not a
    single topic or group visible. Any visible resource gives a partial report instead."""
    if not any(d.resource == "cluster" for d in admin.denied):
        return
    if admin.list_topic_names() or admin.list_groups():
        return
    who = principal_of(kafka) or "the audit's principal"
    raise KafkaAuthError(
        f"Kafka at {kafka.bootstrap_servers} authenticated {who} but grants it nothing to read: "
        "no Describe on the cluster and no visible topic or consumer group. Grant read-only "
        f"ACLs, e.g. kafka-acls --add --allow-principal {who} --operation Describe --cluster."
    )


def _sleep(seconds: float, progress: Progress) -> None:
    """Wait out the throughput window, advancing the progress bar once a second."""
    start = time.monotonic()
    end = start + max(0.0, seconds)
    ticked = 0
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(0.25, left))
        elapsed = int(time.monotonic() - start)
        if elapsed > ticked:
            progress.advance(elapsed - ticked)
            ticked = elapsed


def _subject_filter(selected: TopicFilter) -> Callable[[str], bool]:
    """Subjects follow the topic filter: by their topic-name-strategy topic, else by name."""
    if not selected.active:
        return _AllSubjects()
    return _SubjectFilter(selected)


class _AllSubjects:
    def __call__(self, subject: str) -> bool:
        return True


@dataclass(frozen=True)
class _SubjectFilter:
    topics: TopicFilter

    def __call__(self, subject: str) -> bool:
        topic, _ = subject_topic(subject)
        return self.topics(topic if topic is not None else subject)


@dataclass(frozen=True)
class _ConnectorFilter:
    topics: TopicFilter

    def __call__(self, name: str, connector_topics: list[str]) -> bool:
        if not self.topics.active:
            return True
        return self.topics(name) or any(self.topics(t) for t in connector_topics)


def _sample_records(
    options: AuditOptions,
    low: dict[tuple[str, int], int],
    high: dict[tuple[str, int], int],
    descriptions: Mapping[str, TopicDescription],
    reader: RegistryReader | None,
    registry: SchemaRegistryInfo,
    progress: Progress,
    on_denied: Callable[[AccessDenied], None] | None = None,
) -> dict[str, RecordSample]:
    """Read up to --sample-records newest records per (non-internal) topic, by assignment."""
    if options.sample_records <= 0:
        return {}
    watermarks = {
        key: (low.get(key, 0), hw) for key, hw in high.items()
        if key[0] in descriptions and not is_internal(key[0], descriptions[key[0]].internal)
    }
    ranges = plan_ranges(watermarks, options.sample_records)
    total = sum(r.end - r.start for r in ranges)
    stats: dict[str, RecordStats] = defaultdict(RecordStats)
    progress.step("sampling records", total)
    # Reading is bounded by --timeout plus a little per 1,000 records, so a slow cluster ends.
    budget = options.timeout + total / 1000.0
    for record in read_records(options.kafka, ranges, timeout=budget, on_denied=on_denied):
        stats[record.topic].add(
            size=record.size, key=record.key, value=record.value,
            header_names=[name for name, _ in record.headers],
        )
        progress.advance()
    schema_ids = {i for s in stats.values() for i in s.schema_ids}
    refs: dict[int, SchemaRef] = {}
    if schema_ids and reader is not None and (registry.status.available or registry.subjects):
        refs = reader.schema_refs(schema_ids)
    return {topic: s.result(refs, topic=topic) for topic, s in stats.items()}


def _with_sample(topic: TopicInfo, sample: RecordSample | None) -> TopicInfo:
    return topic if sample is None else topic.model_copy(update={"sample": sample})
