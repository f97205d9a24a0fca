"""The node: blocks flow at the interval, submit resolves with the receipt, the mempool
refuses with typed errors, subscriptions stream in order (or say they lagged), and a node
restarted on its SQLite directory resumes where it stopped."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from chains.bank import get_balance
from chains.crypto import PrivateKey
from chains.devnet import DevnetChain, base_modules
from chains.errors import (
    BadNonce,
    DuplicateTx,
    InvalidSignature,
    MempoolFull,
    StoreError,
    WrongChain,
)
from chains.node import Node, SQLiteBlockStore, SubscriptionLagged
from chains.store import MemoryBlockStore
from chains.types import Block, Tx
from tests.chains.helpers import devnet, transfer

TIMEOUT = 10  # generous: a stuck node fails the test instead of hanging the suite


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_700_000_000.0

    def __call__(self) -> float:
        self.t += 1.0
        return self.t


def _dc() -> DevnetChain:
    return devnet("chain-a", "chain-b")[0]


def _node(dc: DevnetChain, store: object | None = None, **kw: object) -> Node:
    return Node.open(
        dc.genesis,
        base_modules,
        dc.validator_keys,
        store or MemoryBlockStore(),  # type: ignore[arg-type]
        clock=FakeClock(),
        **kw,  # type: ignore[arg-type]
    )


def _pay(dc: DevnetChain, frm: str, to: str, amount: int, nonce: int) -> Tx:
    return transfer(dc.accounts[frm], dc.chain_id, nonce, dc.accounts[to].address, amount, dc.denom)


async def test_blocks_flow_at_the_interval() -> None:
    dc = _dc()
    async with _node(dc, block_interval=0.01) as node:
        await asyncio.wait_for(node.wait_for_height(3), TIMEOUT)
    b1, b2 = node.get_block(1), node.get_block(2)
    assert b1 is not None
    assert b2 is not None
    assert b2.header.prev_hash == b1.header.hash
    assert b2.header.time > b1.header.time


async def test_submit_resolves_with_the_committed_receipt() -> None:
    dc = _dc()
    async with _node(dc, block_interval=0.01) as node:
        r = await asyncio.wait_for(node.submit(_pay(dc, "alice", "bob", 5, 0)), TIMEOUT)
        assert r.ok
        assert r.height <= node.height
        block = node.get_block(r.height)
        assert block is not None
        assert block.receipts[r.index] == r
        assert node.get_receipt(r.tx_hash) == r
        bad = await asyncio.wait_for(node.submit(_pay(dc, "alice", "bob", 10**15, 1)), TIMEOUT)
        assert (bad.ok, bad.code) == (False, "InsufficientFunds")


async def test_mempool_refuses_with_typed_errors_and_keeps_nothing() -> None:
    dc = _dc()
    node = _node(dc, mempool_capacity=3)
    good = _pay(dc, "alice", "bob", 5, 0)
    forged = dataclasses.replace(_pay(dc, "bob", "alice", 5, 0), signature=bytes(64))
    other_chain = devnet("chain-a", "chain-b")[1]
    rejected: list[tuple[Tx, type[Exception]]] = [
        (_pay(dc, "alice", "bob", 5, 1), BadNonce),  # gap
        (forged, InvalidSignature),
        (_pay(other_chain, "alice", "bob", 5, 0), WrongChain),
    ]
    for tx, err in rejected:
        with pytest.raises(err):
            node.submit_nowait(tx)
    assert len(node.mempool) == 0
    fut = node.submit_nowait(good)
    with pytest.raises(DuplicateTx):
        node.submit_nowait(good)
    node.submit_nowait(_pay(dc, "alice", "bob", 5, 1))  # queued nonces count
    node.submit_nowait(_pay(dc, "carol", "bob", 5, 0))
    # a stranger (no funds) may not evict anyone from a full pool
    stranger = PrivateKey.derive("test", "stranger")
    pay_bob = transfer(stranger, dc.chain_id, 0, dc.accounts["bob"].address, 5, dc.denom)
    with pytest.raises(MempoolFull):
        node.submit_nowait(pay_bob)
    assert len(node.mempool) == 3
    # what was refused left no trace: the stranger's nonce 0 is still free once there is room
    node.produce_block()
    assert fut.done()
    assert fut.result().ok
    node.submit_nowait(pay_bob)
    with pytest.raises(BadNonce):
        node.submit_nowait(good)  # replay of a committed tx
    node.produce_block()
    assert node.chain.next_nonce(dc.accounts["bob"].address) == 0
    await node.stop()


async def test_mempool_admission_is_exact_about_nonce_order() -> None:
    dc = _dc()
    node = _node(dc)
    node.submit_nowait(_pay(dc, "alice", "bob", 1, 0))
    with pytest.raises(BadNonce):
        node.submit_nowait(_pay(dc, "alice", "bob", 1, 2))
    with pytest.raises(BadNonce):
        node.submit_nowait(_pay(dc, "alice", "bob", 2, 0))  # same nonce, other body
    node.submit_nowait(_pay(dc, "alice", "bob", 1, 1))
    block = node.produce_block()
    assert [r.ok for r in block.receipts] == [True, True]
    await node.stop()


async def test_subscription_yields_blocks_in_order() -> None:
    dc = _dc()
    node = _node(dc)
    sub = node.subscribe()
    for _ in range(5):
        node.produce_block()
    await node.stop()
    heights = [b.height async for b in sub]
    assert heights == [1, 2, 3, 4, 5]


async def test_on_commit_sees_each_block_once_persisted_and_handed_to_subscribers() -> None:
    dc = _dc()
    node = _node(dc, block_interval=0.01)
    sub = node.subscribe()
    seen: list[tuple[int, bool, int]] = []

    def observe(block: Block) -> None:
        stored = node.get_block(block.height)
        seen.append((block.height, stored == block, sub._queue.qsize()))

    def broken(block: Block) -> None:
        raise RuntimeError("an observer's bug")

    node.on_commit += [broken, observe]
    node.produce_block()  # in one piece
    async with node:  # and the run loop's yielding path
        await asyncio.wait_for(node.wait_for_height(3), TIMEOUT)
    # in height order, each already on the store and in the subscriber's queue; the
    # observer that raised stopped neither the node nor the next observer
    assert node.height >= 3
    assert [(h, on_store) for h, on_store, _ in seen] == [
        (h, True) for h in range(1, node.height + 1)
    ]
    assert all(queued >= 1 for _, _, queued in seen)
    assert node.failure is None
    assert [b.height async for b in sub] == list(range(1, node.height + 1))


async def test_slow_subscriber_gets_lagged_and_where_to_resume() -> None:
    dc = _dc()
    node = _node(dc)
    sub = node.subscribe(maxsize=3)
    for _ in range(5):
        node.produce_block()
    got = [await asyncio.wait_for(sub.__anext__(), TIMEOUT) for _ in range(3)]
    assert [b.height for b in got] == [1, 2, 3]
    with pytest.raises(SubscriptionLagged) as exc:
        await asyncio.wait_for(sub.__anext__(), TIMEOUT)
    assert exc.value.next_height == 4
    gap = node.get_block(exc.value.next_height)
    assert gap is not None
    assert gap.header.prev_hash == got[-1].header.hash
    await node.stop()


async def test_a_full_subscription_still_ends_at_stop() -> None:
    dc = _dc()
    node = _node(dc)
    sub = node.subscribe(maxsize=2)
    node.produce_block()
    node.produce_block()
    await node.stop()
    heights = await asyncio.wait_for(_drain(sub), TIMEOUT)
    assert heights == [1, 2]


async def _drain(sub: object) -> list[int]:
    return [b.height async for b in sub]  # type: ignore[attr-defined]


async def test_pending_submissions_fail_typed_at_stop() -> None:
    dc = _dc()
    node = _node(dc)
    fut = node.submit_nowait(_pay(dc, "alice", "bob", 1, 0))
    await node.stop()
    with pytest.raises(StoreError):
        fut.result()
    with pytest.raises(StoreError):
        node.submit_nowait(_pay(dc, "alice", "bob", 1, 0))


# --- persistence ----------------------------------------------------------------------


def _store(path: Path) -> SQLiteBlockStore:
    return SQLiteBlockStore(path / "chain.sqlite")


async def test_restart_resumes_at_the_same_height_and_root(tmp_path: Path) -> None:
    dc = _dc()
    node = _node(dc, _store(tmp_path))
    node.produce_block()
    for nonce in range(3):
        node.submit_nowait(_pay(dc, "alice", "bob", 7, nonce))
        node.submit_nowait(_pay(dc, "carol", "dave", 10**15, nonce))  # fails, nonce moves
        node.produce_block()
    # a governance change of the validator set persists too
    gov = dc.accounts["gov"]
    newcomer = dc.validator_keys[0]
    args = {"public_key": newcomer.public_key.hex(), "power": 30}
    node.submit_nowait(Tx.create(gov, dc.chain_id, 0, "validators", "set_power", args))
    node.produce_block()
    height, header = node.height, node.chain.last_header
    root, vals = node.chain.state.root(), node.chain.validators
    items = dict(node.chain.state.items())
    await node.stop()

    again = _node(dc, _store(tmp_path))
    assert again.height == height == 5
    assert again.chain.last_header == header
    assert again.chain.state.root() == root
    assert dict(again.chain.state.items()) == items
    assert again.chain.validators == vals
    assert vals.by_key[newcomer.public_key] == 30
    assert again.chain.next_nonce(dc.accounts["alice"].address) == 3
    assert again.chain.next_nonce(dc.accounts["carol"].address) == 3
    # and keeps producing on top, with state that keeps changing
    again.submit_nowait(_pay(dc, "alice", "bob", 1, 3))
    b6 = again.produce_block()
    assert b6.height == 6
    assert b6.header.prev_hash == header.hash
    assert b6.receipts[0].ok
    bob = get_balance(again.chain.state, dc.accounts["bob"].address, dc.denom)
    await again.stop()

    third = _node(dc, _store(tmp_path))
    assert third.height == 6
    assert get_balance(third.chain.state, dc.accounts["bob"].address, dc.denom) == bob
    stored = third.get_block(6)
    assert stored is not None
    assert stored.header == b6.header
    assert stored.txs == b6.txs
    await third.stop()


async def test_restart_after_genesis_only(tmp_path: Path) -> None:
    dc = _dc()
    node = _node(dc, _store(tmp_path))
    root = node.chain.state.root()
    await node.stop()
    again = _node(dc, _store(tmp_path))
    assert again.height == 0
    assert again.chain.state.root() == root
    assert again.produce_block().height == 1
    await again.stop()


async def test_running_node_restart_keeps_producing(tmp_path: Path) -> None:
    dc = _dc()
    async with _node(dc, _store(tmp_path), block_interval=0.01) as node:
        r = await asyncio.wait_for(node.submit(_pay(dc, "alice", "bob", 3, 0)), TIMEOUT)
        assert r.ok
        await asyncio.wait_for(node.wait_for_height(node.height + 1), TIMEOUT)
    height = node.height
    async with _node(dc, _store(tmp_path), block_interval=0.01) as again:
        assert again.height == height
        await asyncio.wait_for(again.wait_for_height(height + 2), TIMEOUT)
        r = await asyncio.wait_for(again.submit(_pay(dc, "alice", "bob", 3, 1)), TIMEOUT)
        assert r.ok
        assert r.height > height


async def test_a_store_of_another_genesis_is_refused(tmp_path: Path) -> None:
    a, b = devnet("chain-a", "chain-b")
    node = _node(a, _store(tmp_path))
    node.produce_block()
    await node.stop()
    store = _store(tmp_path)
    with pytest.raises(StoreError):
        _node(b, store)
    # same chain id, different genesis (another seed): refused too
    (a2,) = devnet("chain-a", seed="another-seed")
    with pytest.raises(StoreError):
        _node(a2, store)
    store.close()


async def test_tampered_state_is_refused_on_restart(tmp_path: Path) -> None:
    import sqlite3

    dc = _dc()
    node = _node(dc, _store(tmp_path))
    node.submit_nowait(_pay(dc, "alice", "bob", 3, 0))
    node.produce_block()
    await node.stop()
    db = sqlite3.connect(tmp_path / "chain.sqlite")
    key = f"bank/bal/{dc.accounts['bob'].address}/{dc.denom}"
    db.execute("UPDATE state SET value = ? WHERE key = ?", (b"999999999999999", key))
    db.commit()
    db.close()
    with pytest.raises(StoreError):
        _node(dc, _store(tmp_path))


async def test_a_data_dir_written_with_crc32_buckets_is_refused_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The state layout moved from crc32 to SHA-256 buckets: every root changed, so a data
    dir of the old layout must be refused at start, saying what to do, not resumed."""
    import zlib

    import chains.state

    dc = _dc()
    with monkeypatch.context() as m:
        m.setattr(chains.state, "_bucket", lambda key: zlib.crc32(key.encode()) & 0xFFFF)
        node = _node(dc, _store(tmp_path))
        node.submit_nowait(_pay(dc, "alice", "bob", 3, 0))
        node.produce_block()
        await node.stop()
    with pytest.raises(StoreError, match="older state layout: start that data dir afresh"):
        _node(dc, _store(tmp_path))


