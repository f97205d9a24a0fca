"""The console's routes on the daemon's API: the page, its two static files, the stream.

=====  ====================  =============================================================
GET    ``/``                 the page (``static/index.html``)
GET    ``/console/{file}``   ``app.js``, ``app.css``, ``icon.svg``; nothing else
GET    ``/lookup?tx=HASH``   ``{"tx", "ids"}``: the transfers and swaps a transaction of
                             any of the chains touched (its receipt's events), for the
                             search box
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
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import orjson
from aiohttp import web

from chains.errors import InterlockError
from chains.handle import ChainHandle
from chains.service.retry import Backoff
from chains.service.rpc_client import HttpChain
from relayer.feed import (
    ChainProbe,
    FeedError,
    get_item_key,
    parse_probe,
    probe_chains,
    public_url,
)

if TYPE_CHECKING:
    from relayer.daemon import Daemon

__all__ = ["CSP", "add_console", "find_tx", "snapshot"]

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
MAX_LOOKUPS = 4
"""Transaction lookups running at once (each asks every chain); more are refused, 503."""
MAX_LOOKUP_EVENTS = 4096
"""Events of a found transaction read for keys."""
TX_HASH = re.compile(r"[0-9a-f]{64}")
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


def _probes(
    daemon: Daemon,
) -> tuple[dict[str, dict[str, Callable[[], Awaitable[ChainProbe]]]], list[Any]]:
    """Per chain, per endpoint: a probe of its height, engine, block interval and the
    relayer's balances. Endpoints of chains in other processes each get their own client
    that never retries (the daemon's handles retry and fail over, which would hide the
    endpoint that is down); an in-process chain is asked directly."""
    probes: dict[str, dict[str, Callable[[], Awaitable[ChainProbe]]]] = {}
    clients: list[HttpChain] = []
    for cid, c in daemon.settings.chains.items():
        address = {"address": daemon.keys[cid].address}
        handle = daemon.handles.get(cid)
        if handle is not None and not isinstance(handle, HttpChain):

            async def local(h: ChainHandle = handle, args: dict[str, str] = address) -> ChainProbe:
                consensus = await h.get_consensus()
                status = {
                    "height": await h.latest_height(),
                    **consensus.to_json(),
                    "block_interval": getattr(getattr(h, "node", None), "block_interval", None),
                }
                return parse_probe(status, await h.query("bank", "balances", args))

            probes[cid] = {"in-process": local}
            continue
        probes[cid] = {}
        for url in c.rpc:
            client = HttpChain(cid, [url], timeout=PROBE_TIMEOUT, retry=Backoff(attempts=0))
            clients.append(client)

            async def remote(h: HttpChain = client, args: dict[str, str] = address) -> ChainProbe:
                status = await h.status()
                got = str(status.get("chain_id"))[:64]
                if got != h.chain_id:
                    raise FeedError(f"the endpoint answers for {got!r}")
                return parse_probe(status, await h.query("bank", "balances", args))

            probes[cid][url] = remote
    return probes, clients


async def find_tx(daemon: Daemon, tx_hash: bytes) -> list[str]:
    """The feed keys of the transfers and swaps whose events a transaction emitted, on
    any chain the daemon relays for (each asked within :data:`PROBE_TIMEOUT`; a chain
    that does not answer is skipped)."""

    async def one(cid: str, h: ChainHandle) -> list[str]:
        try:
            async with asyncio.timeout(PROBE_TIMEOUT):
                receipt = await h.get_receipt(tx_hash)
        except (InterlockError, OSError, TimeoutError):
            return []
        if receipt is None:
            return []
        keys = (get_item_key(e, cid) for e in receipt.events[:MAX_LOOKUP_EVENTS])
        return [k for k in keys if k is not None]

    found = await asyncio.gather(*(one(cid, h) for cid, h in daemon.handles.items()))
    return list(dict.fromkeys(k for keys in found for k in keys))


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

    lookups = asyncio.Semaphore(MAX_LOOKUPS)

    async def lookup(request: web.Request) -> web.Response:
        tx = request.query.get("tx", "")
        if set(request.query) != {"tx"} or not TX_HASH.fullmatch(tx):
            raise web.HTTPBadRequest(reason="expected ?tx= and 64 lowercase hex digits")
        if lookups.locked():
            body = {"error": {"code": "busy", "message": "too many lookups running"}}
            return web.Response(
                body=orjson.dumps(body), status=503, content_type="application/json"
            )
        async with lookups:
            ids = await find_tx(daemon, bytes.fromhex(tx))
        found = orjson.dumps({"tx": tx, "ids": ids})
        return web.Response(body=found, content_type="application/json", headers=SECURITY_HEADERS)

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
    app.router.add_get("/lookup", lookup)
    app.cleanup_ctx.append(prober)
    app.on_shutdown.append(on_shutdown)
