"""HttpChain against a real RPC server: the same answers as the in-process handle, typed
refusals, failover to a second endpoint, retries on reads only."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.errors import BadNonce, InvalidArgument, UnknownModule, WrongChain
from chains.handle import ChainHandle, InProcessChain
from chains.node import Node, SQLiteBlockStore
from chains.service.retry import Backoff
from chains.service.rpc import RpcServer
from chains.service.rpc_client import HttpChain, RpcError, RpcUnavailable
from chains.types import Tx

FAST = Backoff(initial=0.01, maximum=0.05, attempts=4)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def chain(tmp_path: Path) -> AsyncIterator[tuple[Node, RpcServer, DevnetChain]]:
    d = build_devnet(["chain-a"])[0]
    node = Node.open(
        d.genesis,
        base_modules,
        d.validator_keys,
        SQLiteBlockStore(tmp_path / "a.sqlite3"),
        block_interval=0.05,
    )
    async with node, RpcServer(node, port=0) as server:
        await node.wait_for_height(1)
        yield node, server, d


def transfer(d: DevnetChain, nonce: int, amount: int = 7) -> Tx:
    return Tx.create(
        d.accounts["alice"],
        d.chain_id,
        nonce,
        "bank",
        "transfer",
        {"to": d.accounts["bob"].address, "denom": d.denom, "amount": amount},
    )


async def test_http_chain_answers_like_the_in_process_handle(
    chain: tuple[Node, RpcServer, DevnetChain],
) -> None:
    node, server, d = chain
    local: ChainHandle = InProcessChain(node)
    async with HttpChain("chain-a", [server.url], retry=FAST) as remote:
        handle: ChainHandle = remote
        receipt = await handle.submit(transfer(d, 0))
        assert receipt.ok
        assert receipt.events[0].type == "bank.transfer"
        h = receipt.height
        assert await handle.get_receipt(receipt.tx_hash) == receipt
        assert await handle.get_block(h) == await local.get_block(h)
        assert await handle.get_header(h) == await local.get_header(h)
        assert await handle.get_validators(h) == await local.get_validators(h)
        block = await local.get_block(h)
        assert block is not None
        assert await remote.get_commit(h) == block.commit
        assert await remote.get_commit(10**9) is None
        assert await handle.get_event_proof(h, 0) == await local.get_event_proof(h, 0)
        alice = d.accounts["alice"].address
        assert await handle.next_nonce(alice) == 1
        args = {"address": alice, "denom": d.denom}
        assert await handle.query("bank", "balance", args) == await local.query(
            "bank", "balance", args
        )
        assert await handle.latest_height() >= h
        assert await handle.get_block(10**9) is None
        assert await handle.get_event_proof(h, 99) is None
        assert await handle.get_receipt(b"\x01" * 32) is None


async def test_refusals_are_the_typed_core_errors(
    chain: tuple[Node, RpcServer, DevnetChain],
) -> None:
    _node, server, d = chain
    async with HttpChain("chain-a", [server.url], retry=FAST) as remote:
        with pytest.raises(BadNonce) as info:
            await remote.submit(transfer(d, 3))
        assert (info.value.expected, info.value.got) == (0, 3)
        foreign = Tx.create(d.accounts["alice"], "chain-b", 0, "bank", "transfer", {})
        with pytest.raises(WrongChain):
            await remote.submit(foreign)
        with pytest.raises(UnknownModule):
            await remote.query("nosuch", "x", {})
        with pytest.raises(InvalidArgument):
            await remote.query("bank", "balance", {"address": "zz"})


async def test_batch_submission(chain: tuple[Node, RpcServer, DevnetChain]) -> None:
    _node, server, d = chain
    async with HttpChain("chain-a", [server.url], retry=FAST) as remote:
        txs = [transfer(d, n) for n in range(20)] + [transfer(d, 50)]
        results = await remote.submit_batch(txs, wait=False)
        assert results[:20] == [t.hash for t in txs[:20]]
        assert isinstance(results[20], BadNonce)
        assert await remote.pending_nonce(d.accounts["alice"].address) == 20
        more = [transfer(d, n) for n in range(20, 25)]
        receipts = await remote.submit_batch(more, wait=True)
        assert all(getattr(r, "ok", False) for r in receipts)


async def test_failover_to_the_second_endpoint(chain: tuple[Node, RpcServer, DevnetChain]) -> None:
    _node, server, d = chain
    dead = f"http://127.0.0.1:{free_port()}"
    async with HttpChain("chain-a", [dead, server.url], retry=FAST) as remote:
        assert (await remote.get_header(1)) is not None
        assert remote._preferred == 1  # the next call goes straight to the live one
        # writes fail over too when the connection could not even be opened
        receipt = await remote.submit(transfer(d, 0))
        assert receipt.ok


async def test_connect_discovers_the_chain_id(chain: tuple[Node, RpcServer, DevnetChain]) -> None:
    _node, server, _d = chain
    remote = await HttpChain.connect([server.url], retry=FAST)
    async with remote:
        assert remote.chain_id == "chain-a"


async def test_a_foreign_chain_is_refused(chain: tuple[Node, RpcServer, DevnetChain]) -> None:
    _node, server, _d = chain
    async with HttpChain("chain-b", [server.url], retry=FAST) as remote:
        with pytest.raises(RpcError, match="wrong_chain"):
            await remote.get_header(1)


class Flaky:
    """A proxy that answers 503 to the first ``failures`` requests, then forwards."""

    def __init__(self, upstream: str, failures: int, stall: float = 0.0) -> None:
        self.upstream, self.failures, self.stall = upstream, failures, stall
        self.seen = 0
        self.session: aiohttp.ClientSession | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen += 1
        if self.stall:
            await asyncio.sleep(self.stall)
        if self.seen <= self.failures:
            return web.json_response(
                {"error": {"code": "internal", "message": "flaky"}}, status=503
            )
        assert self.session is not None
        async with self.session.request(
            request.method,
            self.upstream + request.path_qs,
            data=await request.read(),
            headers={"Content-Type": request.headers.get("Content-Type", "application/json")},
        ) as r:
            return web.Response(body=await r.read(), status=r.status, content_type=r.content_type)


@pytest.fixture
async def flaky_factory() -> AsyncIterator[object]:
    runners: list[web.AppRunner] = []
    session = aiohttp.ClientSession()

    async def make(upstream: str, failures: int, stall: float = 0.0) -> tuple[Flaky, str]:
        flaky = Flaky(upstream, failures, stall)
        flaky.session = session
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", flaky.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        runners.append(runner)
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return flaky, f"http://127.0.0.1:{port}"

    yield make
    for r in runners:
        await r.cleanup()
    await session.close()


async def test_reads_are_retried(
    chain: tuple[Node, RpcServer, DevnetChain], flaky_factory: object
) -> None:
    _node, server, _d = chain
    flaky, url = await flaky_factory(server.url, failures=3)  # type: ignore[operator]
    async with HttpChain("chain-a", [url], retry=FAST) as remote:
        header = await remote.get_header(1)
        assert header is not None
        assert header.height == 1
    assert flaky.seen == 4


async def test_reads_give_up_after_the_retry_budget(
    chain: tuple[Node, RpcServer, DevnetChain], flaky_factory: object
) -> None:
    _node, server, _d = chain
    flaky, url = await flaky_factory(server.url, failures=100)  # type: ignore[operator]
    async with HttpChain("chain-a", [url], retry=FAST) as remote:
        with pytest.raises(RpcUnavailable):
            await remote.get_header(1)
    assert flaky.seen == 1 + FAST.attempts  # type: ignore[operator]


async def test_writes_are_not_retried(
    chain: tuple[Node, RpcServer, DevnetChain], flaky_factory: object
) -> None:
    _node, server, d = chain
    flaky, url = await flaky_factory(server.url, failures=1)  # type: ignore[operator]
    async with HttpChain("chain-a", [url], retry=FAST) as remote:
        with pytest.raises(RpcError) as info:
            await remote.submit(transfer(d, 0))
        assert info.value.status == 503
    assert flaky.seen == 1
    stalled, url2 = await flaky_factory(server.url, failures=0, stall=1.0)  # type: ignore[operator]
    async with HttpChain("chain-a", [url2], retry=FAST, commit_timeout=0.2) as remote:
        with pytest.raises(RpcUnavailable):
            await remote.submit(transfer(d, 0))
    assert stalled.seen == 1
