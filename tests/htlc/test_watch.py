"""The HTLC watchtower: real chains' events in, claims and refunds out, checked by the chains."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.bank import get_balance
from chains.devnet import build_devnet
from chains.errors import InterlockError
from chains.types import Event, Receipt
from htlc.errors import InvalidSnapshot, WatchError
from htlc.types import LockTerms
from htlc.watch import Action, Watchtower
from tests.htlc.helpers import Sim, devnet, secret_of

SECRET = secret_of(1)
HASH = hashlib.sha256(SECRET).digest()


class World:
    """Chains A and B (blocks produced by the test) and a watchtower fed every block."""

    def __init__(self, **kw: Any) -> None:
        da, db = devnet(2)
        self.A, self.B = Sim(da), Sim(db)
        self.tower = Watchtower((self.A.chain_id, self.B.chain_id), **kw)
        self.relayer = {sim.chain_id: sim.key("carol") for sim in (self.A, self.B)}

    def sync(self) -> None:
        """Feed the tower every block it has not seen, as a daemon does."""
        for sim in (self.A, self.B):
            start = (self.tower.cursor(sim.chain_id) or 0) + 1
            for height in range(start, sim.height + 1):
                self.tower.observe(sim.chain_id, height, sim.blocks[height].events)

    def lock(
        self, sim: Sim, sender: str, receiver: str, timelock: int, hashlock: bytes = HASH
    ) -> LockTerms:
        terms = LockTerms(
            sim.chain_id,
            sim.key(sender).address,
            sim.key(receiver).address,
            sim.dev.denom,
            100,
            hashlock,
            timelock,
        )
        receipt = sim.run(sim.key(sender), "lock", terms.lock_args())
        assert receipt.ok, receipt.error
        self.sync()
        return terms

    def claim(self, sim: Sim, terms: LockTerms, secret: bytes = SECRET) -> Receipt:
        args = {"lock_id": terms.lock_id.hex(), "preimage": secret.hex()}
        receipt = sim.run(sim.key("alice"), "claim", args)
        self.sync()
        return receipt

    def heights(self) -> dict[str, int]:
        return {self.A.chain_id: self.A.height, self.B.chain_id: self.B.height}

    def actions(self) -> list[Action]:
        return self.tower.actions(self.heights())

    def submit(self, action: Action) -> Receipt:
        """Submit an action as the relayer (a key that is neither party's), then sync."""
        sim = self.A if action.chain_id == self.A.chain_id else self.B
        key = self.relayer[sim.chain_id]
        block = sim.produce([action.build_tx(key, sim.chain.next_nonce(key.address))])
        self.sync()
        return block.receipts[-1]

    def advance(self, sim: Sim, height: int) -> None:
        sim.advance_to(height)
        self.sync()


def balance(sim: Sim, who: str) -> int:
    return get_balance(sim.chain.state, sim.key(who).address, sim.dev.denom)


def swap_locked(w: World) -> tuple[LockTerms, LockTerms]:
    """Alice (initiator) locks on A for Bob; Bob locks on B for Alice with her hashlock."""
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 40)
    on_b = w.lock(w.B, "bob", "alice", w.B.height + 20)
    return on_a, on_b


# --- claims with a secret revealed on the other chain ----------------------------------


def test_offline_participant_is_paid_by_the_watchtower_claim() -> None:
    w = World()
    on_a, on_b = swap_locked(w)
    assert w.actions() == []  # nothing is due: no secret, nothing expired
    assert w.tower.open_locks == 2

    # Alice claims Bob's lock on B, revealing the secret; Bob is offline and never claims
    assert w.claim(w.B, on_b).ok
    (action,) = w.actions()
    assert (action.chain_id, action.method, action.lock_id) == (
        w.A.chain_id,
        "claim",
        on_a.lock_id.hex(),
    )
    assert action.args == {"lock_id": on_a.lock_id.hex(), "preimage": SECRET.hex()}
    assert w.B.chain_id in action.reason

    bob_before, carol_before = balance(w.A, "bob"), balance(w.A, "carol")
    receipt = w.submit(action)  # signed by carol, the relayer
    assert receipt.ok, receipt.error
    assert balance(w.A, "bob") == bob_before + 100  # the claim pays the receiver
    assert balance(w.A, "carol") == carol_before
    assert w.actions() == []
    assert w.tower.open_locks == 0
    assert w.tower.secrets_held == 1  # a spare now: no open lock needs it


