"""A bounded mempool with an admission policy. Pure: the node owns it and calls it from
one task.

Admission runs ``Chain.check_tx`` against the sender's *pending* nonce (state nonce plus
transactions already waiting), so one account can queue many transactions in order, and
refuses duplicates and overflow with typed errors. Nothing refused is kept.

There are no fees, so what a sender may take is rationed instead (the admission policy):

* **Unfunded senders** (no balance of any denom) share one slice of the pool,
  ``capacity // 8``: fresh keys cost nothing to make, so together they may never crowd
  out an account that holds something. They still get in (anyone may relay a proof or
  claim a lock), after funded senders in every block.
* **Each sender** may queue at most ``max_per_sender`` transactions (default
  ``capacity // 16``, at least 64).
* **A full pool** takes a funded sender's transaction by evicting the newest
  transaction of the sender that queues the most (unfunded first), if that sender
  queues more than the newcomer: one spamming account cannot keep others out.
* **Blocks are filled round-robin by sender** (in order of each sender's oldest
  queued transaction, funded senders first): a sender with 10,000 queued transactions
  gets one slot per round like everyone else, so an honest user's transaction is in the
  next block as long as the block has room for one transaction per funded sender.

What it does not stop: many funded accounts (a Sybil spammer pays for each one's funds
and still gets only one share per account). Fees would price that too, but they change
every balance and the transaction format; this policy needs neither.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from itertools import count

from chains.chain import Chain
from chains.errors import DuplicateTx, MempoolFull, SenderQueueFull
from chains.types import Tx

__all__ = ["Mempool", "is_funded"]


def is_funded(chain: Chain, address: str) -> bool:
    """Whether ``address`` holds a balance of any denom: one ordered read of the state."""
    return next(chain.read_state().items(f"bank/bal/{address}/"), None) is not None


class Mempool:
    """Checked transactions, per sender in nonce order, taken fairly into blocks."""

    def __init__(
        self,
        chain: Chain,
        capacity: int = 20_000,
        max_per_sender: int | None = None,
        funded: Callable[[Chain, str], bool] = is_funded,
    ) -> None:
        self.chain = chain
        self.capacity = capacity
        if max_per_sender is None:
            max_per_sender = min(capacity, max(64, capacity // 16))
        self.max_per_sender = max_per_sender
        self.unfunded_capacity = max(1, capacity // 8)
        self._is_funded = funded
        self._txs: dict[bytes, Tx] = {}  # arrival order
        self._pending: dict[str, int] = {}  # sender -> next nonce after queued txs
        self._queues: dict[str, deque[Tx]] = {}  # sender -> queued, nonce order
        self._funded: dict[str, bool] = {}  # per sender, until the next block
        self._unfunded = 0  # transactions queued by unfunded senders
        self._unfunded_senders: dict[str, None] = {}  # in order of arrival
        # senders by how many they queue, most first; stale entries are skipped on pop
        self._heap: list[tuple[int, int, str]] = []
        self._seq = count()
        self._evicted: list[tuple[Tx, Exception]] = []

    def __len__(self) -> int:
        return len(self._txs)

    def __contains__(self, tx_hash: bytes) -> bool:
        return tx_hash in self._txs

    def add(self, tx: Tx, *, signature_checked: bool = False) -> None:
        """Check and queue ``tx``, or raise a :class:`~chains.errors.TxRejected`.

        ``signature_checked``: the caller already verified this transaction's signature
        (``chains.chain.is_signature_valid``); everything else is still checked."""
        if tx.hash in self._txs:
            raise DuplicateTx(tx.hash.hex())
        sender = tx.sender_address
        queued = len(self._queues.get(sender, ()))
        if queued >= self.max_per_sender:
            raise SenderQueueFull(sender, self.max_per_sender)
        funded = self._sender_funded(sender)
        if not funded and self._unfunded >= self.unfunded_capacity:
            raise MempoolFull(self.capacity)
        victim = None
        if len(self._txs) >= self.capacity:
            victim = self._victim(sender, queued) if funded else None
            if victim is None:
                raise MempoolFull(self.capacity)
        # the costly checks (nonce, signature) run only once the tx could be kept
        self.chain.check_tx(tx, self._pending.get(sender), signature_checked=signature_checked)
        if victim is not None:
            self._evict_newest(victim)
        self._txs[tx.hash] = tx
        self._pending[sender] = tx.nonce + 1
        queue = self._queues.get(sender)
        if queue is None:
            queue = self._queues[sender] = deque()
        queue.append(tx)
        if not funded:
            self._unfunded += 1
            self._unfunded_senders[sender] = None
        heapq.heappush(self._heap, (-len(queue), next(self._seq), sender))

    def take_evicted(self) -> list[tuple[Tx, Exception]]:
        """Transactions evicted by :meth:`add` since the last call, with why: their
        submitters must hear that they will not be included."""
        out, self._evicted = self._evicted, []
        return out

    def next_nonce(self, sender: str) -> int:
        """The nonce ``sender``'s next transaction must carry, counting queued ones."""
        pending = self._pending.get(sender)
        return self.chain.next_nonce(sender) if pending is None else pending

    def take(self, limit: int) -> list[Tx]:
        """Remove and return up to ``limit`` transactions: one per sender per round,
        funded senders first, each sender's in nonce order."""
        out: list[Tx] = []
        queues = self._queues
        unfunded = self._unfunded_senders
        for senders in ([s for s in queues if s not in unfunded], list(unfunded)):
            while senders and len(out) < limit:
                still: list[str] = []
                for s in senders:
                    queue = queues[s]
                    tx = queue.popleft()
                    out.append(tx)
                    del self._txs[tx.hash]
                    if s in unfunded:
                        self._unfunded -= 1
                    if queue:
                        still.append(s)
                    else:
                        self._forget(s)
                    if len(out) == limit:
                        break
                senders = still
        self._heap = [(-len(q), next(self._seq), s) for s, q in queues.items()]
        heapq.heapify(self._heap)
        return out

    def recheck(self) -> list[tuple[Tx, Exception]]:
        """After a block: forget pending nonces and funding, and drop what no longer fits
        the state."""
        waiting = list(self._txs.values())
        self._txs, self._pending, self._queues, self._funded = {}, {}, {}, {}
        self._unfunded, self._heap, self._unfunded_senders = 0, [], {}
        dropped: list[tuple[Tx, Exception]] = []
        for tx in waiting:
            try:
                self.add(tx, signature_checked=True)  # verified on admission; bytes are frozen
            except Exception as exc:  # typed TxRejected in practice
                dropped.append((tx, exc))
        return dropped + self.take_evicted()

    # --- internals ------------------------------------------------------------------
    def _sender_funded(self, sender: str) -> bool:
        funded = self._funded.get(sender)
        if funded is None:
            funded = self._funded[sender] = self._is_funded(self.chain, sender)
        return funded

    def _victim(self, sender: str, queued: int) -> str | None:
        """The sender whose newest transaction a newcomer from ``sender`` (queuing
        ``queued``) may evict from a full pool: the newest unfunded sender first, else
        the one queuing the most if that is more than ``queued + 1`` would be."""
        if self._unfunded_senders:
            return next(reversed(self._unfunded_senders))
        heap = self._heap
        while heap:
            neg, _, top = heap[0]
            if len(self._queues.get(top, ())) != -neg:
                heapq.heappop(heap)  # stale: that sender's count changed since
                continue
            return top if top != sender and -neg > queued + 1 else None
        return None

    def _evict_newest(self, sender: str) -> None:
        queue = self._queues[sender]
        tx = queue.pop()
        del self._txs[tx.hash]
        self._evicted.append((tx, MempoolFull(self.capacity)))
        self._pending[sender] = tx.nonce  # its successors are not queued: it is next
        if sender in self._unfunded_senders:
            self._unfunded -= 1
        if queue:
            heapq.heappush(self._heap, (-len(queue), next(self._seq), sender))
        else:
            self._forget(sender)

    def _forget(self, sender: str) -> None:
        """``sender`` queues nothing more (its pending nonce stays until the next block)."""
        del self._queues[sender]
        self._unfunded_senders.pop(sender, None)
