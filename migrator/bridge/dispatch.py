"""Dispatch: batches to the delivery pool, one at a time per ordered partition, retries later.

A batch's key is ``(destination index, partition)`` on ordered routes and
``(destination index, None)`` on unordered ones (see :class:`~migrator.bridge.batcher.Batcher`).
An ordered key is *busy* from the moment one of its batches is submitted until that batch and
all its retries have settled (:meth:`Dispatcher.release`); its later batches wait in a queue,
in order, and the next one is submitted on release. Unordered batches run in parallel.

Workers run only :meth:`~connectors.sink.Sink.write_batch` and report each finished batch on a
queue the loop drains with :meth:`Dispatcher.finished`. Batches to retry wait in a heap until
their ``not_before`` time (:meth:`Dispatcher.retry_later`, :meth:`Dispatcher.due_retries`).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import queue
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from concurrent.futures import wait as futures_wait
from typing import Any

from connectors.sink import DeliveryResult, Message, Sink
from migrator.bridge.batcher import Batch
from migrator.bridge.flow import CROWDED_AT
from migrator.bridge.stats import BridgeStats
from migrator.errors import RetryableDeliveryError

__all__ = ["Dispatcher", "Key", "Outcome"]

log = logging.getLogger(__name__)

Partition = tuple[str, int]
Key = tuple[int, Partition | None]
Outcome = tuple[Batch, list[DeliveryResult]]


class Dispatcher:
    """The delivery pool and the order batches enter it. Not thread-safe except for the
    workers' reports: the loop's."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        workers: int,
        stats: BridgeStats,
        *,
        pool: Executor | None = None,
    ) -> None:
        self._sinks = sinks
        self.workers = workers
        self._stats = stats
        self._pool = pool or ThreadPoolExecutor(workers, thread_name_prefix="bridge-deliver")
        self._done: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self._busy: set[Key] = set()
        self._waiting: dict[Key, deque[Batch]] = {}
        self._retries: list[tuple[float, int, Batch]] = []
        self._seq = itertools.count()
        self.outstanding = 0  # batches submitted to the pool and not settled
        self._running: set[Future[None]] = set()  # submitted and not finished by a worker

    # -- submitting --------------------------------------------------------------------------

    def submit(self, batch: Batch, *, retry: bool = False) -> None:
        """Deliver ``batch`` now, or (ordered key busy) after the key's earlier batches.
        ``retry``: the key's own retry, which runs while the key stays busy."""
        key = batch.key
        if key[1] is not None and not retry:
            if key in self._busy:
                self._waiting.setdefault(key, deque()).append(batch)
                return
            self._busy.add(key)
        self._send(batch)

    def _send(self, batch: Batch) -> None:
        self.outstanding += 1
        self._stats.batches += 1
        future = self._pool.submit(self._deliver, batch)
        self._running.add(future)
        future.add_done_callback(self._running.discard)

    def _deliver(self, batch: Batch) -> None:
        """Worker thread: one request (or request sequence) for one batch."""
        sink = self._sinks[batch.destination]
        for m in batch.messages:
            m.attempts += 1
        try:
            results = sink.write_batch(batch.messages)
        except Exception as exc:  # a sink bug must not lose the batch
            log.exception("sink %s failed on a batch", sink.name)
            results = [RetryableDeliveryError(f"sink error: {exc}")] * len(batch.messages)
        self._done.put((batch, results))

    def release(self, key: Key) -> None:
        """``key``'s batch settled for good: submit the next one waiting, or free the key."""
        if key[1] is None:
            return
        waiting = self._waiting.get(key)
        if waiting:
            self._send(waiting.popleft())
        else:
            self._busy.discard(key)
            self._waiting.pop(key, None)

    # -- results and retries -----------------------------------------------------------------

    def finished(self, wait: float = 0.0) -> Iterator[Outcome]:
        """Batches the workers finished, as (batch, one result per message); waits up to
        ``wait`` seconds for the first."""
        try:
            item = self._done.get(timeout=wait) if wait > 0 else self._done.get_nowait()
        except queue.Empty:
            return
        while True:
            self.outstanding -= 1
            yield item
            try:
                item = self._done.get_nowait()
            except queue.Empty:
                return

    def retry_later(self, batch: Batch) -> None:
        """Send ``batch`` again at ``batch.not_before`` (its key stays busy meanwhile)."""
        heapq.heappush(self._retries, (batch.not_before, next(self._seq), batch))

    def due_retries(self, now: float) -> list[Batch]:
        """Batches whose retry time has come, in that order."""
        due = []
        heap = self._retries
        while heap and heap[0][0] <= now:
            due.append(heapq.heappop(heap)[2])
        return due

    @property
    def retrying(self) -> bool:
        """Whether batches wait for a retry."""
        return bool(self._retries)

    # -- ordered partitions ------------------------------------------------------------------

    def crowded(self) -> Iterator[Partition]:
        """Ordered partitions with batches queued up behind their in-flight one."""
        for key, waiting in self._waiting.items():
            if key[1] is not None and len(waiting) >= CROWDED_AT:
                yield key[1]

    def drop(self, partitions: Iterable[Partition], done: Callable[[Message], Any]) -> None:
        """Forget the waiting batches of ``partitions`` (revoked), calling ``done`` on each of
        their messages."""
        tps = set(partitions)
        for key in [k for k in self._waiting if k[1] in tps]:
            for batch in self._waiting.pop(key):
                for m in batch.messages:
                    done(m)

    def shutdown(self, wait: float = 0.0) -> bool:
        """Stop the pool: batches not started are cancelled, the requests under way get up to
        ``wait`` seconds to finish (their sinks' clients must stay open until then: closing a
        client under a request leaks its connection). True when none is left running."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        running = list(self._running)
        if running and wait > 0:
            futures_wait(running, timeout=wait)
        return not any(not f.done() for f in running)
