"""Cutover state in Kafka: one compacted topic, keyed by replaced group, JSON documents.

Every bridge and every ``migrator cutover`` run reads the same topic, so the state does not live
on an operator's laptop; running bridges follow it (:class:`~migrator.kafka.state_log.StateTail`)
and change what they deliver without a restart. Each document carries its last
:data:`~migrator.cutover.state.HISTORY_LIMIT` transitions, so the history survives compaction.
"""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from migrator.config import KafkaConnection
from migrator.cutover.lease import LEASE_PREFIX
from migrator.cutover.state import SCHEMA_VERSION, GroupCutover
from migrator.errors import ConfigError
from migrator.kafka.group_offsets import GroupOffsetAdmin
from migrator.kafka.state_log import LogEntry, StateLog

__all__ = ["CutoverStore", "parse_document", "parse_states"]

log = logging.getLogger(__name__)


def parse_document(key: str, doc: dict[str, Any]) -> GroupCutover | None:
    """The state in one record; None (logged) for a record this version cannot read."""
    version = doc.get("version")
    if isinstance(version, int) and version > SCHEMA_VERSION:
        raise ConfigError(
            f"the cutover state of group {key!r} was written by a newer migrator (schema "
            f"{version}, this one reads {SCHEMA_VERSION}); upgrade before changing it."
        )
    try:
        return GroupCutover.model_validate(doc)
    except ValidationError as exc:
        log.warning("ignoring an unreadable cutover record for %r: %s", key, exc)
        return None


def parse_states(entries: list[LogEntry]) -> dict[str, GroupCutover]:
    """The latest readable state per group."""
    out: dict[str, GroupCutover] = {}
    for key, doc, _offset in entries:
        if key.startswith(LEASE_PREFIX):
            continue
        state = parse_document(key, doc)
        if state is not None and (key not in out or state.seq >= out[key].seq):
            out[key] = state
    return out


class CutoverStore:
    """Read and write the cutover topic."""

    def __init__(self, connection: KafkaConnection, topic: str, admin: GroupOffsetAdmin) -> None:
        self._connection = connection
        self._topic = topic
        self._admin = admin
        self._log: StateLog | None = None

    @property
    def topic(self) -> str:
        return self._topic

    def ensure(self) -> None:
        """Create the topic when it is missing (compacted, one partition)."""
        self._admin.ensure_compacted_topic(self._topic)

    def _state_log(self) -> StateLog:
        if self._log is None:
            self._log = StateLog(self._connection, self._topic)
        return self._log

    def exists(self) -> bool:
        return self._topic in self._admin.describe_topics([self._topic])

    def all(self) -> dict[str, GroupCutover]:
        if not self.exists():
            return {}
        return parse_states(self._state_log().read())

    def load(self, group: str, bridge_group: str) -> GroupCutover:
        """The group's state (``old``, never written, when there is none)."""
        found = self.all().get(group)
        return found if found is not None else GroupCutover(group=group, bridge_group=bridge_group)

    def history(self, group: str) -> list[GroupCutover]:
        """Every version of the group's document still in the topic, oldest first."""
        if not self.exists():
            return []
        out = []
        for key, doc, _offset in self._state_log().read():
            if key == group and (state := parse_document(key, doc)) is not None:
                out.append(state)
        return out

    def save(self, state: GroupCutover) -> GroupCutover:
        self._state_log().append(state.group, state.model_dump(mode="json"))
        log.info("cutover %s: %s (seq %d) %s", state.group, state.state.value, state.seq, state.note)
        return state

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
