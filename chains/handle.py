"""``ChainHandle``: how the relayer (and anyone else) reaches a chain.

One protocol, two implementations: :class:`InProcessChain` over a :class:`~chains.node.Node`
in this process, and an HTTP client against a node's RPC server (``chains.service.rpc_client``),
so the same relayer code drives chains in its own process or in others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from chains.encoding import JSONValue
from chains.engine import ChainConsensus
from chains.errors import InterlockError
from chains.node import Node
from chains.types import Block, EventProof, Header, Receipt, Tx, ValidatorSet

__all__ = ["ChainHandle", "InProcessChain"]


class ChainHandle(Protocol):
    """Read and write access to one chain. Reads are idempotent and safe to retry."""

    @property
    def chain_id(self) -> str: ...

    async def latest_height(self) -> int: ...

    async def get_consensus(self) -> ChainConsensus:
        """The chain's engine and genesis time (what checking its headers needs)."""

    async def get_block(self, height: int) -> Block | None: ...

    async def get_header(self, height: int) -> Header | None: ...

    async def get_validators(self, height: int) -> ValidatorSet | None:
        """The set that signed the block at ``height``."""

    async def get_event_proof(self, height: int, index: int) -> EventProof | None: ...

    async def get_receipt(self, tx_hash: bytes) -> Receipt | None: ...

    async def next_nonce(self, address: str) -> int: ...

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> JSONValue: ...

    async def pending_nonce(self, address: str) -> int:
        """The next nonce counting transactions admitted but not yet in a block."""

    async def submit(self, tx: Tx) -> Receipt:
        """Submit and wait for the receipt in a committed block (raises TxRejected)."""

    async def submit_batch(
        self, txs: Sequence[Tx], *, wait: bool = False
    ) -> list[Receipt | bytes | InterlockError]:
        """Submit many; one result per tx, in order: the receipt (``wait``) or the hash of
        an admitted transaction, or the typed error that refused it."""


class InProcessChain:
    """A :class:`ChainHandle` over a node running in this process."""

    def __init__(self, node: Node) -> None:
        self.node = node

    @property
    def chain_id(self) -> str:
        return self.node.chain_id

    async def latest_height(self) -> int:
        return self.node.height

    async def get_consensus(self) -> ChainConsensus:
        g = self.node.chain.genesis
        return ChainConsensus(g.consensus, g.time)

    async def get_block(self, height: int) -> Block | None:
        return self.node.get_block(height)

    async def get_header(self, height: int) -> Header | None:
        block = self.node.get_block(height)
        return None if block is None else block.header

    async def get_validators(self, height: int) -> ValidatorSet | None:
        return self.node.get_validators(height)

    async def get_event_proof(self, height: int, index: int) -> EventProof | None:
        block = self.node.get_block(height)
        if block is None or not 0 <= index < len(block.events):
            return None
        return block.prove_event(index)

    async def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        return self.node.get_receipt(tx_hash)

    async def next_nonce(self, address: str) -> int:
        return self.node.chain.next_nonce(address)

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> JSONValue:
        return self.node.chain.query(module, path, args)

    async def pending_nonce(self, address: str) -> int:
        return self.node.mempool.next_nonce(address)

    async def submit(self, tx: Tx) -> Receipt:
        return await self.node.submit(tx)

    async def submit_batch(
        self, txs: Sequence[Tx], *, wait: bool = False
    ) -> list[Receipt | bytes | InterlockError]:
        out: list[Receipt | bytes | InterlockError] = []
        futures: list[asyncio.Future[Receipt] | None] = []
        for tx in txs:  # admitted in order, as the RPC does
            try:
                futures.append(self.node.submit_nowait(tx))
                out.append(tx.hash)
            except InterlockError as exc:
                futures.append(None)
                out.append(exc)
        if wait:
            for i, fut in enumerate(futures):
                if fut is not None:
                    try:
                        out[i] = await fut
                    except InterlockError as exc:
                        out[i] = exc
        return out
