"""Random schedules: an honest party either completes both legs or gets its funds back.

Each example simulates wall-clock time in 100 ms slots. Both chains produce blocks at
random intervals within their declared slack; the honest party polls at random gaps no
longer than its declared reaction time, may crash at any poll (losing its in-flight
transactions) and restarts on its store; the counterparty is either honest too or an
adversary that acts at random times: locks late, locks wrong terms, never locks, reveals
at the last block the chain allows, reads secrets from failed transactions and claims at
once, refunds whenever the chain lets it.
"""

from __future__ import annotations

import asyncio
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.devnet import DEFAULT_BALANCE
from htlc.driver import SwapDriver
from htlc.module import ESCROW, get_amount_locked
from htlc.store import MemorySwapStore
from htlc.swap import ChainParams, Role, Safety, SafetyPolicy, SwapState, SwapTerms
from tests.htlc.helpers import ManualChain, Sim, World, secret_of

SLOT = 100
INTERVAL, SLACK = 1000, 100  # ±10 %
REACTION = 3000
GIVE, TAKE = 100, 90


def _interval(rng: random.Random) -> int:
    lo, hi = INTERVAL * (1000 - SLACK) // 1000, INTERVAL * (1000 + SLACK) // 1000
    return rng.randrange(lo, hi + 1, SLOT) if hi - lo >= SLOT else lo


