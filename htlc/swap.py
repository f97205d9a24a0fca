"""The atomic swap protocol: terms, safety rules, and one state machine per party. Pure.

Two parties swap asset X on chain A for asset Y on chain B. The **initiator** knows a
32-byte secret and locks first on A (``terms.a``: initiator -> participant, expiry
``T_A``); the **participant** audits that lock and locks on B (``terms.b``: participant ->
initiator, expiry ``T_B``, same hashlock). The initiator claims on B, which reveals the
secret in B's ``htlc.claimed`` event; the participant reads it from there (matched by the
hashlock, never taken from a message) and claims on A.

Safety (all heights are of the chain they belong to, converted to wall-clock time through
each chain's :class:`ChainParams`; ``fastest``/``slowest`` are the block interval minus /
plus its slack, so every estimate errs on the safe side):

* **Δ** = ``max(min_delta, finality(B) + reaction + one block of A + finality(A))``: the
  time the participant needs between the secret appearing on B and a final claim on A.
* **Δ rule** (checked when planning, by the initiator before locking and by the participant
  before locking): the least time left on A must exceed the most time left on B by Δ::

      (T_A - h_A - 1) · fastest(A)  >=  (T_B - h_B) · slowest(B) + Δ

* **Reveal rule**: the initiator claims on B (revealing the secret) only while
  ``T_B - h_B >= reveal_margin = 2 + reaction_blocks(B) + finality(B)``, so its claim is
  included and final strictly below ``T_B``; otherwise it never reveals and refunds A at
  ``T_A``. A reveal at the last allowed height leaves the participant at least Δ on A.
* **Audit**: a counterparty lock is accepted only if every term (chain, sender, receiver,
  denom, amount, hashlock, timelock) equals the agreed one and it is still open; the time
  part of the audit is done with fresh heights (a :class:`Tick`) just before acting. A
  tick flagged incomplete (heights that lag a tip) refunds but never locks or reveals.
* **Re-sending** after a restart (:func:`resend_action`) follows the reveal rule too: a
  claim that fails at ``T_B`` still shows the secret in its transaction.

The machine: :func:`transition` ``(swap, input, safety) -> Step(swap, action)``. Inputs
are observations (:class:`Tick` with both chains' heights, :class:`LockObserved` from an
``htlc.*`` event or a query, :class:`LockAbsent` from a query, :class:`LockFailed` from a
failed receipt of our lock plus a query that finds no such lock); the action is the one side
effect to perform *after* persisting the new swap. Replayed or unrelated inputs change
nothing; hostile ones (a preimage that does not open the hashlock, a lock posing as the
counter leg with other terms) raise a :class:`~htlc.errors.SwapError` and change nothing.

States, per role (``*`` = persisted before its action is submitted)::

    initiator:   CREATED -> LOCKING* -> LOCKED -> COUNTER_LOCKED -> REDEEMING* -> REDEEMED
                 LOCKED / COUNTER_LOCKED -(T_A reached)-> REFUNDING* -> REFUNDED
    participant: CREATED -> COUNTER_LOCKED -> LOCKING* -> LOCKED -> REDEEMING* -> REDEEMED
                 LOCKED -(T_B reached, no claim)-> REFUNDING* -> REFUNDED
    either:      CREATED / COUNTER_LOCKED / LOCKING -> ABORTED (nothing of ours is locked:
                 too late to lock, our lock failed on chain, or it never landed by T - 1)
                 -> FORFEITED (only after being offline past the safety margin)
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

from chains.crypto import PrivateKey
from chains.encoding import JSONValue, from_hex
from chains.errors import EncodingError
from chains.types import Event, Tx
from htlc.errors import (
    InsufficientTime,
    InvalidTerms,
    LockNotFinal,
    LockNotOpen,
    SecretMismatch,
    SecretNotFound,
    TermMismatch,
)
from htlc.types import PREIMAGE_SIZE, Lock, LockStatus, LockTerms, lock_from_event

__all__ = [
    "TERMINAL",
    "Action",
    "ChainParams",
    "Initiated",
    "Input",
    "LockAbsent",
    "LockFailed",
    "LockObserved",
    "Role",
    "Safety",
    "SafetyPolicy",
    "Step",
    "SubmitClaim",
    "SubmitLock",
    "SubmitRefund",
    "Swap",
    "SwapState",
    "SwapTerms",
    "Tick",
    "audit",
    "build_tx",
    "check_secret",
    "extract_secret",
    "initiate",
    "is_secret",
    "new_swap",
    "participate",
    "pending_action",
    "plan_swap",
    "redeem",
    "refund",
    "resend_action",
    "transition",
    "validate_lock_time",
]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


# --- chain parameters and the safety rules ----------------------------------------------


@dataclass(frozen=True, slots=True)
class ChainParams:
    """What the swap engine must know of a chain to turn heights into time."""

    chain_id: str
    """The chain."""
    block_interval_ms: int
    """Target time between blocks."""
    finality_depth: int = 0
    """Blocks on top of the including one before a transaction is final (0: BFT, final
    at once; e.g. 6 for proof-of-work)."""
    interval_slack_permille: int = 0
    """How far a block interval may stray from the target, in ‰ (either way)."""

    def __post_init__(self) -> None:
        if self.block_interval_ms <= 0 or self.finality_depth < 0:
            raise InvalidTerms(f"{self.chain_id}: block interval must be > 0, finality >= 0")
        if not 0 <= self.interval_slack_permille < 1000:
            raise InvalidTerms(f"{self.chain_id}: interval slack must be in [0, 1000) permille")

    @property
    def fastest_ms(self) -> int:
        """Shortest plausible block interval (time runs out sooner in blocks)."""
        return max(1, self.block_interval_ms * (1000 - self.interval_slack_permille) // 1000)

    @property
    def slowest_ms(self) -> int:
        """Longest plausible block interval."""
        return _ceil_div(self.block_interval_ms * (1000 + self.interval_slack_permille), 1000)

    @property
    def finality_ms(self) -> int:
        return self.finality_depth * self.slowest_ms


@dataclass(frozen=True, slots=True)
class SafetyPolicy:
    """The operator's knobs."""

    reaction_ms: int = 5_000
    """Longest a party may take to notice an event and get its transaction submitted."""
    min_delta_ms: int = 30_000
    """Floor for Δ, whatever the chain parameters say."""

    def __post_init__(self) -> None:
        # a negative reaction time would shrink the reveal margin below inclusion + finality
        if self.reaction_ms < 0 or self.min_delta_ms < 0:
            raise InvalidTerms("reaction time and the floor of Δ must be >= 0")


