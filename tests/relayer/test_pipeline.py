"""Pipelined batches: the submitter admits a batch and returns before its commit, so the
transfer worker sends the next one meanwhile; batches settle (cursor moves) in order.

In process: chains driven by hand for the submitter (commits exactly when the test says),
the daemon's World (chains producing blocks) for the worker."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from chains.errors import InterlockError
from chains.handle import InProcessChain
from chains.service.subscriber import VerifiedBlock
from chains.types import Receipt, Tx
from relayer.metrics import Metrics
from relayer.store import RelayerStore
from relayer.submitter import Call, Submitter
from relayer.transfer import TransferWorker
from tests.conftest import devnet_chain, open_node
from tests.relayer import test_daemon
from tests.relayer.test_daemon import A, B, World

world = test_daemon.world  # the same fixture: two chains producing blocks, a path each way


def pay(dc: Any, amount: int) -> Call:
    to = dc.accounts["bob"].address
    return Call("bank", "transfer", {"to": to, "denom": dc.denom, "amount": amount})


async def test_a_batch_returns_once_admitted_and_the_next_executes_after_it(
    tmp_path: Path,
) -> None:
    """``send`` returns before the commit; the next batch's nonces follow, and the block
    executes both in the order sent; ``results`` waits for the commit."""
    dc = devnet_chain()
    node = open_node(dc, tmp_path)  # not started: blocks only when the test makes one
    try:
        submitter = Submitter(InProcessChain(node), dc.accounts["alice"], Metrics())
        first = await submitter.send([pay(dc, 1), pay(dc, 2)])
        second = await submitter.send([pay(dc, 3)])
        assert not first.done()
        assert not second.done()
        block = node.produce_block()
        assert [(t.nonce, t.args["amount"]) for t in block.txs] == [(0, 1), (1, 2), (2, 3)]
        got = [*(await first.results()), *(await second.results())]
        assert all(isinstance(r, Receipt) and r.ok for r in got)
        assert [r.tx_hash for r in got if isinstance(r, Receipt)] == [t.hash for t in block.txs]
    finally:
        node.store.close()


async def test_a_refused_admission_is_sent_again_in_turn(tmp_path: Path) -> None:
    """A nonce used behind the submitter's back: the batch is refused at admission,
    re-signed from the chain's count and sent again before ``send`` returns."""
    dc = devnet_chain()
    node = open_node(dc, tmp_path)
    try:
        alice = dc.accounts["alice"]
        submitter = Submitter(InProcessChain(node), alice, Metrics())
        first = await submitter.send([pay(dc, 1)])
        node.produce_block()
        assert (await first.results())[0].ok  # type: ignore[union-attr]
        # another process with the same key takes nonce 1
        other = Tx.create(alice, dc.chain_id, 1, "bank", "transfer", pay(dc, 9).args)
        node.submit_nowait(other)
        node.produce_block()
        # signed with 1, refused at admission, re-signed with 2 and sent again in turn:
        # that path waits for the commit before the next batch may go
        again = asyncio.ensure_future(submitter.send([pay(dc, 2)]))
        while node.mempool.next_nonce(alice.address) < 3:
            assert not again.done()
            await asyncio.sleep(0.005)
        node.produce_block()
        [r] = await (await again).results()
        assert isinstance(r, Receipt)
        assert r.ok
        assert node.get_receipt(r.tx_hash) is not None
    finally:
        node.store.close()


class FlakyAnswers(InProcessChain):
    """chain-b, whose answer to the next ``submit_batch`` is lost after the chain
    admitted (and committed) it: the relayer learns nothing of that batch."""

    lose_next = False

    async def submit_batch(
        self, txs: Sequence[Tx], *, wait: bool = False
    ) -> list[Receipt | bytes | InterlockError]:
        got = await super().submit_batch(txs, wait=wait)
        if self.lose_next:
            self.lose_next = False
            raise OSError("connection reset by peer")
        return got


def verified(w: World, first: int, last: int) -> list[VerifiedBlock]:
    node = w.nodes[A]
    out = []
    for h in range(first, last + 1):
        block, vals = node.get_block(h), node.get_validators(h)
        assert block is not None
        assert vals is not None
        out.append(VerifiedBlock.of(block, vals))
    return out


@pytest.fixture
async def worker(world: World, tmp_path: Path) -> AsyncIterator[tuple[TransferWorker, World]]:
    dst = FlakyAnswers(world.nodes[B])
    store = RelayerStore(tmp_path / "relayer.sqlite3")
    submitter = Submitter(dst, world.relayer, Metrics())
    w = TransferWorker(world.handles[A], dst, submitter, store, Metrics())
    await w.resolve_path()
    try:
        yield w, world
    finally:
        store.close()


async def test_two_batches_in_flight_settle_in_order(
    worker: tuple[TransferWorker, World],
) -> None:
    """The second batch is planned and admitted while the first waits for its commit
    (its header update trusts what the client had committed, not the first's update);
    the cursor moves only when each settles, in order, and both deliver."""
    w, world = worker
    n1 = int((await world.lock()).events[-1].attributes["nonce"])
    h1 = world.nodes[A].height
    n2 = int((await world.lock()).events[-1].attributes["nonce"])
    h2 = world.nodes[A].height
    assert h2 > h1
    first = await w.send(verified(world, 1, h1))
    second = await w.send(verified(world, h1 + 1, h2), alone=False)
    assert first is not None
    assert second is not None
    assert second.updates >= 1  # its own header update: it needs nothing of the first
    assert w.cursor == 0
    await w.settle(first)
    assert w.cursor == h1
    await w.settle(second)
    assert w.cursor == h2
    assert await world.received(n1)
    assert await world.received(n2)
    assert w.status.relayed == 2
    assert w.status.backlog == 0


async def test_a_batch_whose_answer_is_lost_holds_the_cursor_before_it(
    worker: tuple[TransferWorker, World],
) -> None:
    """The first batch's answer is lost (it did commit); the second, sent meanwhile,
    commits too. Settling the first raises and the cursor stays before it: the second
    is not settled (the daemon drops it). Redone from the cursor, the destination says
    both are delivered already: nothing is sent twice."""
    w, world = worker
    dst = w.dst
    assert isinstance(dst, FlakyAnswers)
    n1 = int((await world.lock()).events[-1].attributes["nonce"])
    h1 = world.nodes[A].height
    n2 = int((await world.lock()).events[-1].attributes["nonce"])
    h2 = world.nodes[A].height
    dst.lose_next = True
    first = await w.send(verified(world, 1, h1))
    second = await w.send(verified(world, h1 + 1, h2), alone=False)
    assert first is not None
    assert second is not None
    with pytest.raises(OSError, match="connection reset"):
        await w.settle(first)
    assert w.cursor == 0
    await second.wait()
    assert await world.received(n1)
    assert await world.received(n2)
    sent_before = w.submitter.sent
    await w.process(verified(world, 1, h2))  # the restart: from the cursor
    assert w.cursor == h2
    assert w.submitter.sent == sent_before  # both found delivered: nothing sent
    redundant = w.metrics.redundant.labels(w.name)._value.get()
    assert redundant == 2
