"""The htlc contract on a real devnet chain, block by block."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from chains.errors import UnknownMethod
from htlc.errors import (
    HashlockReused,
    LockClosed,
    LockExists,
    LockExpired,
    LockNotExpired,
    LockNotFound,
    PreimageMismatch,
    PreimageSize,
    TimelockOutOfRange,
)
from htlc.module import ESCROW, HTLCModule, get_amount_locked, parse_preimage
from htlc.types import Lock, LockStatus, LockTerms, lock_from_event
from tests.htlc.helpers import Sim, devnet

SECRET = bytes(range(32))
HASH = hashlib.sha256(SECRET).digest()
AMOUNT = 1_000


@pytest.fixture
def sim() -> Sim:
    return Sim(devnet(1)[0])


def app_state(sim: Sim) -> dict[str, Any]:
    """Everything but nonces: a failed call must leave exactly this unchanged."""
    return {k: v for k, v in sim.chain.state.items() if not k.startswith("auth/")}


def lock(sim: Sim, timelock: int, *, secret_hash: bytes = HASH, amount: int = AMOUNT) -> str:
    alice, bob = sim.key("alice"), sim.key("bob")
    r = sim.run(
        alice,
        "lock",
        {
            "receiver": bob.address,
            "denom": sim.dev.denom,
            "amount": amount,
            "hashlock": secret_hash.hex(),
            "timelock": timelock,
        },
    )
    assert r.ok, r.error
    lock_id: str = r.events[0].attributes["lock_id"]
    return lock_id


def test_lock_escrows_and_emits_every_term(sim: Sim) -> None:
    alice, bob = sim.key("alice"), sim.key("bob")
    before = sim.balance(alice)
    lock_id = lock(sim, 10)
    block = sim.blocks[sim.height]
    (event,) = block.events
    assert event.type == "htlc.locked"
    terms = LockTerms(sim.chain_id, alice.address, bob.address, sim.dev.denom, AMOUNT, HASH, 10)
    expected = {**terms.to_json(), "lock_id": terms.lock_id.hex(), "status": "locked"}
    del expected["chain_id"]  # implied by the chain that emits it
    assert event.attributes == expected
    assert lock_from_event(sim.chain_id, event) == Lock(terms, LockStatus.LOCKED)
    assert lock_id == terms.lock_id.hex()  # deterministic: computable before it exists
    assert sim.balance(alice) == before - AMOUNT
    assert sim.balance(ESCROW) == AMOUNT == get_amount_locked(sim.chain.state, sim.dev.denom)
    view = Lock.from_json({**sim.query("lock", {"lock_id": lock_id}), "chain_id": sim.chain_id})
    assert view == Lock(terms, LockStatus.LOCKED)


def test_claim_pays_receiver_whoever_submits_and_reveals_preimage(sim: Sim) -> None:
    bob, carol = sim.key("bob"), sim.key("carol")
    lock_id = lock(sim, 10)
    before = sim.balance(bob)
    r = sim.run(carol, "claim", {"lock_id": lock_id, "preimage": SECRET.hex()})
    assert r.ok, r.error
    assert sim.balance(bob) == before + AMOUNT
    assert sim.balance(ESCROW) == 0
    (ev,) = r.events
    assert ev.type == "htlc.claimed"
    assert ev.attributes["preimage"] == SECRET.hex()
    assert ev.attributes["claimer"] == carol.address
    claimed = lock_from_event(sim.chain_id, ev)
    assert claimed is not None
    assert claimed.status is LockStatus.CLAIMED


@pytest.mark.parametrize("size", [0, 1, 31, 33, 64, 1024])
def test_preimage_of_wrong_size_is_refused_and_changes_nothing(sim: Sim, size: int) -> None:
    lock_id = lock(sim, 10)
    before = app_state(sim)
    # a preimage whose first 32 bytes are the secret must still fail: exact size only
    preimage = (SECRET * 40)[:size]
    r = sim.run(sim.key("bob"), "claim", {"lock_id": lock_id, "preimage": preimage.hex()})
    assert not r.ok
    assert r.code == PreimageSize.__name__
    assert f"got {size}" in r.error
    assert app_state(sim) == before


def test_parse_preimage_is_exact() -> None:
    assert parse_preimage(SECRET.hex()) == SECRET
    for bad in (None, 7, "zz" * 32, SECRET.hex().upper(), "a" * 63, " " * 2 + SECRET.hex()):
        with pytest.raises(Exception, match="preimage"):
            parse_preimage(bad)
    with pytest.raises(PreimageSize):
        parse_preimage("00" * 1024)


def test_wrong_preimage(sim: Sim) -> None:
    lock_id = lock(sim, 10)
    before = app_state(sim)
    r = sim.run(sim.key("bob"), "claim", {"lock_id": lock_id, "preimage": (b"x" * 32).hex()})
    assert r.code == PreimageMismatch.__name__
    assert app_state(sim) == before


def test_claim_boundary_t_minus_1_works(sim: Sim) -> None:
    lock_id = lock(sim, 5)  # created at height 1
    sim.advance_to(3)  # the claim executes in block 4 = T - 1
    r = sim.run(sim.key("bob"), "claim", {"lock_id": lock_id, "preimage": SECRET.hex()})
    assert r.height == 4
    assert r.ok


@pytest.mark.parametrize("at", [5, 6])
def test_claim_at_and_after_t_fails(sim: Sim, at: int) -> None:
    lock_id = lock(sim, 5)
    sim.advance_to(at - 1)
    before = app_state(sim)
    r = sim.run(sim.key("bob"), "claim", {"lock_id": lock_id, "preimage": SECRET.hex()})
    assert r.height == at
    assert r.code == LockExpired.__name__
    assert app_state(sim) == before


def test_refund_at_t_minus_1_fails(sim: Sim) -> None:
    lock_id = lock(sim, 5)
    sim.advance_to(3)
    before = app_state(sim)
    r = sim.run(sim.key("alice"), "refund", {"lock_id": lock_id})
    assert r.height == 4
    assert r.code == LockNotExpired.__name__
    assert app_state(sim) == before


@pytest.mark.parametrize("at", [5, 6])
def test_refund_at_and_after_t_works_and_anyone_may_submit(sim: Sim, at: int) -> None:
    alice = sim.key("alice")
    start = sim.balance(alice)
    lock_id = lock(sim, 5)
    sim.advance_to(at - 1)
    r = sim.run(sim.key("carol"), "refund", {"lock_id": lock_id})
    assert r.height == at
    assert r.ok, r.error
    assert r.events[0].type == "htlc.refunded"
    assert sim.balance(alice) == start
    assert sim.balance(ESCROW) == 0


def test_double_claim_claim_after_refund_refund_after_claim(sim: Sim) -> None:
    bob = sim.key("bob")
    claimed = lock(sim, 5)
    assert sim.run(bob, "claim", {"lock_id": claimed, "preimage": SECRET.hex()}).ok
    before = app_state(sim)
    r = sim.run(bob, "claim", {"lock_id": claimed, "preimage": SECRET.hex()})
    assert r.code == LockClosed.__name__
    sim.advance_to(6)
    assert sim.run(bob, "refund", {"lock_id": claimed}).code == LockClosed.__name__
    assert app_state(sim) == before

    other = hashlib.sha256(b"o" * 32).digest()
    refunded = lock(sim, sim.height + 2, secret_hash=other)
    sim.advance_to(sim.height + 1)
    assert sim.run(bob, "refund", {"lock_id": refunded}).ok
    before = app_state(sim)
    r = sim.run(bob, "claim", {"lock_id": refunded, "preimage": (b"o" * 32).hex()})
    assert r.code == LockClosed.__name__
    assert sim.run(bob, "refund", {"lock_id": refunded}).code == LockClosed.__name__
    assert app_state(sim) == before


def test_duplicate_lock_id_and_reused_hashlock_by_same_sender(sim: Sim) -> None:
    lock(sim, 10)
    before = app_state(sim)
    alice, bob = sim.key("alice"), sim.key("bob")
    same = {
        "receiver": bob.address,
        "denom": sim.dev.denom,
        "amount": AMOUNT,
        "hashlock": HASH.hex(),
        "timelock": 10,
    }
    assert sim.run(alice, "lock", same).code == LockExists.__name__
    assert sim.run(alice, "lock", {**same, "amount": 7}).code == HashlockReused.__name__
    assert app_state(sim) == before
    # another sender may use the hashlock: that is what the counter leg of a swap does
    assert sim.run(bob, "lock", {**same, "receiver": alice.address}).ok


def test_hashlock_reuse_refused_even_after_the_lock_closed(sim: Sim) -> None:
    lock_id = lock(sim, 10)
    assert sim.run(sim.key("bob"), "claim", {"lock_id": lock_id, "preimage": SECRET.hex()}).ok
    r = sim.run(
        sim.key("alice"),
        "lock",
        {
            "receiver": sim.key("bob").address,
            "denom": sim.dev.denom,
            "amount": 5,
            "hashlock": HASH.hex(),
            "timelock": 20,
        },
    )
    assert r.code == HashlockReused.__name__


@pytest.mark.parametrize(
    ("args", "code"),
    [
        ({"timelock": 1}, TimelockOutOfRange.__name__),  # executes at height 1: not in future
        ({"timelock": 10**12}, TimelockOutOfRange.__name__),
        ({"timelock": -1}, "InvalidArgument"),
        ({"timelock": True}, "InvalidArgument"),
        ({"amount": 0}, "InvalidArgument"),
        ({"amount": 10**13}, "InsufficientFunds"),
        ({"amount": "5"}, "InvalidArgument"),
        ({"hashlock": "ab" * 31}, "InvalidArgument"),
        ({"hashlock": HASH.hex().upper()}, "InvalidArgument"),
        # 64 characters, 31 bytes: a hashlock no 32-byte preimage can ever open
        ({"hashlock": "  " + HASH.hex()[2:]}, "InvalidArgument"),
        ({"hashlock": HASH.hex()[:32] + "  " + HASH.hex()[34:]}, "InvalidArgument"),
        ({"receiver": "nobody"}, "InvalidArgument"),
        ({"receiver": ESCROW}, "InvalidArgument"),
        ({"denom": "1x"}, "InvalidArgument"),
        ({"denom": "eur"}, "InsufficientFunds"),
    ],
)
def test_hostile_lock_arguments(sim: Sim, args: dict[str, Any], code: str) -> None:
    before = app_state(sim)
    base = {
        "receiver": sim.key("bob").address,
        "denom": sim.dev.denom,
        "amount": AMOUNT,
        "hashlock": HASH.hex(),
        "timelock": 10,
    }
    r = sim.run(sim.key("alice"), "lock", {**base, **args})
    assert r.code == code, r.error
    assert app_state(sim) == before


@pytest.mark.parametrize(
    ("method", "args", "code"),
    [
        ("claim", {"lock_id": "00" * 32, "preimage": SECRET.hex()}, LockNotFound.__name__),
        ("refund", {"lock_id": "00" * 32}, LockNotFound.__name__),
        ("refund", {"lock_id": "00"}, "InvalidArgument"),
        ("refund", {"lock_id": " " * 2 + "00" * 31}, "InvalidArgument"),
        ("claim", {"lock_id": None, "preimage": SECRET.hex()}, "InvalidArgument"),
        ("claim", {"lock_id": "00" * 32}, "InvalidArgument"),
        ("steal", {}, UnknownMethod.__name__),
    ],
)
def test_hostile_claim_and_refund_arguments(
    sim: Sim, method: str, args: dict[str, Any], code: str
) -> None:
    lock(sim, 10)
    before = app_state(sim)
    r = sim.run(sim.key("carol"), method, args)
    assert r.code == code, r.error
    assert app_state(sim) == before


def test_queries(sim: Sim) -> None:
    lock_id = lock(sim, 10)
    alice = sim.key("alice")
    assert sim.query("lock", {"lock_id": "00" * 32}) is None
    by_hash = sim.query("lock_by_hashlock", {"sender": alice.address, "hashlock": HASH.hex()})
    assert by_hash["lock_id"] == lock_id
    assert [r["lock_id"] for r in sim.query("locks", {"address": alice.address})] == [lock_id]
    assert sim.query("locks", {"address": sim.key("dave").address}) == []
    assert sim.query("escrow", {}) == ESCROW
    assert sim.query("params", {})["max_timelock_blocks"] > 0
    with pytest.raises(Exception, match="no query"):
        sim.query("nope", {})


def test_query_answers_cannot_edit_the_state(sim: Sim) -> None:
    lock_id = lock(sim, 10)
    root = sim.chain.state.root()
    sim.query("lock", {"lock_id": lock_id})["amount"] = 10**9
    sim.query("locks", {})[0]["status"] = "claimed"
    sim.query("params", {})["max_timelock_blocks"] = 1
    assert sim.chain.state.root() == root
    assert sim.query("lock", {"lock_id": lock_id})["amount"] == AMOUNT


def test_genesis_params_are_checked() -> None:
    from chains.state import State

    state = State()
    HTLCModule().init_genesis(state, {"max_timelock_blocks": 5})
    with pytest.raises(Exception, match="unknown keys"):
        HTLCModule().init_genesis(State(), {"bogus": 1})
    assert state.get("htlc/params") == {"max_timelock_blocks": 5}


def test_open_locks_pages_through_every_record_and_answers_the_open_ones(sim: Sim) -> None:
    assert sim.query("open_locks", {}) == {"locks": [], "next": None}
    alice, bob = sim.key("alice"), sim.key("bob")
    ids = [lock(sim, 50, secret_hash=hashlib.sha256(bytes([i]) * 32).digest()) for i in range(7)]
    claimed = ids[2]
    r = sim.run(bob, "claim", {"lock_id": claimed, "preimage": (bytes([2]) * 32).hex()})
    assert r.ok, r.error
    refunded = lock(sim, sim.height + 3, secret_hash=hashlib.sha256(b"s" * 32).digest())
    while sim.height < sim.query("lock", {"lock_id": refunded})["timelock"]:
        sim.produce([])
    assert sim.run(alice, "refund", {"lock_id": refunded}).ok
    open_ids = sorted(set(ids) - {claimed})
    for limit in (1, 3, 8, 1000):
        got: list[str] = []
        args: dict[str, Any] = {"limit": limit}
        while True:
            page = sim.query("open_locks", args)
            assert len(page["locks"]) <= limit
            got.extend(r["lock_id"] for r in page["locks"])
            assert all(r["status"] == "locked" and r["opened"] >= 1 for r in page["locks"])
            if page["next"] is None:
                break
            args = {"limit": limit, "after": page["next"]}
        assert got == open_ids  # each once, in id order; the claimed and refunded left out


@pytest.mark.parametrize(
    "args", [{"limit": 0}, {"limit": 1001}, {"after": "zz"}, {"after": "00" * 31}]
)
def test_open_locks_refuses_bad_arguments(sim: Sim, args: dict[str, Any]) -> None:
    with pytest.raises(Exception, match="expected") as err:
        sim.query("open_locks", args)
    assert "\n" not in str(err.value)
