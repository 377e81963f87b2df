"""Flow control: keys, pause/pin/reset, and starting waiting messages when allowed."""

from __future__ import annotations

import time

from qstash_server.broker.state import BrokerState
from qstash_server.flow_control import FlowKey
from qstash_server.problems import ApiError

__all__ = ["FlowControlOps"]


class FlowControlOps(BrokerState):
    """Flow-control keys."""

    def get_flow(self, key: str) -> FlowKey:
        fk = self.flow.get(key)
        if fk is None:
            raise ApiError(404, f"flow control key {key} not found")
        return fk

    def flow_pause(self, key: str, paused: bool) -> None:
        fk = self.get_flow(key)
        fk.paused = paused
        self.store.put("flow", key, fk.to_record())
        if not paused:
            self.pump_flow(key)

    def flow_pin(self, key: str, parallelism: int | None, rate: int | None,
                 period: int | None) -> None:
        fk = self.get_flow(key)
        if parallelism is not None:
            fk.parallelism_max, fk.pinned_parallelism = parallelism, True
        if rate is not None:
            fk.rate_max, fk.pinned_rate = rate, True
            fk.period = period or fk.period or 1
            fk.rate_count, fk.period_start = 0, time.time()
        self.store.put("flow", key, fk.to_record())
        self.pump_flow(key)

    def flow_unpin(self, key: str, parallelism: bool, rate: bool) -> None:
        fk = self.get_flow(key)
        if parallelism:
            fk.pinned_parallelism = False
        if rate:
            fk.pinned_rate = False
        self.store.put("flow", key, fk.to_record())
        self.pump_flow(key)

    def flow_reset_rate(self, key: str) -> None:
        fk = self.get_flow(key)
        fk.rate_count, fk.period_start = 0, time.time()
        self.pump_flow(key)

    def pump_flow(self, key: str) -> None:
        fk = self.flow.get(key)
        if fk is None or self.dispatcher is None:
            return
        now_s = time.time()
        while fk.waitlist and not fk.blocked(now_s):
            mid = fk.waitlist.popleft()
            msg = self.messages.get(mid)
            if msg is None:
                continue
            fk.acquire()
            self._start(msg)
        if fk.waitlist and not fk.paused and fk.rate_max and fk.rate_count >= fk.rate_max:
            self.dispatcher.call_later(fk.period_start + fk.period - now_s, self.pump_flow, key)
