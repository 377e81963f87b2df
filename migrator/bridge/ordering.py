"""Which destinations keep a Kafka partition's order at the endpoint, and the warning for those
that cannot.

An ``ordered: true`` route keeps one batch of a partition in flight at a time, so records reach
QStash (or a direct endpoint) in offset order. Whether they *arrive* in that order depends on
the destination kind (docs/bridge.md, "Which destinations keep order"; the evidence is
``tests/bridge/test_ordering.py``):

* ``enqueue-queue``: **kept**, through retries (503, timeouts, Retry-After) and callbacks. A FIFO
  queue with parallelism 1 makes its next message active only after the last one is delivered
  or has failed. A message that exhausts its retries goes to QStash's DLQ and the queue moves
  on: a gap, not a reordering, until the DLQ entry is retried (it then arrives last).
  Queues the plan creates, and queues an enqueue creates, have parallelism 1; a queue created
  by hand with more does not keep order.
* ``direct-http``: **kept**: the bridge sends a partition's records in a row and stops a batch
  at the first failure.
* ``publish-url`` / ``publish-url-group`` / ``workflow`` with a flow-control key and
  parallelism 1: **best effort**: QStash frees a flow-control slot when an attempt fails, so the
  key's later messages are delivered before the retry. (A workflow also runs the steps of
  consecutive runs side by side.)
* the same without flow control (or with parallelism above 1): **not kept**: publishes are
  delivered in parallel.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from migrator.bridge.config import BridgeConfig, Destination, DirectHttpDestination

__all__ = ["OrderGuarantee", "OrderRisk", "destination_order", "log_order_risks", "order_risks"]

OrderGuarantee = Literal["kept", "best_effort", "none"]

_BEST_EFFORT = ("order can break on a retry: QStash frees a flow-control slot when an attempt "
                "fails, so the key's later messages are delivered before the retried one")
_NONE = "order is not kept: QStash delivers publishes in parallel"


def destination_order(dest: Destination) -> tuple[OrderGuarantee, str]:
    """How well ``dest`` keeps the order the bridge hands it, and why, in words."""
    if isinstance(dest, DirectHttpDestination):
        return "kept", "direct HTTP: a partition's records are sent in a row, a failure stops the rest"
    if dest.kind == "enqueue-queue":
        return "kept", ("a FIFO queue with parallelism 1 holds its next message until the last is "
                        "delivered or failed")
    fc = dest.flow_control
    if fc is not None and fc.parallelism == 1:
        why = _BEST_EFFORT
        if dest.kind == "workflow":
            why += "; the steps of consecutive workflow runs also run side by side"
        return "best_effort", why
    return "none", _NONE


@dataclass(frozen=True)
class OrderRisk:
    """An ordered route's destination that cannot keep order."""

    route: int
    destination: int
    name: str
    kind: str
    guarantee: OrderGuarantee
    why: str

    def line(self) -> str:
        what = "best effort" if self.guarantee == "best_effort" else "none"
        return (f"routes[{self.route}].destinations[{self.destination}] ({self.name}, "
                f"{self.kind}): ordered route, ordering {what}: {self.why}; use an enqueue-queue "
                "destination (FIFO queue, parallelism 1) to keep order")


def order_risks(config: BridgeConfig) -> list[OrderRisk]:
    """Every destination of an ``ordered`` route whose kind cannot keep order."""
    out: list[OrderRisk] = []
    for i, route in enumerate(config.routes):
        if not route.ordered:
            continue
        for j, dest in enumerate(route.destinations):
            guarantee, why = destination_order(dest)
            if guarantee != "kept":
                out.append(OrderRisk(i, j, route.route_name, dest.kind, guarantee, why))
    return out


def log_order_risks(config: BridgeConfig, log: logging.Logger) -> list[OrderRisk]:
    """Log one warning per :func:`order_risks` entry (at bridge start); returns them."""
    risks = order_risks(config)
    for risk in risks:
        log.warning("%s", risk.line())
    return risks
