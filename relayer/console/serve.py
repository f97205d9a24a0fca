"""The console's routes on the daemon's API: the page, its two static files, the stream.

=====  ====================  =============================================================
GET    ``/``                 the page (``static/index.html``)
GET    ``/console/{file}``   ``app.js``, ``app.css``, ``icon.svg``; nothing else
GET    ``/events``           server-sent events: ``snapshot`` (everything the page shows),
                             then ``item`` (one transfer or swap that changed) and
                             ``status`` (``/status``, the chains, the chart), pushed when
                             something changes and at least every second
=====  ====================  =============================================================

The files are read once, at start, from the package (no build step, nothing fetched from
elsewhere), and served under a content-security policy that allows only this origin's
script and style, no inline code, no frames. The page shows what ``/status`` shows plus
chain events: public data; the relayer's keys never reach the feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.resources
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from chains.service.retry import Backoff
from chains.service.rpc_client import HttpChain
from relayer.feed import probe_chains, public_url

if TYPE_CHECKING:
    from relayer.daemon import Daemon

__all__ = ["CSP", "add_console", "snapshot"]

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-cache",
}
FILES = {
    "index.html": "text/html",
    "app.js": "text/javascript",
    "app.css": "text/css",
    "icon.svg": "image/svg+xml",
}
MAX_STREAMS = 32
"""Open ``/events`` streams at most (each holds a connection and wakes per change)."""
STATUS_EVERY = 1.0
"""Seconds between ``status`` events on a stream (at most one per change burst)."""
PROBE_INTERVAL = 1.0
PROBE_TIMEOUT = 2.0
"""A chain that has not answered within this is shown unreachable at the next probe."""


def snapshot(daemon: Daemon) -> dict[str, Any]:
    """Everything the page shows, as one JSON object."""
    return {
        "seq": daemon.feed.seq,
        "now": round(time.time(), 3),
        "items": daemon.feed.items(),
        **_status(daemon),
    }


def _status(daemon: Daemon) -> dict[str, Any]:
    status = daemon.status()
    for chain in status.get("chains", {}).values():
        chain["rpc"] = [public_url(u) for u in chain.get("rpc", [])]
    return {
        "status": status,
        "chains": daemon.feed.chain_view(),
        "chart": daemon.feed.chart(),
    }


def _sse(event: str, data: object) -> bytes:
    return b"event: " + event.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n"


def _probes(daemon: Daemon) -> tuple[dict[str, dict[str, Callable[[], Awaitable[int]]]], list[Any]]:
    """Per chain, per endpoint: a height probe. Endpoints of chains in other processes
    each get their own client that never retries (the daemon's handles retry and fail
    over, which would hide the endpoint that is down); an in-process chain is asked
    directly."""
    probes: dict[str, dict[str, Callable[[], Awaitable[int]]]] = {}
    clients: list[HttpChain] = []
    for cid, c in daemon.settings.chains.items():
        handle = daemon.handles.get(cid)
        if handle is not None and not isinstance(handle, HttpChain):
            probes[cid] = {"in-process": handle.latest_height}
            continue
        probes[cid] = {}
        for url in c.rpc:
            h = HttpChain(cid, [url], timeout=PROBE_TIMEOUT, retry=Backoff(attempts=0))
            clients.append(h)
            probes[cid][url] = h.latest_height
    return probes, clients


def add_console(app: web.Application, daemon: Daemon) -> None:
    """Add the console's routes, its chain prober and its streams to the API's app."""
    static = importlib.resources.files("relayer.console") / "static"
    files = {name: (static / name).read_bytes() for name in FILES}
    streams: set[asyncio.Event] = set()
    closing = asyncio.Event()

    def page(name: str) -> web.Response:
        resp = web.Response(body=files[name], content_type=FILES[name], charset="utf-8")
        resp.headers.update(SECURITY_HEADERS)
        return resp

    async def index(_: web.Request) -> web.Response:
        return page("index.html")

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in FILES or name == "index.html":
            raise web.HTTPNotFound(reason=f"no console file {name[:64]!r}")
        return page(name)

    async def events(request: web.Request) -> web.StreamResponse:
        if len(streams) >= MAX_STREAMS or closing.is_set():
            body = {"error": {"code": "busy", "message": "too many console streams open"}}
            return web.Response(
                body=orjson.dumps(body), status=503, content_type="application/json"
            )
        resp = web.StreamResponse(headers={**SECURITY_HEADERS, "Content-Type": "text/event-stream"})
        wake = asyncio.Event()
        streams.add(wake)
        daemon.feed.listeners.append(wake.set)
        try:
            await resp.prepare(request)
            seq = daemon.feed.seq
            await resp.write(_sse("snapshot", snapshot(daemon)))
            sent_status = time.monotonic()
            while not closing.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(STATUS_EVERY):
                        await wake.wait()
                wake.clear()
                changed = daemon.feed.changes_since(seq)
                if changed is None:  # fell behind the bounded log: start over
                    seq = daemon.feed.seq
                    await resp.write(_sse("snapshot", snapshot(daemon)))
                    sent_status = time.monotonic()
                    continue
                seq = daemon.feed.seq
                for item in changed:
                    await resp.write(_sse("item", item))
                if time.monotonic() - sent_status >= STATUS_EVERY or closing.is_set():
                    await resp.write(_sse("status", _status(daemon)))
                    sent_status = time.monotonic()
        except (ConnectionError, RuntimeError):
            pass  # the page went away (aiohttp raises RuntimeError on a closed transport)
        finally:
            streams.discard(wake)
            with contextlib.suppress(ValueError):
                daemon.feed.listeners.remove(wake.set)
        return resp

    async def prober(_: web.Application) -> AsyncIterator[None]:
        probes, clients = _probes(daemon)
        task = asyncio.create_task(
            probe_chains(
                daemon.feed,
                probes,
                interval=PROBE_INTERVAL,
                probe_timeout=PROBE_TIMEOUT,
                metrics=daemon.metrics,
            ),
            name="relayer:console-probe",
        )
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            for c in clients:
                await c.close()

    async def on_shutdown(_: web.Application) -> None:
        # open streams end now, not after the runner's shutdown timeout
        closing.set()
        for wake in list(streams):
            wake.set()

    app.router.add_get("/", index)
    app.router.add_get("/console/{name}", asset)
    app.router.add_get("/events", events)
    app.cleanup_ctx.append(prober)
    app.on_shutdown.append(on_shutdown)