def test_claim_offered_while_it_lands_below_the_timelock_then_refund_at_T() -> None:
    w = World()
    on_a, on_b = swap_locked(w)
    assert w.claim(w.B, on_b).ok
    t = on_a.timelock

    w.advance(w.A, t - 2)  # a claim sent now is included at T - 1 < T
    (action,) = w.actions()
    assert action.method == "claim"
    assert w.tower.actions({w.A.chain_id: t - 1}) == []  # it would land at T: too late
    (refund,) = w.tower.actions({w.A.chain_id: t})
    assert (refund.method, refund.args) == ("refund", {"lock_id": on_a.lock_id.hex()})

    receipt = w.submit(action)
    assert receipt.ok, receipt.error
    assert receipt.height == t - 1
    assert w.tower.actions({w.A.chain_id: t + 5}) == []


def test_claim_margin_stops_claims_earlier() -> None:
    w = World(claim_margin=3)
    on_a, on_b = swap_locked(w)
    assert w.claim(w.B, on_b).ok
    t = on_a.timelock
    assert [a.method for a in w.tower.actions({w.A.chain_id: t - 4})] == ["claim"]
    assert w.tower.actions({w.A.chain_id: t - 3}) == []


def test_a_lock_observed_after_its_secret_is_still_claimed() -> None:
    # the tower's feed of A lags B's: B's claim is seen before A's lock
    w = World()
    on_b = w.lock(w.B, "bob", "alice", w.B.height + 20)
    assert w.claim(w.B, on_b).ok
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 40)
    (action,) = w.actions()
    assert (action.method, action.lock_id) == ("claim", on_a.lock_id.hex())
    assert w.submit(action).ok


def test_without_spare_secrets_only_needed_secrets_are_kept() -> None:
    w = World(max_spare_secrets=0)
    _, on_b = swap_locked(w)
    assert w.claim(w.B, on_b).ok
    assert w.tower.secrets_held == 1  # A's open lock needs it
    assert w.submit(w.actions()[0]).ok
    assert w.tower.secrets_held == 0


# --- refunds ---------------------------------------------------------------------------


def test_expired_lock_is_refunded_exactly_at_its_timelock() -> None:
    w = World()
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 5)
    w.advance(w.A, on_a.timelock - 1)
    assert w.actions() == []
    w.advance(w.A, on_a.timelock)
    (action,) = w.actions()
    assert (action.chain_id, action.method, action.lock_id) == (
        w.A.chain_id,
        "refund",
        on_a.lock_id.hex(),
    )
    before = balance(w.A, "alice")
    assert w.submit(action).ok
    assert balance(w.A, "alice") == before + 100  # the refund pays the sender
    assert w.actions() == []
    assert w.tower.open_locks == 0


def test_finality_delays_refunds() -> None:
    w = World(finality={"chain-a": 2})
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 5)
    t = on_a.timelock
    assert w.tower.actions({w.A.chain_id: t + 1}) == []
    assert [a.method for a in w.tower.actions({w.A.chain_id: t + 2})] == ["refund"]


def test_both_legs_refunded_when_nobody_reveals() -> None:
    w = World()
    on_a, on_b = swap_locked(w)
    w.advance(w.A, on_a.timelock)
    w.advance(w.B, on_b.timelock)
    actions = w.actions()
    assert [(a.chain_id, a.method) for a in actions] == [
        (w.A.chain_id, "refund"),
        (w.B.chain_id, "refund"),
    ]
    for action in actions:
        assert w.submit(action).ok
    assert w.actions() == []


# --- nothing after a lock closes ----------------------------------------------------------


def test_nothing_for_a_lock_already_claimed_or_refunded() -> None:
    w = World()
    on_a, on_b = swap_locked(w)
    assert w.claim(w.B, on_b).ok
    assert w.claim(w.A, on_a).ok  # Bob came back and claimed himself
    assert w.actions() == []
    w.advance(w.A, on_a.timelock + 3)
    assert w.actions() == []

    other = w.lock(w.A, "carol", "dave", w.A.height + 3, hashlib.sha256(b"x" * 32).digest())
    w.advance(w.A, other.timelock)
    assert w.A.run(w.A.key("carol"), "refund", {"lock_id": other.lock_id.hex()}).ok
    w.sync()
    assert w.actions() == []


