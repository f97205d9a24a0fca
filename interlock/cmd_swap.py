"""``interlock swap initiate|participate|redeem|refund|extract-secret|audit``: an HTLC
atomic swap driven by hand, as with decred's atomicswap tool, over the chains' RPC.

The verbs build their transactions with :mod:`htlc.swap` (``initiate``, ``participate``,
``redeem``, ``refund``, ``extract_secret``, ``audit``). Each checks what the chain would
refuse before signing (an open lock, the right side of its timelock, a secret that opens
the hashlock, the balance), so a refused intent submits nothing and uses no nonce.

A manual swap, Alice (usd on chain-a) with Bob (eur on chain-b)::

    alice$ interlock swap initiate BOB_ADDR 100usd --chain chain-a --key alice --locktime 2h
           (prints the secret: keep it private; the hashlock and lock id: send them to Bob)
    bob$   interlock swap audit LOCK_A --chain chain-a --amount 100usd --receiver BOB_ADDR
    bob$   interlock swap participate ALICE_ADDR 92eur HASHLOCK --chain chain-b --key bob \\
               --locktime 1h
    alice$ interlock swap audit LOCK_B --chain chain-b --amount 92eur --receiver ALICE_ADDR
    alice$ interlock swap redeem LOCK_B SECRET --chain chain-b --key alice
    bob$   interlock swap extract-secret LOCK_B --chain chain-b
    bob$   interlock swap redeem LOCK_A SECRET --chain chain-a --key bob

The participant's locktime must end well before the initiator's (the engine's Δ rule);
``audit --min-time`` checks the time left. Nothing here watches or acts on its own: the
relayer daemon's swap watcher, or ``interlock swap`` run by hand, does.
"""

from __future__ import annotations

import argparse
import hashlib
import re
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from chains.service.rpc_client import HttpChain
from chains.service.verified import HeaderNotFinal, VerifiedReader
from chains.types import Receipt, Tx
from htlc import swap as verbs
from htlc.errors import LockNotFinal
from htlc.types import Lock, LockStatus, LockTerms
from interlock.cmd_common import (
    Chains,
    TxRefused,
    blocks_for,
    parse_amount,
    parse_duration,
)
from interlock.commands import emit
from interlock.errors import CommandError, NotFound
from interlock.trust import prove_lock

__all__ = ["audit", "extract", "initiate", "participate", "redeem", "refund"]


def _hex32(text: str, what: str) -> bytes:
    if not re.fullmatch(r"[0-9a-fA-F]{64}", text):
        raise CommandError(f"bad {what} {text[:80]!r}: expected 64 hex digits")
    return bytes.fromhex(text)


async def _get_lock(chain: HttpChain, lock_id: bytes) -> Lock:
    return (await _get_lock_record(chain, lock_id))[0]


async def _get_lock_record(chain: HttpChain, lock_id: bytes) -> tuple[Lock, Mapping[str, Any]]:
    """The lock, checked, and the chain's record of it (``opened``, ``closed``: heights)."""
    raw = await chain.query("htlc", "lock", {"lock_id": lock_id.hex()})
    if not isinstance(raw, Mapping):
        raise NotFound(f"lock {lock_id.hex()} on {chain.chain_id}")
    return Lock.from_json({**raw, "chain_id": chain.chain_id}), raw


async def _check_funds(chain: HttpChain, address: str, denom: str, amount: int) -> None:
    have = await chain.query("bank", "balance", {"address": address, "denom": denom})
    if not isinstance(have, int) or have < amount:
        raise CommandError(
            f"{address} has {have} {denom} on {chain.chain_id}, less than {amount}; "
            "nothing submitted"
        )


async def _submit_tx(chain: HttpChain, tx: Tx) -> Receipt:
    receipt = await chain.submit(tx)
    if not receipt.ok:
        raise TxRefused(chain.chain_id, receipt)
    return receipt


