"""The consumer groups section: state, members, committed offsets, lag, topics read.

Groups are listed and described in batches; committed offsets take one request per group (Kafka's
OffsetFetch through librdkafka), pipelined. Nothing joins a group or commits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from migrator.audit.progress import NullProgress, Progress
from migrator.inventory import ConsumerGroupInfo, GroupMember, GroupPartitionOffset
from migrator.kafka.admin import KafkaAdmin
from migrator.kafka.descriptions import GroupDescription, GroupListing, TopicPartitionKey

__all__ = ["GroupSnapshot", "build_groups", "committed_offsets", "snapshot_groups"]

Offsets = dict[str, dict[TopicPartitionKey, int | None]]


@dataclass
class GroupSnapshot:
    listings: dict[str, GroupListing]
    descriptions: dict[str, GroupDescription]
    offsets: Offsets


def _topics_of(desc: GroupDescription | None, offsets: Mapping[TopicPartitionKey, int | None]
               ) -> set[str]:
    topics = {t for t, _ in offsets}
    if desc is not None:
        for member in desc.members:
            topics.update(t for t, _ in member.assignment)
    return topics


def snapshot_groups(
    admin: KafkaAdmin,
    keep_topic: Callable[[str], bool],
    *,
    filtered: bool,
    progress: Progress | None = None,
) -> GroupSnapshot:
    """Groups touching the selected topics (every group when no topic filter is active)."""
    progress = progress or NullProgress()
    progress.step("listing consumer groups")
    listings = {g.group_id: g for g in admin.list_groups()}
    ids = sorted(listings)
    progress.step("reading committed offsets", len(ids))
    offsets = admin.list_group_offsets(ids)
    progress.advance(len(ids))
    progress.step("describing consumer groups", len(ids))
    descriptions = admin.describe_groups(ids)
    progress.advance(len(ids))
    # Groups the principal may not Describe: reported as PERMISSION_DENIED findings instead.
    denied = {d.name for d in admin.denied if d.resource == "group"}
    kept: list[str] = []
    for gid in ids:
        if gid in denied:
            continue
        topics = _topics_of(descriptions.get(gid), offsets.get(gid, {}))
        if any(keep_topic(t) for t in topics) or (not filtered and not topics):
            kept.append(gid)
    return GroupSnapshot(
        listings={g: listings[g] for g in kept},
        descriptions={g: descriptions[g] for g in kept if g in descriptions},
        offsets={
            g: {tp: o for tp, o in offsets.get(g, {}).items() if keep_topic(tp[0])} for g in kept
        },
    )


def committed_offsets(admin: KafkaAdmin, group_ids: list[str],
                      keep_topic: Callable[[str], bool]) -> Offsets:
    """A second read of committed offsets (to see whether they move)."""
    offsets = admin.list_group_offsets(group_ids)
    return {g: {tp: o for tp, o in offs.items() if keep_topic(tp[0])} for g, offs in offsets.items()}


def _state_name(state: str) -> str:
    """Kafka's spelling of a group state: EMPTY -> Empty, PREPARING_REBALANCE -> PreparingRebalance."""
    return "".join(part.capitalize() for part in state.split("_"))


def _offset(committed: int | None) -> int:
    return -1 if committed is None else committed


def _lag(committed: int | None, high: int | None) -> int | None:
    if committed is None or high is None:
        return None
    return max(0, high - committed)


def build_groups(
    snap: GroupSnapshot,
    high: Mapping[TopicPartitionKey, int],
    *,
    later_offsets: Offsets | None = None,
    earlier_high: Mapping[TopicPartitionKey, int] | None = None,
) -> list[ConsumerGroupInfo]:
    """ConsumerGroupInfo models. With a second snapshot (``later_offsets`` read when ``high``
    was, ``snap.offsets`` when ``earlier_high`` was), lag movement is known."""
    groups = []
    for gid in sorted(snap.listings):
        listing = snap.listings[gid]
        desc = snap.descriptions.get(gid)
        before = snap.offsets.get(gid, {})
        now = later_offsets.get(gid, before) if later_offsets is not None else before
        rows = []
        total = 0
        for (topic, partition), committed in sorted(now.items()):
            lag = _lag(committed, high.get((topic, partition)))
            total += lag or 0
            rows.append(GroupPartitionOffset(
                topic=topic, partition=partition, committed=committed,
                high_watermark=high.get((topic, partition), 0), lag=lag,
            ))
        lag_moving: bool | None = None
        committed_moving: bool | None = None
        if later_offsets is not None and earlier_high is not None:
            lag_before = sum(_lag(c, earlier_high.get(tp)) or 0 for tp, c in before.items())
            lag_moving = lag_before != total
            committed_moving = any(
                _offset(now.get(tp)) > _offset(c) for tp, c in before.items()
            ) or any(tp not in before for tp in now)
        members = [
            GroupMember(
                member_id=m.member_id, client_id=m.client_id, host=m.host,
                assignment=[f"{t}[{p}]" for t, p in m.assignment],
            )
            for m in (desc.members if desc else ())
        ]
        selected = {t for t, _ in high}
        topics = sorted(t for t in _topics_of(desc, now) if t in selected)
        groups.append(ConsumerGroupInfo(
            group_id=gid,
            state=_state_name(desc.state if desc else listing.state),
            type=(desc.type if desc else listing.type).lower(),
            protocol=desc.protocol if desc else None,
            members=members,
            offsets=rows,
            total_lag=total,
            topics=topics,
            lag_moving=lag_moving,
            committed_moving=committed_moving,
        ))
    return groups
