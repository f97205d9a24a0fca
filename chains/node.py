"""The node: block production loop, mempool front door, subscriptions, SQLite block store.

The only module in ``chains`` that touches a clock, the event loop or the disk.

* ``Node.submit`` checks a transaction at once (a refused one raises a typed
  :class:`~chains.errors.TxRejected` and changes nothing) and resolves with its receipt
  once the block that includes it is committed *and persisted*.
* Every ``block_interval`` the node produces a block, empty or not (light clients and
  timeouts advance with heights), persists it in one SQLite transaction, then fans it
  out to subscribers.
* The loop executes a block ``EXEC_CHUNK`` transactions at a time and yields to the
  event loop in between (``produce_block_yielding``), so RPC answers and publishes are
  not held behind a large block; reads in between see the last complete block. A
  proof-of-work block's nonce is searched in a worker thread, ``MINE_TRIES`` nonces a
  call, and the block is written in one: the loop is never held by either.
* A subscriber that falls ``maxsize`` blocks behind gets :class:`SubscriptionLagged` and
  re-reads the gap with ``get_block`` rather than the node buffering without bound.
* ``Node.on_commit`` observers are called with each block the node produces at the
  moment it is committed (a subscriber sees it only when its task next runs): for
  measurements such as ``bench/bus.py``'s commit-to-subscriber latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time as _time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, TypeVar

import orjson

from chains.branch import BranchRule
from chains.chain import BlockResult, Chain, Genesis
from chains.crypto import PrivateKey
from chains.engine import get_branch_rule, get_finality_depth
from chains.errors import (
    ForkBelowFinality,
    InterlockError,
    InvalidBlock,
    StoreError,
    UnknownParent,
)
from chains.mempool import Mempool
from chains.module import Module
from chains.pow import mine
from chains.sqlite import connect as sqlite_connect
from chains.sqlite import transaction
from chains.store import BlockStore
from chains.tasks import stop_within
from chains.types import Block, Header, Receipt, Tx, ValidatorSet

__all__ = [
    "BlockIndexer",
    "ChainReorganised",
    "Node",
    "SQLiteBlockStore",
    "Subscription",
    "SubscriptionLagged",
]

MAX_SIDE_BLOCKS = 256
"""Most blocks of competing branches a node holds (in memory) until one has more work."""

log = logging.getLogger("interlock.node")

# Transactions executed between two yields to the event loop while a block is produced:
# ~10-20 ms of work on the reference machine, against 0.15-0.3 s for a whole block of
# 5,000 (measured by bench/costs.py).
EXEC_CHUNK = 500

MINE_TRIES = 20_000
"""Nonces one call of the miner tries in a worker thread (a PoW block is mined off the
event loop, which meanwhile answers RPC and publishes): ~0.25 s of this machine's miner,
a devnet block ~4,096 hashes."""

_T = TypeVar("_T")


_Fragment: Any = getattr(orjson, "Fragment", None)  # orjson >= 3.10


def _block_bytes(block: Block) -> bytes:
    """JSON of ``block.to_json()``, splicing in the bytes already encoded for each tx
    (``Tx.wire``) and event (``Event.leaf()``) instead of rebuilding and re-encoding them:
    the same JSON value, at a fraction of the cost (it runs for every tx of every block)."""
    if _Fragment is None:
        return orjson.dumps(block.to_json())
    frag = _Fragment
    return orjson.dumps(
        {
            "header": block.header.to_json(),
            "commit": block.commit.to_json(),
            "txs": [frag(t.wire) for t in block.txs],
            "receipts": [
                {
                    "tx_hash": r.tx_hash.hex(),
                    "height": r.height,
                    "index": r.index,
                    "ok": r.ok,
                    "code": r.code,
                    "error": r.error,
                    "first_event": r.first_event,
                    "events": [frag(e.leaf()) for e in r.events],
                }
                for r in block.receipts
            ],
            "events": [frag(e.leaf()) for e in block.events],
        }
    )


async def _in_thread(work: Callable[[], _T]) -> tuple[_T, bool]:
    """Run ``work`` in a worker thread to the end even if the caller is cancelled
    meanwhile (a block is produced whole or not at all): its result, and whether a
    cancellation came in the meantime (the caller re-raises it once the block is done)."""
    fut = asyncio.get_running_loop().run_in_executor(None, work)
    cancelled = False
    while not fut.done():
        try:
            await asyncio.shield(fut)
        except asyncio.CancelledError:
            cancelled = True
    return fut.result(), cancelled


class BlockIndexer(Protocol):
    """Rows derived from each block (an event index), kept in the block store's own file
    and written in the block's own transaction: a crash leaves both or neither.

    An indexer may start on a store that already holds blocks (it was switched off, or is
    new): :meth:`SQLiteBlockStore.catch_up` feeds it the blocks it lacks, from
    :meth:`indexed_tip`. The service layer implements it
    (:class:`chains.service.eventindex.EventIndex`); the store only calls it."""

    schema: str
    """SQL run once when the store opens (``CREATE TABLE IF NOT EXISTS ...``)."""

    def indexed_tip(self, db: sqlite3.Connection) -> tuple[int, bytes] | None:
        """The height and header hash of the last block indexed (None: none yet, or
        indexed under other settings: the store then resets it and indexes every block)."""
        ...

    def index_block(self, db: sqlite3.Connection, block: Block) -> None:
        """Write ``block``'s rows and make it the tip, inside the caller's transaction."""
        ...

    def rewind(self, db: sqlite3.Connection, height: int, tip: bytes | None) -> None:
        """Forget every row above ``height``, whose header hash ``tip`` (None: height 0)
        becomes the tip, inside the caller's transaction."""
        ...

    def reset(self, db: sqlite3.Connection) -> None:
        """Forget everything (its tip is no block of this chain any more)."""
        ...


