"""The state and its incremental root: equal to a fresh build, restored by rollback."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.state import State

KEYS = st.sampled_from([f"mod/k{i}" for i in range(40)] + ["a", "b/c", "zz/9"])
VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.text("abc xyz", max_size=8),
    st.lists(st.integers(0, 9), max_size=3),
    st.dictionaries(st.sampled_from(["p", "q"]), st.integers(0, 9), max_size=2),
)
OPS = st.lists(st.tuples(st.booleans(), KEYS, VALUES), max_size=60)


def _apply(state: State, ops: list[tuple[bool, str, Any]]) -> None:
    for is_set, key, value in ops:
        if is_set:
            state.set(key, value)
        else:
            state.delete(key)


def _apply_tx(state: State, ops: list[tuple[bool, str, Any]], keep: bool) -> None:
    """``ops`` as one transaction, committed if ``keep`` else rolled back."""
    state.begin()
    _apply(state, ops)
    if keep:
        state.commit()
    else:
        state.rollback()


@settings(max_examples=150, deadline=None)
@given(st.lists(OPS, min_size=1, max_size=4))
def test_incremental_root_equals_a_fresh_build(batches: list[list[tuple[bool, str, Any]]]) -> None:
    state = State()
    for ops in batches:
        _apply(state, ops)
        root = state.root()
        fresh = State(dict(state.items()))
        assert fresh.root() == root
        assert state.root() == root  # idempotent with nothing dirty


@settings(max_examples=150, deadline=None)
@given(OPS, OPS)
def test_rollback_restores_the_root(before: list[Any], during: list[Any]) -> None:
    state = State()
    _apply(state, before)
    root = state.root()
    items = dict(state.items())
    state.begin()
    _apply(state, during)
    state.rollback()
    assert dict(state.items()) == items
    assert state.root() == root


def test_empty_state_root_is_stable() -> None:
    assert State().root() == State({}).root()
    s = State()
    s.set("x", 1)
    s.delete("x")
    assert s.root() == State().root()


def test_root_depends_on_every_value() -> None:
    s = State({"a": 1, "b": 2})
    r = s.root()
    s.set("b", 3)
    assert s.root() != r
    s.set("b", 2)
    assert s.root() == r


def test_root_inside_an_open_transaction_is_refused() -> None:
    s = State()
    s.begin()
    with pytest.raises(RuntimeError):
        s.root()
    s.commit()
    s.root()


def test_nested_begin_and_stray_rollback_are_refused() -> None:
    s = State()
    s.begin()
    with pytest.raises(RuntimeError):
        s.begin()
    s.rollback()
    with pytest.raises(RuntimeError):
        s.rollback()


def test_take_changes_reports_writes_and_deletes_once() -> None:
    s = State({"gone": 1, "kept": 2})
    s.set("new", 3)
    s.delete("gone")
    assert s.take_changes() == {"new": 3, "gone": None}
    assert s.take_changes() == {}


def test_items_by_prefix_in_key_order() -> None:
    s = State({"b/2": 2, "a/1": 1, "b/1": 1, "c": 0})
    assert list(s.items("b/")) == [("b/1", 1), ("b/2", 2)]


def _spec_root(items: dict[str, Any]) -> bytes:
    """The documented commitment, computed the slow way over all 65,536 buckets."""
    from hashlib import sha256

    from chains.encoding import canonical
    from chains.merkle import hash_leaf, hash_node
    from chains.state import BUCKET_BITS

    buckets: dict[int, list[str]] = {}
    for k in items:
        b = int.from_bytes(sha256(k.encode()).digest()[:2], "big") >> (16 - BUCKET_BITS)
        buckets.setdefault(b, []).append(k)
    level = [
        hash_leaf(canonical([[k, items[k]] for k in sorted(buckets.get(b, []))]))
        for b in range(1 << BUCKET_BITS)
    ]
    while len(level) > 1:
        level = [hash_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return level[0]


def test_root_matches_the_documented_definition() -> None:
    items: dict[str, Any] = {f"bank/bal/{i:040x}/usd": i * 7 for i in range(50)}
    items.update({"validators/set": [{"power": 10, "public_key": "ab" * 32}], "x": {"b": 1}})
    s = State()
    assert s.root() == _spec_root({})
    for k, v in items.items():
        s.set(k, v)
    s.delete("x")
    del items["x"]
    assert s.root() == _spec_root(items)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.tuples(OPS, st.booleans()), min_size=1, max_size=4))
def test_root_matches_the_definition_after_writes_rollbacks_and_roots(
    steps: list[tuple[list[tuple[bool, str, Any]], bool]],
) -> None:
    state = State()
    for ops, keep in steps:
        _apply_tx(state, ops, keep)
        state.root()
    assert state.root() == _spec_root(dict(state.items()))


@pytest.mark.parametrize("bad", [b"bytes", {1: "int key"}, 2**64 + 1, {"x": [object()]}])
def test_validate_pending_refuses_what_the_root_cannot_encode(bad: Any) -> None:
    from chains.errors import EncodingError

    s = State()
    s.begin()
    s.set("ok", 2**63 - 1)
    s.set("bad", bad)
    with pytest.raises(EncodingError):
        s.validate_pending()
    s.rollback()
    s.begin()
    s.set("ok", -(2**63))
    s.set("gone", 1)
    s.delete("gone")
    s.validate_pending()
    s.commit()
    s.root()


PREFIXES = st.sampled_from(["", "mod/", "mod/k1", "b/", "zz/", "a", "q"])


@settings(max_examples=200, deadline=None)
@given(st.lists(OPS, min_size=1, max_size=4), PREFIXES, KEYS, st.one_of(st.none(), KEYS))
def test_items_by_prefix_and_range_equal_filter_and_sort(
    batches: list[list[tuple[bool, str, Any]]], prefix: str, start: str, stop: str | None
) -> None:
    state = State()
    for ops in batches:
        _apply_tx(state, ops, keep=len(ops) % 2 == 0)
    data = dict(state.items())
    want = sorted(
        k for k in data if k.startswith(prefix) and k >= start and (stop is None or k < stop)
    )
    assert [k for k, _ in state.items(prefix, start=start, stop=stop)] == want
    assert [k for k, _ in state.items(prefix, start=start, stop=stop, reverse=True)] == want[::-1]
    assert [k for k, _ in state.items(prefix)] == sorted(k for k in data if k.startswith(prefix))


def test_items_by_prefix_across_many_chunks_and_deletes() -> None:
    state = State({f"k/{i:06d}": i for i in range(0, 6000, 2)})
    for i in range(1, 6000, 2):
        state.set(f"k/{i:06d}", i)
    for i in range(0, 6000, 3):
        state.delete(f"k/{i:06d}")
    want = [i for i in range(6000) if i % 3]
    assert [v for _, v in state.items("k/")] == want
    assert [v for _, v in state.items("k/", reverse=True)] == want[::-1]
    assert [v for _, v in state.items("k/", start="k/002500", stop="k/002510")] == [
        i for i in range(2500, 2510) if i % 3
    ]
    assert list(state.items("k/0059999")) == []
    assert list(state.items("l/")) == []


class _CountingKey(str):
    """A key that counts every comparison made on it: the work a read does."""

    touched = 0

    def startswith(self, *args: Any) -> bool:  # type: ignore[override]
        _CountingKey.touched += 1
        return str.startswith(self, *args)

    def __lt__(self, other: str) -> bool:
        _CountingKey.touched += 1
        return str.__lt__(self, other)

    def __ge__(self, other: str) -> bool:
        _CountingKey.touched += 1
        return str.__ge__(self, other)


def test_items_by_prefix_costs_what_it_returns_not_what_state_holds() -> None:
    # GET /accounts/{addr} reads one account's balances by prefix: with 20,000 other keys
    # in state it must not look at them (a filter-and-sort touched every key: 20,000+)
    state = State({_CountingKey(f"bank/bal/{i:040x}/usd"): i for i in range(20_000)})
    state.set("bank/bal/" + "f" * 40 + "/eur", 1)
    state.set("bank/bal/" + "f" * 40 + "/usd", 2)
    _CountingKey.touched = 0
    assert list(state.items("bank/bal/" + "f" * 40 + "/")) == [
        ("bank/bal/" + "f" * 40 + "/eur", 1),
        ("bank/bal/" + "f" * 40 + "/usd", 2),
    ]
    assert _CountingKey.touched < 100


def test_items_survive_writes_and_deletes_while_iterating() -> None:
    state = State({f"k/{i:04d}": i for i in range(3000)})
    seen = []
    for k, v in state.items("k/"):
        seen.append(v)
        state.delete(k)  # pruning deletes as it walks
        state.set(f"k/{v:04d}x", v)  # and a write lands right after the current key
    assert seen[:3] == [0, 0, 1]
    assert len(seen) == 6000
    got = []
    for k, _ in state.items("k/", reverse=True):
        got.append(k)
        state.delete(k)
    assert len(got) == 3000
    assert got == sorted(got, reverse=True)
    assert list(state.items()) == []


@settings(max_examples=150, deadline=None)
@given(OPS, st.lists(st.tuples(OPS, st.booleans()), max_size=4), PREFIXES, KEYS)
def test_the_committed_view_reads_as_before_the_block_however_it_was_written(
    before: list[tuple[bool, str, Any]],
    txs: list[tuple[list[tuple[bool, str, Any]], bool]],
    prefix: str,
    start: str,
) -> None:
    state = State()
    _apply(state, before)
    snapshot = State(dict(state.items()))
    state.begin_block()
    for ops, keep in txs:  # transactions of the block being built, some rolled back
        _apply_tx(state, ops, keep)
        view = state.committed()
        for reverse in (False, True):
            got = list(view.items(prefix, start=start, reverse=reverse))
            assert got == list(snapshot.items(prefix, start=start, reverse=reverse))
        for _, key, _ in ops:
            assert view.get(key, "none") == snapshot.get(key, "none")
            assert (key in view) == (key in snapshot)
    after = dict(state.items())
    state.end_block()
    assert state.committed() is state
    assert dict(state.committed().items()) == after


def test_the_committed_view_is_read_only() -> None:
    state = State({"a": 1})
    state.begin_block()
    view = state.committed()
    with pytest.raises(RuntimeError):
        view.set("a", 2)
    with pytest.raises(RuntimeError):
        state.begin_block()
    state.end_block()
