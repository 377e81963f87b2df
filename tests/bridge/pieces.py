"""Fakes for unit tests of the bridge's pieces: no Kafka, no HTTP, no threads, no sleeps."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Executor, Future
from typing import Any

from connectors.dead_letter import DeadLetter
from connectors.sink import DeliveryResult, Message, Record, Ticket
from migrator.bridge.batcher import Batch
from migrator.bridge.checkpoint import Checkpointer
from migrator.bridge.config import InFlightLimits, RetryPolicy
from migrator.bridge.dispatch import Dispatcher
from migrator.bridge.flow import InFlight, Throttle
from migrator.bridge.metrics import BridgeMetrics
from migrator.bridge.retry import Backoff
from migrator.bridge.settle import DeadLetters, Settler
from migrator.bridge.stats import BridgeStats

Partition = tuple[str, int]
TOPIC = "orders"


class ManualPool(Executor):
    """An executor that runs submitted calls only when told, in submission order."""

    def __init__(self) -> None:
        self.pending: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        self.pending.append((fn, args))
        return Future()

    def run(self, n: int | None = None) -> int:
        """Run the first ``n`` (all) pending calls; how many ran."""
        todo = self.pending if n is None else self.pending[:n]
        self.pending = self.pending[len(todo):]
        for fn, args in todo:
            fn(*args)
        return len(todo)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.pending.clear()


class MemorySink:
    """Records every batch it is given; answers with ``reply(message)`` per message."""

    def __init__(self, name: str = "dest",
                 reply: Callable[[Message], DeliveryResult] = lambda _m: None) -> None:
        self.name = name
        self.reply = reply
        self.batches: list[list[int]] = []  # offsets per write_batch call

    def write_batch(self, messages: Sequence[Message]) -> list[DeliveryResult]:
        self.batches.append([m.record.offset for m in messages])
        return [self.reply(m) for m in messages]

    def close(self) -> None:
        pass


class MemoryDeadLetterWriter:
    """Keeps dead letters; :meth:`poll` acknowledges them (or fails them with ``error``)."""

    topic = "dlq"

    def __init__(self) -> None:
        self.written: list[tuple[Record, DeadLetter]] = []
        self._unacked: list[Callable[[str | None], None]] = []
        self.error: str | None = None

    def send(self, record: Record, why: DeadLetter, on_done: Callable[[str | None], None]) -> None:
        self.written.append((record, why))
        self._unacked.append(on_done)

    def poll(self) -> None:
        unacked, self._unacked = self._unacked, []
        for done in unacked:
            done(self.error)

    def flush(self, timeout: float) -> int:
        self.poll()
        return 0


class FakeConsumer:
    """Records pause / resume / seek / commit calls; commits succeed unless ``refuse``."""

    def __init__(self) -> None:
        self.paused: set[Partition] = set()
        self.seeks: list[tuple[Partition, int]] = []
        self.commits: list[dict[Partition, int]] = []
        self.refuse = False
        self.group_offsets: dict[Partition, int] = {}

    def pause(self, partitions: Iterable[Partition]) -> None:
        self.paused.update(partitions)

    def resume(self, partitions: Iterable[Partition]) -> None:
        self.paused.difference_update(partitions)

    def seek(self, partition: Partition, offset: int) -> None:
        self.seeks.append((partition, offset))

    def commit(self, offsets: dict[Partition, int]) -> bool:
        if self.refuse:
            return False
        self.commits.append(dict(offsets))
        return True

    def committed(self, partitions: Iterable[Partition]) -> dict[Partition, int]:
        return {tp: self.group_offsets[tp] for tp in partitions if tp in self.group_offsets}


def message(offset: int, ticket: Ticket | None, partition: int = 0, size: int = 10) -> Message:
    rec = Record(TOPIC, partition, offset, None, b"x" * size, [], None)
    return Message(rec, b"x" * size, "application/json", f"id-{partition}-{offset}", 0, 0.0,
                   None, ticket)


class Rig:
    """A dispatcher and settler over in-memory sinks, a manual pool and a real checkpointer."""

    def __init__(self, *sinks: MemorySink, retry: dict[str, Any] | None = None) -> None:
        self.sinks = list(sinks) or [MemorySink()]
        self.stats = BridgeStats()
        self.metrics = BridgeMetrics().for_group("rig")
        self.pool = ManualPool()
        self.flow = InFlight()
        self.checkpoint = Checkpointer()
        self.writer = MemoryDeadLetterWriter()
        policy = RetryPolicy.model_validate({"initial_backoff": 0.001, "max_backoff": 0.001,
                                             "jitter": 0, **(retry or {})})
        self.dispatch = Dispatcher(self.sinks, 4, self.stats, pool=self.pool)
        self.dead = DeadLetters(self.writer, self.checkpoint, self.flow,  # type: ignore[arg-type]
                                metrics=self.metrics, stats=self.stats)
        self.settler = Settler(self.sinks, self.checkpoint, self.dispatch, self.flow, self.dead,
                               Backoff(policy), metrics=self.metrics, stats=self.stats,
                               throttle=Throttle(30.0))
        self.limits = InFlightLimits.model_validate({})

    def track(self, offsets: Iterable[int], partition: int = 0, dest: int = 0,
              ordered: bool = True) -> Batch:
        """Track ``offsets`` of one partition and put them in one batch (counted in flight)."""
        tp = (TOPIC, partition)
        self.checkpoint.assign(tp)
        ticket = self.checkpoint.ticket(tp)
        messages = []
        for off in offsets:
            self.checkpoint.track(tp, off)
            messages.append(message(off, ticket, partition))
        self.flow.records += len(messages)
        self.flow.bytes += sum(m.size for m in messages)
        return Batch((dest, tp if ordered else None), messages, sum(m.size for m in messages))

    def cycle(self, later: float = 1.0) -> None:
        """Run the pool, settle what finished, send retries due ``later`` seconds from now,
        acknowledge dead letters."""
        import time

        self.pool.run()
        self.settler.settle_ready()
        self.settler.resend_due(time.monotonic() + later)
        self.dead.poll()
