"""What the driver believes of its chains: no "not found" from a lagging endpoint aborts a
swap, a counterparty's lock or claim is acted on only once final, and a lock re-sent
after a restart is refused when it would land too late."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

import pytest

from chains.devnet import DEFAULT_BALANCE
from chains.errors import InterlockError
from htlc.driver import Party, SwapDriver
from htlc.errors import InsufficientTime, LockNotProven
from htlc.store import MemorySwapStore
from htlc.swap import Role, SubmitClaim, SubmitLock, SwapState
from htlc.types import Lock, LockStatus, lock_from_event
from tests.htlc.helpers import Crash, CrashingStore, ManualChain, Sim, World, secret_of

S = SwapState


class LaggingEndpoint(ManualChain):
    """A multi-endpoint handle whose queries reach an endpoint that lags (it has not seen
    any lock yet), while heights and blocks come from an up-to-date one."""

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> Any:
        if (module, path) == ("htlc", "lock"):
            return None
        return await super().query(module, path, args)


def _lock_height(sim: Sim, method: str) -> int:
    (height,) = [h for h, b in sim.blocks.items() for tx in b.txs if tx.method == method]
    return height


async def test_a_lagging_endpoints_not_found_never_aborts_a_swap_whose_lock_exists() -> None:
    w = World()
    secret = secret_of(90)
    terms = w.terms(secret)
    store = MemorySwapStore()
    ini = w.driver(w.alice, store)
    await ini.open(terms, Role.INITIATOR, secret)  # locks at once
    assert store.get(terms.swap_id).state is S.LOCKING  # type: ignore[union-attr]
    await w.blocks()  # the lock lands; the process dies before it polls again
    await ini.aclose()
    assert w.A.query("lock", {"lock_id": terms.a.lock_id.hex()})["status"] == "locked"
    w.A.advance_to(terms.a.timelock + 2)  # offline past T_A: a lagging "no lock" is final?
    w.B.advance_to(terms.b.timelock + 2)

    back = SwapDriver(w.alice, LaggingEndpoint(w.A), ManualChain(w.B), store, w.safety)
    await back.resume()
    for _ in range(10):
        assert store.get(terms.swap_id).state is not S.ABORTED  # type: ignore[union-attr]
        if not back.active():
            break
        await back.poll()
        await w.blocks()
    assert store.get(terms.swap_id).state is S.REFUNDED  # type: ignore[union-attr]
    assert w.A.balance(w.alice.key_a) == DEFAULT_BALANCE  # not left locked for good


async def test_a_counterpartys_lock_and_claim_are_acted_on_only_once_final() -> None:
    depth = 3
    w = World(finality=(depth, depth))
    secret = secret_of(91)
    terms = w.terms(secret)
    ini, par = w.driver(w.alice), w.driver(w.bob)
    await ini.open(terms, Role.INITIATOR, secret)
    await par.open(terms, Role.PARTICIPANT)
    acted: dict[type, tuple[int, int]] = {}  # action -> (A's height, B's height) when sent
    for _ in range(60):
        await ini.poll()
        await par.poll()
        for _, action in par.submitted:
            acted.setdefault(type(action), (w.A.height, w.B.height))
        await w.blocks()
        if not ini.active() and not par.active():
            break
    assert ini.swaps[terms.swap_id].state is S.REDEEMED
    assert par.swaps[terms.swap_id].state is S.REDEEMED
    # the participant locked on B only once the initiator's lock on A was final
    assert acted[SubmitLock][0] >= _lock_height(w.A, "lock") + depth
    # and claimed on A with the secret only once the initiator's claim on B was final
    assert acted[SubmitClaim][1] >= _lock_height(w.B, "claim") + depth


async def test_a_lock_resent_after_a_restart_too_late_is_refused() -> None:
    w = World()
    secret = secret_of(92)
    terms = w.terms(secret)  # the shortest safe terms: a block later, no lock may start
    store = MemorySwapStore()
    crashing = CrashingStore(store, crash_after=1)
    ini = SwapDriver(w.alice, ManualChain(w.A), ManualChain(w.B), crashing, w.safety)
    with pytest.raises(Crash):  # dies right after LOCKING is written, before its lock is sent
        await ini.open(terms, Role.INITIATOR, secret)
    assert store.get(terms.swap_id).state is S.LOCKING  # type: ignore[union-attr]
    await w.blocks()  # the process is down for a block

    a = ManualChain(w.A)
    back = SwapDriver(w.alice, a, ManualChain(w.B), store, w.safety)
    await back.resume()
    await w.blocks()
    assert a.submitted == []  # refused, not sent late
    assert [type(e) for _, e in back.rejected] == [InsufficientTime]
    for _ in range(terms.a.timelock + 5):
        if not back.active():
            break
        await back.poll()
        await w.blocks()
    # nothing of ours was ever locked, and the swap says so once T_A - 1 is final
    assert store.get(terms.swap_id).state is S.ABORTED  # type: ignore[union-attr]
    assert a.submitted == []
    assert w.A.balance(w.alice.key_a) == DEFAULT_BALANCE


# --- proofs: a counterparty's lock is acted on only once proven ---------------------------


class ChainProver:
    """Proves from the committed blocks themselves (what a verified reader proves
    against light-client-verified headers; ``tests/service/test_verified.py`` tests that
    part). Counts what it was asked."""

    def __init__(self, *sims: Sim) -> None:
        self.sims = {s.chain_id: s for s in sims}
        self.asked: list[tuple[str, str]] = []

    async def prove_lock(self, lock: Lock) -> None:
        sim = self.sims[lock.terms.chain_id]
        self.asked.append((lock.terms.chain_id, lock.status.value))
        for block in sim.blocks.values():
            for event in block.events:
                seen = lock_from_event(sim.chain_id, event)
                if seen is not None and (seen.terms, seen.status) == (lock.terms, lock.status):
                    return
        raise InterlockError(f"no event shows lock {lock.lock_id.hex()[:8]} {lock.status.value}")


class LyingChain(ManualChain):
    """An endpoint that says the initiator's lock is there when it is not."""

    def __init__(self, sim: Sim, fake: Lock) -> None:
        super().__init__(sim)
        self.fake = fake

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> Any:
        if (module, path) == ("htlc", "lock") and args["lock_id"] == self.fake.lock_id.hex():
            return {**self.fake.to_json(), "opened": 1}
        return await super().query(module, path, args)


