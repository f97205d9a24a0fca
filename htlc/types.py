"""HTLC values shared by the contract and the swap engine: lock terms, lock ids, lock views.

A lock id is derived from every term of the lock, so both parties of a swap can compute
the id of each other's lock before it exists and an audit that matches the id matches
every term::

    lock_id = SHA-256(sign_bytes("htlc/lock", {chain_id, sender, receiver, denom,
                                               amount, hashlock, timelock}))

Every ``htlc.*`` event carries all terms and the lock's status, so an observer turns any
event (or a ``lock`` query) into one :class:`Lock` value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from chains.encoding import JSONValue, from_hex, sign_bytes
from chains.errors import EncodingError
from chains.module import MAX_AMOUNT, is_address, is_denom
from chains.types import Event

__all__ = [
    "PREIMAGE_SIZE",
    "Lock",
    "LockStatus",
    "LockTerms",
    "compute_hashlock",
    "compute_lock_id",
    "lock_from_event",
]

PREIMAGE_SIZE = 32


def compute_hashlock(secret: bytes) -> bytes:
    """``SHA-256(secret)``: the hashlock of a secret."""
    return hashlib.sha256(secret).digest()


class LockStatus(Enum):
    """Where a lock is in its life: it ends claimed XOR refunded, exactly once."""

    LOCKED = "locked"
    CLAIMED = "claimed"
    REFUNDED = "refunded"


@dataclass(frozen=True, slots=True)
class LockTerms:
    """Everything a lock commits to (and its id derives from)."""

    chain_id: str
    """The chain holding the lock."""
    sender: str
    """Who escrowed the funds and gets them back on refund."""
    receiver: str
    """Who gets the funds on claim."""
    denom: str
    """Asset locked."""
    amount: int
    """Amount locked (> 0)."""
    hashlock: bytes
    """``SHA-256(secret)``, 32 bytes."""
    timelock: int
    """Expiry height of ``chain_id``: claim below it, refund at or above it."""
    _id: bytes = field(default=b"", init=False, compare=False, repr=False)

    @property
    def lock_id(self) -> bytes:
        """The deterministic lock id (derived on first use: hashing is the hot path)."""
        if not self._id:
            object.__setattr__(self, "_id", compute_lock_id(self))
        return self._id

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "chain_id": self.chain_id,
            "sender": self.sender,
            "receiver": self.receiver,
            "denom": self.denom,
            "amount": self.amount,
            "hashlock": self.hashlock.hex(),
            "timelock": self.timelock,
        }

    def lock_args(self) -> dict[str, JSONValue]:
        """Arguments of the ``htlc.lock`` call that creates this lock."""
        return {
            "receiver": self.receiver,
            "denom": self.denom,
            "amount": self.amount,
            "hashlock": self.hashlock.hex(),
            "timelock": self.timelock,
        }

    @classmethod
    def from_json(cls, d: object, what: str = "lock terms") -> LockTerms:
        """Parse untrusted terms; raises :class:`EncodingError` naming the bad field."""
        if not isinstance(d, Mapping):
            raise EncodingError(what, "expected an object")
        chain_id = d.get("chain_id")
        if not isinstance(chain_id, str) or not 0 < len(chain_id) <= 64:
            raise EncodingError(f"{what}.chain_id", "expected a chain id")
        for name in ("sender", "receiver"):
            v = d.get(name)
            if not is_address(v):
                raise EncodingError(f"{what}.{name}", "expected an address (40 lowercase hex)")
        denom = d.get("denom")
        if not is_denom(denom):
            raise EncodingError(f"{what}.denom", "expected a denom")
        for name, lo in (("amount", 1), ("timelock", 1)):
            v = d.get(name)
            if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= MAX_AMOUNT:
                raise EncodingError(
                    f"{what}.{name}", f"expected an integer in [{lo}, {MAX_AMOUNT}]"
                )
        return cls(
            chain_id=chain_id,
            sender=d["sender"],
            receiver=d["receiver"],
            denom=denom,
            amount=d["amount"],
            hashlock=from_hex(d.get("hashlock"), f"{what}.hashlock", 32),
            timelock=d["timelock"],
        )


def compute_lock_id(terms: LockTerms) -> bytes:
    return hashlib.sha256(sign_bytes("htlc/lock", terms.to_json())).digest()


@dataclass(frozen=True, slots=True)
class Lock:
    """A lock as observed on its chain (from an ``htlc.*`` event or a ``lock`` query)."""

    terms: LockTerms
    """Its terms (``terms.lock_id`` is its id)."""
    status: LockStatus
    """Open, claimed or refunded."""
    preimage: bytes | None = None
    """The secret, once claimed (exactly what the claim revealed; untrusted until checked)."""

    @property
    def lock_id(self) -> bytes:
        return self.terms.lock_id

    def to_json(self) -> dict[str, JSONValue]:
        d = self.terms.to_json()
        d["lock_id"] = self.lock_id.hex()
        d["status"] = self.status.value
        if self.preimage is not None:
            d["preimage"] = self.preimage.hex()
        return d

    @classmethod
    def from_json(cls, d: object, what: str = "lock") -> Lock:
        """Parse an untrusted lock view. Its id is always derived from its terms: a
        ``lock_id`` field in ``d`` is a hint for lookups and never trusted."""
        if not isinstance(d, Mapping):
            raise EncodingError(what, "expected an object")
        terms = LockTerms.from_json(d, what)
        try:
            status = LockStatus(d.get("status"))
        except ValueError:
            raise EncodingError(f"{what}.status", "expected locked, claimed or refunded") from None
        preimage: bytes | None = None
        raw: Any = d.get("preimage")
        if raw is not None:
            # any size: a hostile observer may hand us a wrong one; the engine checks it
            preimage = from_hex(raw, f"{what}.preimage")
        return cls(terms, status, preimage)


_EVENT_STATUS = {
    "htlc.locked": LockStatus.LOCKED,
    "htlc.claimed": LockStatus.CLAIMED,
    "htlc.refunded": LockStatus.REFUNDED,
}


def lock_from_event(chain_id: str, event: Event, known: Iterable[LockTerms] = ()) -> Lock | None:
    """The lock an ``htlc.*`` event reports, or ``None`` for any other event.

    ``known`` are terms the caller expects: an event whose terms equal one of them exactly
    reuses that value instead of parsing and hashing again (the observer's hot path; the
    outcome is the same). Raises :class:`EncodingError` for an htlc event that does not
    parse (untrusted source).
    """
    status = _EVENT_STATUS.get(event.type)
    if status is None:
        return None
    attrs = event.attributes
    if attrs.get("status", status.value) == status.value:
        for terms in known:
            if _same_terms(chain_id, attrs, terms):
                raw = attrs.get("preimage")
                preimage = None if raw is None else from_hex(raw, f"{event.type}.preimage")
                return Lock(terms, status, preimage)
    full = dict(attrs)
    full["chain_id"] = chain_id
    full.setdefault("status", status.value)
    lock = Lock.from_json(full, event.type)
    if lock.status is not status:
        raise EncodingError(f"{event.type}.status", f"expected {status.value}")
    return lock


def _same_terms(chain_id: str, attrs: Mapping[str, Any], terms: LockTerms) -> bool:
    amount, timelock = attrs.get("amount"), attrs.get("timelock")
    return (
        chain_id == terms.chain_id
        and attrs.get("sender") == terms.sender
        and attrs.get("receiver") == terms.receiver
        and attrs.get("denom") == terms.denom
        and type(amount) is int  # not a bool that equals 1
        and amount == terms.amount
        and type(timelock) is int
        and timelock == terms.timelock
        and attrs.get("hashlock") == terms.hashlock.hex()
    )