def test_memory_and_sqlite_stores_agree(tmp_path: Path) -> None:
    dc = _dc()
    mem, sql = MemoryBlockStore(), _store(tmp_path)
    n1, n2 = _node(dc, mem), _node(dc, sql)
    for i in range(3):
        for n in (n1, n2):
            n.mempool.add(_pay(dc, "alice", "bob", 1 + i, i))
            n.produce_block()
    assert mem.latest_height() == sql.latest_height() == 3
    for h in (1, 2, 3):
        assert mem.get_block(h) == sql.get_block(h)
        assert mem.get_validators(h) == sql.get_validators(h)
    assert mem.load_state() == sql.load_state()
    assert mem.get_block(4) is None
    assert sql.get_block(4) is None
    assert sql.get_receipt(bytes(32)) is None
    sql.close()


async def test_a_node_that_cannot_commit_fails_submissions_instead_of_hanging() -> None:
    """Keys for only half the voting power: production must fail stop, loudly and typed,
    not leave submitters waiting forever or make ``stop`` raise."""
    from chains.errors import InsufficientVotingPower

    dc = _dc()
    node = Node.open(
        dc.genesis,
        base_modules,
        dc.validator_keys[:2],
        MemoryBlockStore(),
        block_interval=0.01,
        clock=FakeClock(),
    )
    async with node:
        sub = node.subscribe()
        with pytest.raises(InsufficientVotingPower):
            await asyncio.wait_for(node.submit(_pay(dc, "alice", "bob", 1, 0)), TIMEOUT)
        assert await asyncio.wait_for(_drain(sub), TIMEOUT) == []
        with pytest.raises(StoreError):
            node.submit_nowait(_pay(dc, "alice", "bob", 1, 0))
    assert node.height == 0


