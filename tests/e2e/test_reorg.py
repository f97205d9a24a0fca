"""Reorganisations of a proof-of-work and of a proof-of-stake chain under the running
relayer, as processes.

chain-w (PoW, its node mines) or chain-s (PoS, its node seals with its staked keys) and
chain-b (BFT) as ``interlock chain start`` processes, a real Mosquitto, ``interlock
start`` between them. The attacker is a second node of the source chain in this process
(:class:`Attacker`, the same config file, so the same genesis): it takes the chain's
blocks over RPC up to a fork point, then makes a branch of its own in which alice's lock
is replaced by a payment to dave with the same nonce (a double spend), and offers it to
the chain's node through ``POST /blocks`` as a peer would. On chain-w it mines with a
key of its own (more hash power, for a moment); on chain-s it holds the validators' keys
(the stake itself equivocating: its branch wins by being longer, its blocks sealed
faster than the chain's interval, as the time rule allows). Everything is checked
through the chains' RPC and the relayer's ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chains.node import Node, SQLiteBlockStore
from chains.service.bus import open_bus
from chains.service.rpc_client import HttpChain, RpcError
from chains.service.wire import ChainReorg, decode, reorgs_topic
from chains.types import Block, Receipt, Tx
from interlock.config import load_chain_config
from tests.conftest import Mosquitto
from tests.e2e.harness import CONFIGS, DEADLINE, balance, chain, eventually, key, network, supply
from tests.e2e.test_relayer import wait_ready

pytestmark = [pytest.mark.slow, pytest.mark.broker]

B = "chain-b"
ALICE, BOB, CAROL, DAVE = key("alice"), key("bob"), key("carol"), key("dave")
INTERVAL = 0.5
DEPTH = 10
"""The source's finality depth here: a lock's block is final 5 s after it is made, time
enough for the attacker to make a winning branch (a few blocks, ~50 ms each)."""


@dataclass(frozen=True)
class Source:
    """The source chain under attack."""

    chain_id: str
    denom: str
    staked: bool
    """PoS: the attacker seals with the validators' keys (else: mines with its own)."""


SOURCES = [Source("chain-w", "gbp", staked=False), Source("chain-s", "chf", staked=True)]


@pytest.fixture(params=SOURCES, ids=lambda src: src.chain_id)
def src(request: pytest.FixtureRequest) -> Source:
    source: Source = request.param
    return source


def source_config(tmp: Path, src: Source) -> Path:
    """configs/<chain>.toml with ``finality_depth = DEPTH``."""
    text = (CONFIGS / f"{src.chain_id}.toml").read_text()
    assert "finality_depth = 6" in text
    path = tmp / f"{src.chain_id}.toml"
    path.write_text(text.replace("finality_depth = 6", f"finality_depth = {DEPTH}"))
    return path


class Attacker:
    """A node of the source chain in this process that makes its own branch."""

    def __init__(self, config: Path, store: Path, staked: bool) -> None:
        cs = load_chain_config(config).chain.with_interval(INTERVAL)
        keys = cs.validator_keys if staked else (key("mallory"),)
        self.node = Node.open(cs.genesis, cs.build_modules, keys, SQLiteBlockStore(store))

    async def follow(self, w: HttpChain, upto: int) -> None:
        """Take the chain's blocks up to ``upto``, as any peer does."""
        for h in range(self.node.height + 1, upto + 1):
            block = await w.get_block(h)
            assert block is not None
            assert await self.node.submit_block(block) == "best"

    def mine(self) -> Block:
        return self.node.produce_block()

    def branch(self, fork: int) -> list[Block]:
        blocks = [self.node.get_block(h) for h in range(fork + 1, self.node.height + 1)]
        assert all(b is not None for b in blocks)
        return blocks  # type: ignore[return-value]

    def close(self) -> None:
        self.node.store.close()


def double_spend(src: Source, nonce: int) -> Tx:
    """Alice's ``nonce`` spent on paying dave 100 instead of locking them."""
    args = {"to": DAVE.address, "denom": src.denom, "amount": 100}
    return Tx.create(ALICE, src.chain_id, nonce, "bank", "transfer", args)


async def lock(w: HttpChain, src: Source, nonce: int, recipient: str, amount: int) -> Receipt:
    args = {"denom": src.denom, "amount": amount, "dest_chain": B, "recipient": recipient}
    r = await w.submit(Tx.create(ALICE, src.chain_id, nonce, "bridge", "lock", args))
    assert r.ok, r.error
    return r


async def metrics(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The relayer's samples by (name, sorted labels)."""
    async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/metrics") as r:
        text = await r.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **want: str
) -> float:
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all(dict(labels).get(k) == x for k, x in want.items())
    )


async def hash_at(w: HttpChain, height: int) -> bytes:
    header = await w.get_header(height)
    assert header is not None
    return header.hash


async def escrowed(w: HttpChain, src: Source) -> int:
    return await balance(
        w, str(await w.query("bridge", "escrow_address", {"remote_chain": B})), src.denom
    )


async def check_relayer_never_tried(port: int, minted: int) -> None:
    samples = await metrics(port)
    mints = total(samples, "interlock_packets_relayed_total", action="mint")
    assert mints == minted
    failures = {
        labels: v for (n, labels), v in samples.items() if n == "interlock_tx_failures_total"
    }
    assert not failures, failures


@dataclass
class Scene:
    """The processes running, alice's lock of 100 for bob committed on the source, and
    the attacker holding the source up to the lock's parent with alice's double spend of
    the lock's nonce in its mempool."""

    src: Source
    broker_url: str
    w: HttpChain
    b: HttpChain
    port: int
    """The relayer's API port."""
    attacker: Attacker
    lock: Receipt
    nonce: int
    """Alice's nonce the lock used."""
    dave_before: int

    @property
    def fork(self) -> int:
        return self.lock.height - 1

    @property
    def wrapped(self) -> str:
        """The source's denom as minted on chain-b."""
        return f"{self.src.chain_id}/{self.src.denom}"