class SQLiteBlockStore:
    """Blocks, receipts index and state in one SQLite file (WAL, one synced transaction per
    block: a block is on disk before its receipts resolve or its header is published).
    ``indexer``: rows derived from each block, written in the block's transaction."""

    SCHEMA = """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS blocks (height INTEGER PRIMARY KEY, block BLOB NOT NULL,
                                       validators BLOB NOT NULL);
    CREATE TABLE IF NOT EXISTS txs (hash BLOB PRIMARY KEY, height INTEGER NOT NULL,
                                    idx INTEGER NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS undo (height INTEGER NOT NULL, key TEXT NOT NULL, value BLOB,
                                     PRIMARY KEY (height, key)) WITHOUT ROWID;
    """
    RECENT_BLOCKS = 8

    CATCH_UP_CHUNK = 64
    """Blocks an indexer catching up indexes per transaction (a kill meanwhile keeps the
    chunks done; the next open resumes from the indexer's tip)."""

    def __init__(self, path: str | Path, *, indexer: BlockIndexer | None = None) -> None:
        self.path = Path(path)
        self.indexer = indexer
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # Two connections: the node saves a block from a worker thread (the fsync must
            # not hold the event loop) while reads go on; under WAL the reading connection
            # sees only committed blocks, never the one being written.
            # FULL, not NORMAL: NORMAL survives a process crash but a power loss may undo
            # the last commits, whose receipts were answered and whose signed headers were
            # published; the node would then sign another block at the same height.
            self._wdb = sqlite_connect(self.path, synchronous="FULL")
            self._wdb.executescript(self.SCHEMA)
            if indexer is not None:
                self._wdb.executescript(indexer.schema)
            self._db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except (sqlite3.Error, OSError) as exc:
            raise StoreError(f"cannot open block store {self.path}: {exc}") from None
        self.undo_depth = 0
        """Keep, for this many of the latest blocks, the state values they overwrote, so
        that :meth:`rewind` can undo them (a chain that may reorganise; 0: none)."""
        # The last blocks saved, as objects: subscribers, publishers and receipt lookups
        # read the newest blocks, and re-parsing a 5,000-tx block costs ~0.2 s.
        self._recent: dict[int, tuple[Block, ValidatorSet]] = {}
        if indexer is not None:
            self.catch_up()

    @property
    def reader(self) -> sqlite3.Connection:
        """The reading connection: it sees committed blocks only (an indexer's reads)."""
        return self._db

    def catch_up(self) -> int:
        """Index the blocks the indexer lacks (it was off, or is new), in chunks of
        ``CATCH_UP_CHUNK`` blocks per transaction; an indexer whose tip is not a block of
        this store (it was off during a reorganisation) starts over. Returns the number
        of blocks indexed."""
        ix = self.indexer
        if ix is None:
            return 0
        latest = self.latest_height()
        try:
            tip = ix.indexed_tip(self._wdb)
            block = None if tip is None or tip[0] > latest else self.get_block(tip[0])
            if tip is not None and block is not None and block.header.hash == tip[1]:
                start = tip[0]
            else:  # new, or under other settings, or its tip was rewound away meanwhile
                start = 0
                with transaction(self._wdb) as db:
                    ix.reset(db)
                if tip is not None:
                    log.warning("%s: event index is not of these blocks; rebuilding", self.path)
            if start < latest:
                log.info("%s: indexing blocks %d..%d", self.path, start + 1, latest)
            for lo in range(start + 1, latest + 1, self.CATCH_UP_CHUNK):
                with transaction(self._wdb) as db:
                    for h in range(lo, min(lo + self.CATCH_UP_CHUNK, latest + 1)):
                        block = self.get_block(h)
                        if block is None:
                            raise StoreError(f"block {h} is missing from the store")
                        ix.index_block(db, block)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot index block store {self.path}: {exc}") from None
        return max(0, latest - start)

    def load_genesis(self) -> Genesis | None:
        row = self._db.execute("SELECT value FROM meta WHERE key='genesis'").fetchone()
        return None if row is None else Genesis.from_json(orjson.loads(row[0]))

    def save_genesis(self, genesis: Genesis, state: Mapping[str, Any]) -> None:
        with transaction(self._wdb) as db:
            db.execute("INSERT INTO meta VALUES ('genesis', ?)", (orjson.dumps(genesis.to_json()),))
            db.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?)",
                ((k, orjson.dumps(v)) for k, v in state.items() if v is not None),
            )

    def save_block(
        self, block: Block, validators: ValidatorSet, changes: Mapping[str, Any]
    ) -> None:
        h = block.height
        with transaction(self._wdb) as db:
            db.execute(
                "INSERT INTO blocks VALUES (?, ?, ?)",
                (h, _block_bytes(block), orjson.dumps(validators.to_json())),
            )
            db.executemany(
                "INSERT OR REPLACE INTO txs VALUES (?, ?, ?)",
                ((r.tx_hash, h, r.index) for r in block.receipts),
            )
            if self.indexer is not None:
                self.indexer.index_block(db, block)
            if self.undo_depth:
                old = {
                    k: None if row is None else row[0]
                    for k in changes
                    for row in [db.execute("SELECT value FROM state WHERE key=?", (k,)).fetchone()]
                }
                db.executemany("INSERT INTO undo VALUES (?, ?, ?)", ((h, *i) for i in old.items()))
                db.execute("DELETE FROM undo WHERE height <= ?", (h - self.undo_depth,))
            db.executemany(
                "DELETE FROM state WHERE key = ?", ((k,) for k, v in changes.items() if v is None)
            )
            db.executemany(
                "INSERT OR REPLACE INTO state VALUES (?, ?)",
                ((k, orjson.dumps(v)) for k, v in changes.items() if v is not None),
            )
        self._recent[h] = (block, validators)  # only once committed
        while len(self._recent) > self.RECENT_BLOCKS:
            del self._recent[next(iter(self._recent))]

    def load_state_at(self, height: int) -> dict[str, Any]:
        """The state as of ``height`` (at most ``undo_depth`` below the latest): the
        latest state with the undo log of every later block applied, newest first."""
        items = self.load_state()
        rows = self._db.execute(
            "SELECT key, value FROM undo WHERE height > ? ORDER BY height DESC", (height,)
        )
        for key, value in rows:
            if value is None:
                items.pop(key, None)
            else:
                items[key] = orjson.loads(value)
        return items

    def rewind(self, height: int) -> None:
        """Forget every block above ``height`` and undo its state changes, in one
        transaction (a crash leaves the store at the old tip or at ``height``)."""
        at = self.get_block(height) if height >= 1 else None
        with transaction(self._wdb) as db:
            rows = db.execute(
                "SELECT key, value FROM undo WHERE height > ? ORDER BY height DESC", (height,)
            ).fetchall()
            for key, value in rows:
                if value is None:
                    db.execute("DELETE FROM state WHERE key = ?", (key,))
                else:
                    db.execute("INSERT OR REPLACE INTO state VALUES (?, ?)", (key, value))
            for table in ("undo", "txs", "blocks"):
                db.execute(f"DELETE FROM {table} WHERE height > ?", (height,))
            if self.indexer is not None:
                self.indexer.rewind(db, height, None if at is None else at.header.hash)
        for h in [h for h in self._recent if h > height]:
            del self._recent[h]

    def latest_height(self) -> int:
        row = self._db.execute("SELECT MAX(height) FROM blocks").fetchone()
        return int(row[0] or 0)

    def get_block(self, height: int) -> Block | None:
        recent = self._recent.get(height)
        if recent is not None:
            return recent[0]
        row = self._db.execute("SELECT block FROM blocks WHERE height=?", (height,)).fetchone()
        return None if row is None else Block.from_json(orjson.loads(row[0]))

    def get_validators(self, height: int) -> ValidatorSet | None:
        recent = self._recent.get(height)
        if recent is not None:
            return recent[1]
        row = self._db.execute("SELECT validators FROM blocks WHERE height=?", (height,)).fetchone()
        return None if row is None else ValidatorSet.from_json(orjson.loads(row[0]))

    def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        row = self._db.execute("SELECT height, idx FROM txs WHERE hash=?", (tx_hash,)).fetchone()
        if row is None:
            return None
        height, idx = row
        recent = self._recent.get(height)
        if recent is not None:
            receipt: Receipt = recent[0].receipts[idx]
            return receipt
        blob = self._db.execute("SELECT block FROM blocks WHERE height=?", (height,)).fetchone()
        if blob is None:
            return None
        # decode only the one receipt, not every transaction of the block
        return Receipt.from_json(orjson.loads(blob[0])["receipts"][idx])

    def load_state(self) -> dict[str, Any]:
        return {k: orjson.loads(v) for k, v in self._db.execute("SELECT key, value FROM state")}

    def close(self) -> None:
        self._db.close()
        self._wdb.close()


