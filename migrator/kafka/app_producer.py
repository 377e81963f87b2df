"""A producer that keeps writing while a cutover happens (the demo's and the tests' traffic)."""

from __future__ import annotations

import threading
import time

from confluent_kafka import Producer

__all__ = ["KeepProducing"]


class KeepProducing:
    """Writes ``rate`` records a second to each of ``topics`` (name -> partitions), round-robin
    over the partitions, in a thread, until :meth:`stop`. Values are ``{"n": N}`` as JSON."""

    def __init__(self, bootstrap: str, topics: dict[str, int], rate: float = 100.0) -> None:
        self._producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5})
        self._topics = topics
        self._rate = rate
        self._stop = threading.Event()
        self.count = 0
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.is_set():
            for topic, partitions in self._topics.items():
                self._producer.produce(topic, value=f'{{"n": {n}}}'.encode(),
                                       key=f"k{n}".encode(), partition=n % partitions)
            n += 1
            self.count = n
            self._producer.poll(0)
            time.sleep(1.0 / self._rate)
        self._producer.flush(30)

    def stop(self) -> None:
        """Stop writing and wait until every record written is acknowledged (idempotent)."""
        self._stop.set()
        self._thread.join(60)