def test_a_replayed_block_does_not_reopen_a_closed_lock() -> None:
    w = World()
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 5)
    opened_at = w.A.height
    w.advance(w.A, on_a.timelock)
    assert w.submit(w.actions()[0]).ok
    w.tower.observe(w.A.chain_id, opened_at, w.A.blocks[opened_at].events)  # replay
    assert w.tower.counts["replayed"] == 1
    assert w.actions() == []


def test_settled_forgets_the_lock() -> None:
    w = World()
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 5)
    w.advance(w.A, on_a.timelock)
    (action,) = w.actions()
    w.tower.settled(action.chain_id, action.lock_id)
    assert w.actions() == []
    assert w.tower.counts["closed"] == 1
    w.tower.settled(action.chain_id, action.lock_id)  # twice: a no-op
    assert w.tower.counts["closed"] == 1


def test_revision_changes_with_locks_and_secrets_only() -> None:
    w = World()
    r0 = w.tower.revision
    w.advance(w.A, 5)  # empty blocks: nothing to persist
    assert w.tower.revision == r0
    _, on_b = swap_locked(w)
    r1 = w.tower.revision
    assert r1 > r0
    w.claim(w.B, on_b)  # a lock closes, a secret is learnt
    assert w.tower.revision > r1


# --- untrusted events ----------------------------------------------------------------------


def forged_claim(terms: LockTerms, preimage: str) -> Event:
    attrs: dict[str, Any] = terms.to_json()
    del attrs["chain_id"]
    attrs |= {"lock_id": terms.lock_id.hex(), "status": "claimed", "preimage": preimage}
    attrs["claimer"] = attrs["sender"]
    return Event("htlc.claimed", attrs)


@pytest.mark.parametrize(
    "preimage",
    [
        SECRET[:31].hex(),  # too short
        (SECRET + b"\0").hex(),  # too long, and its first 32 bytes are the secret
        secret_of(2).hex(),  # 32 bytes that do not open the hashlock
        "",  # nothing
    ],
)
def test_claim_event_with_a_wrong_preimage_is_ignored(preimage: str) -> None:
    w = World()
    _, on_b = swap_locked(w)
    w.tower.observe(w.B.chain_id, w.B.height + 1, [forged_claim(on_b, preimage)])
    assert w.tower.counts["bad_preimage"] == 1
    assert w.tower.open_locks == 2  # the forged claim closed nothing
    assert w.actions() == []  # and revealed nothing
    (refund,) = w.tower.actions({w.B.chain_id: on_b.timelock})
    assert refund.lock_id == on_b.lock_id.hex()


def test_events_from_a_chain_not_watched_are_ignored() -> None:
    w = World()
    swap_locked(w)
    (dc,) = build_devnet(("chain-c",))
    c = Sim(dc)
    # a real claim on a third chain with the same secret: not watched, not used
    terms = LockTerms(
        c.chain_id, c.key("bob").address, c.key("alice").address, dc.denom, 5, HASH, 9
    )
    assert c.run(c.key("bob"), "lock", terms.lock_args()).ok
    receipt = c.run(
        c.key("alice"), "claim", {"lock_id": terms.lock_id.hex(), "preimage": SECRET.hex()}
    )
    assert receipt.ok
    before = w.tower.to_json()
    w.tower.observe(c.chain_id, c.height, c.blocks[c.height].events)
    assert w.tower.counts["foreign"] == 1
    after = w.tower.to_json()
    assert isinstance(after, dict)
    assert isinstance(before, dict)
    assert {**after, "counts": None} == {**before, "counts": None}
    assert w.actions() == []


def test_events_of_an_untrusted_shape_are_ignored_and_counted() -> None:
    w = World()
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 5)
    good = w.A.blocks[w.A.height].events
    attrs = dict(good[-1].attributes)
    wrong_id = {**attrs, "lock_id": "00" * 32}
    no_amount = {k: v for k, v in attrs.items() if k != "amount"}
    bool_amount = {**attrs, "amount": True}
    wrong_status = {**attrs, "status": "claimed"}
    hostile: list[Any] = [
        Event("htlc.locked", wrong_id),
        Event("htlc.locked", no_amount),
        Event("htlc.locked", bool_amount),
        Event("htlc.locked", wrong_status),
        Event("htlc.refunded", ["not", "an", "object"]),  # type: ignore[arg-type]
        "not an event",
        None,
    ]
    other = w.lock(w.B, "bob", "alice", w.B.height + 5)
    w.tower.observe(w.A.chain_id, w.A.height + 1, [*hostile, Event("htlc.future", {})])
    assert w.tower.counts["malformed"] == len(hostile)
    assert w.tower.open_locks == 2  # nothing opened, nothing closed
    assert w.tower.is_open(w.A.chain_id, on_a.lock_id.hex())
    assert w.tower.is_open(w.B.chain_id, other.lock_id.hex())


