"""Bulk actions: a filter-based cancel that runs in the background, as on QStash's newer API.

Off by default (the server then cancels synchronously, as the OpenAPI snapshot describes). With
``cancel_delay_ms`` > 0 (``--cancel-delay-ms``) a filter-based ``DELETE /v2/messages`` behaves as
QStash's bulk action does: the matching messages are logged ``CANCEL_REQUESTED`` at once and the
request is answered with how many matched; the cancel itself takes effect ``cancel_delay_ms``
later. Until then the messages stay where they were: one whose delivery (first attempt or retry)
falls due in that window is still delivered and logged ``DELIVERED``; one in flight when the
cancel takes effect is decided at the end of its call (a 2xx is ``DELIVERED``). Cancelling by
``messageIds`` stays synchronous, as QStash documents. Actions live in memory only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from qstash_server.engine.state import BrokerState
from qstash_server.engine.timing import now_ms
from qstash_server.problems import ApiError

if TYPE_CHECKING:
    from qstash_server.engine.messages import Message

__all__ = ["MAX_IN_PROGRESS", "BulkAction", "BulkActionOps"]

MAX_IN_PROGRESS = 1000  # QStash answers 412 beyond this many actions in progress


@dataclass
class BulkAction:
    """One background cancel: the messages it matched when it was accepted."""

    id: str
    key: str  # the filter, canonical: an identical request in progress returns this action
    filter: dict[str, list[str]]
    targets: list[str]
    created_at: int
    processed: int = 0
    completed_at: int | None = None
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def finished(self) -> bool:
        return self.completed_at is not None

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "actionId": self.id,
            "kind": "cancel",
            "state": "FINISHED" if self.finished else "IN_PROGRESS",
            "total": len(self.targets),
            "processed": self.processed,
            "createdAt": self.created_at,
            "filter": self.filter,
        }
        if self.completed_at is not None:
            out["completedAt"] = self.completed_at
        return out


class BulkActionOps(BrokerState):
    """Filter-based cancels in the background (``cancel_delay_ms``) and their progress."""

    bulk_actions: dict[str, BulkAction]  # made by the Broker

    @property
    def cancels_in_background(self) -> bool:
        return (self.settings.cancel_delay_ms > 0 and not self.stored_only
                and self.dispatcher is not None)

    def bulk_cancel(self, predicate: Callable[[dict[str, Any]], bool] | None,
                    filters: dict[str, list[str]]) -> BulkAction:
        """Log ``CANCEL_REQUESTED`` for every pending message matching ``predicate`` and cancel
        them ``cancel_delay_ms`` from now; an identical action in progress is returned as is."""
        key = repr(sorted((k, sorted(v)) for k, v in filters.items()))
        in_progress = [a for a in self.bulk_actions.values() if not a.finished]
        for action in in_progress:
            if action.key == key:
                return action
        if len(in_progress) >= MAX_IN_PROGRESS:
            raise ApiError(412, f"{MAX_IN_PROGRESS} bulk actions are in progress; wait for one "
                                "to finish (GET /v2/bulkActions?state=IN_PROGRESS)")
        targets = [m for m in self.messages.values()
                   if predicate is None or predicate(m.to_api())]
        action = BulkAction(self._new_id("bulk_"), key, filters, [m.id for m in targets],
                            now_ms())
        self.bulk_actions[action.id] = action
        for msg in targets:
            self._log(msg, "CANCEL_REQUESTED")
        assert self.dispatcher is not None
        self.dispatcher.call_later(self.settings.cancel_delay_ms / 1000, self._run_bulk, action)
        return action

    def _run_bulk(self, action: BulkAction) -> None:
        for mid in action.targets:
            msg = self.messages.get(mid)
            if msg is not None:  # else delivered or failed meanwhile: nothing to cancel
                self._cancel_effect(msg)
            action.processed += 1
        action.completed_at = now_ms()
        action.done.set()

    def bulk_action(self, action_id: str) -> dict[str, Any]:
        action = self.bulk_actions.get(action_id)
        if action is None:
            raise ApiError(404, f"bulk action {action_id} not found")
        return action.to_api()

    def list_bulk_actions(self, cursor: str | None, count: int,
                          state: str | None) -> dict[str, Any]:
        """Oldest first, ``count`` actions scanned per page (the state filter applies to each
        page, as QStash documents); ``cursor`` is the index to continue at."""
        try:
            start = int(cursor) if cursor else 0
        except ValueError:
            raise ApiError(400, f"invalid cursor {cursor!r}") from None
        if state not in (None, "IN_PROGRESS", "FINISHED"):
            raise ApiError(400, f"invalid state {state!r}; use IN_PROGRESS or FINISHED")
        actions = list(self.bulk_actions.values())
        page = actions[start:start + count]
        docs = [a.to_api() for a in page]
        out: dict[str, Any] = {"bulkActions": [d for d in docs
                                               if state is None or d["state"] == state]}
        if start + count < len(actions):
            out["cursor"] = str(start + count)
        return out

    if TYPE_CHECKING:  # defined by MessageOps, which the Broker combines with this
        def _cancel_effect(self, msg: Message) -> None: ...
