"""Paying one bank's legs of a netting round's settlement through the chains' RPC, at most
once (the shell of ``interlock netting run --settle``).

Every bank computes the same plan from the round's net positions
(:func:`netting.plan.plan_settlement`, routed by :func:`netting.plan.route_settlement`)
and pays only the legs it is the payer of, signed with its own key: a ``bank.transfer``
when payer and payee hold the asset on one chain, a ``bridge.lock`` on the home chain
(the relayer daemon mints to the payee) or a ``bridge.burn`` of the wrapped twin (the
daemon releases at home). Nothing here relays.

**At most once.** A leg, named by (round, its index in the plan), is paid by one signed
transaction that is written to the bank's journal (:class:`SettlementJournal`, SQLite)
*before* it is submitted. A re-run of the same round finds it and asks the chain, in this
order, the account's committed nonce and then the transaction's receipt (by hash):

* a receipt: it was included; paid, or failed on chain (then nothing moved, and the leg
  is signed anew);
* no receipt and the committed nonce already past the transaction's: the nonce went to
  another transaction, so this one can never be included: signed anew;
* otherwise the very same bytes are submitted again (or are still waiting in the
  mempool): a chain takes a nonce once, so they are included at most once.

A lock or burn leg that the bridge refunded moved nothing (escrow returned) and is signed
anew by a re-run. The round's result and the bank's holding before the round are in the
journal too: a re-run does not take part in the round again (its peers are done with
it) but settles the result it recorded, and checks the holding against the one it saw
first.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from chains.crypto import PrivateKey
from chains.errors import TxRejected
from chains.service.rpc_client import HttpChain, RpcError, RpcUnavailable
from chains.sqlite import open_store, transaction
from chains.types import Receipt, Tx
from interlock.cmd_common import TxRefused
from interlock.cmd_transfer import Progress, TransferId, compute_progress, read_transfer
from interlock.netting_round import RoundFile
from netting.plan import Leg, compute_call

__all__ = [
    "JournalRound",
    "PaidLeg",
    "SettlementJournal",
    "compute_leg_call",
    "get_holding",
    "pay_leg",
    "reconcile_tx",
    "wait_for_transfer",
]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rounds (
    round_id TEXT NOT NULL,
    me       TEXT NOT NULL,
    digest   TEXT NOT NULL,
    before   INTEGER NOT NULL,
    result   BLOB,
    PRIMARY KEY (round_id, me)
);
CREATE TABLE IF NOT EXISTS legs (
    round_id TEXT NOT NULL,
    me       TEXT NOT NULL,
    leg      INTEGER NOT NULL,
    chain_id TEXT NOT NULL,
    tx_hash  TEXT NOT NULL,
    tx       BLOB NOT NULL,
    PRIMARY KEY (round_id, me, leg)
);
"""


@dataclass(frozen=True, slots=True)
class JournalRound:
    """What a bank recorded of a round."""

    digest: str
    """The round file's digest."""
    before: int
    """The bank's holding of the asset before the round."""
    positions: tuple[int, ...] | None
    """Net positions by the round file's party index (None until the round completed)."""
    gross: int
    net: int


class SettlementJournal:
    """One bank's rounds and signed legs, in one SQLite file (``synchronous=FULL``: a leg
    recorded is on disk before its transaction exists)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._db = open_store(path, _SCHEMA, "settlement journal")

    def close(self) -> None:
        self._db.close()

    def get_round(self, round_id: str, me: bytes) -> JournalRound | None:
        row = self._db.execute(
            "SELECT digest, before, result FROM rounds WHERE round_id=? AND me=?",
            (round_id, me.hex()),
        ).fetchone()
        if row is None:
            return None
        digest, before, blob = row
        if blob is None:
            return JournalRound(digest, before, None, 0, 0)
        r = orjson.loads(blob)
        return JournalRound(digest, before, tuple(r["positions"]), r["gross"], r["net"])

    def begin_round(self, round_id: str, me: bytes, digest: str, before: int) -> None:
        """Record the holding before the round (the first one recorded stays)."""
        with transaction(self._db) as db:
            db.execute(
                "INSERT OR IGNORE INTO rounds (round_id, me, digest, before) VALUES (?,?,?,?)",
                (round_id, me.hex(), digest, before),
            )

    def record_result(
        self, round_id: str, me: bytes, positions: tuple[int, ...], gross: int, net: int
    ) -> None:
        blob = orjson.dumps({"positions": list(positions), "gross": gross, "net": net})
        with transaction(self._db) as db:
            db.execute(
                "UPDATE rounds SET result=? WHERE round_id=? AND me=?",
                (blob, round_id, me.hex()),
            )

    def get_leg(self, round_id: str, me: bytes, index: int) -> Tx | None:
        row = self._db.execute(
            "SELECT tx FROM legs WHERE round_id=? AND me=? AND leg=?",
            (round_id, me.hex(), index),
        ).fetchone()
        return None if row is None else Tx.from_json(orjson.loads(row[0]))

    def put_leg(self, round_id: str, me: bytes, index: int, tx: Tx) -> None:
        """Must precede the transaction's submission (see the module docstring)."""
        with transaction(self._db) as db:
            db.execute(
                "INSERT OR REPLACE INTO legs (round_id, me, leg, chain_id, tx_hash, tx) "
                "VALUES (?,?,?,?,?,?)",
                (round_id, me.hex(), index, tx.chain_id, tx.hash.hex(), orjson.dumps(tx.to_json())),
            )


