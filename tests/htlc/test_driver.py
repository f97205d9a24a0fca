"""The driver on two deterministic devnet chains: full swaps, crashes, long sleeps."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from chains.devnet import DEFAULT_BALANCE
from chains.service.rpc_client import RpcUnavailable
from chains.types import Block, Receipt, Tx
from htlc.driver import SwapDriver
from htlc.errors import HashlockInUse, InvalidTerms, SwapExists, TermMismatch
from htlc.store import MemorySwapStore, SwapStore
from htlc.swap import Role, SubmitClaim, SubmitRefund, SwapState, SwapTerms, plan_swap
from interlock.swap_store import SQLiteSwapStore
from tests.htlc.helpers import Crash, CrashingStore, ManualChain, Sim, World, secret_of

S = SwapState
GIVE, TAKE = 100, 90


def assert_swapped(w: World, n: int = 1) -> None:
    """Alice gave GIVE on A and got TAKE on B; Bob the mirror; nothing else moved."""
    assert w.A.balance(w.alice.key_a) == DEFAULT_BALANCE - n * GIVE
    assert w.A.balance(w.bob.key_a) == DEFAULT_BALANCE + n * GIVE
    assert w.B.balance(w.alice.key_b) == DEFAULT_BALANCE + n * TAKE
    assert w.B.balance(w.bob.key_b) == DEFAULT_BALANCE - n * TAKE


def assert_untouched(w: World) -> None:
    for party, sim, key in (
        (w.alice, w.A, "key_a"),
        (w.bob, w.A, "key_a"),
        (w.alice, w.B, "key_b"),
        (w.bob, w.B, "key_b"),
    ):
        assert sim.balance(getattr(party, key)) == DEFAULT_BALANCE


async def settle(w: World, *drivers: SwapDriver, rounds: int = 60) -> None:
    for _ in range(rounds):
        for d in drivers:
            await d.poll()
        await w.blocks()
        if all(not d.active() for d in drivers):
            for d in drivers:
                await d.poll()
            return
    raise AssertionError("swaps did not settle")


async def start(w: World, terms: SwapTerms, secret: bytes) -> tuple[SwapDriver, SwapDriver]:
    ini, par = w.driver(w.alice), w.driver(w.bob)
    await ini.open(terms, Role.INITIATOR, secret)
    await par.open(terms, Role.PARTICIPANT)
    return ini, par


async def test_complete_swap() -> None:
    w = World()
    terms = w.terms(secret_of(1), GIVE, TAKE)
    ini, par = await start(w, terms, secret_of(1))
    await settle(w, ini, par)
    assert ini.swaps[terms.swap_id].state is S.REDEEMED
    assert par.swaps[terms.swap_id].state is S.REDEEMED
    assert par.swaps[terms.swap_id].secret == secret_of(1)
    assert_swapped(w)
    assert w.failed() == []
    for d in (ini, par):  # exactly one lock and one claim each: 4 transactions per swap
        assert [type(a).__name__ for _, a in d.submitted] == ["SubmitLock", "SubmitClaim"]


async def test_many_concurrent_swaps_between_the_same_parties() -> None:
    w = World()
    ini, par = w.driver(w.alice), w.driver(w.bob)
    n = 40
    for i in range(n):
        terms = w.terms(secret_of(i), GIVE, TAKE)
        await ini.open(terms, Role.INITIATOR, secret_of(i))
        await par.open(terms, Role.PARTICIPANT)
    await settle(w, ini, par)
    assert {s.state for s in ini.swaps.values()} == {S.REDEEMED}
    assert {s.state for s in par.swaps.values()} == {S.REDEEMED}
    assert_swapped(w, n)
    assert w.failed() == []


async def test_hashlock_or_lock_id_reused_across_swaps_is_refused() -> None:
    w = World()
    terms = w.terms(secret_of(1))
    ini = w.driver(w.alice)
    await ini.open(terms, Role.INITIATOR, secret_of(1))
    with pytest.raises(SwapExists):
        await ini.open(terms, Role.INITIATOR, secret_of(1))
    other = w.terms(secret_of(1), give=GIVE + 1)  # another swap, same secret
    with pytest.raises(HashlockInUse):
        await ini.open(other, Role.INITIATOR, secret_of(1))
    assert len(ini.store.all()) == 1
    batch = [(w.terms(secret_of(2)), Role.INITIATOR, secret_of(2)), (other, Role.INITIATOR, None)]
    with pytest.raises(InvalidTerms):  # the initiator's second swap lacks its secret
        await ini.open_many(batch)
    batch[1] = (other, Role.INITIATOR, secret_of(1))
    with pytest.raises(HashlockInUse):  # all or nothing
        await ini.open_many(batch)
    assert len(ini.store.all()) == 1
    assert len(ini.swaps) == 1


@pytest.mark.parametrize("role", [Role.INITIATOR, Role.PARTICIPANT])
@pytest.mark.parametrize("crash_after", [1, 2, 3, 4, 5])
async def test_crash_after_each_transition_and_resume(role: Role, crash_after: int) -> None:
    w = World()
    secret = secret_of(7)
    terms = w.terms(secret, GIVE, TAKE)
    inner: SwapStore = MemorySwapStore()
    crashing = CrashingStore(inner, crash_after)
    party = w.alice if role is Role.INITIATOR else w.bob
    victim = SwapDriver(party, *(d for d in w.driver(party).chains.values()), crashing, w.safety)
    other = w.driver(w.bob if role is Role.INITIATOR else w.alice)
    crashed = False
    try:
        await victim.open(terms, role, secret if role is Role.INITIATOR else None)
    except Crash:  # opening already feeds a tick: the initiator may lock at once
        crashed = True
        victim = SwapDriver(party, *victim.chains.values(), inner, w.safety)
        await victim.resume()
    await other.open(
        terms,
        Role.PARTICIPANT if role is Role.INITIATOR else Role.INITIATOR,
        secret if role is Role.PARTICIPANT else None,
    )
    for _ in range(40):
        try:
            await victim.poll()
        except Crash:
            crashed = True
            await victim.aclose()
            # the process restarts on the same store, on a later poll
            victim = SwapDriver(party, *victim.chains.values(), inner, w.safety)
            await victim.resume()
        await other.poll()
        await w.blocks()
        if not victim.active() and not other.active():
            break
    assert crashed
    assert inner.get(terms.swap_id).state is S.REDEEMED  # type: ignore[union-attr]
    assert_swapped(w)
    assert w.failed() == []  # no double action reached a chain


@pytest.mark.parametrize("role", [Role.INITIATOR, Role.PARTICIPANT])
async def test_restart_after_every_poll_with_sqlite(tmp_path: Path, role: Role) -> None:
    """A process that dies right after each poll (submissions in flight) still completes."""
    w = World()
    secret = secret_of(3)
    terms = w.terms(secret, GIVE, TAKE)
    party = w.alice if role is Role.INITIATOR else w.bob
    path = tmp_path / "swaps.sqlite"
    store = SQLiteSwapStore(path, key=party.key_a)
    victim = w.driver(party, store)
    other = w.driver(w.bob if role is Role.INITIATOR else w.alice)
    await victim.open(terms, role, secret if role is Role.INITIATOR else None)
    other_role = Role.PARTICIPANT if role is Role.INITIATOR else Role.INITIATOR
    await other.open(terms, other_role, secret if other_role is Role.INITIATOR else None)
    for _ in range(40):
        await victim.poll()
        await other.poll()
        await victim.aclose()
        store.close()
        store = SQLiteSwapStore(path, key=party.key_a)
        victim = w.driver(party, store)
        await victim.resume()
        await w.blocks()
        if not victim.active() and not other.active():
            break
    final = store.get(terms.swap_id)
    assert final is not None
    assert final.state is S.REDEEMED
    assert_swapped(w)
    store.close()


async def test_participant_never_locks_initiator_refunds_secret_never_revealed() -> None:
    w = World()
    secret = secret_of(2)
    terms = w.terms(secret)
    ini = w.driver(w.alice)
    await ini.open(terms, Role.INITIATOR, secret)
    await settle(w, ini, rounds=terms.a.timelock + 5)
    assert ini.swaps[terms.swap_id].state is S.REFUNDED
    assert_untouched(w)
    assert not any(isinstance(a, SubmitClaim) for _, a in ini.submitted)
    all_txs = [tx for blk in (*w.A.blocks.values(), *w.B.blocks.values()) for tx in blk.txs]
    assert all(secret.hex() not in str(tx.args) for tx in all_txs)


async def test_wrong_counter_lock_is_refused_and_initiator_refunds() -> None:
    w = World()
    secret = secret_of(4)
    terms = w.terms(secret, GIVE, TAKE)
    ini = w.driver(w.alice)
    await ini.open(terms, Role.INITIATOR, secret)
    await ini.poll()
    await w.blocks()
    # a hostile participant locks less than agreed, on the right hashlock
    bad = terms.b.lock_args() | {"amount": TAKE - 1}
    assert w.B.run(w.bob.key_b, "lock", bad).ok
    await settle(w, ini, rounds=terms.a.timelock + 5)
    assert ini.swaps[terms.swap_id].state is S.REFUNDED
    assert any(isinstance(e, TermMismatch) for _, e in ini.rejected)
    assert not any(isinstance(a, SubmitClaim) for _, a in ini.submitted)


async def test_participant_offline_past_t_b_finds_the_claim_before_refunding() -> None:
    w = World()
    secret = secret_of(5)
    terms = w.terms(secret, GIVE, TAKE)
    ini, par = await start(w, terms, secret)
    for _ in range(3):  # both locks land
        await ini.poll()
        await par.poll()
        await w.blocks()
    assert par.swaps[terms.swap_id].state is S.LOCKED
    await par.aclose()  # the participant goes offline
    while w.B.height < terms.b.timelock + 2:  # the initiator claims; B passes T_B
        await ini.poll()
        await w.blocks()
    assert ini.swaps[terms.swap_id].state is S.REDEEMED
    assert w.A.height < terms.a.timelock
    back = w.driver(w.bob, par.store)
    await back.resume()
    await settle(w, back)
    assert back.swaps[terms.swap_id].state is S.REDEEMED
    assert not any(isinstance(a, SubmitRefund) for _, a in back.submitted)
    assert_swapped(w)


async def test_both_offline_past_t_b_participant_refunds_initiator_refunds() -> None:
    w = World()
    secret = secret_of(6)
    terms = w.terms(secret, GIVE, TAKE)
    ini, par = await start(w, terms, secret)
    for _ in range(2):  # the initiator's lock lands, then the participant's
        await ini.poll()
        await par.poll()
        await w.blocks()
    await ini.aclose()
    await par.aclose()
    w.A.advance_to(terms.b.timelock + 1)
    w.B.advance_to(terms.b.timelock + 1)
    back = w.driver(w.bob, par.store)
    await back.resume()
    await settle(w, back)
    assert back.swaps[terms.swap_id].state is S.REFUNDED
    # the initiator wakes up: too late to reveal, refunds A once T_A passes
    ini_back = w.driver(w.alice, ini.store)
    await ini_back.resume()
    await settle(w, ini_back, rounds=terms.a.timelock + 5)
    assert ini_back.swaps[terms.swap_id].state is S.REFUNDED
    assert not any(isinstance(a, SubmitClaim) for _, a in ini_back.submitted)
    assert_untouched(w)


async def _initiator_dead_in_redeeming(
    seed: int,
) -> tuple[World, bytes, SwapTerms, MemorySwapStore, SwapDriver]:
    """A swap whose initiator persisted REDEEMING and died before sending its claim.

    Returns the world, the secret, the terms, the initiator's surviving store and the
    participant's driver."""
    w = World()
    secret = secret_of(seed)
    terms = w.terms(secret, GIVE, TAKE)
    inner = MemorySwapStore()
    ini = w.driver(w.alice, CrashingStore(inner, 4))
    par = w.driver(w.bob)
    await ini.open(terms, Role.INITIATOR, secret)
    await par.open(terms, Role.PARTICIPANT)

    async def until_crash() -> None:
        for _ in range(10):
            await ini.poll()
            await par.poll()
            await w.blocks()

    with pytest.raises(Crash):
        await until_crash()
    assert inner.get(terms.swap_id).state is S.REDEEMING  # type: ignore[union-attr]
    return w, secret, terms, inner, par