def _lock_lines(lock: Lock, height: int, interval: float | None = None) -> list[str]:
    t = lock.terms
    left = t.timelock - height
    when = f"{left} blocks left" if left > 0 else f"refundable since height {t.timelock}"
    if interval is not None and left > 0:
        when += f" (~{left * interval:.0f}s)"
    lines = [
        f"lock {lock.lock_id.hex()} on {t.chain_id}: {lock.status.value}",
        f"  {t.amount} {t.denom} from {t.sender} to {t.receiver}",
        f"  hashlock {t.hashlock.hex()}",
        f"  timelock height {t.timelock}; now {height}: {when}",
    ]
    return lines


def _lock_json(lock: Lock, height: int) -> dict[str, Any]:
    return {**lock.to_json(), "lock_id": lock.lock_id.hex(), "height": height}


async def _timelock(chain: HttpChain, locktime: str) -> int:
    latest, blocks = await blocks_for(chain, parse_duration(locktime))
    return latest + blocks


async def initiate(args: argparse.Namespace) -> int:
    amount, denom = parse_amount(args.amount)
    async with Chains.from_args(args) as chains:
        receiver = chains.address(args.participant)
        chain = await chains.pick(args.chain)
        timelock = await _timelock(chain, args.locktime)
        key = chains.key(args.key)
        await _check_funds(chain, key.address, denom, amount)
        nonce = await chain.pending_nonce(key.address)
        made = verbs.initiate(
            key, chain.chain_id, nonce, receiver=receiver, denom=denom, amount=amount,
            timelock=timelock,
        )  # fmt: skip
        receipt = await _submit_tx(chain, made.tx)
    lock_id = made.terms.lock_id.hex()
    lines = [
        f"locked {amount} {denom} on {chain.chain_id} at height {receipt.height} for {receiver}",
        f"  secret    {made.secret.hex()}   (keep it private until you redeem)",
        f"  hashlock  {made.terms.hashlock.hex()}",
        f"  lock id   {lock_id}",
        f"  timelock  height {timelock} (refund from then on)",
    ]
    obj = {
        "chain_id": chain.chain_id, "lock_id": lock_id, "secret": made.secret.hex(),
        "hashlock": made.terms.hashlock.hex(), "timelock": timelock, "height": receipt.height,
        "tx_hash": receipt.tx_hash.hex(),
    }  # fmt: skip
    emit(args, obj, lines)
    return 0


async def participate(args: argparse.Namespace) -> int:
    amount, denom = parse_amount(args.amount)
    hashlock = _hex32(args.hashlock, "hashlock")
    async with Chains.from_args(args) as chains:
        receiver = chains.address(args.initiator)
        chain = await chains.pick(args.chain)
        timelock = await _timelock(chain, args.locktime)
        key = chains.key(args.key)
        used = await chain.query(
            "htlc", "lock_by_hashlock", {"sender": key.address, "hashlock": hashlock.hex()}
        )
        if used is not None:
            raise CommandError(
                f"you already locked on hashlock {hashlock.hex()[:16]}...; a hashlock is used once"
            )
        await _check_funds(chain, key.address, denom, amount)
        nonce = await chain.pending_nonce(key.address)
        terms, tx = verbs.participate(
            key, chain.chain_id, nonce, receiver=receiver, denom=denom, amount=amount,
            hashlock=hashlock, timelock=timelock,
        )  # fmt: skip
        receipt = await _submit_tx(chain, tx)
    lines = [
        f"locked {amount} {denom} on {chain.chain_id} at height {receipt.height} for {receiver}",
        f"  hashlock  {hashlock.hex()}",
        f"  lock id   {terms.lock_id.hex()}",
        f"  timelock  height {timelock} (refund from then on)",
    ]
    obj = {
        "chain_id": chain.chain_id, "lock_id": terms.lock_id.hex(), "hashlock": hashlock.hex(),
        "timelock": timelock, "height": receipt.height, "tx_hash": receipt.tx_hash.hex(),
    }  # fmt: skip
    emit(args, obj, lines)
    return 0