async def _participant_facing_a_lie(w: World, prover: ChainProver | None) -> SwapDriver:
    secret = secret_of(92)
    terms = w.terms(secret)
    fake = Lock(terms.a, LockStatus.LOCKED)  # alice never locks it
    par = SwapDriver(
        w.bob, LyingChain(w.A, fake), ManualChain(w.B), MemorySwapStore(), w.safety,
        prover=prover,
    )  # fmt: skip
    await par.open(terms, Role.PARTICIPANT)
    for _ in range(4):
        await par.poll()
        await w.blocks()
    return par


async def test_a_lying_endpoints_lock_makes_a_proving_participant_lock_nothing() -> None:
    # without a prover the lie is believed: the participant locks (the risk)
    w = World()
    believed = await _participant_facing_a_lie(w, None)
    assert any(isinstance(a, SubmitLock) for _, a in believed.submitted)
    # with one, the lie is held back, refused once, and nothing is locked
    w = World()
    prover = ChainProver(w.A, w.B)
    par = await _participant_facing_a_lie(w, prover)
    assert par.submitted == deque()
    (swap,) = par.swaps.values()
    assert swap.state is S.CREATED
    assert [type(e) for _, e in par.rejected] == [LockNotProven]
    assert prover.asked[0] == ("chain-a", "locked")
    assert w.B.balance(w.bob.key_b) == DEFAULT_BALANCE


async def test_with_proofs_the_honest_swap_runs_to_the_end() -> None:
    w = World()
    secret = secret_of(93)
    terms = w.terms(secret)
    prover = ChainProver(w.A, w.B)

    def driver(party: Party) -> SwapDriver:
        return SwapDriver(
            party, ManualChain(w.A), ManualChain(w.B), MemorySwapStore(), w.safety,
            prover=prover,
        )  # fmt: skip

    ini, par = driver(w.alice), driver(w.bob)
    await ini.open(terms, Role.INITIATOR, secret)
    await par.open(terms, Role.PARTICIPANT)
    for _ in range(30):
        await ini.poll()
        await par.poll()
        await w.blocks()
        if not ini.active() and not par.active():
            break
    assert ini.swaps[terms.swap_id].state is S.REDEEMED
    assert par.swaps[terms.swap_id].state is S.REDEEMED
    # each party proved the other's lock open, and its claim of it
    assert ("chain-b", "locked") in prover.asked
    assert ("chain-a", "locked") in prover.asked
    assert ("chain-a", "claimed") in prover.asked
    assert ini.rejected == deque()