def test_hostile_arguments_raise_and_change_nothing() -> None:
    w = World()
    swap_locked(w)
    before = json.dumps(w.tower.to_json(), sort_keys=True)
    tower: Any = w.tower
    calls: list[Callable[[], object]] = [
        lambda: tower.observe(w.A.chain_id, -1, []),
        lambda: tower.observe(w.A.chain_id, True, []),
        lambda: tower.observe(w.A.chain_id, "7", []),
        lambda: tower.observe(w.A.chain_id, 2**64, []),
        lambda: tower.observe(w.A.chain_id, 99, "htlc.locked"),
        lambda: tower.observe(w.A.chain_id, 99, None),
        lambda: tower.actions([("chain-a", 1)]),
        lambda: tower.actions({w.A.chain_id: -1}),
        lambda: tower.actions({w.A.chain_id: 1.5}),
        lambda: tower.actions({1: 5}),
        lambda: tower.settled("chain-z", "00" * 32),
        lambda: tower.settled(w.A.chain_id, "00" * 31),
        lambda: tower.settled(w.A.chain_id, "AA" * 32),
        lambda: tower.settled(w.A.chain_id, None),
    ]
    for call in calls:
        with pytest.raises(WatchError):
            call()
    assert json.dumps(w.tower.to_json(), sort_keys=True) == before


@pytest.mark.parametrize(
    "kw",
    [
        {"chain_ids": []},
        {"chain_ids": "chain-a"},
        {"chain_ids": ["chain-a", "chain-a"]},
        {"chain_ids": ["chain-a", ""]},
        {"chain_ids": ["chain-a", 7]},
        {"finality": {"chain-z": 1}},
        {"finality": {"chain-a": -1}},
        {"finality": [("chain-a", 1)]},
        {"claim_margin": 0},
        {"claim_margin": True},
        {"max_open": 0},
        {"max_spare_secrets": -1},
    ],
)
def test_bad_configuration_is_refused(kw: dict[str, Any]) -> None:
    args: dict[str, Any] = {"chain_ids": ["chain-a", "chain-b"], **kw}
    with pytest.raises(WatchError):
        Watchtower(**args)


# --- bounded memory ------------------------------------------------------------------------


def test_open_locks_are_capped_dropping_expired_first_then_oldest() -> None:
    w = World(max_open=3)
    hashes = [hashlib.sha256(secret_of(10 + i)).digest() for i in range(5)]
    expired = w.lock(w.A, "alice", "bob", w.A.height + 2, hashes[0])
    oldest = w.lock(w.A, "alice", "bob", w.A.height + 50, hashes[1])
    third = w.lock(w.A, "alice", "bob", w.A.height + 50, hashes[2])
    w.advance(w.A, expired.timelock)
    fourth = w.lock(w.A, "alice", "bob", w.A.height + 50, hashes[3])
    assert w.tower.counts["dropped"] == 1
    assert not w.tower.is_open(w.A.chain_id, expired.lock_id.hex())  # expired went first
    assert w.tower.is_open(w.A.chain_id, oldest.lock_id.hex())
    w.lock(w.A, "alice", "bob", w.A.height + 50, hashes[4])
    assert not w.tower.is_open(w.A.chain_id, oldest.lock_id.hex())  # then the oldest
    assert w.tower.is_open(w.A.chain_id, third.lock_id.hex())
    assert w.tower.is_open(w.A.chain_id, fourth.lock_id.hex())
    assert w.tower.open_locks == 3
    assert w.tower.counts["dropped"] == 2


def test_spare_secrets_are_capped() -> None:
    w = World(max_spare_secrets=2)
    for i in range(4):
        secret = secret_of(20 + i)
        terms = w.lock(w.B, "bob", "alice", w.B.height + 20, hashlib.sha256(secret).digest())
        assert w.claim(w.B, terms, secret).ok
    assert w.tower.counts["secrets"] == 4
    assert w.tower.secrets_held == 2


# --- snapshots -------------------------------------------------------------------------------


