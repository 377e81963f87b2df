"""Run the app under uvicorn (uvloop + httptools when available) and announce readiness."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import sys
from collections.abc import Callable

import uvicorn

from qstash_server.api import create_app
from qstash_server.settings import ServerSettings

__all__ = ["serve"]


def _available(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def serve(settings: ServerSettings, on_ready: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until SIGTERM/SIGINT; ``on_ready(url)`` once listening."""
    app = create_app(settings)
    # many long-lived objects (stored messages): keep the cyclic GC off the hot path
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if _available("uvloop") else "asyncio",
        http="httptools" if _available("httptools") else "h11",
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
    )
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.create_task(server.serve())
        while not server.started:
            if task.done():
                await task
                return
            await asyncio.sleep(0.02)
        port = settings.port
        for srv in server.servers:
            for sock in srv.sockets:
                port = sock.getsockname()[1]
                break
        host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        if on_ready is not None:
            on_ready(f"http://{host}:{port}")
        await task

    loop_factory = None
    if _available("uvloop"):
        import uvloop

        loop_factory = uvloop.new_event_loop
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=loop_factory) as r:
        r.run(main())
    if not server.started:
        sys.exit(1)
