"""Deterministic devnet chains with the htlc module, driven block by block."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from chains.bank import get_balance
from chains.chain import Chain
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.errors import BadNonce, DuplicateTx, InterlockError
from chains.module import Module
from chains.types import Block, EventProof, Header, Receipt, Tx, ValidatorSet
from htlc.module import HTLCModule


def htlc_modules() -> list[Module]:
    return [*base_modules(), HTLCModule()]


def devnet(n: int = 2, **kw: Any) -> list[DevnetChain]:
    return build_devnet([f"chain-{c}" for c in "abcdefgh"[:n]], **kw)


class Sim:
    """One chain, a clock, and nonce bookkeeping: ``run(key, method, args)`` = one block."""

    def __init__(self, dev: DevnetChain, interval_ms: int = 1000) -> None:
        self.dev = dev
        self.chain: Chain = dev.build(htlc_modules)
        self.interval_ms = interval_ms
        self.time = dev.genesis.time
        self.blocks: dict[int, Block] = {}
        self.vals: dict[int, ValidatorSet] = {}
        self.receipts: dict[bytes, Receipt] = {}
        self.pending: list[Tx] = []
        self.waiters: dict[bytes, asyncio.Future[Receipt]] = {}

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    @property
    def height(self) -> int:
        return self.chain.height

    def key(self, name: str) -> PrivateKey:
        return self.dev.accounts[name]

    def tx(self, key: PrivateKey, method: str, args: Mapping[str, Any]) -> Tx:
        nonce = self.chain.next_nonce(key.address) + sum(
            1 for t in self.pending if t.sender == key.public_key
        )
        return Tx.create(key, self.chain_id, nonce, "htlc", method, dict(args))

    def produce(self, txs: Sequence[Tx] = ()) -> Block:
        self.time += self.interval_ms
        todo, self.pending = [*self.pending, *txs], []
        result = self.chain.produce_block(todo, self.time, self.dev.validator_keys)
        block = result.block
        self.blocks[block.height] = block
        self.vals[block.height] = result.validators
        for r in block.receipts:
            self.receipts[r.tx_hash] = r
            fut = self.waiters.pop(r.tx_hash, None)
            if fut is not None and not fut.done():
                fut.set_result(r)
        for tx, err in result.dropped:
            fut = self.waiters.pop(tx.hash, None)
            if fut is not None and not fut.done():
                fut.set_exception(err)
        return block

    def advance_to(self, height: int) -> None:
        """Produce empty blocks until the chain's height is ``height``."""
        while self.height < height:
            self.produce()

    def run(self, key: PrivateKey, method: str, args: Mapping[str, Any]) -> Receipt:
        """Submit one call and produce the block that executes it."""
        tx = self.tx(key, method, args)
        block = self.produce([tx])
        return block.receipts[-1]

    def balance(self, who: str | PrivateKey, denom: str | None = None) -> int:
        addr = who.address if isinstance(who, PrivateKey) else who
        return get_balance(self.chain.state, addr, denom or self.dev.denom)

    def query(self, path: str, args: Mapping[str, Any]) -> Any:
        return self.chain.query("htlc", path, args)


class ManualChain:
    """A ChainHandle over a :class:`Sim`: submissions wait for a block the test produces."""

    def __init__(self, sim: Sim) -> None:
        self.sim = sim
        self.submitted: list[Tx] = []

    @property
    def chain_id(self) -> str:
        return self.sim.chain_id

    async def latest_height(self) -> int:
        return self.sim.height

    async def get_block(self, height: int) -> Block | None:
        return self.sim.blocks.get(height)

    async def get_header(self, height: int) -> Header | None:
        b = self.sim.blocks.get(height)
        return None if b is None else b.header

    async def get_validators(self, height: int) -> ValidatorSet | None:
        return self.sim.vals.get(height)

    async def get_event_proof(self, height: int, index: int) -> EventProof | None:
        b = self.sim.blocks.get(height)
        return None if b is None else b.prove_event(index)

    async def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        return self.sim.receipts.get(tx_hash)

    async def next_nonce(self, address: str) -> int:
        return self.sim.chain.next_nonce(address)

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> Any:
        return self.sim.chain.query(module, path, args)

    async def submit(self, tx: Tx) -> Receipt:
        if any(t.hash == tx.hash for t in self.sim.pending):
            raise DuplicateTx(tx.hash.hex())
        chain = self.sim.chain
        queued = [t for t in self.sim.pending if t.sender == tx.sender]
        want = chain.next_nonce(tx.sender_address) + len(queued)
        if tx.nonce != want:
            raise BadNonce(tx.sender_address, want, tx.nonce)
        chain.check_tx(tx, want)
        self.sim.pending.append(tx)
        self.submitted.append(tx)
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self.sim.waiters[tx.hash] = fut
        return await fut


def failed_htlc_receipts(sim: Sim) -> list[Receipt]:
    return [r for r in sim.receipts.values() if not r.ok]


__all__ = [
    "InterlockError",
    "ManualChain",
    "Sim",
    "devnet",
    "failed_htlc_receipts",
    "htlc_modules",
]
