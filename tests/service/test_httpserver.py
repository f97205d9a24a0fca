"""The node's RPC server against slow, greedy and malformed clients, and a failed node.

Real sockets against a real server on a free port. No timing assertions: deadlines are
generous bounds on liveness, never measurements.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp import web

from chains.devnet import base_modules, build_devnet
from chains.node import Node, SQLiteBlockStore
from chains.service.httpserver import HardenedRunner, ServerLimits, connection_cap
from chains.service.rpc import RpcLimits, RpcServer
from chains.types import Tx

LIMITS = RpcLimits(header_timeout=0.5, max_connections=16, commit_timeout=10)


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RpcServer]:
    [d] = build_devnet(["chain-a"])
    store = SQLiteBlockStore(tmp_path / "chain-a.sqlite3")
    node = Node.open(d.genesis, base_modules, d.validator_keys, store, block_interval=3600)
    async with node, RpcServer(node, port=0, limits=LIMITS) as srv:
        yield srv


async def health(url: str) -> int:
    async with aiohttp.ClientSession() as http, http.get(url + "/healthz") as r:
        return r.status


async def is_closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1), within) == b""
    except (ConnectionError, TimeoutError):
        return isinstance(reader.exception(), ConnectionError) if reader.exception() else False


async def test_slowloris_connections_are_capped_and_cut_off(
    server: RpcServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9: trickling connections exhausted the descriptors (health checks timed out)
    and the accept loop logged a traceback per refused connection."""
    caplog.set_level(logging.DEBUG)
    conns: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    for _ in range(40):
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        conns.append((reader, writer))

    async def trickle(writer: asyncio.StreamWriter) -> None:
        for _ in range(100):  # a byte every 50 ms never resets the deadline
            try:
                writer.write(b"a")
                await writer.drain()
            except (ConnectionError, RuntimeError):
                return
            await asyncio.sleep(0.05)

    tricklers = [asyncio.create_task(trickle(w)) for _, w in conns]
    try:
        closed = await asyncio.gather(*(is_closed_by_server(r, 20) for r, _ in conns))
        assert all(closed)
        assert server.stats.refused >= 40 - 16
        assert server.stats.header_timeouts >= 1
        assert server.stats.refused + server.stats.header_timeouts == 40
        assert await health(server.url) == 200  # the server serves again
    finally:
        for t in tricklers:
            t.cancel()
        for _, w in conns:
            w.close()
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert noisy == []


