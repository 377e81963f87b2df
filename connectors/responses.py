"""What the sinks do with an ``httpx.Response`` once they have read it."""

from __future__ import annotations

import httpx

__all__ = ["release"]

_SPENT = httpx.ByteStream(b"")


def release(response: httpx.Response) -> None:
    """Break httpx's ``Response <-> BoundSyncStream`` reference cycle once the body is read.

    The cycle keeps the request (and so the whole batch body) alive until the cyclic garbage
    collector runs; the bridge runs that collector rarely (``migrator.bridge.runner``), so each
    body would linger in memory. With the cycle broken, reference counting frees it at once.
    ``response.content`` stays readable (it was read before the stream is replaced).
    """
    response.stream = _SPENT