class SubscriptionLagged(InterlockError):
    """A subscriber fell too far behind; re-read from ``next_height`` with ``get_block``."""

    def __init__(self, next_height: int) -> None:
        self.next_height = next_height
        super().__init__(f"subscriber lagged; resume from height {next_height}")


class ChainReorganised(SubscriptionLagged):
    """The typed reorg notice: a branch with more work replaced the blocks above
    ``fork_height`` (a proof-of-work chain). What a subscriber held above it is gone; as
    after a lag, re-read from ``next_height`` (``fork_height + 1``) with ``get_block``."""

    def __init__(self, fork_height: int, old_height: int, new_height: int) -> None:
        self.fork_height, self.old_height, self.new_height = fork_height, old_height, new_height
        InterlockError.__init__(
            self,
            f"chain reorganised above height {fork_height}: tip {old_height} replaced by "
            f"a branch to {new_height}; resume from height {fork_height + 1}",
        )
        self.next_height = fork_height + 1


class Subscription:
    """Async iterator over committed blocks, in height order."""

    def __init__(self, maxsize: int) -> None:
        self._queue: asyncio.Queue[Block | None] = asyncio.Queue(maxsize)
        self._reorg: ChainReorganised | None = None
        self._lagged_at: int | None = None
        self._closed = False

    def _push(self, block: Block) -> None:
        if self._lagged_at is not None or self._closed:
            return
        try:
            self._queue.put_nowait(block)
        except asyncio.QueueFull:
            self._lagged_at = block.height

    def _close(self) -> None:
        self._closed = True  # a full queue cannot take the sentinel; __anext__ checks this
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(None)

    def close(self) -> None:
        """End iteration once the blocks already queued are consumed (the owner's stop)."""
        self._close()

    @property
    def closed(self) -> bool:
        """True once the node (or the owner) ended it: no block will be added."""
        return self._closed

    def __aiter__(self) -> Subscription:
        return self

    @property
    def reorganised(self) -> bool:
        """True when the next read raises :class:`ChainReorganised`."""
        return self._reorg is not None

    def _push_reorg(self, notice: ChainReorganised) -> None:
        """Drop what is queued (it may be replaced) and raise ``notice`` next."""
        if self._closed:
            return
        while not self._queue.empty():
            self._queue.get_nowait()
        self._lagged_at = None
        prev = self._reorg
        if prev is not None:  # two before it was read: the lower fork covers both
            notice = ChainReorganised(
                min(prev.fork_height, notice.fork_height), prev.old_height, notice.new_height
            )
        self._reorg = notice
        self._queue.put_nowait(None)  # wakes a waiting reader; __anext__ raises the notice

    async def __anext__(self) -> Block:
        if self._reorg is not None:
            notice, self._reorg = self._reorg, None
            while not self._queue.empty():
                self._queue.get_nowait()
            raise notice
        if self._lagged_at is not None and self._queue.empty():
            raise SubscriptionLagged(self._lagged_at)
        if self._closed and self._queue.empty():
            raise StopAsyncIteration
        item = await self._queue.get()
        if self.reorganised:  # set while this read waited
            return await self.__anext__()
        if item is None:
            raise StopAsyncIteration
        return item