@pytest.mark.parametrize("wake", ["inside_margin", "past_margin", "past_t_b", "past_t_a"])
async def test_initiator_crashes_after_deciding_to_reveal_and_wakes_up_later(wake: str) -> None:
    """Persisted REDEEMING, died before submitting. Back within the reveal margin it claims;
    any later it must not send the claim (a failed claim still shows the secret on chain)
    and refunds at T_A."""
    w, secret, terms, inner, par = await _initiator_dead_in_redeeming(8)
    margin = w.safety.reveal_margin
    target = {
        "inside_margin": terms.b.timelock - margin,
        "past_margin": terms.b.timelock - margin + 1,
        "past_t_b": terms.b.timelock + 1,
        "past_t_a": terms.a.timelock,
    }[wake]
    while w.B.height < target:  # the participant stays online meanwhile
        await par.poll()
        await w.blocks()
    back = w.driver(w.alice, inner)
    await back.resume()
    await settle(w, back, par, rounds=terms.a.timelock + 5)
    all_args = [tx.args for blk in (*w.A.blocks.values(), *w.B.blocks.values()) for tx in blk.txs]
    if wake == "inside_margin":
        assert back.swaps[terms.swap_id].state is S.REDEEMED
        assert par.swaps[terms.swap_id].state is S.REDEEMED
        assert_swapped(w)
    else:
        assert back.swaps[terms.swap_id].state is S.REFUNDED
        assert par.swaps[terms.swap_id].state is S.REFUNDED
        assert not any(isinstance(a, SubmitClaim) for _, a in back.submitted)
        assert all(secret.hex() not in str(args) for args in all_args)
        assert_untouched(w)