async def test_a_store_failure_stops_production_and_a_restart_resumes(tmp_path: Path) -> None:
    """If persisting a block fails, the in-memory chain is ahead of the disk: the node must
    stop (not build on an unsaved block) and a restart resumes at the last saved one."""
    dc = _dc()
    store = _store(tmp_path)
    node = _node(dc, store, block_interval=0.01)
    node.produce_block()
    saved = node.chain.last_header
    real_save = store.save_block
    calls = 0

    def failing_save(*args: object) -> None:
        nonlocal calls
        calls += 1
        raise StoreError("disk full")

    store.save_block = failing_save  # type: ignore[method-assign]
    async with node:
        with pytest.raises(StoreError):
            await asyncio.wait_for(node.submit(_pay(dc, "alice", "bob", 1, 0)), TIMEOUT)
        await asyncio.sleep(0.05)
        assert calls == 1  # no block built on top of the unsaved one
    store.save_block = real_save  # type: ignore[method-assign]
    again = _node(dc, _store(tmp_path))
    assert again.height == 1
    assert again.chain.last_header == saved
    assert again.produce_block().height == 2
    await again.stop()


def test_stored_block_bytes_are_the_block_json(tmp_path: Path) -> None:
    """The store splices pre-encoded txs and events into the block blob: it must decode
    to exactly ``block.to_json()``."""
    import orjson

    from chains.node import _block_bytes

    dc = _dc()
    node = _node(dc, _store(tmp_path))
    for i in range(3):
        node.mempool.add(_pay(dc, "alice", "bob", 1 + i, i))
    node.mempool.add(_pay(dc, "carol", "bob", 10**15, 0))
    block = node.produce_block()
    assert orjson.loads(_block_bytes(block)) == block.to_json()
    node.store.close()