@dataclass(frozen=True, slots=True)
class Safety:
    """The safety rules of one chain pair (A = the initiator's lock, B = the participant's)."""

    a: ChainParams
    """Chain A."""
    b: ChainParams
    """Chain B."""
    policy: SafetyPolicy = field(default_factory=SafetyPolicy)
    """Reaction time and the floor of Δ."""

    @property
    def delta_ms(self) -> int:
        """Time the participant needs after the reveal on B to have a final claim on A."""
        need = self.b.finality_ms + self.policy.reaction_ms + self.a.slowest_ms + self.a.finality_ms
        return max(self.policy.min_delta_ms, need)

    def reaction_blocks(self, c: ChainParams) -> int:
        return _ceil_div(self.policy.reaction_ms, c.fastest_ms)

    @property
    def reveal_margin(self) -> int:
        """Blocks of B that must be left (``T_B - h_B``) for the initiator to reveal."""
        return 2 + self.reaction_blocks(self.b) + self.b.finality_depth

    @property
    def participant_lock_margin(self) -> int:
        """Blocks of B left for the participant to lock: its lock lands and is final, and
        the initiator can still reveal afterwards."""
        return self.reveal_margin + 1 + self.reaction_blocks(self.b) + self.b.finality_depth

    @property
    def initiator_lock_margin(self) -> int:
        """Blocks of B left for the initiator to lock: A's lock lands, is final, is seen."""
        lead_ms = (1 + self.a.finality_depth) * self.a.slowest_ms + self.policy.reaction_ms
        return self.participant_lock_margin + _ceil_div(lead_ms, self.b.fastest_ms)

    def a_time_left_ms(self, timelock_a: int, height_a: int) -> int:
        """Least wall-clock time until A reaches ``timelock_a``."""
        return max(0, timelock_a - height_a - 1) * self.a.fastest_ms

    def b_time_left_ms(self, timelock_b: int, height_b: int) -> int:
        """Most wall-clock time until B reaches ``timelock_b``."""
        return max(0, timelock_b - height_b) * self.b.slowest_ms

    def validate_delta(self, terms: SwapTerms, height_a: int, height_b: int) -> None:
        """Raise :class:`InsufficientTime` unless A's lock outlives B's by Δ (from now)."""
        left_a = self.a_time_left_ms(terms.a.timelock, height_a)
        need = self.b_time_left_ms(terms.b.timelock, height_b) + self.delta_ms
        if left_a < need:
            raise InsufficientTime(terms.a.lock_id.hex(), left_a, need, "ms")

    def validate_b_left(self, terms: SwapTerms, height_b: int, blocks: int) -> None:
        left = terms.b.timelock - height_b
        if left < blocks:
            raise InsufficientTime(terms.b.lock_id.hex(), left, blocks, "blocks")

    def validate_terms(self, terms: SwapTerms, height_a: int, height_b: int) -> None:
        """Are these terms safe to start now (the initiator's check before locking)?"""
        if terms.a.chain_id != self.a.chain_id or terms.b.chain_id != self.b.chain_id:
            raise InvalidTerms(
                f"terms are for {terms.a.chain_id}->{terms.b.chain_id}, "
                f"rules for {self.a.chain_id}->{self.b.chain_id}"
            )
        self.validate_delta(terms, height_a, height_b)
        self.validate_b_left(terms, height_b, self.initiator_lock_margin)


