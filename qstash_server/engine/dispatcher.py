"""The delivery worker: a timer heap of due messages and signed HTTP attempts.

The broker decides *what* is due and what an outcome means (retry with QStash's backoff
scaled by ``backoff_scale``, Retry-After, 489 to the DLQ, callbacks, FIFO queue slots,
flow control); this module only keeps time and talks HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
from collections import deque
from collections.abc import Callable
from typing import Any

from qstash_server.engine import AttemptResult, Broker
from qstash_server.engine.messages import Message
from qstash_server.engine.sender import Sender
from qstash_server.engine.signing import sign_delivery
from qstash_server.engine.timing import now_ms

__all__ = ["Dispatcher"]

_log = logging.getLogger(__name__)
_HOLD_S = 0.2


class Dispatcher:
    """Runs on the server's event loop; owns the HTTP client used for deliveries."""

    def __init__(self, broker: Broker, concurrency: int) -> None:
        self.broker = broker
        self.inflight: set[str] = set()
        self._heap: list[tuple[int, int, str]] = []
        self._wake = asyncio.Event()
        self._sleep_until: int | None = None
        self._concurrency = concurrency
        self._running = 0  # attempts on the wire; the rest wait in _waiting (FIFO)
        self._waiting: deque[Message] = deque()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._runner: asyncio.Task[None] | None = None
        self._ticker: asyncio.Task[None] | None = None
        self._sender: Sender | None = None
        self._stopping = False

    # ---------------------------------------------------------------- scheduling
    def schedule(self, msg: Message) -> None:
        heapq.heappush(self._heap, (msg.next_at, msg.seq, msg.id))
        if self._sleep_until is None or msg.next_at < self._sleep_until:
            self._wake.set()

    def call_later(self, delay_s: float, fn: Callable[..., None], *args: Any) -> None:
        loop = asyncio.get_running_loop()

        def run() -> None:
            fn(*args)
            self.broker.flush()

        loop.call_later(max(0.0, delay_s), run)

    def start(self, msg: Message) -> None:
        self.inflight.add(msg.id)
        if self._running < self._concurrency:
            self._launch(msg)
        else:
            self._waiting.append(msg)

    def _launch(self, msg: Message) -> None:
        self._running += 1
        task = asyncio.get_running_loop().create_task(self._attempt(msg))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # ---------------------------------------------------------------- lifecycle
    async def run(self) -> None:
        self._sender = Sender()
        self.broker.dispatcher = self
        self.broker.restore_delivery()
        self.broker.flush()
        self._runner = asyncio.get_running_loop().create_task(self._loop())
        self._ticker = asyncio.get_running_loop().create_task(self._schedules())

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._runner, self._ticker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        pending = list(self._tasks)
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._sender is not None:
            await self._sender.aclose()

    async def _loop(self) -> None:
        while not self._stopping:
            now = now_ms()
            fired = False
            while self._heap and self._heap[0][0] <= now:
                due, _seq, mid = heapq.heappop(self._heap)
                msg = self.broker.messages.get(mid)
                if msg is None or msg.next_at != due or mid in self.inflight:
                    continue
                try:
                    self.broker.dispatch_due(msg)
                except Exception:  # one bad message must not stop every delivery
                    _log.exception("dispatching %s failed", mid)
                fired = True
            if fired:
                self.broker.flush()
            self._wake.clear()
            if self._heap:
                self._sleep_until = self._heap[0][0]
                timeout = max(0.0, (self._heap[0][0] - now_ms()) / 1000)
            else:
                self._sleep_until = None
                timeout = 1.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=min(timeout, 1.0))

    async def _schedules(self) -> None:
        ticks = 0
        while not self._stopping:
            ticks += 1
            try:
                self.broker.tick_schedules()
                if ticks % 60 == 0:
                    self.broker.expire_dedup()
                self.broker.flush()
            except Exception:
                _log.exception("schedule tick failed")
            await asyncio.sleep(1.0)

    # ---------------------------------------------------------------- one attempt
    async def _attempt(self, msg: Message) -> None:
        try:
            # while the state file cannot be written nothing is sent: a message goes out only
            # once it is stored, and the outcome could not be recorded anyway
            while self.broker.store.failing and not self._stopping:
                await asyncio.sleep(_HOLD_S)
            if msg.id in self.broker.cancelling:  # cancelled while held: never sent
                result = AttemptResult(None, error="cancelled before it was sent")
            else:
                result = await self._send(msg)
        except asyncio.CancelledError:
            self.inflight.discard(msg.id)
            raise
        finally:
            self._running -= 1
            if self._waiting and not self._stopping:
                self._launch(self._waiting.popleft())
        self.inflight.discard(msg.id)
        try:
            self.broker.attempt_done(msg, result)
            self.broker.flush()
        except Exception:
            _log.exception("recording the outcome of %s failed", msg.id)

    async def _send(self, msg: Message) -> AttemptResult:
        assert self._sender is not None
        req = self.broker.outgoing(msg)
        req.headers["Upstash-Signature"] = sign_delivery(self.broker.current_key, req.url, req.body)
        return await self._sender.send(req)
