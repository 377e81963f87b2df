"""Group commit: the store's changes are written on a background thread, shared by requests.

A request that must not be answered before its changes are on disk awaits ``commit``; delivery
bookkeeping asks for a commit soon (``request``). A failed write's changes are held by the
store and tried again every ``_RETRY_S``.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

from qstash_server.engine.store import Store

__all__ = ["GroupCommitter"]

_COALESCE_S = 0.01
_RETRY_S = 0.5  # after a failed write, held changes are tried again this often


class GroupCommitter:
    """Commits on a background thread while the event loop keeps serving.

    ``await commit()`` returns once every change made before the call is on disk; changes
    made while a commit runs go into the next one, so concurrent requests share commits.
    """

    def __init__(self, store: Store) -> None:
        self._store = store
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="qstash-commit")
        self._waiters: list[asyncio.Future[None]] = []
        self._running = False
        self._timer: asyncio.TimerHandle | None = None

    async def commit(self) -> None:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._waiters.append(fut)
        if not self._running:
            self._kick(loop)
        await asyncio.shield(fut)

    def request(self) -> None:
        """Commit soon without waiting (delivery bookkeeping): within ``_COALESCE_S``, so the
        outcomes of many deliveries share one commit instead of keeping the commit thread (and
        its GIL hand-offs) busy all the time."""
        if self._running or self._timer is not None:
            return
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(_COALESCE_S, self._timed_kick, loop)

    def _timed_kick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        if not self._running and self._store.has_pending():
            self._kick(loop)

    def _kick(self, loop: asyncio.AbstractEventLoop) -> None:
        batch = self._store.take()
        waiters, self._waiters = self._waiters, []
        self._running = True
        done = loop.run_in_executor(self._executor, self._store.write, batch)

        def finished(f: asyncio.Future[None]) -> None:
            self._running = False
            exc = f.exception()
            if exc is not None:
                self._store.restore(batch)  # held for the next commit
            for w in waiters:
                if not w.done():
                    if exc is not None:
                        w.set_exception(exc)
                    else:
                        w.set_result(None)
            if self._waiters:
                self._kick(loop)
            elif exc is not None:
                if self._timer is None:
                    self._timer = loop.call_later(_RETRY_S, self._timed_kick, loop)
            elif self._store.has_pending():
                self.request()

        done.add_done_callback(finished)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._executor.shutdown(wait=True)