async def _open_lock(chain: HttpChain, lock_id: bytes) -> tuple[Lock, int]:
    lock = await _get_lock(chain, lock_id)
    if lock.status is not LockStatus.LOCKED:
        raise CommandError(f"lock {lock_id.hex()[:16]}... is already {lock.status.value}")
    return lock, await chain.latest_height()


async def redeem(args: argparse.Namespace) -> int:
    lock_id = _hex32(args.lock_id, "lock id")
    secret = _hex32(args.secret, "secret")
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        lock, height = await _open_lock(chain, lock_id)
        if hashlib.sha256(secret).digest() != lock.terms.hashlock:
            raise CommandError("that secret does not open this lock's hashlock; nothing submitted")
        if height + 1 >= lock.terms.timelock:
            raise CommandError(
                f"lock expires at height {lock.terms.timelock} (now {height}): "
                "too late to redeem; nothing submitted"
            )
        key = chains.key(args.key)
        nonce = await chain.pending_nonce(key.address)
        receipt = await _submit_tx(chain, verbs.redeem(key, chain.chain_id, nonce, lock_id, secret))
    t = lock.terms
    return _closed(args, lock, receipt, f"redeemed {t.amount} {t.denom} for {t.receiver} "
                   f"(the secret is now public on {t.chain_id})")  # fmt: skip


def _closed(args: argparse.Namespace, lock: Lock, receipt: Receipt, what: str) -> int:
    """Report a claim or refund that the chain committed."""
    status = "claimed" if what.startswith("redeemed") else "refunded"
    obj = {"chain_id": lock.terms.chain_id, "lock_id": lock.lock_id.hex(), "status": status,
           "height": receipt.height, "tx_hash": receipt.tx_hash.hex()}  # fmt: skip
    emit(args, obj, [f"{what}; on {lock.terms.chain_id} at height {receipt.height}"])
    return 0


async def refund(args: argparse.Namespace) -> int:
    lock_id = _hex32(args.lock_id, "lock id")
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        lock, height = await _open_lock(chain, lock_id)
        if height + 1 < lock.terms.timelock:
            raise CommandError(
                f"refundable from height {lock.terms.timelock} (now {height}, "
                f"{lock.terms.timelock - height} blocks to go); nothing submitted"
            )
        key = chains.key(args.key)
        nonce = await chain.pending_nonce(key.address)
        receipt = await _submit_tx(chain, verbs.refund(key, chain.chain_id, nonce, lock_id))
    t = lock.terms
    return _closed(args, lock, receipt, f"refunded {t.amount} {t.denom} to {t.sender}")


async def extract(args: argparse.Namespace) -> int:
    lock_id = _hex32(args.lock_id, "lock id")
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        lock = await _get_lock(chain, lock_id)
        hashlock = lock.terms.hashlock
        if args.hashlock is not None and _hex32(args.hashlock, "hashlock") != hashlock:
            raise CommandError("this lock has another hashlock than the one given")
        if lock.status is not LockStatus.CLAIMED:
            raise CommandError(
                f"lock {lock_id.hex()[:16]}... is {lock.status.value}: no secret revealed yet"
            )
        raw = await chain.query("htlc", "lock", {"lock_id": lock_id.hex()})
        closed = raw.get("closed") if isinstance(raw, Mapping) else None
        if not isinstance(closed, int):
            raise NotFound(f"the claim height of lock {lock_id.hex()}")
        block = await chain.get_block(closed)
        if block is None:
            raise NotFound(f"block {closed} of {chain.chain_id}")
    # read from the claim event itself and checked against the hashlock: never trusted
    secret = verbs.extract_secret(chain.chain_id, block.events, hashlock)
    emit(args, {"chain_id": chain.chain_id, "lock_id": lock_id.hex(), "secret": secret.hex(),
                "height": closed},
         [f"secret {secret.hex()} (revealed on {chain.chain_id} at height {closed})"])  # fmt: skip
    return 0


