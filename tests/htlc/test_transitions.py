"""Every edge of both state machines, as a table: (role, from, input) -> (to, action)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from htlc.swap import (
    ChainParams,
    LockAbsent,
    LockFailed,
    LockObserved,
    Role,
    Safety,
    SubmitClaim,
    SubmitLock,
    SubmitRefund,
    SwapState,
    Tick,
    new_swap,
    transition,
)
from htlc.types import Lock, LockStatus
from tests.htlc.test_swap import SAFETY, SECRET, TERMS, claimed, locked, refunded

S = SwapState
INI, PAR = Role.INITIATOR, Role.PARTICIPANT
TA, TB = TERMS.a.timelock, TERMS.b.timelock
OTHER = replace(TERMS.b, amount=1, receiver=TERMS.a.sender, sender=TERMS.a.receiver)
LATE = Tick(TA, TB)
FAILED_A = LockFailed("chain-a", TERMS.a.lock_id, 5, 5, "InsufficientFunds")
FAILED_B = LockFailed("chain-b", TERMS.b.lock_id, 5, 5, "HashlockReused")

EDGES = [
    # initiator
    (INI, S.CREATED, False, Tick(0, 0), S.LOCKING, SubmitLock),
    (INI, S.CREATED, False, Tick(TA - 2, TB - 2), S.ABORTED, None),
    (INI, S.LOCKING, False, locked(TERMS.a), S.LOCKED, None),
    (INI, S.LOCKING, True, locked(TERMS.a), S.COUNTER_LOCKED, None),
    (INI, S.LOCKING, False, LockAbsent("chain-a", TERMS.a.lock_id, TA - 1), S.ABORTED, None),
    (INI, S.LOCKING, False, FAILED_A, S.ABORTED, None),
    (INI, S.LOCKING, True, FAILED_A, S.ABORTED, None),
    (INI, S.LOCKED, False, locked(TERMS.b), S.COUNTER_LOCKED, None),
    (INI, S.LOCKED, False, Tick(TA, 0), S.REFUNDING, SubmitRefund),
    (INI, S.LOCKED, False, claimed(TERMS.a), S.FORFEITED, None),
    (INI, S.COUNTER_LOCKED, True, Tick(2, 2), S.REDEEMING, SubmitClaim),
    (INI, S.COUNTER_LOCKED, True, LATE, S.REFUNDING, SubmitRefund),
    (INI, S.COUNTER_LOCKED, True, claimed(TERMS.b), S.REDEEMED, None),
    (INI, S.REDEEMING, True, claimed(TERMS.b), S.REDEEMED, None),
    (INI, S.REDEEMING, True, LATE, S.REFUNDING, SubmitRefund),
    (INI, S.REDEEMING, True, refunded(TERMS.a), S.REFUNDED, None),
    (INI, S.REFUNDING, True, refunded(TERMS.a), S.REFUNDED, None),
    (INI, S.REFUNDING, True, claimed(TERMS.a), S.REDEEMING, SubmitClaim),
    (INI, S.REFUNDING, True, claimed(TERMS.b), S.REDEEMED, None),
    # participant
    (PAR, S.CREATED, False, locked(TERMS.a), S.COUNTER_LOCKED, None),
    (PAR, S.CREATED, False, Tick(0, TB - 1), S.ABORTED, None),
    (PAR, S.COUNTER_LOCKED, True, Tick(1, 0), S.LOCKING, SubmitLock),
    (PAR, S.COUNTER_LOCKED, True, Tick(TA - 3, 0), S.ABORTED, None),
    (PAR, S.COUNTER_LOCKED, True, refunded(TERMS.a), S.ABORTED, None),
    (PAR, S.LOCKING, True, locked(TERMS.b), S.LOCKED, None),
    (PAR, S.LOCKING, True, LockAbsent("chain-b", TERMS.b.lock_id, TB - 1), S.ABORTED, None),
    (PAR, S.LOCKING, True, FAILED_B, S.ABORTED, None),
    (PAR, S.LOCKED, True, claimed(TERMS.b), S.REDEEMING, SubmitClaim),
    (PAR, S.LOCKED, True, Tick(0, TB), S.REFUNDING, SubmitRefund),
    (PAR, S.LOCKED, True, claimed(OTHER), S.REDEEMING, SubmitClaim),
    (PAR, S.REDEEMING, True, claimed(TERMS.a), S.REDEEMED, None),
    (PAR, S.REDEEMING, True, refunded(TERMS.a), S.FORFEITED, None),
    (PAR, S.REDEEMING, True, Tick(TA, TB), S.FORFEITED, None),
    (PAR, S.REFUNDING, True, refunded(TERMS.b), S.REFUNDED, None),
    (PAR, S.REFUNDING, True, claimed(TERMS.b), S.REDEEMING, SubmitClaim),
]


@pytest.mark.parametrize(
    ("role", "start", "audited", "event", "end", "action"),
    EDGES,
    ids=[f"{e[0].value}:{e[1].value}->{e[4].value}#{i}" for i, e in enumerate(EDGES)],
)
def test_edge(
    role: Role, start: S, audited: bool, event: object, end: S, action: type | None
) -> None:
    secret = SECRET if role is INI or start is S.REDEEMING else None
    swap = replace(
        new_swap(TERMS, role, SECRET if role is INI else None),
        state=start,
        counter_audited=audited,
        secret=secret,
    )
    step = transition(swap, event, SAFETY)  # type: ignore[arg-type]
    assert step.swap.state is end
    assert step.transitioned
    assert step.swap.version == swap.version + 1
    assert (None if step.action is None else type(step.action)) is action
    if isinstance(step.action, SubmitClaim):
        assert step.action.preimage == SECRET


@pytest.mark.parametrize("state", list(SwapState))
@pytest.mark.parametrize("role", [INI, PAR])
def test_no_state_acts_on_a_foreign_lock(role: Role, state: S) -> None:
    foreign = replace(TERMS.a, hashlock=b"\x09" * 32)
    swap = replace(new_swap(TERMS, role, SECRET if role is INI else None), state=state)
    for status in LockStatus:
        lock = Lock(foreign, status, b"\x09" * 32 if status is LockStatus.CLAIMED else None)
        step = transition(swap, LockObserved(lock), SAFETY)
        assert step.swap == swap
        assert step.action is None


@pytest.mark.parametrize("state", [s for s in SwapState if s is not S.LOCKING])
@pytest.mark.parametrize("role", [INI, PAR])
def test_a_failed_lock_aborts_only_from_locking(role: Role, state: S) -> None:
    """Once our lock was seen (or never sent), a failed receipt of it changes nothing: a
    duplicate submission fails while the lock it duplicates holds our funds."""
    swap = replace(new_swap(TERMS, role, SECRET if role is INI else None), state=state)
    for event in (FAILED_A, FAILED_B):
        step = transition(swap, event, SAFETY)
        assert step.swap == swap
        assert step.action is None


@pytest.mark.parametrize("role", [INI, PAR])
def test_a_failed_lock_of_another_id_or_chain_changes_nothing(role: Role) -> None:
    swap = replace(new_swap(TERMS, role, SECRET if role is INI else None), state=S.LOCKING)
    own, counter = swap.own, swap.counter
    for event in (
        LockFailed(own.chain_id, counter.lock_id, 5, 5),
        LockFailed(counter.chain_id, own.lock_id, 5, 5),
    ):
        assert transition(swap, event, SAFETY).swap == swap


@pytest.mark.parametrize("role", [INI, PAR])
def test_a_failed_lock_aborts_only_once_its_block_is_final(role: Role) -> None:
    """With finality depth d, the failing block may still be replaced by one where our lock
    succeeds: the absence counts only at height >= failed_at + d."""
    safety = Safety(
        ChainParams("chain-a", 1000, finality_depth=3),
        ChainParams("chain-b", 1000, finality_depth=3),
        SAFETY.policy,
    )
    swap = replace(new_swap(TERMS, role, SECRET if role is INI else None), state=S.LOCKING)
    own = swap.own
    early = transition(swap, LockFailed(own.chain_id, own.lock_id, 10, 12), safety)
    assert early.swap == swap
    final = transition(swap, LockFailed(own.chain_id, own.lock_id, 10, 13), safety)
    assert final.swap.state is S.ABORTED
    assert final.action is None