# --- the chain side ---------------------------------------------------------------------


def compute_leg_call(leg: Leg, rf: RoundFile) -> tuple[str, str, dict[str, Any]]:
    """The (module, method, args) of the transaction that pays ``leg``."""
    return compute_call(leg, rf.parties[leg.transfer.payee].address, rf.asset_chain, rf.denom)


async def get_holding(chain: HttpChain, address: str, denom: str) -> int:
    got = await chain.query("bank", "balance", {"address": address, "denom": denom})
    if not isinstance(got, int) or isinstance(got, bool):
        raise RpcError(chain.chain_id, 200, "malformed_response", "balance is not an integer")
    return got


async def reconcile_tx(chain: HttpChain, tx: Tx, deadline: float) -> Receipt | None:
    """The receipt of a journaled ``tx``, submitting the same bytes again while it may
    still be included; None once it never can be (its nonce went to another transaction).
    Raises :class:`TimeoutError` at ``deadline`` (monotonic)."""
    while True:
        committed = await chain.next_nonce(tx.sender_address)  # before the receipt: no race
        receipt = await chain.get_receipt(tx.hash)
        if receipt is not None:
            return receipt
        if committed > tx.nonce:
            return None
        try:
            await chain.submit_nowait(tx)
        except RpcUnavailable:
            raise
        except (TxRejected, RpcError):
            pass  # already in the mempool, or an earlier nonce still pending: wait
        if time.monotonic() > deadline:
            raise TimeoutError(f"transaction {tx.hash.hex()[:16]} on {chain.chain_id}")
        await asyncio.sleep(0.3)


def _transfer_id(leg: Leg, receipt: Receipt) -> TransferId | None:
    for e in receipt.events:
        if e.type in ("bridge.locked", "bridge.burned"):
            return TransferId(leg.chain, leg.to_chain, int(str(e.attributes["nonce"])))
    return None


@dataclass(frozen=True, slots=True)
class PaidLeg:
    """A leg this bank paid (now or in an earlier run)."""

    index: int
    """Its index in the round's plan."""
    leg: Leg
    receipt: Receipt
    """The receipt of the transaction that paid it."""
    transfer: TransferId | None
    """The bridge transfer it started (lock and burn legs)."""
    resumed: bool
    """Paid by an earlier run (found in the journal and on chain)."""


async def pay_leg(
    chains: Mapping[str, HttpChain],
    key: PrivateKey,
    journal: SettlementJournal,
    rf: RoundFile,
    index: int,
    leg: Leg,
    deadline: float,
) -> PaidLeg:
    """Pay ``leg`` unless an earlier run did (see the module docstring); a transaction
    the chain refuses is :class:`TxRefused`."""
    chain = chains[leg.chain]
    round_id = rf.bus_round_id
    old = journal.get_leg(round_id, key.public_key, index)
    if old is not None:
        receipt = await reconcile_tx(chain, old, deadline)
        if receipt is not None and receipt.ok:
            tid = _transfer_id(leg, receipt)
            refunded = False
            if tid is not None:
                sent, got, refusal = await read_transfer(chain, chains[leg.to_chain], tid)
                refunded = compute_progress(sent, got, 0, 0, refusal) is Progress.REFUNDED
            if not refunded:
                return PaidLeg(index, leg, receipt, tid, True)
    module, method, args = compute_leg_call(leg, rf)
    tx = Tx.create(
        key, chain.chain_id, await chain.pending_nonce(key.address), module, method, args
    )
    journal.put_leg(round_id, key.public_key, index, tx)  # must precede the submission
    receipt = await chain.submit(tx)
    if not receipt.ok:
        raise TxRefused(chain.chain_id, receipt)
    return PaidLeg(index, leg, receipt, _transfer_id(leg, receipt), False)


async def wait_for_transfer(
    src: HttpChain, dst: HttpChain, tid: TransferId, deadline: float
) -> Progress:
    """DELIVERED or REFUNDED, as both chains tell it; raises TimeoutError at ``deadline``."""
    while True:
        sent, got, refusal = await read_transfer(src, dst, tid)
        now = compute_progress(sent, got, 0, 0, refusal)
        if now in (Progress.DELIVERED, Progress.REFUNDED):
            return now
        if time.monotonic() > deadline:
            raise TimeoutError(f"transfer {tid} still {now.value}")
        await asyncio.sleep(0.5)