async def test_reveal_at_the_last_allowed_height_and_participant_still_claims() -> None:
    w = World()
    secret = secret_of(9)
    terms = w.terms(secret, GIVE, TAKE)
    ini, par = await start(w, terms, secret)
    await ini.poll()  # the initiator locks on A ...
    await w.blocks()
    for _ in range(2):  # ... the participant audits it and locks on B
        await par.poll()
        await w.blocks()
    assert par.swaps[terms.swap_id].state is S.LOCKED
    last = terms.b.timelock - w.safety.reveal_margin
    while w.B.height < last:  # the initiator oversleeps until the last allowed height
        await par.poll()
        await w.blocks()
    await ini.poll()
    assert ini.swaps[terms.swap_id].state is S.REDEEMING  # revealed, just in time
    assert w.safety.a_time_left_ms(terms.a.timelock, w.A.height) >= w.safety.delta_ms
    await settle(w, ini, par)
    assert par.swaps[terms.swap_id].state is S.REDEEMED
    assert_swapped(w)
    assert w.failed() == []


async def test_one_height_later_the_initiator_refuses_and_both_refund() -> None:
    w = World()
    secret = secret_of(10)
    terms = w.terms(secret, GIVE, TAKE)
    ini, par = await start(w, terms, secret)
    await ini.poll()
    await w.blocks()
    for _ in range(2):
        await par.poll()
        await w.blocks()
    while w.B.height < terms.b.timelock - w.safety.reveal_margin + 1:
        await par.poll()
        await w.blocks()
    await settle(w, ini, par, rounds=terms.a.timelock + 5)
    assert ini.swaps[terms.swap_id].state is S.REFUNDED
    assert par.swaps[terms.swap_id].state is S.REFUNDED
    assert not any(isinstance(a, SubmitClaim) for _, a in ini.submitted)
    assert_untouched(w)