def test_receipts_and_blocks_read_the_same_from_memory_and_from_disk(tmp_path: Path) -> None:
    dc = _dc()
    node = _node(dc, _store(tmp_path))
    hashes = []
    for i in range(SQLiteBlockStore.RECENT_BLOCKS + 3):
        tx = _pay(dc, "alice", "bob", 1, i)
        node.mempool.add(tx)
        failing = _pay(dc, "carol", "bob", 10**15, i)
        node.mempool.add(failing)
        hashes += [tx.hash, failing.hash]
        node.produce_block()
    hot = node.store
    cold = _store(tmp_path)  # a fresh store reads everything from disk
    for h in hashes:
        r = cold.get_receipt(h)
        assert r is not None
        assert r == hot.get_receipt(h)
        assert r.tx_hash == h
    for height in range(1, node.height + 1):
        assert hot.get_block(height) == cold.get_block(height)
        assert hot.get_validators(height) == cold.get_validators(height)
    assert cold.get_receipt(bytes(32)) is None
    assert hot.get_block(node.height + 1) is None
    cold.close()
    hot.close()


def test_a_committed_block_is_on_disk_before_anyone_hears_of_it(tmp_path: Path) -> None:
    """WAL with synchronous=NORMAL survives a process crash but may roll back the last
    commits on power loss; a block whose receipt was answered and whose signed header was
    published would then be produced again differently at the same height (two commits
    for one height: misbehaviour). Every commit must reach the disk (FULL syncs the WAL)."""
    store = _store(tmp_path)
    try:
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    finally:
        store.close()