# --- terms --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SwapTerms:
    """What both parties agreed, as the two locks they will create."""

    a: LockTerms
    """The initiator's lock on chain A (initiator -> participant, expiry T_A)."""
    b: LockTerms
    """The participant's lock on chain B (participant -> initiator, expiry T_B)."""
    swap_id: str = field(default="", compare=False)
    """``hex(SHA-256(a.lock_id ‖ b.lock_id))`` (derived)."""

    def __post_init__(self) -> None:
        if self.a.hashlock != self.b.hashlock:
            raise InvalidTerms("the two locks must share one hashlock")
        if self.a.chain_id == self.b.chain_id:
            raise InvalidTerms("the two locks must be on different chains")
        sid = hashlib.sha256(self.a.lock_id + self.b.lock_id).hexdigest()
        object.__setattr__(self, "swap_id", sid)

    @property
    def hashlock(self) -> bytes:
        return self.a.hashlock

    def to_json(self) -> dict[str, JSONValue]:
        return {"a": self.a.to_json(), "b": self.b.to_json()}

    @classmethod
    def from_json(cls, d: object) -> SwapTerms:
        if not isinstance(d, Mapping):
            raise EncodingError("swap terms", "expected an object")
        return cls(LockTerms.from_json(d.get("a"), "terms.a"), LockTerms.from_json(d.get("b")))


def plan_swap(
    safety: Safety,
    *,
    initiator_a: str,
    participant_a: str,
    participant_b: str,
    initiator_b: str,
    give: tuple[str, int],
    take: tuple[str, int],
    hashlock: bytes,
    height_a: int,
    height_b: int,
    window_ms: int = 0,
) -> SwapTerms:
    """Terms with the shortest safe timelocks from the current heights.

    ``give`` is what the initiator locks on A, ``take`` what the participant locks on B, as
    ``(denom, amount)``; ``window_ms`` asks for at least that long before B's lock expires.
    """
    blocks_b = max(safety.initiator_lock_margin, _ceil_div(window_ms, safety.b.fastest_ms))
    timelock_b = height_b + blocks_b
    lead_ms = (1 + safety.a.finality_depth) * safety.a.slowest_ms + safety.policy.reaction_ms
    need_ms = blocks_b * safety.b.slowest_ms + safety.delta_ms + lead_ms
    timelock_a = height_a + 1 + _ceil_div(need_ms, safety.a.fastest_ms)
    terms = SwapTerms(
        LockTerms(
            safety.a.chain_id, initiator_a, participant_a, give[0], give[1], hashlock, timelock_a
        ),
        LockTerms(
            safety.b.chain_id, participant_b, initiator_b, take[0], take[1], hashlock, timelock_b
        ),
    )
    safety.validate_terms(terms, height_a, height_b)
    return terms


# --- the state machine --------------------------------------------------------------------


class Role(Enum):
    INITIATOR = "initiator"
    PARTICIPANT = "participant"


class SwapState(Enum):
    CREATED = "created"
    """Terms agreed; nothing of ours on chain."""
    LOCKING = "locking"
    """Our lock is being submitted (persisted first)."""
    LOCKED = "locked"
    """Our lock is on chain."""
    COUNTER_LOCKED = "counter_locked"
    """The counterparty's lock is on chain and passed the audit."""
    REDEEMING = "redeeming"
    """We know the secret and our claim of the counter lock is being submitted."""
    REDEEMED = "redeemed"
    """We received the counterparty's funds. Terminal."""
    REFUNDING = "refunding"
    """Our lock expired unclaimed; the refund is being submitted."""
    REFUNDED = "refunded"
    """Our funds are back. Terminal."""
    ABORTED = "aborted"
    """Stopped before any funds of ours were locked. Terminal."""
    FORFEITED = "forfeited"
    """Our lock was claimed but the counter lock can no longer be: only after being
    offline past the safety margin. Terminal."""


