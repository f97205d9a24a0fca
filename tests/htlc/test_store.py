"""Both SwapStore implementations keep the same contract."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chains.errors import EncodingError
from chains.module import arg_address, is_denom
from chains.types import Event
from htlc.errors import HashlockInUse, StaleSwap, SwapExists, SwapNotFound
from htlc.store import MemorySwapStore, SwapStore
from htlc.swap import Role, SwapState, SwapTerms, new_swap
from htlc.types import Lock, LockStatus, LockTerms, lock_from_event
from interlock.swap_store import SQLiteSwapStore
from tests.htlc.test_swap import SECRET, TERMS, make_terms


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SwapStore]:
    s: SwapStore = (
        MemorySwapStore() if request.param == "memory" else SQLiteSwapStore(tmp_path / "s.db")
    )
    yield s
    s.close()


def test_create_get_update(store: SwapStore) -> None:
    swap = new_swap(TERMS, Role.INITIATOR, SECRET)
    store.create(swap)
    assert store.get(swap.swap_id) == swap
    nxt = replace(swap, state=SwapState.LOCKING, version=1)
    store.update(nxt)
    assert store.get(swap.swap_id) == nxt
    assert store.active() == [nxt]
    done = replace(nxt, state=SwapState.REDEEMED, version=2)
    store.update_many([done])
    assert store.active() == []
    assert store.all() == [done]


def test_writes_must_follow_the_stored_version(store: SwapStore) -> None:
    swap = new_swap(TERMS, Role.INITIATOR, SECRET)
    store.create(swap)
    with pytest.raises(StaleSwap):
        store.update(replace(swap, version=2))  # skips one
    with pytest.raises(StaleSwap):
        store.update(swap)  # repeats one
    one, two = replace(swap, version=1), replace(swap, version=2)
    with pytest.raises(StaleSwap):
        store.update_many([one, replace(swap, version=3)])
    assert store.get(swap.swap_id) == swap  # all or nothing
    store.update_many([one, two])
    assert store.get(swap.swap_id) == two
    with pytest.raises(SwapNotFound):
        store.update(new_swap(make_terms(ha=5), Role.INITIATOR, SECRET))


def test_swap_id_and_hashlock_are_unique(store: SwapStore) -> None:
    store.create(new_swap(TERMS, Role.INITIATOR, SECRET))
    with pytest.raises(SwapExists):
        store.create(new_swap(TERMS, Role.INITIATOR, SECRET))
    with pytest.raises(HashlockInUse):
        store.create(new_swap(make_terms(ha=3), Role.INITIATOR, SECRET))
    other = hashlib.sha256(b"other").digest()
    batch = []
    for ha in (4, 6):
        t = make_terms(ha=ha)
        t = SwapTerms(replace(t.a, hashlock=other), replace(t.b, hashlock=other))
        batch.append(new_swap(t, Role.PARTICIPANT))
    with pytest.raises(HashlockInUse):  # the batch repeats a hashlock: nothing is written
        store.create_many(batch)
    assert len(store.all()) == 1


def test_cursors(store: SwapStore) -> None:
    assert store.get_cursor("chain-a") is None
    store.set_cursor("chain-a", 7)
    store.set_cursor("chain-a", 9)
    assert store.get_cursor("chain-a") == 9


def test_sqlite_survives_reopen(tmp_path: Path) -> None:
    path = tmp_path / "swaps.db"
    s = SQLiteSwapStore(path)
    swap = new_swap(TERMS, Role.PARTICIPANT)
    s.create(swap)
    s.update(replace(swap, state=SwapState.COUNTER_LOCKED, version=1, counter_audited=True))
    s.set_cursor("chain-b", 3)
    s.close()
    s = SQLiteSwapStore(path)
    got = s.get(swap.swap_id)
    assert got is not None
    assert got.state is SwapState.COUNTER_LOCKED
    assert got.counter_audited
    assert s.get_cursor("chain-b") == 3
    s.close()


@pytest.mark.parametrize(
    "value",
    ["a" * 40, "A" * 40, "a" * 39, "a" * 41, "g" * 40, "a" * 40 + "\n", "", "0" * 40],
)
def test_lock_terms_take_the_kernels_address_rule(value: str) -> None:
    kernel = True
    try:
        arg_address({"a": value}, "a")
    except Exception:
        kernel = False
    terms = TERMS.a.to_json() | {"sender": value}
    ours = True
    try:
        LockTerms.from_json(terms)
    except EncodingError:
        ours = False
    assert ours == kernel


@pytest.mark.parametrize(
    "value", ["usd", "u", "1usd", "ibc/ABC:x.y_z-1", "u" * 128, "u" * 129, "us d", "usd\n", "é"]
)
def test_lock_terms_take_the_kernels_denom_rule(value: str) -> None:
    ours = True
    try:
        LockTerms.from_json(TERMS.a.to_json() | {"denom": value})
    except EncodingError:
        ours = False
    assert ours == is_denom(value)


def test_lock_view_id_always_derives_from_its_terms() -> None:
    view = Lock(TERMS.a, LockStatus.LOCKED).to_json()
    assert Lock.from_json(view).lock_id == TERMS.a.lock_id
    forged = Lock.from_json(view | {"amount": 1})  # claims the id, has other terms
    assert forged.lock_id != TERMS.a.lock_id
    with pytest.raises(EncodingError):
        Lock.from_json(view | {"status": "stolen"})
    with pytest.raises(EncodingError):
        Lock.from_json([])


def _event(kind: str, lock: Lock) -> Event:
    attrs = lock.to_json()
    del attrs["chain_id"]
    return Event(f"htlc.{kind}", attrs)


@pytest.mark.parametrize(
    ("kind", "status", "preimage"),
    [("locked", LockStatus.LOCKED, None), ("claimed", LockStatus.CLAIMED, SECRET)],
)
def test_known_terms_fast_path_equals_the_strict_parse(
    kind: str, status: LockStatus, preimage: bytes | None
) -> None:
    ev = _event(kind, Lock(TERMS.b, status, preimage))
    strict = lock_from_event("chain-b", ev)
    fast = lock_from_event("chain-b", ev, (TERMS.a, TERMS.b))
    assert fast == strict
    assert fast is not None
    assert fast.terms is TERMS.b  # reused, not re-parsed
    # on another chain, or with a bool posing as an amount of 1, the fast path does not apply
    assert lock_from_event("chain-a", ev, (TERMS.b,)) != fast
    one = replace(TERMS.b, amount=1)
    hostile = Event(ev.type, {**ev.attributes, "amount": True})
    with pytest.raises(EncodingError):
        lock_from_event("chain-b", hostile, (one,))
