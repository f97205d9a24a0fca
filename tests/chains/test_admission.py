"""The mempool's admission policy, through the node's front door: spam from fresh keys
or from one account cannot keep an honest user's transaction out of the next block."""

from __future__ import annotations

import pytest

from chains.crypto import PrivateKey
from chains.devnet import DevnetChain
from chains.errors import MempoolFull, SenderQueueFull
from chains.types import Tx
from tests.chains.helpers import devnet, transfer
from tests.chains.test_node import _node


def _dc() -> DevnetChain:
    return devnet("chain-a", "chain-b")[0]


def _pay(dc: DevnetChain, key: PrivateKey, nonce: int, amount: int = 1) -> Tx:
    return transfer(key, dc.chain_id, nonce, dc.accounts["bob"].address, amount, dc.denom)


async def test_unfunded_fresh_keys_cannot_fill_the_pool_against_an_honest_user() -> None:
    """Reproduced before: 2,000 transfers from fresh keys filled the pool and the honest
    user got MempoolFull."""
    dc = _dc()
    node = _node(dc, mempool_capacity=400, max_block_txs=100)
    spam = [_pay(dc, PrivateKey.derive("spam", str(i)), 0) for i in range(400)]
    refused = 0
    for tx in spam:
        try:
            node.submit_nowait(tx)
        except MempoolFull:
            refused += 1
    assert refused == 400 - 400 // 8  # the unfunded share is an eighth of the pool
    tx = _pay(dc, dc.accounts["alice"], 0, 7)
    honest = node.submit_nowait(tx)
    block = node.produce_block()
    assert block.receipts[0].tx_hash == tx.hash  # funded senders go first
    assert honest.result().ok
    await node.stop()


async def test_one_spamming_account_cannot_keep_others_out_of_the_next_block() -> None:
    dc = _dc()
    node = _node(dc, mempool_capacity=100, max_block_txs=3)
    alice, carol, dave = (dc.accounts[n] for n in ("alice", "carol", "dave"))
    spam = [node.submit_nowait(_pay(dc, alice, n)) for n in range(64)]
    with pytest.raises(SenderQueueFull):  # one sender's share
        node.submit_nowait(_pay(dc, alice, 64))
    for n in range(36):  # a second account fills the pool
        node.submit_nowait(_pay(dc, carol, n))
    assert len(node.mempool) == 100
    # the pool is full: dave's transaction evicts the newest of the biggest sender
    honest = node.submit_nowait(_pay(dc, dave, 0, 9))
    assert len(node.mempool) == 100
    with pytest.raises(MempoolFull):
        spam[63].result()  # its submitter hears at once
    assert node.mempool.next_nonce(alice.address) == 63  # and may send it again later
    block = node.produce_block()  # round-robin: one per sender, so dave is in
    assert [r.ok for r in block.receipts] == [True, True, True]
    assert honest.result().ok
    await node.stop()


async def test_a_full_pool_of_equal_senders_refuses_a_newcomer_and_keeps_order() -> None:
    dc = _dc()
    node = _node(dc, mempool_capacity=2)
    node.submit_nowait(_pay(dc, dc.accounts["alice"], 0))
    node.submit_nowait(_pay(dc, dc.accounts["carol"], 0))
    with pytest.raises(MempoolFull):  # nobody queues more than the newcomer would
        node.submit_nowait(_pay(dc, dc.accounts["dave"], 0))
    block = node.produce_block()
    assert [r.tx_hash for r in block.receipts] == [
        _pay(dc, dc.accounts["alice"], 0).hash,
        _pay(dc, dc.accounts["carol"], 0).hash,
    ]
    await node.stop()
