"""The daemon's HTTP API (aiohttp), loopback by default.

=====  ===========  ==========================================================================
GET    ``/healthz`` ``{"ok": true}``, or 503 with the problems (a worker stuck in a batch, or
                    waiting for an unreachable chain, past a bound)
GET    ``/status``  per worker: source and client heights, trusting period left, backlog,
                    oldest pending age, packets relayed, last error, misbehaviour seen
GET    ``/metrics`` Prometheus text format
GET    ``/``        the console (static files from :mod:`relayer.console`, under a strict
                    content-security policy; see :mod:`relayer.console.serve`)
GET    ``/events``  the console's server-sent events: a snapshot, then what changed
=====  ===========  ==========================================================================

Read-only: nothing here changes the daemon. Errors are ``{"error": {"code", "message"}}``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING

import orjson
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from chains.service.httpserver import HardenedRunner
from relayer.console.serve import add_console

if TYPE_CHECKING:
    from relayer.daemon import Daemon

__all__ = ["build_app", "serve"]

MAX_LINE = 8190
MAX_FIELD = 8190


def _json(obj: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(obj), status=status, content_type="application/json")


def build_app(daemon: Daemon) -> web.Application:
    async def healthz(_: web.Request) -> web.Response:
        ok, problems = daemon.health()
        return _json({"ok": ok, "problems": problems}, 200 if ok else 503)

    async def status(_: web.Request) -> web.Response:
        return _json(daemon.status())

    async def metrics(_: web.Request) -> web.Response:
        resp = web.Response(body=daemon.metrics.render())
        resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
        return resp

    @web.middleware
    async def errors(
        request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPException as exc:
            code = "not_found" if exc.status == 404 else "bad_request"
            if exc.status == 405:
                code = "method_not_allowed"
            return _json({"error": {"code": code, "message": exc.reason}}, exc.status)

    app = web.Application(middlewares=[errors], client_max_size=1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status)
    app.router.add_get("/metrics", metrics)
    add_console(app, daemon)
    return app


@contextlib.asynccontextmanager
async def serve(daemon: Daemon) -> AsyncIterator[int]:
    """Run the API; yields the bound port."""
    s = daemon.settings
    # slow and greedy clients and bad HTTP are handled as on a chain's RPC server
    runner = HardenedRunner(
        build_app(daemon),
        limits=s.api_limits,
        access_log=None,
        handler_cancellation=True,
        max_line_size=MAX_LINE,
        max_field_size=MAX_FIELD,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, s.api_host, s.api_port, backlog=128)
        await site.start()
        sockets = getattr(site._server, "sockets", None)
        yield int(sockets[0].getsockname()[1]) if sockets else s.api_port
    finally:
        await runner.cleanup()