TERMINAL = frozenset(
    {SwapState.REDEEMED, SwapState.REFUNDED, SwapState.ABORTED, SwapState.FORFEITED}
)


@dataclass(frozen=True, slots=True)
class Swap:
    """One party's view of one swap: the value the state machine moves and the store keeps."""

    terms: SwapTerms
    """The agreed terms."""
    role: Role
    """Which side we are."""
    state: SwapState = SwapState.CREATED
    """Where we are."""
    secret: bytes | None = None
    """The preimage: the initiator's from the start, the participant's once learnt."""
    counter_audited: bool = False
    """The counterparty's lock has been seen on chain and passed the audit."""
    height_a: int = 0
    """Highest height of A observed (ticks never move backwards)."""
    height_b: int = 0
    """Highest height of B observed."""
    version: int = 0
    """Number of transitions so far (the store refuses a write that skips or repeats one)."""
    note: str = ""
    """Why the last transition happened, for operators."""

    @property
    def swap_id(self) -> str:
        return self.terms.swap_id

    @property
    def own(self) -> LockTerms:
        return self.terms.a if self.role is Role.INITIATOR else self.terms.b

    @property
    def counter(self) -> LockTerms:
        return self.terms.b if self.role is Role.INITIATOR else self.terms.a

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "terms": self.terms.to_json(),
            "role": self.role.value,
            "state": self.state.value,
            "secret": None if self.secret is None else self.secret.hex(),
            "counter_audited": self.counter_audited,
            "height_a": self.height_a,
            "height_b": self.height_b,
            "version": self.version,
            "note": self.note,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Swap:
        try:
            secret = d["secret"]
            return cls(
                terms=SwapTerms.from_json(d["terms"]),
                role=Role(d["role"]),
                state=SwapState(d["state"]),
                secret=None if secret is None else from_hex(secret, "swap.secret", PREIMAGE_SIZE),
                counter_audited=bool(d["counter_audited"]),
                height_a=int(d["height_a"]),
                height_b=int(d["height_b"]),
                version=int(d["version"]),
                note=str(d["note"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise EncodingError("swap", str(exc)) from None


def is_secret(hashlock: bytes, preimage: bytes) -> bool:
    """Whether ``preimage`` is exactly 32 bytes and opens ``hashlock``."""
    return len(preimage) == PREIMAGE_SIZE and hashlib.sha256(preimage).digest() == hashlock


def check_secret(hashlock: bytes, preimage: bytes) -> bytes:
    """Return ``preimage`` if it is exactly 32 bytes and opens ``hashlock``."""
    if not is_secret(hashlock, preimage):
        raise SecretMismatch(hashlock.hex(), len(preimage))
    return preimage


def new_swap(terms: SwapTerms, role: Role, secret: bytes | None = None) -> Swap:
    """A fresh swap; the initiator must hold the secret, the participant must not."""
    if role is Role.INITIATOR:
        if secret is None:
            raise InvalidTerms("the initiator needs the secret")
        check_secret(terms.hashlock, secret)
    elif secret is not None:
        raise InvalidTerms("the participant learns the secret from the chain, not up front")
    return Swap(terms, role, secret=secret)


@dataclass(frozen=True, slots=True)
class Tick:
    """Both chains' latest heights, read just now (decisions about time use only these)."""

    height_a: int
    """Latest height of A (every event up to it has been fed)."""
    height_b: int
    """Latest height of B (every event up to it has been fed)."""
    complete: bool = True
    """Whether both heights are the chains' tips. ``False`` when a chain could be read
    only up to a lower height: the heights then lag the tips, which is safe for an
    expiry decision (refund, forfeit: later is never wrong) and unsafe for one that needs
    time left (lock, reveal: too late looks early), so only the former are taken."""


@dataclass(frozen=True, slots=True)
class LockObserved:
    """A lock as its chain reports it (an ``htlc.*`` event or a ``lock`` query)."""

    lock: Lock
    """The lock (untrusted until checked against the terms)."""


@dataclass(frozen=True, slots=True)
class LockAbsent:
    """A query of the state after block ``height`` found no lock ``lock_id``."""

    chain_id: str
    """The chain queried."""
    lock_id: bytes
    """The lock looked for."""
    height: int
    """The height the answer holds for."""


@dataclass(frozen=True, slots=True)
class LockFailed:
    """Our lock transaction executed and failed in block ``failed_at`` (e.g. insufficient
    funds, a timelock or hashlock the contract refuses), and a query of the state after
    block ``height`` found no lock ``lock_id``: no lock with our terms exists."""

    chain_id: str
    """The chain of our lock."""
    lock_id: bytes
    """Our lock's id (derived from every term: another lock cannot pass for it)."""
    failed_at: int
    """Height of the block whose receipt says our lock transaction failed."""
    height: int
    """The height the query's answer holds for."""
    code: str = ""
    """The receipt's error class name, for operators."""


Input = Tick | LockObserved | LockAbsent | LockFailed


@dataclass(frozen=True, slots=True)
class SubmitLock:
    """Create the lock with these terms."""

    terms: LockTerms


@dataclass(frozen=True, slots=True)
class SubmitClaim:
    """Claim ``lock_id`` on ``chain_id`` with ``preimage``."""

    chain_id: str
    lock_id: bytes
    preimage: bytes


@dataclass(frozen=True, slots=True)
class SubmitRefund:
    """Refund ``lock_id`` on ``chain_id``."""

    chain_id: str
    lock_id: bytes


Action = SubmitLock | SubmitClaim | SubmitRefund


@dataclass(frozen=True, slots=True)
class Step:
    """The outcome of one input: the swap after it and the side effect to perform."""

    swap: Swap
    """The swap after the input (persist it if ``transitioned``, before ``action``)."""
    action: Action | None = None
    """What to submit, after persisting."""
    transitioned: bool = False
    """Whether the state, secret or audit flag changed (only then is a write needed)."""


def _move(
    swap: Swap,
    state: SwapState,
    note: str,
    *,
    secret: bytes | None = None,
    counter_audited: bool | None = None,
) -> Swap:
    # a hand-written ``replace``: this is the engine's inner loop
    return Swap(
        swap.terms,
        swap.role,
        state,
        swap.secret if secret is None else secret,
        swap.counter_audited if counter_audited is None else counter_audited,
        swap.height_a,
        swap.height_b,
        swap.version + 1,
        note,
    )


def _to(
    swap: Swap,
    state: SwapState,
    note: str,
    *,
    secret: bytes | None = None,
    counter_audited: bool | None = None,
) -> Step:
    moved = _move(swap, state, note, secret=secret, counter_audited=counter_audited)
    return Step(moved, pending_action(moved), True)


def pending_action(swap: Swap) -> Action | None:
    """The side effect a swap in this state is waiting on (re-issued after a restart)."""
    if swap.state is SwapState.LOCKING:
        return SubmitLock(swap.own)
    if swap.state is SwapState.REDEEMING and swap.secret is not None:
        c = swap.counter
        return SubmitClaim(c.chain_id, c.lock_id, swap.secret)
    if swap.state is SwapState.REFUNDING:
        return SubmitRefund(swap.own.chain_id, swap.own.lock_id)
    return None


def validate_lock_time(swap: Swap, safety: Safety) -> None:
    """Raise :class:`InsufficientTime` unless our lock, sent at the swap's last
    :class:`Tick`, still leaves this role's margins (the Δ rule and the blocks of B its
    role needs). Changes nothing."""
    terms, ha, hb = swap.terms, swap.height_a, swap.height_b
    if swap.role is Role.INITIATOR:
        safety.validate_terms(terms, ha, hb)
    else:
        safety.validate_delta(terms, ha, hb)
        safety.validate_b_left(terms, hb, safety.participant_lock_margin)


def resend_action(swap: Swap, safety: Safety, *, secret_public: bool = False) -> Action | None:
    """The pending action if it is still safe to send again, judged at the swap's last
    :class:`Tick` (feed a fresh one, with both chains' tips, first).

    A lock is re-sent (e.g. after a restart) only while it still leaves the margins it
    was first sent with; otherwise this raises :class:`InsufficientTime` and the swap
    stays LOCKING: an earlier copy may still land (then it is refunded at expiry), and a
    lock that never lands aborts the swap once a final height reaches ``T - 1``.

    The initiator re-sends its claim only within the reveal margin: a claim that lands at
    or after ``T_B`` fails, yet its transaction still shows the secret. Once the secret is
    public anyway (the participant claimed our lock), any claim that can still land is
    worth sending.
    """
    action = pending_action(swap)
    if isinstance(action, SubmitLock):
        validate_lock_time(swap, safety)
    if isinstance(action, SubmitClaim) and swap.role is Role.INITIATOR:
        left = swap.counter.timelock - swap.height_b
        if left < (2 if secret_public else safety.reveal_margin):
            return None
    return action


def transition(swap: Swap, event: Input, safety: Safety) -> Step:
    """Apply one observation. Pure; raises a SwapError (changing nothing) on hostile input."""
    if isinstance(event, Tick):
        if event.height_a > swap.height_a or event.height_b > swap.height_b:
            ha, hb = max(swap.height_a, event.height_a), max(swap.height_b, event.height_b)
            s = swap
            swap = Swap(
                s.terms, s.role, s.state, s.secret, s.counter_audited, ha, hb, s.version, s.note
            )
        if swap.is_terminal:
            return Step(swap)
        if swap.role is Role.INITIATOR:
            return _initiator_tick(swap, safety, event.complete)
        return _participant_tick(swap, safety, event.complete)
    if isinstance(event, LockAbsent):
        own = swap.own
        if (
            swap.state is SwapState.LOCKING
            and event.chain_id == own.chain_id
            and event.lock_id == own.lock_id
            and event.height >= own.timelock - 1  # the next block is >= T: it can never exist
        ):
            return _to(swap, SwapState.ABORTED, "our lock never made it on chain")
        return Step(swap)
    if isinstance(event, LockFailed):
        return _lock_failed(swap, event, safety)
    return _observe(swap, event.lock)


def _lock_failed(swap: Swap, event: LockFailed, safety: Safety) -> Step:
    own = swap.own
    if (
        swap.state is not SwapState.LOCKING
        or event.chain_id != own.chain_id
        or event.lock_id != own.lock_id
    ):
        return Step(swap)
    params = safety.a if own.chain_id == safety.a.chain_id else safety.b
    # the absence must hold after the failing block is final: until then the block may be
    # replaced by one where the lock succeeds, and an aborted swap never refunds it
    if event.height < event.failed_at + params.finality_depth:
        return Step(swap)
    code = f" ({event.code})" if event.code else ""
    return _to(swap, SwapState.ABORTED, f"our lock failed on chain{code}: nothing locked")


def _observe(swap: Swap, lock: Lock) -> Step:
    own, counter = swap.own, swap.counter
    if lock.terms.hashlock == swap.terms.hashlock and (
        lock.preimage is not None or lock.status is LockStatus.CLAIMED
    ):
        # a claim of our hashlock must carry the secret; anything else is hostile: refuse
        check_secret(swap.terms.hashlock, lock.preimage or b"")
    if swap.is_terminal:
        return Step(swap)
    if lock.terms == own:  # every term equal: the same lock id, without hashing
        return _observe_own(swap, lock)
    if lock.terms == counter:
        return _observe_counter(swap, lock)
    if (
        lock.status is LockStatus.LOCKED
        and lock.terms.chain_id == counter.chain_id
        and lock.terms.hashlock == counter.hashlock
        and lock.terms.receiver == counter.receiver
    ):
        audit(lock, counter)  # poses as the counter leg with other terms: always raises
    if (
        swap.role is Role.PARTICIPANT
        and lock.status is LockStatus.CLAIMED
        and lock.terms.hashlock == swap.terms.hashlock
        and swap.state in (SwapState.LOCKING, SwapState.LOCKED, SwapState.REFUNDING)
    ):
        # the secret opened another lock with our hashlock: it is public now, use it
        return _to(swap, SwapState.REDEEMING, "secret revealed on chain", secret=lock.preimage)
    return Step(swap)


def _observe_own(swap: Swap, lock: Lock) -> Step:
    state, initiator = swap.state, swap.role is Role.INITIATOR
    if lock.status is LockStatus.LOCKED:
        if state is SwapState.LOCKING or (initiator and state is SwapState.CREATED):
            if initiator and swap.counter_audited:
                return _to(swap, SwapState.COUNTER_LOCKED, "both locks on chain")
            return _to(swap, SwapState.LOCKED, "our lock is on chain")
        return Step(swap)
    if state is SwapState.CREATED or (not initiator and state is SwapState.COUNTER_LOCKED):
        return Step(swap)  # we never submitted it: not a lock of ours to act on
    if lock.status is LockStatus.REFUNDED:
        return _to(swap, SwapState.REFUNDED, "our lock was refunded")
    # CLAIMED: the counterparty opened our lock, so the secret is public
    if state is SwapState.REDEEMING:
        return Step(swap)  # our claim is already on its way
    if not initiator:
        return _to(
            swap, SwapState.REDEEMING, "our lock was claimed: secret learnt", secret=lock.preimage
        )
    if swap.counter_audited and swap.height_b < swap.counter.timelock:
        return _to(swap, SwapState.REDEEMING, "our lock was claimed: claim theirs")
    return _to(swap, SwapState.FORFEITED, "our lock was claimed and theirs cannot be")


def _observe_counter(swap: Swap, lock: Lock) -> Step:
    state, initiator = swap.state, swap.role is Role.INITIATOR
    if lock.status is LockStatus.LOCKED:  # every term equals the agreed one: audited
        if swap.counter_audited:
            return Step(swap)  # replay
        if (initiator and state is SwapState.LOCKED) or (
            not initiator and state is SwapState.CREATED
        ):
            return _to(swap, SwapState.COUNTER_LOCKED, "counter lock audited", counter_audited=True)
        if initiator and state in (SwapState.CREATED, SwapState.LOCKING):
            # seen before our own lock: remember the audit, move on when ours appears
            moved = replace(swap, counter_audited=True, version=swap.version + 1)
            return Step(moved, None, True)
        return Step(swap)
    if lock.status is LockStatus.CLAIMED:
        # whoever submitted it, a claim of the counter lock pays us
        secret = swap.secret if swap.secret is not None else lock.preimage
        return _to(swap, SwapState.REDEEMED, "counter lock claimed: paid", secret=secret)
    # REFUNDED to the counterparty
    if not initiator:
        if state is SwapState.REDEEMING:
            return _to(swap, SwapState.FORFEITED, "counter lock refunded before our claim")
        if state in (SwapState.CREATED, SwapState.COUNTER_LOCKED):
            return _to(swap, SwapState.ABORTED, "initiator refunded before we locked")
    return Step(swap)  # our own lock's expiry takes care of the rest


def _initiator_tick(swap: Swap, safety: Safety, complete: bool) -> Step:
    terms, ha, hb, state = swap.terms, swap.height_a, swap.height_b, swap.state
    if state is SwapState.CREATED:
        if not complete:
            return Step(swap)  # lagging heights: the time left may be less than it looks
        try:
            validate_lock_time(swap, safety)
        except InsufficientTime as exc:
            return _to(swap, SwapState.ABORTED, f"too late to lock: {exc}")
        return _to(swap, SwapState.LOCKING, "locking on A")
    if state is SwapState.COUNTER_LOCKED:
        if complete and terms.b.timelock - hb >= safety.reveal_margin:
            return _to(swap, SwapState.REDEEMING, "revealing: claiming on B")
        if ha >= terms.a.timelock:
            return _to(swap, SwapState.REFUNDING, "counter lock too close to expiry: refund")
        return Step(swap)  # refuse to reveal; wait for T_A
    if state is SwapState.LOCKED and ha >= terms.a.timelock:
        return _to(swap, SwapState.REFUNDING, "no valid counter lock in time: refund")
    if state is SwapState.REDEEMING and hb >= terms.b.timelock and ha >= terms.a.timelock:
        return _to(swap, SwapState.REFUNDING, "our claim missed T_B: refund")
    return Step(swap)


def _participant_tick(swap: Swap, safety: Safety, complete: bool) -> Step:
    terms, ha, hb, state = swap.terms, swap.height_a, swap.height_b, swap.state
    if state in (SwapState.CREATED, SwapState.COUNTER_LOCKED):
        if not complete:
            return Step(swap)  # lagging heights: the time left may be less than it looks
        try:
            validate_lock_time(swap, safety)
        except InsufficientTime as exc:
            return _to(swap, SwapState.ABORTED, f"too late to lock: {exc}")
        if state is SwapState.CREATED:
            return Step(swap)  # still waiting for the initiator's lock
        return _to(swap, SwapState.LOCKING, "locking on B")
    if state is SwapState.LOCKED and hb >= terms.b.timelock:
        return _to(swap, SwapState.REFUNDING, "no claim before T_B: refund")
    if state is SwapState.REDEEMING and ha >= terms.a.timelock:
        return _to(swap, SwapState.FORFEITED, "secret learnt too late to claim on A")
    return Step(swap)


# --- utilities mirroring decred/atomicswap ------------------------------------------------


def audit(
    lock: Lock,
    expected: LockTerms,
    *,
    height: int | None = None,
    min_blocks: int = 0,
    opened: int | None = None,
    finality_depth: int = 0,
) -> None:
    """Check a lock is exactly the agreed one and open, with ``min_blocks`` left at
    ``height``, and (given the height it was ``opened`` at) in a block ``finality_depth``
    deep, the lock chain's engine's depth: before that a reorganisation may undo it.

    Raises :class:`TermMismatch` naming the first differing term, :class:`LockNotOpen`,
    :class:`LockNotFinal` or :class:`InsufficientTime`; returns ``None`` when the lock is
    safe to act on.
    """
    got, lock_id = lock.terms, lock.lock_id.hex()
    for name in ("chain_id", "sender", "receiver", "denom", "amount", "hashlock", "timelock"):
        want, have = getattr(expected, name), getattr(got, name)
        if want != have:
            if isinstance(want, bytes):
                want, have = want.hex(), have.hex()
            raise TermMismatch(lock_id, name, want, have)
    if lock.status is not LockStatus.LOCKED:
        raise LockNotOpen(lock_id, lock.status.value)
    if height is not None and opened is not None and height - opened < finality_depth:
        raise LockNotFinal(lock_id, height - opened, finality_depth)
    if height is not None and got.timelock - height < min_blocks:
        raise InsufficientTime(lock_id, got.timelock - height, min_blocks, "blocks")


@dataclass(frozen=True, slots=True)
class Initiated:
    """Result of :func:`initiate`: keep ``secret`` private until you redeem."""

    secret: bytes
    """The 32-byte secret."""
    terms: LockTerms
    """The lock the transaction creates (``terms.lock_id`` is its id)."""
    tx: Tx
    """The signed lock transaction."""


def initiate(
    key: PrivateKey,
    chain_id: str,
    nonce: int,
    *,
    receiver: str,
    denom: str,
    amount: int,
    timelock: int,
    secret: bytes | None = None,
) -> Initiated:
    """Make a secret (unless given) and the signed lock transaction of the first leg."""
    secret = os.urandom(PREIMAGE_SIZE) if secret is None else secret
    if len(secret) != PREIMAGE_SIZE:
        raise SecretMismatch("-", len(secret))
    hashlock = hashlib.sha256(secret).digest()
    terms = LockTerms(chain_id, key.address, receiver, denom, amount, hashlock, timelock)
    return Initiated(secret, terms, build_tx(SubmitLock(terms), key, nonce))


def participate(
    key: PrivateKey,
    chain_id: str,
    nonce: int,
    *,
    receiver: str,
    denom: str,
    amount: int,
    hashlock: bytes,
    timelock: int,
) -> tuple[LockTerms, Tx]:
    """The signed lock transaction of the second leg, on the initiator's hashlock."""
    terms = LockTerms(chain_id, key.address, receiver, denom, amount, hashlock, timelock)
    return terms, build_tx(SubmitLock(terms), key, nonce)


def redeem(key: PrivateKey, chain_id: str, nonce: int, lock_id: bytes, secret: bytes) -> Tx:
    """The signed claim of ``lock_id`` with ``secret`` (anyone may submit it)."""
    return build_tx(SubmitClaim(chain_id, lock_id, secret), key, nonce)


def refund(key: PrivateKey, chain_id: str, nonce: int, lock_id: bytes) -> Tx:
    """The signed refund of ``lock_id`` (valid from its timelock height on)."""
    return build_tx(SubmitRefund(chain_id, lock_id), key, nonce)


def extract_secret(chain_id: str, events: Iterable[Event], hashlock: bytes) -> bytes:
    """The secret revealed by an ``htlc.claimed`` event on ``hashlock``.

    Only a claim whose preimage hashes to ``hashlock`` counts; nothing else is trusted.
    Raises :class:`SecretNotFound` when there is none.
    """
    for event in events:
        if event.type != "htlc.claimed":
            continue
        try:
            lock = lock_from_event(chain_id, event)
        except EncodingError:
            continue  # not a well-formed claim: cannot be ours
        if lock is None or lock.preimage is None or lock.terms.hashlock != hashlock:
            continue
        try:
            return check_secret(hashlock, lock.preimage)
        except SecretMismatch:
            continue
    raise SecretNotFound(hashlock.hex())


def build_tx(action: Action, key: PrivateKey, nonce: int) -> Tx:
    """The signed transaction that performs ``action``."""
    if isinstance(action, SubmitLock):
        t = action.terms
        return Tx.create(key, t.chain_id, nonce, "htlc", "lock", t.lock_args())
    if isinstance(action, SubmitClaim):
        args: dict[str, JSONValue] = {
            "lock_id": action.lock_id.hex(),
            "preimage": action.preimage.hex(),
        }
        return Tx.create(key, action.chain_id, nonce, "htlc", "claim", args)
    refund_args: dict[str, JSONValue] = {"lock_id": action.lock_id.hex()}
    return Tx.create(key, action.chain_id, nonce, "htlc", "refund", refund_args)
