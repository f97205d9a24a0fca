"""Hardening for every aiohttp server of the project: slow and greedy clients, bad HTTP.

aiohttp bounds a request's line and headers in size, not in time, and its only clock
on an idle connection is the keep-alive timeout (an hour by default). A stranger who
opens connections and trickles a header byte now and then (slowloris) then holds one
file descriptor each until the process runs out: health checks time out, and the accept
loop logs a traceback per refused connection. HTTP protocol errors (``Content-Length:
-5``) are answered in plain text that echoes the input, and logged with a traceback each.

:class:`HardenedRunner` is an ``aiohttp.web.AppRunner`` that adds, per connection:

* a **header deadline**: the request line and headers of each request must arrive within
  ``header_timeout`` of the connection's first byte (of the connection, for the first);
  otherwise the connection is closed (counted, logged at DEBUG only);
* a **connection cap**: past ``max_connections`` open connections (further capped by the
  process's file descriptor limit, see :func:`connection_cap`) a new connection is closed
  at once, before any work, with no traceback; the accept loop never runs out of
  descriptors, so health checks on a fresh connection still get through once the cap
  frees up;
* **protocol errors in the JSON error shape**: ``{"error": {"code": "bad_request",
  "message": "malformed HTTP request"}}`` (never the input), logged at DEBUG only.

Use it where an ``AppRunner`` would go::

    runner = HardenedRunner(app, limits=ServerLimits(max_connections=256))
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
"""

from __future__ import annotations

import asyncio
import logging
import resource
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

__all__ = ["HardenedRunner", "ServerLimits", "ServerStats", "connection_cap"]

log = logging.getLogger("interlock.http")

FD_RESERVE = 64
"""Descriptors kept out of the connection cap: the store, the bus, workers, logs."""


@dataclass(frozen=True, slots=True)
class ServerLimits:
    """What one client connection may hold of a server."""

    header_timeout: float = 10.0
    """Seconds for a request's line and headers to arrive (a body has its own limit)."""
    max_connections: int = 1024
    """Open connections at most (lowered to fit the descriptor limit)."""
    keepalive_timeout: float = 75.0
    """Seconds an idle keep-alive connection stays open between requests."""


@dataclass(slots=True)
class ServerStats:
    """Counters of what the guards refused (mutable: the runner's bookkeeping)."""

    refused: int = 0
    """Connections closed at once because the cap was reached."""
    header_timeouts: int = 0
    """Connections closed because a request's headers did not arrive in time."""
    protocol_errors: int = 0
    """Requests answered 4xx because they were not valid HTTP."""