async def audit(args: argparse.Namespace) -> int:
    """Check a lock against the agreed terms, believing only what is proven: the lock's
    ``htlc.locked`` event (found in the chain's index by lock id) against a header
    verified from the chain's trust anchor (``interlock.trust``), its terms equal to the
    state's, final by the anchor's engine, and the time left counted from a verified
    tip. Anything unproven or disagreeing is refused in one line (exit 2)."""
    lock_id = _hex32(args.lock_id, "lock id")
    min_time = parse_duration(args.min_time) if args.min_time is not None else None
    async with Chains.from_args(args) as chains:
        chain = await chains.pick(args.chain)
        lock, record = await _get_lock_record(chain, lock_id)  # the endpoint's word
        try:
            reader = await chains.reader(chain.chain_id)
            proven = await prove_lock(
                reader, replace(lock, status=LockStatus.LOCKED, preimage=None)
            )
        except HeaderNotFinal as exc:  # a reorganisation could still undo it
            opened = record.get("opened")  # untrusted: only for the message
            at = opened if isinstance(opened, int) else exc.height
            raise LockNotFinal(lock_id.hex(), max(0, exc.tip - at), exc.depth) from None
        for closed in (LockStatus.CLAIMED, LockStatus.REFUNDED):
            # the state may hide a close; a proven close event shows it whatever it says
            kind = "htlc." + closed.value
            if await reader.find_proven([kind], ("lock_id", lock_id.hex()), limit=1):
                lock = replace(lock, status=closed)
        height, interval = await _verified_tip(chain, reader)
        expected = lock.terms
        if args.amount is not None:
            amount, denom = parse_amount(args.amount)
            expected = _replace(expected, amount=amount, denom=denom)
        if args.sender is not None:
            expected = _replace(expected, sender=chains.address(args.sender))
        if args.receiver is not None:
            expected = _replace(expected, receiver=chains.address(args.receiver))
        if args.hashlock is not None:
            expected = _replace(expected, hashlock=_hex32(args.hashlock, "hashlock"))
    proof = (
        f"  proven: htlc.locked is event {proven.index} of height {proven.height}, "
        f"header {proven.header.hash.hex()[:16]}... verified from {reader.anchor.source}"
    )
    if not args.json:
        for line in [*_lock_lines(lock, height, interval), proof]:
            print(line, flush=True)
    min_blocks = 0 if min_time is None else max(1, int(min_time / interval) + 1)
    verbs.audit(
        lock,
        expected,
        height=height,
        min_blocks=min_blocks,
        opened=proven.height,
        finality_depth=reader.depth,
    )
    if args.json:
        obj = {
            **_lock_json(lock, height),
            "audit": "ok",
            "proof": {
                "height": proven.height,
                "index": proven.index,
                "header_hash": proven.header.hash.hex(),
                "anchor": reader.anchor.source,
            },
        }
        emit(args, obj, [])
    else:
        print("audit: ok (the lock is proven, open and matches every term given)", flush=True)
    return 0


async def _verified_tip(chain: HttpChain, reader: VerifiedReader) -> tuple[int, float]:
    """The chain's height as far as verified headers show it (the newest final header
    the endpoint serves, plus the engine's depth: a PoW or PoS tip is not final), and
    its seconds per block: the engine's aim, or (BFT) as ten verified headers show."""
    latest = await chain.latest_height()  # untrusted: only what to verify
    final = await reader.verified_header(max(1, latest - reader.depth))
    engine = reader.consensus.engine
    if engine is not None:
        return final.height + reader.depth, engine.block_interval_ms / 1000
    interval = 1.0
    if final.height > 10:
        old = await reader.verified_header(final.height - 10)
        if final.time > old.time:
            interval = (final.time - old.time) / 1000 / 10
    return final.height, interval


def _replace(terms: LockTerms, **changes: Any) -> LockTerms:
    return replace(terms, **changes)