def test_a_file_that_is_not_a_store_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "chain.sqlite"
    bad.write_bytes(b"this is not an sqlite database, just bytes " * 100)
    with pytest.raises(StoreError):
        SQLiteBlockStore(bad)


async def test_a_full_block_leaves_the_rest_queued_in_order() -> None:
    dc = _dc()
    node = _node(dc, max_block_txs=2)
    futs = [node.submit_nowait(_pay(dc, "alice", "bob", 1, n)) for n in range(5)]
    assert node.mempool.next_nonce(dc.accounts["alice"].address) == 5
    heights = [len(node.produce_block().txs) for _ in range(3)]
    assert heights == [2, 2, 1]
    assert [f.result().height for f in futs] == [1, 1, 2, 2, 3]
    assert all(f.result().ok for f in futs)
    await node.stop()


async def test_queued_txs_made_stale_by_a_block_fail_their_submitters() -> None:
    """A block built elsewhere (here: straight on the chain) uses alice's nonces 0 and 1;
    her queued txs can never commit and must fail, not wait forever."""
    dc = _dc()
    node = _node(dc, max_block_txs=1)
    f0 = node.submit_nowait(_pay(dc, "alice", "bob", 1, 0))
    f1 = node.submit_nowait(_pay(dc, "alice", "bob", 1, 1))
    f2 = node.submit_nowait(_pay(dc, "bob", "carol", 1, 0))
    elsewhere = [_pay(dc, "alice", "carol", 2, 0), _pay(dc, "alice", "carol", 2, 1)]
    node.chain.produce_block(elsewhere, 10**13, dc.validator_keys)
    block = node.produce_block()
    assert block.txs == ()  # the nonce-0 tx taken for this block is stale: dropped
    with pytest.raises(BadNonce):
        f0.result()
    with pytest.raises(BadNonce):
        f1.result()  # the queued nonce-1 tx is dropped when the queue is rechecked
    assert len(node.mempool) == 1
    node.produce_block()
    assert f2.result().ok
    await node.stop()


async def test_blocks_stream_and_unsubscribe() -> None:
    dc = _dc()
    async with _node(dc, block_interval=0.01) as node:
        got = []
        async for block in node.blocks():
            got.append(block.height)
            if len(got) == 3:
                break
        assert got == sorted(got)
        assert got[1] == got[0] + 1
        sub = node.subscribe()
        node.unsubscribe(sub)
        assert await asyncio.wait_for(_drain(sub), TIMEOUT) == []
        assert node.get_validators(got[0]) == dc.genesis.validators


