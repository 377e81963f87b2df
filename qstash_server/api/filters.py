"""The filters of log, DLQ and cancel requests: query parameters into a predicate over API
documents."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from qstash_server.engine.timing import BadValue

__all__ = ["Filter", "multi", "parse_filter"]

Filter = Callable[[dict[str, Any]], bool]
_INT64_MAX = 2**63 - 1
_KNOWN_STATES = frozenset({"CREATED", "ACTIVE", "RETRY", "ERROR", "DELIVERED", "FAILED",
                           "CANCEL_REQUESTED", "CANCELED", "CANCELLED", "IN_PROGRESS"})
_IN_PROGRESS = frozenset({"ACTIVE", "RETRY", "ERROR"})


def multi(params: Any, name: str) -> list[str]:
    """Values of a multi-value query parameter (``name`` or ``name[]``, repeated or comma-joined)."""
    out: list[str] = []
    for key in (name, name + "[]"):
        for raw in params.getlist(key):
            out.extend(v for v in raw.split(",") if v)
    return out




def _int(params: Mapping[str, str], name: str) -> int | None:
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadValue(f"invalid {name} {raw!r}, expected an integer") from None
    if not -_INT64_MAX - 1 <= value <= _INT64_MAX:
        raise BadValue(f"{name} {raw!r} is out of range for a 64-bit timestamp")
    return value


def parse_filter(params: Any, names: Sequence[str]) -> Filter:
    """A predicate over API-shaped documents (log entries or DLQ messages) from query params."""
    checks: list[Filter] = []

    def one_of(field: str, values: list[str]) -> None:
        wanted = set(values)
        checks.append(lambda doc: doc.get(field) in wanted)

    for name, field in (
        ("messageId", "messageId"), ("messageIds", "messageId"), ("url", "url"),
        ("topicName", "topicName"), ("scheduleId", "scheduleId"), ("queueName", "queueName"),
        ("flowControlKey", "flowControlKey"), ("callerIp", "callerIP"), ("callerIP", "callerIP"),
    ):
        if name in names and (values := multi(params, name)):
            one_of(field, values)
    if "label" in names and (labels := set(multi(params, "label"))):
        checks.append(lambda doc: bool(labels & set(doc.get("labels") or [])))
    if "responseStatus" in names and (statuses := multi(params, "responseStatus")):
        try:
            wanted_status = {int(s) for s in statuses}
        except ValueError:
            raise BadValue("invalid responseStatus, expected integers") from None
        checks.append(lambda doc: doc.get("responseStatus") in wanted_status)
    if "state" in names and (states := multi(params, "state")):
        wanted_states: set[str] = set()
        for s in states:
            s = s.upper()
            if s not in _KNOWN_STATES:
                raise BadValue(f"unknown state {s!r}; use one of {', '.join(sorted(_KNOWN_STATES))}")
            if s == "IN_PROGRESS":
                wanted_states |= _IN_PROGRESS
            elif s in ("CANCELED", "CANCELLED"):
                wanted_states.add("CANCELED")
            else:
                wanted_states.add(s)
        checks.append(lambda doc: doc.get("state") in wanted_states)
    from_date = _int(params, "fromDate")
    to_date = _int(params, "toDate")
    time_field = "time" if "state" in names else "createdAt"
    if from_date is not None:
        checks.append(lambda doc: int(doc.get(time_field) or 0) >= from_date)
    if to_date is not None:
        checks.append(lambda doc: int(doc.get(time_field) or 0) <= to_date)
    return lambda doc: all(check(doc) for check in checks)
