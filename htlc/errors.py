"""Errors of the HTLC contract and the swap engine.

Contract errors are :class:`~chains.errors.TxFailed`: the chain rolls the call back and
only the sender's nonce advances; the receipt names the class. Engine errors refuse an
input or a plan and change no state. Every error keeps the offending values as attributes
and renders as one line.

    InterlockError
    ├── TxFailed (chains.errors)
    │   └── HTLCError                  an htlc module call was refused
    │       ├── LockNotFound           no lock with that id
    │       ├── LockExists             a lock with that (deterministic) id already exists
    │       ├── HashlockReused         this sender already locked with that hashlock
    │       ├── TimelockOutOfRange     timelock not in (height, height + max]
    │       ├── LockClosed             already claimed or refunded
    │       ├── PreimageSize           preimage is not exactly 32 bytes
    │       ├── PreimageMismatch       SHA-256(preimage) != hashlock
    │       ├── LockExpired            claim at or after the timelock height
    │       └── LockNotExpired         refund before the timelock height
    ├── WatchError                     the watchtower refused an argument; nothing changed
    │   └── InvalidSnapshot            a watchtower snapshot that does not parse or add up
    └── SwapError                      the swap engine refused something; nothing changed
        ├── InvalidTerms               terms that are malformed or violate the safety rules
        ├── AuditFailed                the counterparty's lock is not what was agreed
        │   ├── TermMismatch           one term differs (field, expected, got)
        │   ├── LockNotOpen            the lock is already claimed or refunded
        │   ├── LockNotFinal           its block is not final yet (a PoW or PoS chain)
        │   ├── LockNotProven          no event proven against a verified header shows it
        │   └── InsufficientTime       too little time left on the lock
        ├── SecretMismatch             a preimage that does not open the expected hashlock
        ├── SecretNotFound             no claim with the expected hashlock was found
        └── SwapStoreError             the swap store refused a write
            ├── SwapExists             swap id already stored
            ├── HashlockInUse          another stored swap uses this hashlock
            ├── SwapNotFound           no such swap
            └── StaleSwap              a write that does not follow the stored version
"""

from __future__ import annotations

from chains.errors import InterlockError, TxFailed

__all__ = [
    "AuditFailed",
    "HTLCError",
    "HashlockInUse",
    "HashlockReused",
    "InsufficientTime",
    "InvalidSnapshot",
    "InvalidTerms",
    "LockClosed",
    "LockExists",
    "LockExpired",
    "LockNotExpired",
    "LockNotFinal",
    "LockNotFound",
    "LockNotOpen",
    "LockNotProven",
    "PreimageMismatch",
    "PreimageSize",
    "SecretMismatch",
    "SecretNotFound",
    "StaleSwap",
    "SwapError",
    "SwapExists",
    "SwapNotFound",
    "SwapStoreError",
    "TermMismatch",
    "TimelockOutOfRange",
    "WatchError",
]


# --- the contract ---------------------------------------------------------------------


class HTLCError(TxFailed):
    """An htlc module call was refused; the transaction fails and changes nothing."""

    code = "htlc_error"


class LockNotFound(HTLCError):
    code = "lock_not_found"

    def __init__(self, lock_id: str) -> None:
        self.lock_id = lock_id
        super().__init__(f"no htlc lock {lock_id}")


class LockExists(HTLCError):
    code = "lock_exists"

    def __init__(self, lock_id: str) -> None:
        self.lock_id = lock_id
        super().__init__(f"htlc lock {lock_id} already exists")


class HashlockReused(HTLCError):
    code = "hashlock_reused"

    def __init__(self, sender: str, hashlock: str, lock_id: str) -> None:
        self.sender, self.hashlock, self.lock_id = sender, hashlock, lock_id
        super().__init__(f"{sender} already locked with hashlock {hashlock} (lock {lock_id})")


class TimelockOutOfRange(HTLCError):
    code = "timelock_out_of_range"

    def __init__(self, timelock: int, height: int, max_blocks: int) -> None:
        self.timelock, self.height, self.max_blocks = timelock, height, max_blocks
        super().__init__(
            f"timelock {timelock} must be in ({height}, {height + max_blocks}] at height {height}"
        )


class LockClosed(HTLCError):
    code = "lock_closed"

    def __init__(self, lock_id: str, status: str) -> None:
        self.lock_id, self.status = lock_id, status
        super().__init__(f"htlc lock {lock_id} is already {status}")


class PreimageSize(HTLCError):
    code = "preimage_size"

    def __init__(self, size: int) -> None:
        self.size = size
        super().__init__(f"preimage must be exactly 32 bytes, got {size}")