class Adversary:
    """A counterparty that does what it likes, when it likes, with raw transactions."""

    def __init__(
        self, w: World, role: Role, terms: SwapTerms, secret: bytes, rng: random.Random, end: int
    ) -> None:
        self.w, self.role, self.terms, self.secret, self.rng = w, role, terms, secret, rng
        self.kind = rng.choice(["never", "correct", "wrong", "late", "late"])
        early = rng.random() < 0.6  # mostly in time for the honest party to go on
        lock_at = rng.randrange(0, 3000 if early else end // 2, SLOT)
        self.lock_at = None if self.kind == "never" else lock_at
        self.act_at = rng.randrange(0, end)  # claim / refund attempts start here
        self.greedy = rng.random() < 0.5
        self.late_by = rng.randint(1, 8)  # "late": lock this few blocks before expiry
        self.locked = False

    def _send(self, sim: Sim, key: Any, method: str, args: dict[str, Any]) -> None:
        sim.pending.append(sim.tx(key, method, args))

    def _visible_secret(self) -> bytes | None:
        """Any preimage on B (even in a failed claim) that opens the hashlock."""
        for blk in self.w.B.blocks.values():
            for tx in blk.txs:
                p = tx.args.get("preimage") if tx.method == "claim" else None
                if isinstance(p, str) and p == self.secret.hex():
                    return self.secret
        return None

    def step(self, t: int) -> None:
        w, terms = self.w, self.terms
        own = terms.a if self.role is Role.INITIATOR else terms.b
        sim = w.A if self.role is Role.INITIATOR else w.B
        key = w.alice.key_a if self.role is Role.INITIATOR else w.bob.key_b
        late = self.kind == "late" and sim.height >= own.timelock - self.late_by
        in_time = self.kind in ("correct", "wrong") and self.lock_at is not None
        if (late or (in_time and t >= (self.lock_at or 0))) and not self.locked:
            self.locked = True
            args = own.lock_args()
            if self.kind == "wrong":
                args["amount"] = own.amount - 1
            self._send(sim, key, "lock", args)
        if not (self.greedy or t >= self.act_at) or t % 500:
            return  # a greedy adversary tries at once and often, a lazy one from act_at
        if self.role is Role.INITIATOR:
            # reveal on B at any time the chain allows, even the last block before T_B
            if self.rng.random() < 0.2 or w.B.height == terms.b.timelock - 2:
                args = {"lock_id": terms.b.lock_id.hex(), "preimage": self.secret.hex()}
                self._send(w.B, w.alice.key_b, "claim", args)
            if w.A.height >= terms.a.timelock:
                self._send(w.A, w.alice.key_a, "refund", {"lock_id": terms.a.lock_id.hex()})
        else:
            if self._visible_secret():
                args = {"lock_id": terms.a.lock_id.hex(), "preimage": self.secret.hex()}
                self._send(w.A, w.bob.key_a, "claim", args)
            if w.B.height >= terms.b.timelock:
                self._send(w.B, w.bob.key_b, "refund", {"lock_id": terms.b.lock_id.hex()})


async def simulate(seed: int, honest: str, crash_rate: float, window_ms: int) -> list[str]:
    rng = random.Random(seed)
    policy = SafetyPolicy(reaction_ms=REACTION, min_delta_ms=5000)
    w = World(policy)
    w.safety = Safety(
        ChainParams(w.A.chain_id, INTERVAL, 0, SLACK),
        ChainParams(w.B.chain_id, INTERVAL, 0, SLACK),
        policy,
    )
    secret = secret_of(seed % 1000)
    terms = w.terms(secret, GIVE, TAKE, window_ms=window_ms)
    end = (terms.a.timelock + 15) * INTERVAL * (1000 + SLACK) // 1000

    roles = {"initiator": Role.INITIATOR, "participant": Role.PARTICIPANT}
    honest_roles = list(roles.values()) if honest == "both" else [roles[honest]]
    parties = {Role.INITIATOR: w.alice, Role.PARTICIPANT: w.bob}
    stores = {r: MemorySwapStore() for r in honest_roles}
    drivers: dict[Role, SwapDriver] = {}

    def new_driver(role: Role) -> SwapDriver:
        return SwapDriver(parties[role], ManualChain(w.A), ManualChain(w.B), stores[role], w.safety)

    for role in honest_roles:
        drivers[role] = new_driver(role)
        await drivers[role].open(terms, role, secret if role is Role.INITIATOR else None)
    adversary = None
    if honest != "both":
        other = Role.PARTICIPANT if honest_roles[0] is Role.INITIATOR else Role.INITIATOR
        adversary = Adversary(w, other, terms, secret, rng, end)

    next_block = {"a": _interval(rng), "b": _interval(rng)}
    next_poll = dict.fromkeys(honest_roles, 0)
    t = 0
    while t < end:
        t += SLOT
        for name, sim in (("a", w.A), ("b", w.B)):
            if t >= next_block[name]:
                sim.produce()
                next_block[name] = t + _interval(rng)
        for _ in range(3):
            await asyncio.sleep(0)
        if adversary is not None:
            adversary.step(t)
        for role in honest_roles:
            if t < next_poll[role]:
                continue
            if rng.random() < crash_rate:  # crash: in-flight transactions are lost
                d = drivers[role]
                await d.aclose()
                mine = {parties[role].key_a.public_key, parties[role].key_b.public_key}
                for sim in (w.A, w.B):
                    sim.pending = [tx for tx in sim.pending if tx.sender not in mine]
                drivers[role] = new_driver(role)
                await drivers[role].resume()
            await drivers[role].poll()
            next_poll[role] = t + rng.randrange(SLOT, REACTION - 500, SLOT)
        for _ in range(3):
            await asyncio.sleep(0)
    for d in drivers.values():
        await d.aclose()

    # --- the property ------------------------------------------------------------------
    for sim in (w.A, w.B):  # the escrow holds exactly the open locks, nothing else
        denom = sim.dev.denom
        assert sim.balance(ESCROW, denom) == get_amount_locked(sim.chain.state, denom)
    bal = {
        (Role.INITIATOR, "own"): w.A.balance(w.alice.key_a) - DEFAULT_BALANCE,
        (Role.INITIATOR, "theirs"): w.B.balance(w.alice.key_b) - DEFAULT_BALANCE,
        (Role.PARTICIPANT, "own"): w.B.balance(w.bob.key_b) - DEFAULT_BALANCE,
        (Role.PARTICIPANT, "theirs"): w.A.balance(w.bob.key_a) - DEFAULT_BALANCE,
    }
    given_amount = {Role.INITIATOR: GIVE, Role.PARTICIPANT: TAKE}
    got_amount = {Role.INITIATOR: TAKE, Role.PARTICIPANT: GIVE}
    for role in honest_roles:
        own, theirs = bal[(role, "own")], bal[(role, "theirs")]
        final = stores[role].get(terms.swap_id)
        assert final is not None
        assert final.is_terminal, final
        assert final.state is not SwapState.FORFEITED, final
        completed = own == -given_amount[role] and theirs == got_amount[role]
        refunded = own == 0 and theirs in (0, got_amount[role])
        assert completed or refunded, (role, own, theirs, final)
        if final.state is SwapState.REDEEMED:
            assert theirs == got_amount[role]
    outcomes = [stores[r].get(terms.swap_id).state.value for r in honest_roles]  # type: ignore[union-attr]
    if honest == "both":
        assert outcomes == ["redeemed", "redeemed"]
    return outcomes


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
@given(
    seed=st.integers(0, 2**32 - 1),
    honest=st.sampled_from(["both", "initiator", "participant"]),
    crash_rate=st.sampled_from([0.0, 0.05, 0.3]),
    window_ms=st.sampled_from([0, 5_000, 20_000]),
)
def test_honest_party_completes_or_gets_its_funds_back(
    seed: int, honest: str, crash_rate: float, window_ms: int
) -> None:
    asyncio.run(simulate(seed, honest, crash_rate, window_ms))