async def test_replaying_the_whole_history_acts_on_nothing() -> None:
    w = World()
    secret = secret_of(11)
    terms = w.terms(secret, GIVE, TAKE)
    ini, par = await start(w, terms, secret)
    await settle(w, ini, par)
    for d in (ini, par):
        for chain_id in d.chains:
            d.store.set_cursor(chain_id, 0)  # as if every cursor write had been lost
        again = w.driver(w.alice if d is ini else w.bob, d.store)
        await again.resume()
        for s in d.store.all():  # even the finished ones
            again.watch(s)
        await again.poll()
        assert not again.submitted
        assert not again.rejected
    assert ini.store.get(terms.swap_id).state is S.REDEEMED  # type: ignore[union-attr]
    assert ini.forget_finished() == 1
    assert ini.swaps == {}


class FlakyChain(ManualChain):
    """A handle that cannot serve some blocks for a while."""

    def __init__(self, sim: Sim, hidden: set[int]) -> None:
        super().__init__(sim)
        self.hidden = hidden

    async def get_block(self, height: int) -> Block | None:
        return None if height in self.hidden else await super().get_block(height)


async def test_an_unreadable_block_is_never_skipped() -> None:
    w = World()
    secret = secret_of(12)
    terms = w.terms(secret, GIVE, TAKE)
    ini, par = await start(w, terms, secret)
    await ini.poll()  # A's lock lands
    await w.blocks()
    await par.poll()  # B's lock lands
    await w.blocks()
    await ini.poll()  # the claim on B lands; the participant has not looked since
    await par.poll()
    await w.blocks()
    assert par.swaps[terms.swap_id].state is S.LOCKED
    claim_height = next(
        h for h, blk in w.B.blocks.items() if any(e.type == "htlc.claimed" for e in blk.events)
    )
    flaky = FlakyChain(w.B, {claim_height})
    late = SwapDriver(w.bob, ManualChain(w.A), flaky, par.store, w.safety)
    par.store.set_cursor(w.B.chain_id, claim_height - 1)  # it has not seen the claim yet
    late.watch(par.store.get(terms.swap_id))  # type: ignore[arg-type]
    w.B.advance_to(terms.b.timelock + 2)  # B passes T_B meanwhile
    await late.poll()
    assert late.swaps[terms.swap_id].state is S.LOCKED  # no refund on a partial view
    assert not late.submitted
    flaky.hidden.clear()
    await settle(w, late)
    assert late.swaps[terms.swap_id].state is S.REDEEMED
    assert_swapped(w)