class PreimageMismatch(HTLCError):
    code = "preimage_mismatch"

    def __init__(self, lock_id: str) -> None:
        self.lock_id = lock_id
        super().__init__(f"preimage does not hash to the hashlock of lock {lock_id}")


class LockExpired(HTLCError):
    code = "lock_expired"

    def __init__(self, lock_id: str, timelock: int, height: int) -> None:
        self.lock_id, self.timelock, self.height = lock_id, timelock, height
        super().__init__(
            f"htlc lock {lock_id} expired at height {timelock}; cannot claim at {height}"
        )


class LockNotExpired(HTLCError):
    code = "lock_not_expired"

    def __init__(self, lock_id: str, timelock: int, height: int) -> None:
        self.lock_id, self.timelock, self.height = lock_id, timelock, height
        super().__init__(
            f"htlc lock {lock_id} can be refunded from height {timelock}, not at {height}"
        )


# --- the swap engine ------------------------------------------------------------------


class SwapError(InterlockError):
    """The swap engine refused an input, a plan or a write; no state changed."""


class InvalidTerms(SwapError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid swap terms: {reason}")


class AuditFailed(SwapError):
    """The counterparty's lock is not the one agreed: do not lock or reveal against it."""


class TermMismatch(AuditFailed):
    def __init__(self, lock_id: str, field: str, expected: object, got: object) -> None:
        self.lock_id, self.field, self.expected, self.got = lock_id, field, expected, got
        super().__init__(f"lock {lock_id}: {field} is {got!r}, expected {expected!r}")


class LockNotOpen(AuditFailed):
    def __init__(self, lock_id: str, status: str) -> None:
        self.lock_id, self.status = lock_id, status
        super().__init__(f"lock {lock_id} is {status}, expected it open (locked)")


class LockNotFinal(AuditFailed):
    """The lock's block may still be replaced (a reorganisation would undo the lock)."""

    def __init__(self, lock_id: str, depth: int, required: int) -> None:
        self.lock_id, self.depth, self.required = lock_id, depth, required
        super().__init__(
            f"lock {lock_id} is {depth} blocks deep, final at {required}: wait and audit again"
        )


class LockNotProven(AuditFailed):
    """What an endpoint says of a lock (open, claimed, refunded) and no event of the
    chain, proven against a header verified from the party's trust anchor, shows."""

    def __init__(self, lock_id: str, status: str, reason: str) -> None:
        self.lock_id, self.status, self.reason = lock_id, status, reason
        super().__init__(f"lock {lock_id[:16]}... {status}: not proven: {reason[:300]}")


class InsufficientTime(AuditFailed):
    def __init__(self, lock_id: str, remaining: int, required: int, unit: str) -> None:
        self.lock_id, self.remaining, self.required, self.unit = lock_id, remaining, required, unit
        super().__init__(f"lock {lock_id} has {remaining} {unit} left, needs at least {required}")


class SecretMismatch(SwapError):
    def __init__(self, hashlock: str, size: int) -> None:
        self.hashlock, self.size = hashlock, size
        super().__init__(f"a {size}-byte preimage does not open hashlock {hashlock}")


class SecretNotFound(SwapError):
    def __init__(self, hashlock: str) -> None:
        self.hashlock = hashlock
        super().__init__(f"no htlc claim revealing the secret of hashlock {hashlock}")


class SwapStoreError(SwapError):
    """The swap store refused a write."""


class SwapExists(SwapStoreError):
    def __init__(self, swap_id: str) -> None:
        self.swap_id = swap_id
        super().__init__(f"swap {swap_id} is already stored")


class HashlockInUse(SwapStoreError):
    def __init__(self, hashlock: str, swap_id: str) -> None:
        self.hashlock, self.swap_id = hashlock, swap_id
        super().__init__(f"hashlock {hashlock} is already used by swap {swap_id}")


class SwapNotFound(SwapStoreError):
    def __init__(self, swap_id: str) -> None:
        self.swap_id = swap_id
        super().__init__(f"no swap {swap_id}")


class StaleSwap(SwapStoreError):
    def __init__(self, swap_id: str, stored: int, got: int) -> None:
        self.swap_id, self.stored, self.got = swap_id, stored, got
        super().__init__(
            f"swap {swap_id}: write of version {got} does not follow stored version {stored}"
        )


# --- the watchtower -------------------------------------------------------------------


class WatchError(InterlockError):
    """The watchtower refused an argument (``what``, ``reason``); nothing changed."""

    _prefix = "watchtower: invalid "

    def __init__(self, what: str, reason: str) -> None:
        self.what, self.reason = what, reason
        super().__init__(f"{self._prefix}{what}: {reason}")


class InvalidSnapshot(WatchError):
    """A watchtower snapshot that does not parse or does not add up (untrusted input)."""

    _prefix = "watchtower snapshot: invalid "