async def test_waiting_for_a_height_ends_when_the_node_stops() -> None:
    dc = _dc()
    node = _node(dc, block_interval=3600)
    async with node:
        waiter = asyncio.create_task(node.wait_for_height(5))
        await asyncio.sleep(0.01)
    with pytest.raises(StoreError):
        await asyncio.wait_for(waiter, TIMEOUT)


async def test_a_restarted_node_produces_the_same_chain_as_one_that_never_stopped(
    tmp_path: Path,
) -> None:
    """Same genesis, same transactions, same clock: restarting from disk midway must not
    change a single block hash (no state lost, nothing replayed, nothing reordered)."""

    dc = _dc()
    names = ["alice", "bob", "carol", "dave"]
    plan = [
        [(names[(h + i) % 4], names[(h + 2 * i + 1) % 4], 1 + h * i) for i in range(4)]
        for h in range(6)
    ]
    plan[3].append(("carol", "alice", 10**15))  # a failing transfer too

    async def drive(node: Node, blocks: list[list[tuple[str, str, int]]]) -> None:
        for block in blocks:
            for frm, to, amount in block:
                n = node.mempool.next_nonce(dc.accounts[frm].address)
                node.submit_nowait(_pay(dc, frm, to, amount, n))
            node.produce_block()

    twin = _node(dc)
    await drive(twin, plan)
    node = _node(dc, _store(tmp_path))
    await drive(node, plan[:3])
    clock_t = node.clock.t  # type: ignore[attr-defined]
    await node.stop()
    again = _node(dc, _store(tmp_path))
    again.clock.t = clock_t  # type: ignore[attr-defined]
    await drive(again, plan[3:])
    for h in range(1, len(plan) + 1):
        mine, theirs = again.get_block(h), twin.get_block(h)
        assert mine is not None
        assert theirs is not None
        assert mine.header.hash == theirs.header.hash, h
    await again.stop()
    await twin.stop()


async def test_leaving_the_block_stream_unsubscribes() -> None:
    """A consumer that stops iterating ``node.blocks()`` must not leave a subscription
    behind that buffers up to 4096 blocks nobody reads."""
    dc = _dc()
    node = _node(dc)
    stream = node.blocks()
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)
    assert len(node._subs) == 1
    node.produce_block()
    assert (await asyncio.wait_for(first, TIMEOUT)).height == 1
    await stream.aclose()
    assert node._subs == []


@pytest.mark.parametrize("sqlite", [False, True], ids=["memory", "sqlite"])
async def test_a_large_block_yields_to_the_loop_and_reads_meanwhile_see_the_last_block(
    tmp_path: Path, sqlite: bool
) -> None:
    """A 5,000-transaction block held the event loop 0.15-0.3 s in one piece: now other
    tasks run between chunks of it (and while SQLite syncs it), and what they read is
    the last complete block."""
    import chains.node

    dc = _dc()
    store = _store(tmp_path) if sqlite else None
    node = _node(dc, store, block_interval=3600, mempool_capacity=40_000)  # blocks made here
    alice, bob = dc.accounts["alice"].address, dc.accounts["bob"].address
    n = 4 * chains.node.EXEC_CHUNK
    for i in range(n):
        node.submit_nowait(_pay(dc, "alice", "bob", 1, i))
    before = node.chain.query("bank", "balances", {"address": bob})
    seen: list[tuple[int, object, int]] = []
    producing = True

    async def reader() -> None:
        while producing:
            balances = node.chain.query("bank", "balances", {"address": bob})
            seen.append((node.chain.height, balances, node.chain.next_nonce(alice)))
            # never ahead of the disk (the store may hold the block just before the chain
            # moves to it)
            assert node.chain.height <= node.store.latest_height()
            await asyncio.sleep(0)

    task = asyncio.create_task(reader())
    await asyncio.sleep(0)
    seen.clear()
    block = await node.produce_block_yielding()
    producing = False
    await task
    assert len(block.txs) == n
    assert len(seen) >= 3  # the reader ran between chunks of the one block
    assert all(s == (0, before, 0) for s in seen)  # and read only the last block
    assert node.chain.next_nonce(alice) == n
    assert node.chain.query("bank", "balances", {"address": bob}) != before
    await node.stop()