def _terms_with(w: World, secret: bytes, **who: str) -> SwapTerms:
    parties = {
        "initiator_a": w.alice.key_a.address,
        "participant_a": w.bob.key_a.address,
        "participant_b": w.bob.key_b.address,
        "initiator_b": w.alice.key_b.address,
    } | who
    return plan_swap(
        w.safety,
        **parties,
        give=(w.A.dev.denom, GIVE),
        take=(w.B.dev.denom, TAKE),
        hashlock=hashlib.sha256(secret).digest(),
        height_a=w.A.height,
        height_b=w.B.height,
    )


@pytest.mark.parametrize(
    ("role", "field", "who"),
    [
        # the participant's offer names itself as the receiver of the initiator's claim
        (Role.INITIATOR, "initiator_b", "bob"),
        # the initiator's offer names itself as the receiver of the participant's claim
        (Role.PARTICIPANT, "participant_a", "alice"),
        # our own lock would be signed by our key, so it could never match the terms
        (Role.INITIATOR, "initiator_a", "bob"),
        (Role.PARTICIPANT, "participant_b", "alice"),
    ],
)
async def test_terms_that_do_not_pay_or_debit_this_party_are_refused(
    role: Role, field: str, who: str
) -> None:
    """A counterparty who writes its own address where ours belongs would be paid by our
    claim (or leave our funds in a lock the driver never tracks): refused at open."""
    w = World()
    secret = secret_of(14)
    party = w.alice if role is Role.INITIATOR else w.bob
    other = w.bob if who == "bob" else w.alice
    key = other.key_b if field.endswith("_b") else other.key_a
    terms = _terms_with(w, secret, **{field: key.address})
    d = w.driver(party)
    with pytest.raises(InvalidTerms):
        await d.open(terms, role, secret if role is Role.INITIATOR else None)
    assert d.store.all() == []
    assert not d.submitted
    assert_untouched(w)


async def test_terms_for_other_chains_are_refused() -> None:
    w = World()
    secret = secret_of(15)
    terms = w.terms(secret)
    swapped = SwapTerms(terms.b, terms.a)  # A's lock on B and B's on A
    for role in Role:
        d = w.driver(w.alice if role is Role.INITIATOR else w.bob)
        with pytest.raises(InvalidTerms):
            await d.open(swapped, role, secret if role is Role.INITIATOR else None)
        assert d.store.all() == []


