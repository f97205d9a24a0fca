"""Deterministic devnet chains with the htlc module, driven block by block."""

from __future__ import annotations

import asyncio
import hashlib as _hashlib
from collections.abc import Mapping, Sequence
from typing import Any

from chains.bank import get_balance
from chains.chain import Chain
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.errors import BadNonce, DuplicateTx
from chains.module import Module
from chains.types import Block, EventProof, Header, Receipt, Tx, ValidatorSet
from htlc.driver import Party, SwapDriver
from htlc.module import HTLCModule
from htlc.store import MemorySwapStore, SwapStore
from htlc.swap import ChainParams, Safety, SafetyPolicy, SwapTerms, plan_swap


def htlc_modules() -> list[Module]:
    return [*base_modules(), HTLCModule()]


def devnet(n: int = 2, **kw: Any) -> list[DevnetChain]:
    return build_devnet([f"chain-{c}" for c in "abcdefgh"[:n]], **kw)


class Sim:
    """One chain, a clock, and nonce bookkeeping: ``run(key, method, args)`` = one block."""

    def __init__(self, dev: DevnetChain, interval_ms: int = 1000) -> None:
        self.dev = dev
        engine = dev.genesis.consensus  # a PoS chain has staking for validators
        self.chain: Chain = dev.build(lambda: [*base_modules(engine), HTLCModule()])
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

    async def pending_nonce(self, address: str) -> int:
        queued = sum(1 for t in self.sim.pending if t.sender_address == address)
        return self.sim.chain.next_nonce(address) + queued

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


# --- two chains, two parties, drivers ------------------------------------------------------


POLICY = SafetyPolicy(reaction_ms=2000, min_delta_ms=5000)


class Crash(BaseException):
    """A simulated process crash (BaseException: nothing in the driver may swallow it)."""


class CrashingStore:
    """Delegates to ``inner`` and crashes right after the ``crash_after``-th transition write."""

    def __init__(self, inner: SwapStore, crash_after: int | None = None) -> None:
        self.inner = inner
        self.crash_after = crash_after
        self.writes = 0

    def create(self, swap: Any) -> None:
        self.inner.create(swap)

    def update(self, swap: Any) -> None:
        self.update_many([swap])

    def update_many(self, swaps: Sequence[Any]) -> None:
        for s in swaps:  # one at a time, so a crash can fall between any two transitions
            self.inner.update_many([s])
            self.writes += 1
            if self.crash_after is not None and self.writes == self.crash_after:
                raise Crash(f"crash after transition {self.writes} ({s.state.value})")

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class World:
    """Chains A and B (manual blocks) and helpers to run two parties' drivers."""

    def __init__(
        self,
        policy: SafetyPolicy = POLICY,
        interval_ms: int = 1000,
        finality: tuple[int, int] = (0, 0),
    ) -> None:
        da, db = devnet(2)
        self.A, self.B = Sim(da, interval_ms), Sim(db, interval_ms)
        self.safety = Safety(
            ChainParams(self.A.chain_id, interval_ms, finality[0]),
            ChainParams(self.B.chain_id, interval_ms, finality[1]),
            policy,
        )
        self.alice = Party(self.A.key("alice"), self.B.key("alice"))  # initiator
        self.bob = Party(self.A.key("bob"), self.B.key("bob"))  # participant

    def driver(self, party: Party, store: SwapStore | None = None) -> SwapDriver:
        return SwapDriver(
            party, ManualChain(self.A), ManualChain(self.B), store or MemorySwapStore(), self.safety
        )

    def terms(self, secret: bytes, give: int = 100, take: int = 90, **kw: Any) -> SwapTerms:
        return plan_swap(
            self.safety,
            initiator_a=self.alice.key_a.address,
            participant_a=self.bob.key_a.address,
            participant_b=self.bob.key_b.address,
            initiator_b=self.alice.key_b.address,
            give=(self.A.dev.denom, give),
            take=(self.B.dev.denom, take),
            hashlock=_hashlib.sha256(secret).digest(),
            height_a=self.A.height,
            height_b=self.B.height,
            **kw,
        )

    async def blocks(self, a: bool = True, b: bool = True) -> None:
        """Let submissions reach the chains, produce a block on each, deliver receipts."""
        for _ in range(3):
            await asyncio.sleep(0)
        if a:
            self.A.produce()
        if b:
            self.B.produce()
        for _ in range(3):
            await asyncio.sleep(0)

    def failed(self) -> list[Receipt]:
        return failed_htlc_receipts(self.A) + failed_htlc_receipts(self.B)


def secret_of(i: int) -> bytes:
    return _hashlib.sha256(b"secret-%d" % i).digest()
