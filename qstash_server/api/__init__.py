"""The HTTP layer (Starlette): QStash's v2 REST API over the engine, one module per resource.

Each module lists its routes (``ROUTES``); every handler is wrapped by ``authorized`` (token,
errors as JSON, answer after the commit) and asks the engine (``broker_of(request)``) for
everything it needs: no handler reads the engine's fields.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.routing import Route

from qstash_server.api import (
    admin,
    dead_letters,
    flow_control,
    keys,
    logs,
    messages,
    queues,
    schedules,
    url_groups,
    workflows,
)
from qstash_server.api.common import Handler, RouteSpec, authorized, by_method
from qstash_server.engine import Broker
from qstash_server.engine.dispatcher import Dispatcher
from qstash_server.settings import ServerSettings

__all__ = ["create_app"]

_RESOURCES = (messages, workflows, queues, url_groups, schedules, dead_letters, logs, keys,
              flow_control, admin)


def _routes() -> list[Route]:
    table: list[RouteSpec] = [spec for module in _RESOURCES for spec in module.ROUTES]
    grouped: dict[str, dict[str, Handler]] = {}
    for path, handler, methods in table:
        for method in methods:
            grouped.setdefault(path, {})[method] = authorized(handler)
    return [Route(path, by_method(handlers), methods=list(handlers))
            for path, handlers in grouped.items()]


def create_app(settings: ServerSettings, broker: Broker | None = None) -> Starlette:
    """Build the app; the engine (state) is created here unless one is passed in."""
    b = broker or Broker(settings)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        dispatcher: Dispatcher | None = None
        b.start_committer()
        if not settings.accept_only:
            dispatcher = Dispatcher(b, settings.delivery_concurrency)
            await dispatcher.run()
        try:
            yield
        finally:
            if dispatcher is not None:
                await dispatcher.stop()
            b.stop_committer()
            b.close()

    app = Starlette(routes=_routes(), lifespan=lifespan)
    app.state.broker = b
    return app