async def test_a_scan_stopped_short_of_the_tip_never_reveals() -> None:
    """The initiator sees the counter lock, but a later block of B cannot be read while B
    is already past the reveal margin: heights that lag the tip must not look like time
    left (a claim landing at T_B fails, yet its transaction shows the secret)."""
    w = World()
    secret = secret_of(13)
    terms = w.terms(secret, GIVE, TAKE)
    ini, par = await start(w, terms, secret)
    await ini.poll()  # A's lock lands
    await w.blocks()
    await ini.poll()
    assert ini.swaps[terms.swap_id].state is S.LOCKED
    for _ in range(2):  # B's lock lands; the initiator does not look meanwhile
        await par.poll()
        await w.blocks()
    assert par.swaps[terms.swap_id].state is S.LOCKED
    lock_height = max(
        h for h, blk in w.B.blocks.items() if any(e.type == "htlc.locked" for e in blk.events)
    )
    w.B.advance_to(terms.b.timelock - 1)
    flaky = FlakyChain(w.B, {lock_height + 1})
    late = SwapDriver(w.alice, ManualChain(w.A), flaky, ini.store, w.safety)
    late.watch(ini.store.get(terms.swap_id))  # type: ignore[arg-type]
    await late.poll()
    assert late.swaps[terms.swap_id].state is S.COUNTER_LOCKED  # audited, not revealed
    assert not late.submitted
    flaky.hidden.clear()  # fully readable again: now it sees it is too late
    await settle(w, late, par, rounds=terms.a.timelock + 5)
    assert late.swaps[terms.swap_id].state is S.REFUNDED
    assert par.swaps[terms.swap_id].state is S.REFUNDED
    assert not any(isinstance(a, SubmitClaim) for _, a in late.submitted)
    assert_untouched(w)


class LyingChain(ManualChain):
    """A handle that answers a lock query with another lock, shown as claimed."""

    def __init__(self, sim: Sim, lock_id: bytes) -> None:
        super().__init__(sim)
        self.lock_id = lock_id

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> Any:
        answer = await super().query(module, path, args)
        if answer is not None and args.get("lock_id") == self.lock_id.hex():
            other = hashlib.sha256(b"another lock's hashlock").hexdigest()
            return {**answer, "status": "claimed", "hashlock": other}
        return answer


async def test_a_query_answer_for_another_lock_does_not_make_the_secret_public() -> None:
    """Back past the reveal margin with a persisted REDEEMING, the initiator re-sends its
    claim only if its own lock was claimed (the secret is public anyway). A handle that
    answers the query for our lock with another, claimed one must not count as that."""
    w, _, terms, inner, par = await _initiator_dead_in_redeeming(16)
    while w.B.height < terms.b.timelock - w.safety.reveal_margin + 1:
        await par.poll()
        await w.blocks()
    back = SwapDriver(w.alice, LyingChain(w.A, terms.a.lock_id), ManualChain(w.B), inner, w.safety)
    await back.resume()
    assert not any(isinstance(a, SubmitClaim) for _, a in back.submitted)


class DownChain(ManualChain):
    """A handle whose chain cannot be reached while ``down`` (every call raises)."""

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.down = False

    def _check(self) -> None:
        if self.down:
            raise RpcUnavailable(self.chain_id, 6, "connection refused")

    async def latest_height(self) -> int:
        self._check()
        return await super().latest_height()

    async def get_block(self, height: int) -> Block | None:
        self._check()
        return await super().get_block(height)

    async def next_nonce(self, address: str) -> int:
        self._check()
        return await super().next_nonce(address)

    async def pending_nonce(self, address: str) -> int:
        self._check()
        return await super().pending_nonce(address)

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> Any:
        self._check()
        return await super().query(module, path, args)

    async def submit(self, tx: Tx) -> Receipt:
        self._check()
        return await super().submit(tx)


