"""What the driver believes of its chains: no "not found" from a lagging endpoint aborts a
swap, a counterparty's lock or claim is acted on only once final, and a lock re-sent
after a restart is refused when it would land too late."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from chains.devnet import DEFAULT_BALANCE
from htlc.driver import SwapDriver
from htlc.errors import InsufficientTime
from htlc.store import MemorySwapStore
from htlc.swap import Role, SubmitClaim, SubmitLock, SwapState
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
