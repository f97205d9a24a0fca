"""A party's own lock transaction fails on chain: the swap aborts at once, unless the lock
exists after all (an earlier submission of it landed), and a crash changes neither."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from chains.devnet import DEFAULT_BALANCE
from htlc.driver import Party, SwapDriver
from htlc.store import MemorySwapStore
from htlc.swap import Role, SubmitClaim, SubmitLock, SubmitRefund, SwapState, SwapTerms
from tests.htlc.helpers import Crash, CrashingStore, ManualChain, World, secret_of

S = SwapState
GIVE, TAKE = 100, 90


class CrashOnAbort(CrashingStore):
    """Crashes right after the ABORTED state is written (once)."""

    def update_many(self, swaps: Sequence[Any]) -> None:
        for s in swaps:
            self.inner.update_many([s])
            if s.state is S.ABORTED and self.crash_after is None:
                self.crash_after = 0  # crashed once: a restarted driver writes on
                raise Crash("crash after the abort was persisted")


def _roles(role: Role, w: World) -> tuple[Party, Party]:
    return (w.alice, w.bob) if role is Role.INITIATOR else (w.bob, w.alice)


def _secret_for(role: Role, secret: bytes) -> bytes | None:
    return secret if role is Role.INITIATOR else None


def _failed_codes(w: World) -> list[str]:
    return [r.code for r in w.failed()]


async def _restart(w: World, victim: SwapDriver, party: Party, store: Any) -> SwapDriver:
    await victim.aclose()
    back = SwapDriver(party, *victim.chains.values(), store, w.safety)
    await back.resume()
    return back


# room to re-send a lock after a restart: a lock is re-sent only while it still leaves the
# margins (the shortest safe terms leave none a block later)
WINDOW_MS = 20_000


def _failing_terms(w: World, role: Role, cause: str, secret: bytes) -> SwapTerms:
    if cause == "funds":  # more than the party holds
        if role is Role.INITIATOR:
            return w.terms(secret, DEFAULT_BALANCE + 1, TAKE, window_ms=WINDOW_MS)
        return w.terms(secret, GIVE, DEFAULT_BALANCE + 1, window_ms=WINDOW_MS)
    terms = w.terms(secret, GIVE, TAKE, window_ms=WINDOW_MS)
    # the party already locked this hashlock, with other terms: the contract refuses a
    # second lock on it, and a lock with our hashlock exists but not one with our id
    own = terms.a if role is Role.INITIATOR else terms.b
    sim, key = (w.A, w.alice.key_a) if role is Role.INITIATOR else (w.B, w.bob.key_b)
    assert sim.run(key, "lock", own.lock_args() | {"amount": own.amount - 1}).ok
    return w.terms(secret, GIVE, TAKE, window_ms=WINDOW_MS)  # planned from the new heights


@pytest.mark.parametrize("crash", ["none", "after_receipt", "after_abort"])
@pytest.mark.parametrize(
    ("cause", "code"), [("funds", "InsufficientFunds"), ("reused", "HashlockReused")]
)
@pytest.mark.parametrize("role", [Role.INITIATOR, Role.PARTICIPANT])
async def test_a_failed_lock_aborts_the_swap(role: Role, cause: str, code: str, crash: str) -> None:
    w = World()
    secret = secret_of(40)
    terms = _failing_terms(w, role, cause, secret)
    sid = terms.swap_id
    party, other_party = _roles(role, w)
    inner = MemorySwapStore()
    store = CrashOnAbort(inner) if crash == "after_abort" else inner
    victim = SwapDriver(party, *w.driver(party).chains.values(), store, w.safety)
    other = w.driver(other_party)
    other_role = Role.PARTICIPANT if role is Role.INITIATOR else Role.INITIATOR
    # the initiator opens first in either case (its lock is what the participant waits for)
    if role is Role.INITIATOR:
        await victim.open(terms, role, _secret_for(role, secret))
        await other.open(terms, other_role, _secret_for(other_role, secret))
    else:
        await other.open(terms, other_role, _secret_for(other_role, secret))
        await victim.open(terms, role, _secret_for(role, secret))
    for _ in range(5):  # until our lock's receipt comes back failed
        if _failed_codes(w):
            break
        await other.poll()
        await victim.poll()
        await w.blocks()
    assert _failed_codes(w) == [code]
    assert inner.get(sid).state is S.LOCKING  # type: ignore[union-attr]
    own = terms.a if role is Role.INITIATOR else terms.b
    assert w.A.height < terms.a.timelock - 1
    assert w.B.height < terms.b.timelock - 1
    if crash == "after_receipt":  # dies before the next poll has looked at the receipt
        victim = await _restart(w, victim, party, inner)
        await w.blocks()  # the re-sent lock fails the same way
        assert _failed_codes(w) == [code, code]
    try:
        await victim.poll()
    except Crash:
        victim = await _restart(w, victim, party, inner)
    # at once, far from T - 1: the abort is persisted before anything else happens
    aborted = inner.get(sid)
    assert aborted is not None
    assert aborted.state is S.ABORTED
    assert "failed on chain" in aborted.note
    assert not victim.active()  # nothing left to do (a restart does not even load it)
    for _ in range(terms.a.timelock + 5):
        await victim.poll()
        await other.poll()
        await w.blocks()
        if not other.active():
            break
    assert inner.get(sid).state is S.ABORTED  # type: ignore[union-attr]
    sent = [type(a) for _, a in victim.submitted]
    assert set(sent) <= {SubmitLock}  # no claim (no reveal), no refund of a lock never made
    assert len(sent) <= 1  # never re-sent within a run; a restart re-sends once
    chain = w.A if role is Role.INITIATOR else w.B
    assert chain.query("lock", {"lock_id": own.lock_id.hex()}) is None
    all_args = [tx.args for blk in (*w.A.blocks.values(), *w.B.blocks.values()) for tx in blk.txs]
    assert all(secret.hex() not in str(args) for args in all_args)  # never revealed
    if role is Role.INITIATOR:
        assert other.swaps[sid].state is S.ABORTED  # the participant never locked
        assert not other.submitted
    else:
        assert other.swaps[sid].state is S.REFUNDED  # the initiator got its funds back
        assert not any(isinstance(a, SubmitClaim) for _, a in other.submitted)
        assert any(isinstance(a, SubmitRefund) for _, a in other.submitted)
    if cause == "funds":
        for sim, key in ((w.A, "key_a"), (w.B, "key_b")):
            for p in (w.alice, w.bob):
                assert sim.balance(getattr(p, key)) == DEFAULT_BALANCE


@pytest.mark.parametrize("crash", [False, True])
@pytest.mark.parametrize("role", [Role.INITIATOR, Role.PARTICIPANT])
async def test_a_failed_receipt_while_our_lock_exists_does_not_abort(
    role: Role, crash: bool
) -> None:
    """The process dies with its lock pending; the restarted one sends it again. The first
    copy creates the lock, the second fails (LockExists): the swap goes on, and completes."""
    w = World()
    secret = secret_of(41)
    terms = w.terms(secret, GIVE, TAKE)
    sid = terms.swap_id
    party, other_party = _roles(role, w)
    store = MemorySwapStore()
    victim = w.driver(party, store)
    other = w.driver(other_party)
    other_role = Role.PARTICIPANT if role is Role.INITIATOR else Role.INITIATOR
    if role is Role.INITIATOR:
        await victim.open(terms, role, _secret_for(role, secret))
        await other.open(terms, other_role, _secret_for(other_role, secret))
    else:
        await other.open(terms, other_role, _secret_for(other_role, secret))
        await victim.open(terms, role, _secret_for(role, secret))
    while store.get(sid).state is not S.LOCKING:  # type: ignore[union-attr]
        await w.blocks()
        await other.poll()
        await victim.poll()  # last: its lock is submitted, not yet in a block
    assert isinstance(victim.submitted[-1][1], SubmitLock)
    await victim.aclose()  # dies with the lock pending
    # the driver numbers from the pending count, so the restarted one sends a second copy
    victim = SwapDriver(party, ManualChain(w.A), ManualChain(w.B), store, w.safety)
    await victim.resume()  # the lock is not on chain yet: sent again, next nonce
    assert [type(a) for _, a in victim.submitted] == [SubmitLock]
    await w.blocks()
    assert _failed_codes(w) == ["LockExists"]  # the copy failed; the first one landed
    if crash:  # dies right after the failed receipt
        victim = await _restart(w, victim, party, store)
    await victim.poll()
    assert store.get(sid).state in (S.LOCKED, S.COUNTER_LOCKED)  # type: ignore[union-attr]
    for _ in range(60):
        await victim.poll()
        await other.poll()
        await w.blocks()
        if not victim.active() and not other.active():
            break
    assert store.get(sid).state is S.REDEEMED  # type: ignore[union-attr]
    assert other.swaps[sid].state is S.REDEEMED
    assert w.A.balance(w.alice.key_a) == DEFAULT_BALANCE - GIVE
    assert w.B.balance(w.bob.key_b) == DEFAULT_BALANCE - TAKE
    assert w.A.balance(w.bob.key_a) == DEFAULT_BALANCE + GIVE
    assert w.B.balance(w.alice.key_b) == DEFAULT_BALANCE + TAKE