def busy_world() -> World:
    """Open locks, a needed secret, a spare secret, counts: every part of a snapshot."""
    w = World(finality={"chain-b": 1}, claim_margin=2)
    _, on_b = swap_locked(w)
    assert w.claim(w.B, on_b).ok  # A's lock is now claimable
    spare = secret_of(3)
    lone = w.lock(w.B, "carol", "dave", w.B.height + 9, hashlib.sha256(spare).digest())
    assert w.claim(w.B, lone, spare).ok
    w.lock(w.A, "carol", "dave", w.A.height + 3, hashlib.sha256(secret_of(4)).digest())
    block = w.A.produce()
    w.tower.observe(w.A.chain_id, block.height, [*block.events, "junk"])  # type: ignore[list-item]
    return w


def test_snapshot_round_trip() -> None:
    w = busy_world()
    snap = json.loads(json.dumps(w.tower.to_json()))
    restored = Watchtower.from_json(snap)
    assert restored.to_json() == w.tower.to_json()
    for h in range(0, 60, 3):
        heights = {w.A.chain_id: h, w.B.chain_id: h}
        assert restored.actions(heights) == w.tower.actions(heights)
    assert restored.cursor(w.A.chain_id) == w.tower.cursor(w.A.chain_id)
    # and it goes on from there: the claim it offers is accepted by the chain
    w.tower = restored
    (claim,) = [a for a in w.actions() if a.method == "claim"]
    assert w.submit(claim).ok
    assert not restored.is_open(claim.chain_id, claim.lock_id)


def test_configure_changes_timing_after_a_restart() -> None:
    w = World()
    on_a = w.lock(w.A, "alice", "bob", w.A.height + 5)
    tower = Watchtower.from_json(w.tower.to_json())
    with pytest.raises(WatchError):
        tower.configure(finality={"chain-a": 1}, claim_margin=0)
    assert (tower.finality, tower.claim_margin) == ({"chain-a": 0, "chain-b": 0}, 1)
    tower.configure(finality={"chain-a": 3})
    assert tower.actions({w.A.chain_id: on_a.timelock + 2}) == []
    assert len(tower.actions({w.A.chain_id: on_a.timelock + 3})) == 1


def _mutations() -> list[tuple[str, Callable[[dict[str, Any]], object]]]:
    def put(key: str, value: object) -> Callable[[dict[str, Any]], object]:
        return lambda s: s.__setitem__(key, value)

    def row(key: str, i: int, j: int, value: object) -> Callable[[dict[str, Any]], object]:
        return lambda s: s[key][i].__setitem__(j, value)

    return [
        ("version 2", put("version", 2)),
        ("version true", put("version", True)),
        ("unknown key", put("extra", 1)),
        ("missing key", lambda s: s.pop("counts")),
        ("chains twice", put("chains", ["chain-a", "chain-a"])),
        ("chains not a list", put("chains", "chain-a")),
        ("finality negative", put("finality", {"chain-a": -1})),
        ("claim margin zero", put("claim_margin", 0)),
        ("max open huge", put("max_open", 10**12)),
        ("seen unwatched", put("seen", {"chain-z": 1})),
        ("seen negative", put("seen", {"chain-a": -1})),
        ("locks not a list", put("locks", {})),
        ("lock row short", lambda s: s["locks"][0].pop()),
        ("lock unwatched chain", row("locks", 0, 0, "chain-z")),
        ("lock bad sender", row("locks", 0, 1, "alice")),
        ("lock bool amount", row("locks", 0, 4, True)),
        ("lock bad hashlock", row("locks", 0, 5, "zz" * 32)),
        ("lock opened after seen", row("locks", 0, 7, 10**6)),
        ("lock twice", lambda s: s["locks"].append(list(s["locks"][0]))),
        ("more locks than max_open", put("max_open", 1)),
        ("secret not opening", row("secrets", 0, 1, "00" * 32)),
        ("secret short", row("secrets", 0, 1, "00" * 31)),
        ("secret uppercase", lambda s: s["secrets"][0].__setitem__(0, s["secrets"][0][0].upper())),
        ("secret unwatched chain", row("secrets", 0, 2, "chain-z")),
        ("secret twice", lambda s: s["secrets"].append(list(s["secrets"][0]))),
        ("too many spares", put("max_spare_secrets", 0)),
        ("count unknown", lambda s: s["counts"].__setitem__("stolen", 1)),
        ("count negative", lambda s: s["counts"].__setitem__("blocks", -1)),
        ("not an object", lambda s: s.clear()),
    ]


