"""The ``htlc`` chain module: hashed-timelock locks that end claimed XOR refunded, once.

Calls (every argument is untrusted)::

    lock(receiver, denom, amount, hashlock, timelock)   escrow the sender's funds
    claim(lock_id, preimage)                            pay the receiver; anyone may submit
    refund(lock_id)                                     pay the sender back; anyone may submit

Boundary, with ``T = timelock`` and ``h`` the height of the block executing the call:
``claim`` succeeds iff ``h < T`` (at ``T - 1`` yes, at ``T`` no); ``refund`` succeeds iff
``h >= T`` (at ``T`` yes). So for every height exactly one of the two is possible, and the
first one to execute closes the lock for good. ``lock`` needs ``h < T <= h + max``.

The preimage must be exactly 32 bytes: a contract that accepted other sizes on one chain
and not on the other would let a secret open one leg and not the other (the secret-size
attack). Refunds pay only the sender, so letting anyone submit them is harmless and lets a
relayer act for an offline party, just like claims.

The lock id is derived from all terms (:func:`htlc.types.compute_lock_id`); a duplicate
id, and any reuse of a hashlock by the same sender (even after the first lock closed: its
secret may be public by then), is refused.

State keys::

    htlc/params                      -> {"max_timelock_blocks": int}
    htlc/lock/<lock_id>              -> lock record (terms, status, preimage, heights)
    htlc/hash/<sender>/<hashlock>    -> lock_id

Events (all carry every term, so one event is a full :class:`~htlc.types.Lock` view):
``htlc.locked``, ``htlc.claimed`` (plus ``preimage`` and ``claimer``), ``htlc.refunded``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from chains.bank import apply_transfer
from chains.crypto import module_address
from chains.encoding import JSONValue
from chains.errors import InvalidArgument, UnknownMethod
from chains.module import (
    BlockInfo,
    TxContext,
    arg_address,
    arg_amount,
    arg_bytes,
    arg_denom,
    arg_int,
)
from chains.state import State
from chains.types import Event
from htlc.errors import (
    HashlockReused,
    LockClosed,
    LockExists,
    LockExpired,
    LockNotExpired,
    LockNotFound,
    PreimageMismatch,
    PreimageSize,
    TimelockOutOfRange,
)
from htlc.types import PREIMAGE_SIZE, LockStatus, LockTerms

__all__ = [
    "DEFAULT_MAX_TIMELOCK_BLOCKS",
    "ESCROW",
    "HTLCModule",
    "get_amount_locked",
    "get_lock",
    "parse_preimage",
]

ESCROW = module_address("htlc")
DEFAULT_MAX_TIMELOCK_BLOCKS = 10_000_000
_PARAMS = "htlc/params"
_MAX_PREIMAGE_HEX = 8192  # parse at most this much of a hostile preimage argument


def _lock_key(lock_id: str) -> str:
    return f"htlc/lock/{lock_id}"


def _hash_key(sender: str, hashlock: str) -> str:
    return f"htlc/hash/{sender}/{hashlock}"


def get_lock(state: State, lock_id: str) -> dict[str, Any] | None:
    """The stored record of a lock (the event/query view), or ``None``."""
    v: dict[str, Any] | None = state.get(_lock_key(lock_id))
    return v


def parse_preimage(value: object) -> bytes:
    """Decode a preimage argument: lowercase hex of exactly 32 bytes.

    Raises :class:`PreimageSize` for well-formed hex of any other size (so the receipt says
    what was wrong) and :class:`InvalidArgument` for anything that is not hex.
    """
    if (
        not isinstance(value, str)
        or len(value) > _MAX_PREIMAGE_HEX
        or len(value) % 2
        or value != value.lower()
    ):
        raise InvalidArgument("preimage", "expected lowercase hex")
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raise InvalidArgument("preimage", "expected lowercase hex") from None
    if 2 * len(raw) != len(value):  # bytes.fromhex skips whitespace
        raise InvalidArgument("preimage", "expected lowercase hex")
    if len(raw) != PREIMAGE_SIZE:
        raise PreimageSize(len(raw))
    return raw


class HTLCModule:
    """Genesis (optional): ``{"max_timelock_blocks": int}``. Calls: lock, claim, refund."""

    name = "htlc"

    def init_genesis(self, state: State, genesis: Mapping[str, Any]) -> None:
        unknown = set(genesis) - {"max_timelock_blocks"}
        if unknown:
            raise InvalidArgument("htlc genesis", f"unknown keys {sorted(unknown)}")
        max_blocks = DEFAULT_MAX_TIMELOCK_BLOCKS
        if "max_timelock_blocks" in genesis:
            max_blocks = arg_int(genesis, "max_timelock_blocks", 1, 2**40)
        state.set(_PARAMS, {"max_timelock_blocks": max_blocks})

    def deliver(self, ctx: TxContext, method: str, args: Mapping[str, Any]) -> None:
        if method == "lock":
            self._lock(ctx, args)
        elif method == "claim":
            self._claim(ctx, args)
        elif method == "refund":
            self._refund(ctx, args)
        else:
            raise UnknownMethod(self.name, method)

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        return []  # expiry needs no work: refund is an explicit call at or after T

    # --- calls ------------------------------------------------------------------------
    def _lock(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        receiver = arg_address(args, "receiver")
        if receiver == ESCROW:
            raise InvalidArgument("receiver", "the htlc escrow cannot receive a lock")
        denom = arg_denom(args)
        amount = arg_amount(args)
        hashlock = arg_bytes(args, "hashlock", 32)
        timelock = arg_int(args, "timelock", 1)
        height = ctx.block.height
        max_blocks: int = ctx.state.get(_PARAMS, {}).get(
            "max_timelock_blocks", DEFAULT_MAX_TIMELOCK_BLOCKS
        )
        if not height < timelock <= height + max_blocks:
            raise TimelockOutOfRange(timelock, height, max_blocks)
        terms = LockTerms(
            ctx.block.chain_id, ctx.sender, receiver, denom, amount, hashlock, timelock
        )
        lock_id = terms.lock_id.hex()
        if _lock_key(lock_id) in ctx.state:
            raise LockExists(lock_id)
        hkey = _hash_key(ctx.sender, hashlock.hex())
        previous = ctx.state.get(hkey)
        if previous is not None:
            raise HashlockReused(ctx.sender, hashlock.hex(), previous)
        apply_transfer(ctx.state, ctx.sender, ESCROW, denom, amount)
        record: dict[str, JSONValue] = terms.to_json()
        del record["chain_id"]  # implied by the chain holding it
        record["lock_id"] = lock_id
        record["status"] = LockStatus.LOCKED.value
        record["opened"] = height
        ctx.state.set(_lock_key(lock_id), record)
        ctx.state.set(hkey, lock_id)
        ctx.emit("locked", _event_view(record))

    def _load_open(self, ctx: TxContext, args: Mapping[str, Any]) -> dict[str, Any]:
        lock_id = arg_bytes(args, "lock_id", 32).hex()
        record = get_lock(ctx.state, lock_id)
        if record is None:
            raise LockNotFound(lock_id)
        if record["status"] != LockStatus.LOCKED.value:
            raise LockClosed(lock_id, record["status"])
        return record

    def _claim(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        preimage = parse_preimage(args.get("preimage"))  # size first: a clear receipt
        record = self._load_open(ctx, args)
        lock_id = record["lock_id"]
        height = ctx.block.height
        if height >= record["timelock"]:
            raise LockExpired(lock_id, record["timelock"], height)
        if hashlib.sha256(preimage).hexdigest() != record["hashlock"]:
            raise PreimageMismatch(lock_id)
        apply_transfer(ctx.state, ESCROW, record["receiver"], record["denom"], record["amount"])
        closed = dict(record)
        closed["status"] = LockStatus.CLAIMED.value
        closed["preimage"] = preimage.hex()
        closed["closed"] = height
        ctx.state.set(_lock_key(lock_id), closed)
        view = _event_view(closed)
        view["claimer"] = ctx.sender
        ctx.emit("claimed", view)

    def _refund(self, ctx: TxContext, args: Mapping[str, Any]) -> None:
        record = self._load_open(ctx, args)
        lock_id = record["lock_id"]
        height = ctx.block.height
        if height < record["timelock"]:
            raise LockNotExpired(lock_id, record["timelock"], height)
        apply_transfer(ctx.state, ESCROW, record["sender"], record["denom"], record["amount"])
        closed = dict(record)
        closed["status"] = LockStatus.REFUNDED.value
        closed["closed"] = height
        ctx.state.set(_lock_key(lock_id), closed)
        ctx.emit("refunded", _event_view(closed))

    # --- queries ----------------------------------------------------------------------
    def query(self, state: State, path: str, args: Mapping[str, Any]) -> JSONValue:
        """``lock {lock_id}`` -> record or null; ``lock_by_hashlock {sender, hashlock}``
        -> record or null; ``locks {address?, limit?}`` -> records where the address is
        sender or receiver; ``open_locks {after?, limit?}`` -> a page of the records still
        open (:func:`_open_locks`); ``escrow`` -> the escrow address; ``params``."""
        # answers are copies: an in-process caller must not be able to edit the state
        if path == "lock":
            return _copy(get_lock(state, arg_bytes(args, "lock_id", 32).hex()))
        if path == "lock_by_hashlock":
            sender = arg_address(args, "sender")
            lock_id = state.get(_hash_key(sender, arg_bytes(args, "hashlock", 32).hex()))
            return None if lock_id is None else _copy(get_lock(state, lock_id))
        if path == "locks":
            address = None if args.get("address") is None else arg_address(args, "address")
            limit = arg_int(args, "limit", 1, 1000) if "limit" in args else 100
            out: list[JSONValue] = []
            for _, record in state.items("htlc/lock/"):
                if address is None or address in (record["sender"], record["receiver"]):
                    out.append(dict(record))
                    if len(out) >= limit:
                        break
            return out
        if path == "open_locks":
            return _open_locks(state, args)
        if path == "escrow":
            return ESCROW
        if path == "params":
            return _copy(state.get(_PARAMS))
        raise InvalidArgument("path", f"htlc has no query {path!r}")


MAX_LOCKS_PAGE = 1000
"""Lock records one ``open_locks`` query reads at most (open or not): one page."""


def _open_locks(state: State, args: Mapping[str, Any]) -> JSONValue:
    """``{"locks", "next"}``: the open locks among the next ``limit`` (1..
    :data:`MAX_LOCKS_PAGE`, default 100) records after lock id ``after``, in id order;
    ``next`` (null after the last page) is the ``after`` of the next page. Closed records
    are kept for ever, so a page may hold fewer open locks than it read, even none."""
    limit = arg_int(args, "limit", 1, MAX_LOCKS_PAGE) if "limit" in args else 100
    start = _lock_key("")
    if "after" in args:
        start = _lock_key(arg_bytes(args, "after", 32).hex()) + "\0"  # just above it
    out: list[JSONValue] = []
    read, last = 0, ""
    for _, record in state.items(_lock_key(""), start=start):
        read, last = read + 1, record["lock_id"]
        if record["status"] == LockStatus.LOCKED.value:
            out.append(dict(record))
        if read >= limit:
            break
    return {"locks": out, "next": last if read >= limit else None}


def _copy(record: Mapping[str, Any] | None) -> dict[str, JSONValue] | None:
    return None if record is None else dict(record)


def _event_view(record: Mapping[str, Any]) -> dict[str, JSONValue]:
    view = {k: record[k] for k in _VIEW_KEYS}
    if "preimage" in record:
        view["preimage"] = record["preimage"]
    return view


_VIEW_KEYS = ("lock_id", "sender", "receiver", "denom", "amount", "hashlock", "timelock", "status")


def get_amount_locked(state: State, denom: str) -> int:
    """Sum of the amounts of open locks of ``denom``: the escrow holds at least this
    (anyone may send the escrow address more; no call can take that surplus out)."""
    return sum(
        r["amount"]
        for _, r in state.items("htlc/lock/")
        if r["denom"] == denom and r["status"] == LockStatus.LOCKED.value
    )