@contextlib.asynccontextmanager
async def lock_under_attack(broker: Mosquitto, tmp: Path, src: Source) -> AsyncIterator[Scene]:
    config, cid = source_config(tmp, src), src.chain_id
    attacker = Attacker(config, tmp / "attacker.sqlite3", src.staked)
    try:
        with network(broker, tmp, INTERVAL, (cid, B), {cid: config}) as net:
            relayer = net.relayer()
            port = await wait_ready(relayer)
            async with chain(net, cid) as w, chain(net, B) as b:
                await attacker.follow(w, await w.latest_height())
                dave_before = await balance(w, DAVE.address, src.denom)
                nonce = await w.pending_nonce(ALICE.address)
                r = await lock(w, src, nonce, BOB.address, 100)
                await attacker.follow(w, r.height - 1)
                attacker.node.mempool.add(double_spend(src, nonce))
                yield Scene(src, broker.url, w, b, port, attacker, r, nonce, dave_before)
            assert relayer.terminate() == 0
    finally:
        attacker.close()


async def past(w: HttpChain, height: int) -> bool:
    return await w.latest_height() >= height


async def test_a_reorg_that_drops_the_lock_block_never_mints(
    own_mosquitto: Mosquitto, tmp_path: Path, src: Source
) -> None:
    cid = src.chain_id
    async with lock_under_attack(own_mosquitto, tmp_path, src) as s:
        w, b, attacker, fork = s.w, s.b, s.attacker, s.fork
        async with open_bus(s.broker_url) as bus, bus.subscribe(reorgs_topic(cid)) as notices:
            # the attacker's branch from the fork, one block heavier (PoW) or longer (PoS)
            # than the chain's (which goes on meanwhile: on until the node takes it)
            outcome = ""
            while outcome != "best":
                while attacker.node.height <= await w.latest_height():
                    attacker.mine()
                for block in attacker.branch(fork):
                    outcome = await w.submit_block(block)
            # the chain's publisher announced it on the bus
            msg = await asyncio.wait_for(anext(notices), DEADLINE)
        notice = decode(msg.topic, msg.payload)
        assert isinstance(notice, ChainReorg)
        assert notice.fork_height == fork
        assert notice.new_tip == await hash_at(w, notice.new_height)
        # the chain is the attacker's branch now: the lock is gone, dave was paid
        assert await hash_at(w, s.lock.height) == attacker.branch(fork)[0].header.hash
        assert await w.get_receipt(s.lock.tx_hash) is None
        assert await balance(w, DAVE.address, src.denom) == s.dave_before + 100
        assert await escrowed(w, src) == 0
        # an honest lock after it is relayed: the relayer follows the new branch
        r2 = await lock(w, src, s.nonce + 1, CAROL.address, 7)
        assert r2.height > fork

        async def minted() -> bool:
            return await balance(b, CAROL.address, s.wrapped) == 7

        await eventually(minted, "the honest lock minted on chain-b")
        # and the dropped lock never was, nor was it tried
        assert await balance(b, BOB.address, s.wrapped) == 0
        assert await supply(b, s.wrapped) == 7 == await escrowed(w, src)
        assert await w.get_receipt(s.lock.tx_hash) is None
        await check_relayer_never_tried(s.port, minted=1)
        # the relayer read the notice and followed the reorganisation (checked on the source)
        samples = await metrics(s.port)
        work = f"transfer:{cid}->{B}"
        assert total(samples, "interlock_reorg_notices_total", work=work) >= 1
        assert total(samples, "interlock_source_reorgs_total", work=work) >= 1


async def test_a_lighter_branch_and_one_below_finality_change_nothing(
    own_mosquitto: Mosquitto, tmp_path: Path, src: Source
) -> None:
    async with lock_under_attack(own_mosquitto, tmp_path, src) as s:
        w, b, attacker, r = s.w, s.b, s.attacker, s.lock
        attacker.mine()
        attacker.mine()
        # a branch that drops the lock's block, with less work (PoW) or shorter (PoS)
        await eventually(lambda: past(w, s.fork + 3), "three blocks on the fork point")
        for block in attacker.branch(s.fork):
            assert await w.submit_block(block) == "side"
        lock_hash = await hash_at(w, r.height)
        assert await w.get_receipt(r.tx_hash) == r
        # the same branch grown heavier than the chain, offered once the lock's block
        # is final: refused at its first new block, whatever its work
        await eventually(lambda: past(w, r.height + DEPTH), "the lock's block final")
        while attacker.node.height <= await w.latest_height() + 1:
            attacker.mine()
        branch = attacker.branch(s.fork)
        assert [await w.submit_block(blk) for blk in branch[:2]] == ["duplicate"] * 2
        with pytest.raises(RpcError) as refused:
            await w.submit_block(branch[2])
        assert refused.value.code == "fork_below_finality"
        with pytest.raises(RpcError) as unknown:  # its parent was never taken
            await w.submit_block(branch[3])
        assert unknown.value.code == "unknown_parent"
        assert await hash_at(w, r.height) == lock_hash
        assert await w.get_receipt(r.tx_hash) == r
        assert await balance(w, DAVE.address, src.denom) == s.dave_before

        async def minted() -> bool:
            return await balance(b, BOB.address, s.wrapped) == 100

        await eventually(minted, "the lock minted on chain-b once final")
        assert await supply(b, s.wrapped) == 100 == await escrowed(w, src)
        await check_relayer_never_tried(s.port, minted=1)
