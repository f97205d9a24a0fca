"""A bounded mempool. Pure: the node owns it and calls it from one task.

Admission runs ``Chain.check_tx`` against the sender's *pending* nonce (state nonce plus
transactions already waiting), so one account can queue many transactions in order, and
refuses duplicates and overflow with typed errors. Nothing refused is kept.
"""

from __future__ import annotations

from chains.chain import Chain
from chains.errors import DuplicateTx, MempoolFull
from chains.types import Tx

__all__ = ["Mempool"]


class Mempool:
    """FIFO of checked transactions; per sender, nonces are consecutive."""

    def __init__(self, chain: Chain, capacity: int = 20_000) -> None:
        self.chain = chain
        self.capacity = capacity
        self._txs: dict[bytes, Tx] = {}
        self._pending: dict[str, int] = {}  # sender -> next nonce after queued txs

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
        if len(self._txs) >= self.capacity:
            raise MempoolFull(self.capacity)
        sender = tx.sender_address
        self.chain.check_tx(tx, self._pending.get(sender), signature_checked=signature_checked)
        self._txs[tx.hash] = tx
        self._pending[sender] = tx.nonce + 1

    def next_nonce(self, sender: str) -> int:
        """The nonce ``sender``'s next transaction must carry, counting queued ones."""
        pending = self._pending.get(sender)
        return self.chain.next_nonce(sender) if pending is None else pending

    def take(self, limit: int) -> list[Tx]:
        """Remove and return up to ``limit`` transactions in arrival order."""
        out: list[Tx] = []
        for h in list(self._txs)[:limit]:
            out.append(self._txs.pop(h))
        return out

    def recheck(self) -> list[tuple[Tx, Exception]]:
        """After a block: forget pending nonces and drop what no longer fits the state."""
        self._pending.clear()
        waiting, self._txs = list(self._txs.values()), {}
        dropped: list[tuple[Tx, Exception]] = []
        for tx in waiting:
            try:
                self.add(tx, signature_checked=True)  # verified on admission; bytes are frozen
            except Exception as exc:  # typed TxRejected in practice
                dropped.append((tx, exc))
        return dropped