async def test_health_checks_get_through_while_strangers_trickle(server: RpcServer) -> None:
    """With the cap full of stalled connections, a health check is refused at once (not
    left hanging), and gets through as soon as the header deadline frees a slot."""
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(16)]
    for _, w in held:
        w.write(b"GET / HTTP/1.1\r\n")
    ok = 0
    for _ in range(200):  # bounded poll
        try:
            if await asyncio.wait_for(health(server.url), 5) == 200:
                ok += 1
                break
        except (aiohttp.ClientError, TimeoutError):
            await asyncio.sleep(0.05)
    for _, w in held:
        w.close()
    assert ok == 1


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"POST /tx HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 12abc\r\n\r\n",
        b"GET /<script>alert(1)</script> HTTP/9.9\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nBad Header Name: 1\r\n\r\n",
    ],
)
async def test_http_protocol_errors_answer_the_json_error_shape(
    server: RpcServer, request_bytes: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 9: they answered plain text echoing the input and logged a traceback each."""
    caplog.set_level(logging.DEBUG)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(request_bytes)
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].split(b" ")[1] == b"400", raw[:200]
    assert b"application/json" in head.lower()
    assert orjson.loads(body) == {
        "error": {"code": "bad_request", "message": "malformed HTTP request"}
    }
    assert server.stats.protocol_errors == 1
    assert [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info] == []


def test_the_connection_cap_fits_the_descriptor_limit() -> None:
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert connection_cap(10**9) <= max(8, soft - 64)
    assert connection_cap(5) == 5 or soft - 64 < 5


async def test_any_aiohttp_app_can_use_the_hardened_runner() -> None:
    """The relayer daemon's HTTP API takes the same guards: one place, any app."""

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/", hello)
    runner = HardenedRunner(app, limits=ServerLimits(header_timeout=0.3, max_connections=4))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\n")  # and never the rest
        assert await is_closed_by_server(reader, 10)
        writer.close()
        async with aiohttp.ClientSession() as http, http.get(f"http://127.0.0.1:{port}/") as r:
            assert await r.json() == {"ok": True}
        assert runner.stats.header_timeouts == 1
    finally:
        await runner.cleanup()


# --- a node that stopped producing blocks ----------------------------------------------


class BrokenStore(SQLiteBlockStore):
    """Fails to save a block as a second process on the same file made it fail."""

    broken = False

    def save_block(self, *args: Any, **kwargs: Any) -> None:
        if self.broken:
            raise sqlite3.IntegrityError("UNIQUE constraint failed: blocks.height")
        super().save_block(*args, **kwargs)


async def test_a_failed_node_reports_unhealthy_and_keeps_internals_out(tmp_path: Path) -> None:
    """Issue 9: after a fail-stop /healthz still said 200 and /tx's 503 carried the raw
    internal error text."""
    [d] = build_devnet(["chain-a"])
    store = BrokenStore(tmp_path / "chain-a.sqlite3")
    node = Node.open(d.genesis, base_modules, d.validator_keys, store, block_interval=0.02)
    async with node, RpcServer(node, port=0, limits=LIMITS) as srv, aiohttp.ClientSession() as h:
        await node.wait_for_height(1)
        store.broken = True
        for _ in range(500):  # bounded: the next block fails
            if node.failure is not None:
                break
            await asyncio.sleep(0.01)
        assert node.failure is not None
        async with h.get(srv.url + "/healthz") as r:
            assert r.status == 503
            assert (await r.json())["error"]["code"] == "unavailable"
        alice, bob = d.accounts["alice"], d.accounts["bob"]
        tx = Tx.create(
            alice,
            "chain-a",
            0,
            "bank",
            "transfer",
            {"to": bob.address, "denom": d.denom, "amount": 1},
        )
        async with h.post(
            srv.url + "/tx",
            data=orjson.dumps(tx.to_json()),
            headers={"Content-Type": "application/json"},
        ) as r:
            text = await r.text()
            assert r.status == 503
        assert orjson.loads(text) == {
            "error": {"code": "unavailable", "message": "node stopped producing blocks"}
        }
        assert "UNIQUE" not in text


async def test_running_out_of_descriptors_is_one_warning_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """asyncio reports an accept() that found no free descriptor at ERROR with a
    traceback; a guarded server's process says it in one WARNING line instead."""
    HardenedRunner(web.Application())  # installs the filter on the asyncio logger
    loop = asyncio.get_running_loop()
    try:
        raise OSError(24, "Too many open files")
    except OSError as exc:
        flood = exc  # with a traceback, as asyncio's accept loop has it
    with caplog.at_level(logging.INFO):
        loop.call_exception_handler(
            {"message": "socket.accept() out of system resource", "exception": flood,
             "socket": "<listening socket>"}
        )  # fmt: skip
        for _ in range(50):  # a flood: folded into the next line, 5 s on
            loop.call_exception_handler(
                {"message": "socket.accept() out of system resource", "exception": flood}
            )
        loop.call_exception_handler({"message": "something else", "exception": ValueError()})
    (mine, other) = [r for r in caplog.records if r.name == "asyncio"]
    assert mine.levelno == logging.WARNING
    assert mine.exc_info is None
    text = mine.getMessage()
    assert "\n" not in text
    assert "Too many open files" in text
    assert "Traceback" not in caplog.text.split("something else")[0]
    assert other.levelno == logging.ERROR  # nothing else is touched
    assert other.exc_info is not None
