"""Both SwapStore implementations keep the same contract."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from chains.crypto import PrivateKey
from chains.errors import EncodingError
from chains.module import arg_address, is_denom
from chains.types import Event
from htlc.errors import HashlockInUse, StaleSwap, SwapExists, SwapNotFound
from htlc.store import MemorySwapStore, SwapStore
from htlc.swap import Role, SwapState, SwapTerms, new_swap
from htlc.types import Lock, LockStatus, LockTerms, lock_from_event
from interlock.errors import SwapKeyNeeded, WrongSwapKey
from interlock.swap_store import SQLiteSwapStore
from tests.htlc.test_swap import SECRET, TERMS, make_terms

KEY = PrivateKey.from_seed(hashlib.sha256(b"the party's key").digest())


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SwapStore]:
    s: SwapStore = (
        MemorySwapStore()
        if request.param == "memory"
        else SQLiteSwapStore(tmp_path / "s.db", key=KEY)
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


def _file_bytes(d: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(d.iterdir()) if p.is_file())


def test_the_secret_is_sealed_at_rest(tmp_path: Path) -> None:
    s = SQLiteSwapStore(tmp_path / "swaps.db", key=KEY)
    swap = new_swap(TERMS, Role.INITIATOR, SECRET)
    s.create(swap)
    s.update(replace(swap, state=SwapState.LOCKING, version=1))
    # while open (the WAL holds the writes) and after close: no secret bytes in any file
    for _ in range(2):
        raw = _file_bytes(tmp_path)
        for form in (SECRET, SECRET.hex().encode(), SECRET.hex().upper().encode()):
            assert form not in raw
        s.close()
    s = SQLiteSwapStore(tmp_path / "swaps.db", key=KEY)
    got = s.get(swap.swap_id)
    assert got is not None
    assert got.secret == SECRET
    assert [x.secret for x in s.active()] == [SECRET]
    s.close()


def test_a_wrong_key_is_refused_in_one_line(tmp_path: Path) -> None:
    s = SQLiteSwapStore(tmp_path / "swaps.db", key=KEY)
    swap = new_swap(TERMS, Role.INITIATOR, SECRET)
    s.create(swap)
    s.close()
    other = PrivateKey.from_seed(hashlib.sha256(b"someone else").digest())
    s = SQLiteSwapStore(tmp_path / "swaps.db", key=other)
    for read in (lambda: s.get(swap.swap_id), s.active, s.all):
        with pytest.raises(WrongSwapKey) as info:
            read()
        assert info.value.code == "wrong_swap_key"
        assert "\n" not in str(info.value)
        assert SECRET.hex() not in str(info.value)
    s.close()


def test_a_store_without_a_key_lists_swaps_and_never_writes_a_secret(tmp_path: Path) -> None:
    path = tmp_path / "swaps.db"
    s = SQLiteSwapStore(path, key=KEY)
    swap = new_swap(TERMS, Role.INITIATOR, SECRET)
    s.create(swap)
    s.close()
    s = SQLiteSwapStore(path)
    listed = s.get(swap.swap_id)
    assert listed is not None
    assert listed.secret is None
    fresh = SQLiteSwapStore(tmp_path / "fresh.db")
    with pytest.raises(SwapKeyNeeded):
        fresh.create(swap)
    assert fresh.all() == []  # nothing written
    fresh.close()
    s.update(replace(listed, state=SwapState.LOCKING, version=1))  # keeps the sealed secret
    s.close()
    s = SQLiteSwapStore(path, key=KEY)
    assert [(x.state, x.secret) for x in s.all()] == [(SwapState.LOCKING, SECRET)]
    s.close()