def connection_cap(wanted: int, reserve: int = FD_RESERVE) -> int:
    """``wanted``, lowered to fit the soft descriptor limit less ``reserve`` (but not
    below 8: a server must take some connections)."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    return min(wanted, max(8, soft - reserve))


def _json_error(status: int, code: str, message: str) -> web.Response:
    body = orjson.dumps({"error": {"code": code, "message": message}})
    resp = web.Response(body=body, status=status, content_type="application/json")
    resp.force_close()
    return resp


class _GuardedHandler(RequestHandler):
    """aiohttp's connection protocol with the header deadline, the cap and JSON errors.

    Reads three of aiohttp's private fields (``_request_count``, ``_messages``,
    ``_current_request``): tests/service/test_httpserver.py breaks if they change.
    """

    def __init__(self, manager: _GuardedServer, **kwargs: Any) -> None:
        super().__init__(manager, **kwargs)
        self._guard = manager
        self._deadline: asyncio.TimerHandle | None = None
        self._armed_at_count = 0

    # -- the cap
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        server = self._guard
        if len(server.connections) >= server.cap:
            server.stats.refused += 1
            self._manager = None  # connection_lost will then do nothing
            if isinstance(transport, asyncio.Transport):
                transport.abort()  # RST: the descriptor is freed at once
            else:
                transport.close()
            return
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: BaseException | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    # -- the header deadline
    def _arm(self) -> None:
        if self._deadline is None:
            self._armed_at_count = self._request_count
            self._deadline = self._loop.call_later(
                self._guard.limits.header_timeout, self._header_deadline
            )

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _busy(self) -> bool:
        """A request is parsed (queued or being handled): the headers are in."""
        return bool(self._messages) or self._current_request is not None

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count > self._armed_at_count or self._busy():
            self._disarm()
            self._armed_at_count = self._request_count
        elif data and not self._busy():
            self._arm()  # the first bytes of a new request: its headers are now due

    def _header_deadline(self) -> None:
        self._deadline = None
        if self._request_count > self._armed_at_count or self._busy():
            return
        if self.transport is None:
            return
        self._guard.stats.header_timeouts += 1
        log.debug("closing a connection whose request headers did not arrive in time")
        self.force_close()

    # -- protocol errors
    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if request.writer.output_size > 0:
            raise ConnectionError("response already started; cannot answer the error")
        if status < 500:
            self._guard.stats.protocol_errors += 1
            log.debug("refused a malformed HTTP request: %.200s", " ".join(str(exc).split()))
            return _json_error(status, "bad_request", "malformed HTTP request")
        log.error("internal error serving a request: %r", exc)
        return _json_error(status, "internal", "internal error (see the server's log)")


class _GuardedServer(web.Server):
    """aiohttp's connection factory, making :class:`_GuardedHandler` connections."""

    def __init__(self, *args: Any, limits: ServerLimits, stats: ServerStats, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.stats = stats
        self.cap = connection_cap(limits.max_connections)

    def __call__(self) -> RequestHandler:
        return _GuardedHandler(self, loop=self._loop, **self._kwargs)


ACCEPT_EXHAUSTED = "socket.accept() out of system resource"
"""How asyncio's default exception handler opens its report of an ``accept()`` that
failed for want of descriptors (EMFILE/ENFILE), after which it pauses accepting for a
second."""


class OneLineAcceptExhausted(logging.Filter):
    """asyncio reports every ``accept()`` that runs out of descriptors at ERROR, with a
    traceback. A flood can reach that point even under the connection cap: one
    ``accept`` burst takes up to the listen backlog before the cap's check runs and
    aborts the surplus. This filter, on the ``asyncio`` logger, makes such reports one
    WARNING line at most every :attr:`every` seconds, counting those it folded in (each
    listening socket reports its own, so a flood gives many a second); everything else
    passes unchanged."""

    every = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._last = float("-inf")
        self._folded = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith(ACCEPT_EXHAUSTED):
            if record.created - self._last < self.every:
                self._folded += 1
                return False
            self._last, folded, self._folded = record.created, self._folded, 0
            exc = record.exc_info[1] if record.exc_info else None
            record.msg = (
                "accept paused: out of descriptors (%s); new connections wait "
                "(%d more such reports folded in)"
            )
            record.args = (exc if exc is not None else "no detail", folded)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


_ACCEPT_FILTER = OneLineAcceptExhausted()


class HardenedRunner(web.AppRunner):
    """An ``AppRunner`` whose connections are guarded (see the module docstring).

    ``stats`` counts what the guards refused; ``cap`` is the connection cap in force.
    """

    def __init__(
        self, app: web.Application, *, limits: ServerLimits | None = None, **kwargs: Any
    ) -> None:
        logging.getLogger("asyncio").addFilter(_ACCEPT_FILTER)  # a set: added once
        self.limits = limits or ServerLimits()
        kwargs.setdefault("keepalive_timeout", self.limits.keepalive_timeout)
        super().__init__(app, **kwargs)
        self.stats = ServerStats()

    @property
    def cap(self) -> int:
        return connection_cap(self.limits.max_connections)

    async def _make_server(self) -> web.Server:
        base = await super()._make_server()
        # the same server aiohttp would make, with our connection class
        return _GuardedServer(
            base.request_handler,
            request_factory=base.request_factory,
            handler_cancellation=base.handler_cancellation,
            loop=base._loop,
            limits=self.limits,
            stats=self.stats,
            **base._kwargs,
        )
