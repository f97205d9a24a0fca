"""The daemon's requests fit the chain RPC's body limits whatever the backlog.

A relayer that falls behind (a loaded machine, a long outage) builds big batches; a chain's
RPC refuses a request body over its limits with 413 before reading it (``RpcLimits``:
8 MiB for ``POST /txs``, 68 KiB for ``POST /query``). A batch refused that way would be
retried whole, and refused again, forever. These fakes answer as the server does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import orjson

from bridge.module import MAX_PENDING_QUERY
from bridge.relay import Packet
from chains.crypto import PrivateKey
from chains.encoding import JSONValue
from chains.errors import InterlockError
from chains.handle import ChainHandle
from chains.service.rpc import RpcLimits
from chains.service.rpc_client import RpcError
from chains.types import MAX_TX_BYTES, Receipt, Tx
from relayer.metrics import Metrics
from relayer.store import RelayerStore
from relayer.submitter import Call, Submitter
from relayer.transfer import TransferWorker

LIMITS = RpcLimits()
BIG_NONCE = 2**53 - 1


class LimitedChain:
    """A chain handle that refuses, as the RPC server does, a body over its limits."""

    def __init__(self, chain_id: str) -> None:
        self.chain_id = chain_id
        self.bodies: list[int] = []
        self.nonce = 0

    async def pending_nonce(self, address: str) -> int:
        return self.nonce

    async def submit_batch(
        self, txs: Sequence[Tx], *, wait: bool = False
    ) -> list[Receipt | bytes | InterlockError]:
        size = len(orjson.dumps({"txs": [t.to_json() for t in txs]}))
        self.bodies.append(size)
        if size > LIMITS.max_body_bytes:
            raise RpcError("fake", 413, "too_large", "request body over the limit")
        out: list[Receipt | bytes | InterlockError] = []
        for t in txs:
            assert t.nonce == self.nonce
            self.nonce += 1
            out.append(Receipt(t.hash, 1, 0, True, "ok", "", 0, ()))
        return out

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> JSONValue:
        size = len(orjson.dumps(dict(args)))
        self.bodies.append(size)
        if size > LIMITS.max_tx_bytes:
            raise RpcError("fake", 413, "too_large", "request body over the limit")
        assert (module, path) == ("bridge", "pending")
        return cast(JSONValue, args["packets"])  # everything asked is still to do


async def test_a_batch_of_calls_above_the_body_limit_goes_in_several_requests() -> None:
    chain = LimitedChain("chain-b")
    key = PrivateKey.derive("interlock-devnet", "relayer")
    submitter = Submitter(cast(ChainHandle, chain), key, Metrics())
    # near-full transactions, as proof bundles packed up to the size budget are
    blob = "ab" * ((MAX_TX_BYTES - 4096) // 2)
    calls = [Call("bridge", "mint", {"bundles": [blob]}) for _ in range(200)]
    assert LIMITS.max_body_bytes < 200 * MAX_TX_BYTES  # one request could not carry them
    results = await submitter.submit(calls)
    assert all(isinstance(r, Receipt) and r.ok for r in results)
    assert len(results) == 200
    assert chain.nonce == 200
    assert len(chain.bodies) > 1
    assert max(chain.bodies) <= LIMITS.max_body_bytes


async def test_pending_queries_fit_the_query_body_limit(tmp_path: Path) -> None:
    src, dst = LimitedChain("chain-a"), LimitedChain("chain-b")
    store = RelayerStore(tmp_path / "relayer.sqlite3")
    try:
        worker = TransferWorker(
            cast(ChainHandle, src),
            cast(ChainHandle, dst),
            Submitter(cast(ChainHandle, dst), PrivateKey.derive("x", "y"), Metrics()),
            store,
            Metrics(),
        )
        # the longest pairs there are: the longest kind, the largest nonce
        # the query carries kinds and nonces only: a proof with the longest kind's event
        proof = cast(Any, SimpleNamespace(event=SimpleNamespace(type="bridge.released")))
        n = 2 * MAX_PENDING_QUERY + 5
        packets = [Packet("acknowledge", BIG_NONCE - i, proof) for i in range(n)]
        todo = await worker._undelivered(packets)
    finally:
        store.close()
    assert [p.nonce for p in todo] == [p.nonce for p in packets]
    assert max(dst.bodies) <= LIMITS.max_tx_bytes