@pytest.mark.parametrize(("name", "mutate"), _mutations(), ids=[m[0] for m in _mutations()])
def test_hostile_snapshot_is_refused(name: str, mutate: Callable[[dict[str, Any]], object]) -> None:
    snap = busy_world().tower.to_json()
    assert isinstance(snap, dict)
    Watchtower.from_json(copy.deepcopy(snap))  # the unmutated one loads
    mutate(snap)
    with pytest.raises(InvalidSnapshot):
        Watchtower.from_json(snap)


@pytest.mark.parametrize("value", [None, [], "snapshot", 7, {"version": 1}])
def test_snapshot_that_is_not_one_is_refused(value: object) -> None:
    with pytest.raises(InvalidSnapshot) as info:
        Watchtower.from_json(value)
    assert isinstance(info.value, InterlockError)
    assert "\n" not in str(info.value)


# --- random traffic against the chains' own state ----------------------------------------------

_PEOPLE = ("alice", "bob", "carol", "dave")
_OP = st.one_of(
    st.tuples(
        st.just("lock"),
        st.integers(0, 1),  # chain
        st.integers(0, 3),  # sender
        st.integers(0, 3),  # receiver
        st.integers(0, 4),  # secret (shared across chains and senders)
        st.integers(2, 12),  # blocks to expiry
    ),
    st.tuples(st.just("reveal"), st.integers(0, 1), st.integers(0, 40)),  # a party claims
    st.tuples(st.just("advance"), st.integers(0, 1), st.integers(1, 6)),
    st.tuples(st.just("act"), st.just(0)),  # the relayer submits what the tower says
    st.tuples(st.just("restart"), st.just(0)),  # snapshot, reload
)


def _expected(w: World, margin: int) -> set[tuple[str, str, str]]:
    """What anyone could submit now, judged from the chains' state alone."""
    records = [
        {**r, "chain_id": sim.chain_id}
        for sim in (w.A, w.B)
        for r in sim.query("locks", {"limit": 1000})
    ]
    revealed = {r["hashlock"] for r in records if r["status"] == "claimed"}
    heights = w.heights()
    out = set()
    for r in records:
        if r["status"] != "locked":
            continue
        h = heights[r["chain_id"]]
        if r["hashlock"] in revealed and h + margin < r["timelock"]:
            out.add((r["chain_id"], "claim", r["lock_id"]))
        elif h >= r["timelock"]:
            out.add((r["chain_id"], "refund", r["lock_id"]))
    return out


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops=st.lists(_OP, max_size=30), margin=st.integers(1, 3))
def test_random_traffic_actions_are_exactly_what_the_chains_allow(
    ops: list[tuple[Any, ...]], margin: int
) -> None:
    w = World(claim_margin=margin)
    sims = (w.A, w.B)
    locks: list[tuple[Sim, LockTerms, bytes]] = []
    used: set[tuple[str, str, bytes]] = set()
    for op in ops:
        if op[0] == "lock":
            _, c, s, r, k, dt = op
            sim, secret = sims[c], secret_of(100 + k)
            hashlock = hashlib.sha256(secret).digest()
            if (sim.chain_id, _PEOPLE[s], hashlock) in used:
                continue  # the contract refuses a sender's hashlock twice
            used.add((sim.chain_id, _PEOPLE[s], hashlock))
            terms = w.lock(sim, _PEOPLE[s], _PEOPLE[r], sim.height + dt, hashlock)
            locks.append((sim, terms, secret))
        elif op[0] == "reveal" and locks:
            sim, terms, secret = locks[op[2] % len(locks)]
            w.claim(sim, terms, secret)  # may fail (closed, expired): then nothing is revealed
        elif op[0] == "advance":
            w.advance(sims[op[1]], sims[op[1]].height + op[2])
        elif op[0] == "act":  # all of a chain's actions in its next block
            for sim in sims:
                key = w.relayer[sim.chain_id]
                nonce = sim.chain.next_nonce(key.address)
                todo = [a for a in w.actions() if a.chain_id == sim.chain_id]
                block = sim.produce([a.build_tx(key, nonce + i) for i, a in enumerate(todo)])
                assert all(r.ok for r in block.receipts)  # sound: the chain accepts them all
                assert len(block.receipts) == len(todo)
            w.sync()
        elif op[0] == "restart":
            w.tower = Watchtower.from_json(json.loads(json.dumps(w.tower.to_json())))
        got = {(a.chain_id, a.method, a.lock_id) for a in w.actions()}
        assert got == _expected(w, margin)  # and complete
        assert len(got) == len(w.actions())  # one action per lock
