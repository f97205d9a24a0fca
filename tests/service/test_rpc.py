"""The node RPC over a real aiohttp server on a free port.

The node's block interval is an hour, so nothing happens unless a test produces a block
(``node.produce_block()``): a hostile request can then be checked to change nothing by
comparing height, state root and mempool before and after.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.node import Node, SQLiteBlockStore
from chains.service.rpc import RpcLimits, RpcServer, SignatureChecker
from chains.types import Tx


@dataclass
class Served:
    node: Node
    server: RpcServer
    chain: DevnetChain
    http: aiohttp.ClientSession

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def alice(self) -> PrivateKey:
        return self.chain.accounts["alice"]

    @property
    def bob(self) -> PrivateKey:
        return self.chain.accounts["bob"]

    def transfer(
        self, nonce: int, amount: int = 5, key: PrivateKey | None = None, chain_id: str = ""
    ) -> Tx:
        return Tx.create(
            key or self.alice,
            chain_id or self.node.chain_id,
            nonce,
            "bank",
            "transfer",
            {"to": self.bob.address, "denom": self.chain.denom, "amount": amount},
        )

    def snapshot(self) -> tuple[int, bytes, int, int]:
        n = self.node
        return (
            n.height,
            n.chain.state.root(),
            len(n.mempool),
            n.mempool.next_nonce(self.alice.address),
        )

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, dict[str, Any]]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.http.request(method, self.url + path, data=data, headers=headers) as r:
            assert r.content_type == "application/json"
            return r.status, orjson.loads(await r.read())


LIMITS = RpcLimits(max_body_bytes=256 * 1024, max_batch=50, commit_timeout=10)


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Served]:
    d = build_devnet(["chain-a"])[0]
    store = SQLiteBlockStore(tmp_path / "chain-a.sqlite3")
    node = Node.open(d.genesis, base_modules, d.validator_keys, store, block_interval=3600)
    async with (
        node,
        RpcServer(node, port=0, limits=LIMITS) as server,
        aiohttp.ClientSession() as http,
    ):
        s = Served(node, server, d, http)
        node.produce_block()  # height 1: something to read
        yield s


def assert_error(status: int, body: dict[str, Any], want_status: int, code: str) -> None:
    assert status == want_status, body
    err = body["error"]
    assert err["code"] == code, body
    assert isinstance(err["message"], str)
    assert err["message"]
    assert "\n" not in err["message"]
    assert "Traceback" not in err["message"]


async def commit_soon(node: Node, want: int = 1) -> None:
    """Produce a block once ``want`` transactions are waiting (a stand-in for the loop)."""
    for _ in range(500):
        if len(node.mempool) >= want:
            break
        await asyncio.sleep(0.01)
    node.produce_block()


# --- happy paths ----------------------------------------------------------------------


async def test_health_and_status(served: Served) -> None:
    status, body = await served.call("GET", "/healthz")
    assert status == 200
    assert body == {"ok": True, "chain_id": "chain-a", "height": 1}
    status, body = await served.call("GET", "/status")
    assert status == 200
    assert body["chain_id"] == "chain-a"
    assert body["height"] == 1
    assert body["latest_hash"] == served.node.get_block(1).header.hash.hex()  # type: ignore[union-attr]
    assert body["genesis_hash"] == served.node.chain.genesis_hash.hex()
    assert body["mempool"] == 0


async def test_submit_waits_for_commit(served: Served) -> None:
    tx = served.transfer(0)
    committer = asyncio.create_task(commit_soon(served.node))
    status, body = await served.call("POST", "/tx", tx.to_json())
    await committer
    assert status == 200, body
    assert body["tx_hash"] == tx.hash.hex()
    r = body["receipt"]
    assert r["ok"] is True
    assert r["height"] == 2
    assert r["index"] == 0
    assert r["events"][0]["type"] == "bank.transfer"
    status, body = await served.call("GET", f"/tx/{tx.hash.hex()}")
    assert status == 200
    assert body["receipt"] == r


async def test_submit_nowait_then_pending_nonce(served: Served) -> None:
    addr = served.alice.address
    status, body = await served.call("POST", "/tx?wait=false", served.transfer(0).to_json())
    assert status == 202
    assert body == {"tx_hash": served.transfer(0).hash.hex()}
    status, body = await served.call("GET", f"/accounts/{addr}/nonce")
    assert body == {"address": addr, "nonce": 0, "pending_nonce": 1}
    served.node.produce_block()
    status, body = await served.call("GET", f"/accounts/{addr}")
    assert status == 200
    assert body["nonce"] == 1
    assert body["pending_nonce"] == 1
    assert body["balances"] == {"usd": 10**12 - 5}
    status, body = await served.call("GET", f"/accounts/{served.bob.address}/balances")
    assert body["balances"] == {"usd": 10**12 + 5}


async def test_batch_nowait_and_wait(served: Served) -> None:
    txs = [served.transfer(n) for n in range(10)]
    status, body = await served.call("POST", "/txs?wait=false", {"txs": [t.to_json() for t in txs]})
    assert status == 200
    assert body["results"] == [{"tx_hash": t.hash.hex()} for t in txs]
    served.node.produce_block()
    more = [served.transfer(n) for n in range(10, 13)]
    committer = asyncio.create_task(commit_soon(served.node, 3))
    status, body = await served.call("POST", "/txs", {"txs": [t.to_json() for t in more]})
    await committer
    assert status == 200
    assert [r["receipt"]["index"] for r in body["results"]] == [0, 1, 2]
    assert all(r["receipt"]["ok"] for r in body["results"])


async def test_batch_reports_each_refusal_in_place(served: Served) -> None:
    txs = [served.transfer(0), served.transfer(5), served.transfer(1)]  # nonce 5 is a gap
    status, body = await served.call("POST", "/txs?wait=false", {"txs": [t.to_json() for t in txs]})
    assert status == 200
    res = body["results"]
    assert "error" not in res[0]
    assert "error" not in res[2]
    assert res[1]["error"]["code"] == "bad_nonce"
    assert res[1]["error"]["details"] == {"sender": served.alice.address, "expected": 1, "got": 5}
    assert len(served.node.mempool) == 2


async def test_blocks_headers_commits_validators_events(served: Served) -> None:
    tx = served.transfer(0)
    await served.call("POST", "/tx?wait=false", tx.to_json())
    block = served.node.produce_block()
    for ref in ("2", "latest"):
        status, body = await served.call("GET", f"/blocks/{ref}")
        assert status == 200
        assert body["block"] == block.to_json()
        status, body = await served.call("GET", f"/headers/{ref}")
        assert body == {"header": block.header.to_json(), "hash": block.header.hash.hex()}
        status, body = await served.call("GET", f"/commits/{ref}")
        assert body == {"commit": block.commit.to_json()}
    vals = served.node.get_validators(2)
    assert vals is not None
    status, body = await served.call("GET", "/validators/2")
    assert body == {"height": 2, "validators": vals.to_json(), "hash": vals.hash.hex()}
    status, body = await served.call("GET", "/events/2/0")
    assert status == 200
    assert body["proof"] == block.prove_event(0).to_json()


async def test_module_queries(served: Served) -> None:
    addr = served.alice.address
    status, body = await served.call("GET", f"/query/bank/balance?address={addr}&denom=usd")
    assert status == 200
    assert body == {"result": 10**12}
    status, body = await served.call("POST", "/query/bank/supply", {"denom": "usd"})
    assert status == 200
    assert body["result"] == len(served.chain.accounts) * 10**12  # every funded account
    status, body = await served.call("GET", f"/query/auth/nonce?address={addr}")
    assert body == {"result": 0}
    status, body = await served.call("GET", "/query/validators/next")
    assert status == 200
    assert len(body["result"]) == 4
    status, body = await served.call("POST", "/query/lightclient/client", {"client_id": "nope"})
    assert_error(status, body, 404, "not_found")
    status, body = await served.call("GET", "/query/nosuch/thing")
    assert_error(status, body, 404, "unknown_module")
    status, body = await served.call("GET", "/query/bank/nosuch")
    assert_error(status, body, 400, "invalid_argument")
    status, body = await served.call("GET", "/query/bank/balance?address=zz&denom=usd")
    assert_error(status, body, 400, "invalid_argument")


# --- hostile requests: a 4xx with one line, and nothing changes ---------------------------


def _hostile(s: Served) -> list[tuple[str, str, dict[str, Any], int, str]]:
    """(method, path, request kwargs, status, code)."""
    good = s.transfer(0).to_json()
    uppercase = dict(good, sender=str(good["sender"]).upper())
    neg = dict(good, nonce=-1)
    huge = dict(good, nonce=2**64)
    forged = dict(good, signature="00" * 64)
    other = s.transfer(0, chain_id="chain-b").to_json()
    big = {"txs": [good] * 2000}
    return [
        ("POST", "/tx", {"raw": b"{not json"}, 400, "malformed_json"),
        ("POST", "/tx", {"raw": b""}, 400, "malformed_json"),
        ("POST", "/tx", {"raw": b"[" * 5000}, 400, "malformed_json"),
        ("POST", "/tx", {"body": [1, 2]}, 400, "malformed_tx"),
        ("POST", "/tx", {"body": dict(good, extra=1)}, 400, "malformed_tx"),
        ("POST", "/tx", {"body": uppercase}, 400, "malformed_tx"),
        ("POST", "/tx", {"body": neg}, 400, "malformed_tx"),
        ("POST", "/tx", {"body": huge}, 400, "malformed_tx"),
        ("POST", "/tx", {"body": other}, 400, "wrong_chain"),
        ("POST", "/tx", {"body": forged}, 400, "invalid_signature"),
        ("POST", "/tx", {"body": s.transfer(7).to_json()}, 400, "bad_nonce"),
        (
            "POST",
            "/tx",
            {"body": good, "content_type": "text/plain"},
            415,
            "unsupported_media_type",
        ),
        ("POST", "/tx", {"raw": b"x" * (LIMITS.max_tx_bytes + 1)}, 413, "too_large"),
        ("POST", "/tx?wait=maybe", {"body": good}, 400, "bad_request"),
        ("POST", "/tx?foo=1", {"body": good}, 400, "bad_request"),
        ("POST", "/txs", {"body": big}, 413, "too_large"),
        ("POST", "/txs", {"body": {"txs": [good] * 51}}, 400, "bad_request"),
        ("POST", "/txs", {"body": {"txs": []}}, 400, "bad_request"),
        ("POST", "/txs", {"body": [good]}, 400, "bad_request"),
        ("POST", "/txs", {"body": {"txs": [good], "x": 1}}, 400, "bad_request"),
        ("POST", "/txs", {"body": {"txs": [good, {"nonce": 1}]}}, 400, "malformed_tx"),
        ("POST", "/txs", {"body": {"txs": [good, other]}}, 400, "wrong_chain"),
        ("POST", "/txs", {"body": {"txs": [good, forged]}}, 400, "invalid_signature"),
        ("GET", "/blocks/99", {}, 404, "unknown_height"),
        ("GET", "/blocks/0", {}, 404, "unknown_height"),
        ("GET", "/blocks/-1", {}, 400, "bad_request"),
        ("GET", "/blocks/1e3", {}, 400, "bad_request"),
        ("GET", "/blocks/+1", {}, 400, "bad_request"),
        ("GET", "/blocks/99999999999999999999999", {}, 400, "bad_request"),
        ("GET", "/blocks/1?x=1", {}, 400, "bad_request"),
        ("GET", "/headers/9223372036854775807", {}, 404, "unknown_height"),
        ("GET", "/events/1/0", {}, 404, "unknown_event"),
        ("GET", "/events/1/-1", {}, 400, "bad_request"),
        ("GET", "/tx/zz", {}, 400, "bad_request"),
        ("GET", "/tx/" + "AB" * 32, {}, 400, "bad_request"),
        ("GET", "/tx/" + "ab" * 32, {}, 404, "unknown_tx"),
        ("GET", "/accounts/xyz", {}, 400, "bad_request"),
        ("GET", "/nowhere", {}, 404, "not_found"),
        ("GET", "/tx", {}, 405, "method_not_allowed"),
        ("POST", "/query/bank/supply", {"raw": b"[]"}, 400, "bad_request"),
        ("POST", "/query/bank/supply", {"body": {"denom": 2**70}}, 400, "bad_request"),
        ("POST", "/query/BANK/supply", {"body": {}}, 400, "bad_request"),
    ]


async def test_hostile_requests_get_4xx_and_change_nothing(served: Served) -> None:
    for method, path, kw, want_status, code in _hostile(served):
        before = served.snapshot()
        status, body = await served.call(method, path, **kw)
        assert_error(status, body, want_status, code)
        assert served.snapshot() == before, (method, path)


async def test_internal_error_never_leaks(served: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*args: object) -> None:
        raise RuntimeError("secret /etc/passwd detail")

    monkeypatch.setattr(served.node.chain, "query", boom)
    status, body = await served.call("GET", "/query/bank/supply?denom=usd")
    assert_error(status, body, 500, "internal")
    assert "secret" not in orjson.dumps(body).decode()


async def test_stopping_server_refuses_new_work(served: Served) -> None:
    served.server.begin_shutdown()
    status, body = await served.call("GET", "/healthz")
    assert_error(status, body, 503, "unavailable")
    before = served.snapshot()
    status, body = await served.call("POST", "/tx", served.transfer(0).to_json())
    assert_error(status, body, 503, "unavailable")
    assert served.snapshot() == before


async def test_large_batches_are_verified_off_the_loop(served: Served) -> None:
    """Batches of 32+ go to the signature worker process; a forged one anywhere refuses
    the whole batch and nothing is admitted."""
    txs = [served.transfer(n) for n in range(40)]
    body = [t.to_json() for t in txs]
    body[35] = dict(body[35], signature="11" * 64)
    before = served.snapshot()
    status, reply = await served.call("POST", "/txs?wait=false", {"txs": body})
    assert_error(status, reply, 400, "invalid_signature")
    assert "txs[35]" in reply["error"]["message"]
    assert served.snapshot() == before
    status, reply = await served.call(
        "POST", "/txs?wait=false", {"txs": [t.to_json() for t in txs]}
    )
    assert status == 200
    assert len(served.node.mempool) == 40


@pytest.mark.parametrize("processes", [0, 1])
async def test_signature_checker_inline_and_in_a_worker_agree(processes: int) -> None:
    d = build_devnet(["chain-a"])[0]
    alice = d.accounts["alice"]
    txs = [Tx.create(alice, "chain-a", n, "bank", "transfer", {}) for n in range(40)]
    forged = Tx("chain-a", alice.public_key, 99, "bank", "transfer", {}, b"\x01" * 64)
    checker = SignatureChecker(processes)
    try:
        assert await checker.first_bad(txs) is None
        assert await checker.first_bad([*txs[:33], forged, *txs[33:]]) == 33
        assert await checker.first_bad([forged]) == 0  # small batches are checked inline
    finally:
        checker.close()


async def test_a_query_parameter_given_twice_is_refused_everywhere(served: Served) -> None:
    """``?wait=true&wait=false`` must not be read as whichever came last."""
    before = served.snapshot()
    tx = served.transfer(0).to_json()
    for method, path, body in (
        ("POST", "/tx?wait=true&wait=false", tx),
        ("POST", "/txs?wait=false&wait=false", {"txs": [tx]}),
        ("GET", "/status?x=1&x=1", None),
    ):
        status, reply = await served.call(method, path, body)
        assert_error(status, reply, 400, "bad_request")
        assert "twice" in reply["error"]["message"], reply
    assert served.snapshot() == before


async def test_a_body_that_never_finishes_is_answered_408(tmp_path: Path) -> None:
    """A client that announces a body and stops sending must not hold a handler (and its
    connection) forever."""
    d = build_devnet(["chain-a"])[0]
    store = SQLiteBlockStore(tmp_path / "chain-a.sqlite3")
    node = Node.open(d.genesis, base_modules, d.validator_keys, store, block_interval=3600)
    limits = dataclasses.replace(LIMITS, body_timeout=0.2)
    async with node, RpcServer(node, port=0, limits=limits) as server:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
        writer.write(
            b"POST /tx HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"chain_id":'
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        writer.close()
    assert head.startswith(b"HTTP/1.1 408"), head
    assert len(node.mempool) == 0