@pytest.mark.parametrize("restart", [False, True])
async def test_an_unreachable_counter_chain_does_not_stop_the_refund(restart: bool) -> None:
    """The participant never locks and B's endpoint goes down for good: the initiator
    still refunds A once T_A passes (running, or restarted while B is down), and never
    reveals."""
    w = World()
    secret = secret_of(17)
    terms = w.terms(secret, GIVE, TAKE)
    b = DownChain(w.B)
    ini = SwapDriver(w.alice, ManualChain(w.A), b, MemorySwapStore(), w.safety)
    await ini.open(terms, Role.INITIATOR, secret)
    await ini.poll()
    await w.blocks()
    await ini.poll()
    assert ini.swaps[terms.swap_id].state is S.LOCKED
    b.down = True
    if restart:
        ini = SwapDriver(w.alice, ManualChain(w.A), b, ini.store, w.safety)
        await ini.resume()
    for _ in range(terms.a.timelock + 5):
        await ini.poll()
        await w.blocks()
        if not ini.active():
            break
    assert ini.swaps[terms.swap_id].state is S.REFUNDED
    assert not any(isinstance(a, SubmitClaim) for _, a in ini.submitted)
    assert_untouched(w)


async def test_an_unreachable_chain_does_not_stop_the_claim_on_the_other() -> None:
    """The participant learns the secret from B, its claim on A is refused once (a nonce
    race), and B goes down: the claim on A is still re-sent in time."""
    w = World()
    secret = secret_of(18)
    terms = w.terms(secret, GIVE, TAKE)
    a, b = DownChain(w.A), DownChain(w.B)
    ini = w.driver(w.alice)
    par = SwapDriver(w.bob, a, b, MemorySwapStore(), w.safety)
    await ini.open(terms, Role.INITIATOR, secret)
    await par.open(terms, Role.PARTICIPANT)
    for _ in range(3):  # both locks land
        await ini.poll()
        await par.poll()
        await w.blocks()
    assert par.swaps[terms.swap_id].state is S.LOCKED
    await ini.poll()  # the initiator claims B
    await w.blocks()
    a.down = True  # A refuses the participant's claim ...
    await par.poll()
    assert par.swaps[terms.swap_id].state is S.REDEEMING
    a.down, b.down = False, True  # ... then B goes down for good
    await settle(w, ini, par)
    assert par.swaps[terms.swap_id].state is S.REDEEMED
    assert_swapped(w)


class CountingDownChain(DownChain):
    """A :class:`DownChain` that counts the calls it refuses (each one a full retry
    budget, possibly many seconds, with a real endpoint that does not answer)."""

    def __init__(self, sim: Sim) -> None:
        super().__init__(sim)
        self.refused = 0

    def _check(self) -> None:
        if self.down:
            self.refused += 1
        super()._check()


async def test_a_down_chain_is_asked_once_per_poll() -> None:
    """Several of the participant's swaps must be reconciled while B is down: the poll asks
    B once, not once per swap and call (each try may take a whole retry budget, and the
    claims on A wait for the poll), and every claim on A still goes out."""
    w = World()
    n = 4
    a, b = DownChain(w.A), CountingDownChain(w.B)
    ini = w.driver(w.alice)
    par = SwapDriver(w.bob, a, b, MemorySwapStore(), w.safety)
    all_terms = []
    for i in range(n):
        terms = w.terms(secret_of(30 + i), GIVE, TAKE)
        all_terms.append(terms)
        await ini.open(terms, Role.INITIATOR, secret_of(30 + i))
        await par.open(terms, Role.PARTICIPANT)
    for _ in range(3):  # both locks of every swap land
        await ini.poll()
        await par.poll()
        await w.blocks()
    assert {s.state for s in par.swaps.values()} == {S.LOCKED}
    await ini.poll()  # the initiator claims every B lock
    await w.blocks()
    a.down = True  # A refuses the participant's claims: every swap is to be reconciled
    await par.poll()
    assert {s.state for s in par.swaps.values()} == {S.REDEEMING}
    a.down, b.down = False, True
    sent = len(par.submitted)
    await par.poll()
    assert b.refused == 1
    claims = [x for _, x in list(par.submitted)[sent:] if isinstance(x, SubmitClaim)]
    assert sorted(c.lock_id for c in claims) == sorted(t.a.lock_id for t in all_terms)
    await w.blocks()
    await settle(w, ini, par)
    assert_swapped(w, n)