class Node:
    """Runs one chain: ``async with node: ...`` starts block production, exit stops it."""

    def __init__(
        self,
        chain: Chain,
        keys: Sequence[PrivateKey],
        store: BlockStore,
        *,
        block_interval: float = 1.0,
        mempool_capacity: int = 20_000,
        max_block_txs: int = 10_000,
        clock: Callable[[], float] = _time.time,
    ) -> None:
        self.chain = chain
        self.keys = tuple(keys)
        self.store = store
        self.block_interval = block_interval
        self.max_block_txs = max_block_txs
        self.mempool = Mempool(chain, mempool_capacity)
        self.clock = clock
        self._waiters: dict[bytes, asyncio.Future[Receipt]] = {}
        self._subs: list[Subscription] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._failure: InterlockError | None = None
        self._new_block = asyncio.Event()
        self._building = asyncio.Lock()  # a reorganisation never runs inside a block
        self._modules: Callable[[], Sequence[Module]] | None = None
        self._side: dict[bytes, Block] = {}  # competing branches' blocks, by hash
        self.reorgs = 0
        """Reorganisations so far (this process)."""
        self.on_commit: list[Callable[[Block], None]] = []
        """Called, in order and synchronously, with each block this node produces, once it
        is persisted and handed to the subscribers, whichever path produced it (the run
        loop or ``produce_block``): the moment of the commit, for a bench or a metric.
        Each must be quick; one that raises is logged and skipped, never stops the node.
        A peer's branch the node adopts is announced by :class:`ChainReorganised`."""

    @classmethod
    def open(
        cls,
        genesis: Genesis,
        modules: Callable[[], Sequence[Module]],
        keys: Sequence[PrivateKey],
        store: BlockStore,
        **options: Any,
    ) -> Node:
        """A node on ``store``: fresh from ``genesis``, or resumed where it stopped."""
        node = cls._open(genesis, modules, keys, store, **options)
        node._modules = modules
        engine = genesis.consensus
        if get_branch_rule(engine) is not None and isinstance(store, SQLiteBlockStore):
            store.undo_depth = get_finality_depth(engine) + 1  # what a reorg may undo
        return node

    @classmethod
    def _open(
        cls,
        genesis: Genesis,
        modules: Callable[[], Sequence[Module]],
        keys: Sequence[PrivateKey],
        store: BlockStore,
        **options: Any,
    ) -> Node:
        stored = store.load_genesis()
        if stored is None:
            chain = Chain(genesis, modules())
            store.save_genesis(genesis, chain.state.take_changes())
            return cls(chain, keys, store, **options)
        if stored.hash != genesis.hash:
            raise StoreError(f"store holds another genesis (chain {stored.chain_id!r})")
        height = store.latest_height()
        if height == 0:
            chain = Chain(genesis, modules())
            chain.state.take_changes()
            return cls(chain, keys, store, **options)
        block, vals = store.get_block(height), store.get_validators(height)
        if block is None or vals is None:
            raise StoreError(f"block {height} is missing from the store")
        chain = Chain.restore(genesis, modules(), store.load_state(), block.header, vals)
        log.info("resumed %s at height %d", genesis.chain_id, height)
        return cls(chain, keys, store, **options)

    # --- reads ----------------------------------------------------------------------
    @property
    def failure(self) -> InterlockError | None:
        """Why block production stopped (fail-stop), or ``None`` while it has not failed.

        A failed node answers nothing new: health checks must report it, and its process
        should exit non-zero so that a supervisor restarts it on the same store."""
        return self._failure

    @property
    def chain_id(self) -> str:
        return self.chain.chain_id

    @property
    def height(self) -> int:
        return self.chain.height

    def get_block(self, height: int) -> Block | None:
        return self.store.get_block(height)

    def get_validators(self, height: int) -> ValidatorSet | None:
        return self.store.get_validators(height)

    def get_receipt(self, tx_hash: bytes) -> Receipt | None:
        return self.store.get_receipt(tx_hash)

    # --- writes ---------------------------------------------------------------------
    def submit_nowait(self, tx: Tx, *, signature_checked: bool = False) -> asyncio.Future[Receipt]:
        """Admit ``tx`` (raises TxRejected at once) and return a future of its receipt.

        ``signature_checked``: see :meth:`Mempool.add` (the RPC verifies batches in a
        worker thread, then admits them here)."""
        if self._stopping:
            if self._failure is not None:
                raise StoreError(f"node stopped producing blocks: {self._failure}")
            raise StoreError("node is shutting down")
        self.mempool.add(tx, signature_checked=signature_checked)
        for evicted, exc in self.mempool.take_evicted():  # the admission policy made room
            waiter = self._waiters.pop(evicted.hash, None)
            if waiter is not None and not waiter.done():
                waiter.set_exception(exc)
        fut: asyncio.Future[Receipt] = asyncio.get_running_loop().create_future()
        self._waiters[tx.hash] = fut
        return fut

    async def submit(self, tx: Tx) -> Receipt:
        """Admit ``tx`` and wait for its receipt in a committed, persisted block."""
        return await self.submit_nowait(tx)

    async def submit_block(self, block: Block) -> str:
        """Take a block made elsewhere (a peer's, as ``submitblock`` does in Bitcoin
        Core), on a chain whose engine has a branch rule (proof of work or of stake,
        ``chains.branch``). Its header must meet the engine's rules after its parent (a
        block of this chain or of a branch offered before). The branch it ends becomes
        the chain when the engine's fork choice prefers it to the chain above their fork
        point (PoW: more work; PoS: longer, then fewer slots, then the lower tip hash):
        the node executes it, replaces the blocks above the fork (the store and the state
        roll back with its undo log), puts the dropped blocks' transactions back in the
        mempool and tells every subscriber (:class:`ChainReorganised`).

        Returns ``best`` (the chain now ends with it), ``side`` (kept: not preferred, for
        now) or ``duplicate``. Raises :class:`InvalidBlock`, :class:`UnknownParent`,
        :class:`ForkBelowFinality` (a final block is never replaced) or the engine's
        header errors, changing nothing.
        """
        engine = self.chain.genesis.consensus
        rule, h = get_branch_rule(engine), block.header
        if rule is None or engine is None or not isinstance(self.store, SQLiteBlockStore):
            raise InvalidBlock(h.height, "this chain takes no blocks from peers")
        if h.chain_id != self.chain_id:
            raise InvalidBlock(h.height, f"it is a block of {h.chain_id!r}")
        async with self._building:
            return self._take_block(rule, engine.finality_depth, self.store, block)

    def _main_hash(self, height: int) -> bytes | None:
        if height == 0:
            return self.chain.genesis_hash
        b = self.store.get_block(height)
        return None if b is None else b.header.hash

    # ChainView (chains.branch): what the engine's branch rule reads of this chain
    @property
    def genesis_time(self) -> int:
        return self.chain.genesis.time

    def get_header(self, height: int) -> Header | None:
        b = self.store.get_block(height) if height >= 1 else None
        return None if b is None else b.header

    def get_table(self, height: int) -> ValidatorSet | None:
        if height == self.chain.height + 1:
            return self.chain.validators
        return self.store.get_validators(height)

    def _take_block(
        self, rule: BranchRule, depth: int, store: SQLiteBlockStore, block: Block
    ) -> str:
        h = block.header
        if h.hash in self._side or self._main_hash(h.height) == h.hash:
            return "duplicate"
        rule.validate_alone(h)
        branch = [block]
        while self._main_hash(branch[0].height - 1) != branch[0].header.prev_hash:
            parent = self._side.get(branch[0].header.prev_hash)
            if parent is None:
                raise UnknownParent(branch[0].height, branch[0].header.prev_hash.hex())
            branch.insert(0, parent)
        fork, old_height = branch[0].height - 1, self.chain.height
        final = max(0, old_height - depth)
        if fork < final:
            raise ForkBelowFinality(fork, final)
        headers = [b.header for b in branch]
        rule.validate_branch(self, fork, headers, int(self.clock() * 1000))
        self._side[h.hash] = block
        while len(self._side) > MAX_SIDE_BLOCKS:
            del self._side[next(iter(self._side))]
        ours = [store.get_block(x) for x in range(fork + 1, old_height + 1)]
        old = [b for b in ours if b is not None]
        if not rule.is_better_branch(headers, [b.header for b in old]):
            return "side"
        self._reorganise(store, fork, branch, old)
        return "best"

    def _reorganise(
        self, store: SQLiteBlockStore, fork: int, branch: list[Block], old: list[Block]
    ) -> None:
        """Make ``branch`` (validated, from ``fork + 1``) the chain. It is executed on a
        copy of the chain at ``fork`` first: a block that does not execute to its own
        header refuses the whole branch and changes nothing."""
        assert self._modules is not None
        genesis = self.chain.genesis
        if fork == 0:
            chain = Chain(genesis, self._modules())
        else:
            at, vals = store.get_block(fork), store.get_validators(fork)
            if at is None or vals is None:
                raise StoreError(f"block {fork} is missing from the store")
            items = store.load_state_at(fork)
            chain = Chain.restore(genesis, self._modules(), items, at.header, vals)
        chain.state.take_changes()
        results = []
        for b in branch:
            try:
                results.append((chain.process_block(b), chain.state.take_changes()))
            except InvalidBlock:
                for bad in branch[branch.index(b) :]:
                    self._side.pop(bad.header.hash, None)
                raise
        store.rewind(fork)
        for result, changes in results:
            store.save_block(result.block, result.validators, changes)
        old_height = self.chain.height
        self.chain = chain
        self.mempool.chain = chain
        for b in branch:
            self._side.pop(b.header.hash, None)
        # the dropped blocks' transactions go back first, then what was waiting; what no
        # longer fits the new state (a nonce the branch used) is refused, as after a block
        kept = {tx.hash for b in branch for tx in b.txs}
        waiting = self.mempool.take(len(self.mempool))
        self.mempool.recheck()  # empty: forgets the nonces pending on the old chain
        for tx in [*(t for b in old for t in b.txs if t.hash not in kept), *waiting]:
            try:
                self.mempool.add(tx, signature_checked=True)
            except InterlockError as exc:
                fut = self._waiters.pop(tx.hash, None)
                if fut is not None and not fut.done():
                    fut.set_exception(exc)
        self.reorgs += 1
        notice = ChainReorganised(fork, old_height, chain.height)
        log.warning("%s: %s", self.chain_id, notice)
        for sub in self._subs:
            sub._push_reorg(notice)
        self._new_block.set()

    def subscribe(self, maxsize: int = 4096) -> Subscription:
        sub = Subscription(maxsize)
        self._subs.append(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        """Stop feeding ``sub`` (e.g. a lagged one being replaced) and end its iteration."""
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)
        sub.close()

    async def wait_for_height(self, height: int) -> None:
        while self.chain.height < height:
            if self._failure is not None:
                raise StoreError(f"node stopped producing blocks: {self._failure}")
            if self._stopping:
                raise StoreError(f"node stopped before height {height}")
            self._new_block.clear()
            await self._new_block.wait()

    # --- production -------------------------------------------------------------------
    def produce_block(self) -> Block:
        """Produce, persist and announce one block now, in one piece (tests, benches)."""
        txs = self.mempool.take(self.max_block_txs)
        now_ms = int(self.clock() * 1000)
        result = self.chain.produce_block(txs, now_ms, self.keys, verify_signatures=False)
        return self._commit(result)

    async def produce_block_yielding(self) -> Block:
        """:meth:`produce_block`, holding the event loop only in short pieces: it executes
        ``EXEC_CHUNK`` transactions at a time and yields in between, and a SQLite store
        writes and syncs the block in a worker thread. Until the block is persisted, reads
        (``Chain.read_state``, the store) see the previous one. Cancelled meanwhile, it
        still completes the block: a block is produced whole or not at all."""
        async with self._building:
            return await self._produce_block_yielding()

    async def _produce_block_yielding(self) -> Block:
        txs = self.mempool.take(self.max_block_txs)
        builder = self.chain.start_block(int(self.clock() * 1000), self.keys)
        cancelled = False
        for i in range(0, len(txs), EXEC_CHUNK):
            builder.execute(txs[i : i + EXEC_CHUNK], verify_signatures=False)
            if not cancelled and i + EXEC_CHUNK < len(txs):
                try:
                    await asyncio.sleep(0)
                except asyncio.CancelledError:
                    cancelled = True
        mined = None
        if builder.needs_mining:
            header, start = builder.build_header(), 0
            while mined is None:  # MINE_TRIES nonces a call: the thread is never held long
                search = functools.partial(mine, header, start, MINE_TRIES)
                mined, stopped = await _in_thread(search)
                cancelled, start = cancelled or stopped, start + MINE_TRIES
        result = builder.seal(mined)
        changes = self.chain.state.take_changes()
        if isinstance(self.store, SQLiteBlockStore):
            save = functools.partial(
                self.store.save_block, result.block, result.validators, changes
            )
            stopped = (await _in_thread(save))[1]  # a failed write raises here: fail stop
            cancelled = cancelled or stopped
        else:
            self.store.save_block(result.block, result.validators, changes)
        builder.apply(result)
        block = self._announce(result)
        if cancelled:
            raise asyncio.CancelledError
        return block

    def _commit(self, result: BlockResult) -> Block:
        """Persist and announce a produced block."""
        self.store.save_block(result.block, result.validators, self.chain.state.take_changes())
        return self._announce(result)

    def _announce(self, result: BlockResult) -> Block:
        """Resolve the block's submitters, recheck the mempool, feed the subscribers."""
        block = result.block
        for tx, err in result.dropped:
            fut = self._waiters.pop(tx.hash, None)
            if fut is not None and not fut.done():
                fut.set_exception(err)
        for r in block.receipts:
            fut = self._waiters.pop(r.tx_hash, None)
            if fut is not None and not fut.done():
                fut.set_result(r)
        for tx, exc in self.mempool.recheck():
            fut = self._waiters.pop(tx.hash, None)
            if fut is not None and not fut.done():
                fut.set_exception(exc)
        for sub in self._subs:
            sub._push(block)
        self._new_block.set()
        for observe in self.on_commit:
            try:
                observe(block)
            except Exception:  # an observer's bug is no reason to stop the chain
                log.exception("%s: an on_commit observer failed", self.chain_id)
        return block

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while not self._stopping:
            next_at += self.block_interval
            delay = next_at - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                next_at = loop.time()  # fell behind: do not burst to catch up
                await asyncio.sleep(0)
            try:
                block = await self.produce_block_yielding()
            except Exception as exc:
                # Fail stop. The keys cannot commit, or the in-memory chain is now ahead of
                # the store: building on would diverge from disk. Restarting resumes at the
                # last persisted block.
                log.exception("%s: block production failed; node stopped", self.chain_id)
                self._fail_stop(exc)
                return
            log.debug(
                "%s committed height %d (%d txs)", self.chain_id, block.height, len(block.txs)
            )

    def _fail_stop(self, exc: Exception) -> None:
        self._stopping = True
        self._failure = exc if isinstance(exc, InterlockError) else StoreError(repr(exc))
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(self._failure)
        self._waiters.clear()
        for sub in self._subs:
            sub._close()
        self._subs.clear()
        self._new_block.set()

    async def __aenter__(self) -> Node:
        self._task = asyncio.create_task(self.run(), name=f"node:{self.chain_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        """Stop producing, fail pending submissions, close subscriptions and the store."""
        await self.halt()
        self.store.close()

    async def halt(self) -> None:
        """Stop producing, fail pending submissions and close subscriptions, but keep the
        store open: a publisher draining its subscription may still read it. ``stop``
        afterwards closes the store."""
        self._stopping = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            if not await stop_within(task, 5, cancel=False):
                log.error("%s: block production did not stop within 5 s", self.chain_id)
            elif not task.cancelled() and task.exception() is not None:
                log.error("%s: block production had failed: %s", self.chain_id, task.exception())
        for fut in self._waiters.values():
            if not fut.done():
                fut.set_exception(StoreError("node stopped before the transaction committed"))
        self._waiters.clear()
        for sub in self._subs:
            sub._close()
        self._subs.clear()
        self._new_block.set()  # wake wait_for_height, which now raises

    async def blocks(self) -> AsyncIterator[Block]:
        """Committed blocks from now on (a convenience over ``subscribe``); leaving the
        loop (or closing the generator) unsubscribes."""
        sub = self.subscribe()
        try:
            async for block in sub:
                yield block
        finally:
            self.unsubscribe(sub)
