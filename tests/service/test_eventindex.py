"""The event index: rows derived from each block's events, written in the block's SQLite
transaction, searched newest first within bounds; and ``GET /events`` over it.

Blocks come from a real node on a SQLite store (bank transfers, indexed here with
``types = ["*"]``); the bridge's derived ``transfer`` key is checked on events as the
bridge emits them.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest

from chains.devnet import DevnetChain, base_modules, build_devnet
from chains.node import Node, SQLiteBlockStore
from chains.service.eventindex import (
    DEFAULT_TYPES,
    MAX_LIMIT,
    BadEventQuery,
    EventIndex,
    EventQuery,
    TypeNotIndexed,
    compute_index_rows,
    is_type_indexed,
    parse_cursor,
)
from chains.service.rpc import RpcServer
from chains.types import Event, Tx

ALL = ("*",)


def lock_event(nonce: int, sender: str, recipient: str) -> Event:
    return Event(
        "bridge.locked",
        {
            "src_chain": "chain-a",
            "dst_chain": "chain-b",
            "nonce": nonce,
            "sender": sender,
            "recipient": recipient,
            "denom": "usd",
            "amount": 100,
            "timeout_height": 500,
        },
    )


# --- rows (pure) ----------------------------------------------------------------------


def test_a_bridge_transfer_is_found_by_its_id_on_both_chains() -> None:
    alice, bob = "a" * 40, "b" * 40
    locked = lock_event(7, alice, bob)
    minted = Event(
        "bridge.minted",
        {"src_chain": "chain-a", "nonce": 7, "recipient": bob, "denom": "x", "amount": 1},
    )
    acked = Event("bridge.acknowledged", {"dst_chain": "chain-b", "nonce": 7})
    _, src_rows = compute_index_rows("chain-a", 3, [locked, acked])
    _, dst_rows = compute_index_rows("chain-b", 5, [minted])
    key = ("transfer", "chain-a:chain-b:7")
    assert {(t, (a, v)) for t, a, v, *_ in src_rows if a == "transfer"} == {
        ("bridge.locked", key),
        ("bridge.acknowledged", key),
    }
    assert ("bridge.minted", *key, 5, 0) in dst_rows
    assert ("bridge.locked", "sender", alice, 3, 0) in src_rows
    assert ("bridge.locked", "recipient", bob, 3, 0) in src_rows
    assert ("bridge.locked", "dst_chain", "chain-b", 3, 0) in src_rows


def test_only_the_listed_attributes_and_well_formed_values_are_indexed() -> None:
    e = Event(
        "htlc.locked",
        {
            "lock_id": "f" * 64,
            "sender": "c" * 40,
            "receiver": "NOT AN ADDRESS",
            "hashlock": "e" * 64,
            "denom": "d" * 10,  # not a listed attribute
            "client_id": "x" * 200,  # too long
            "nonce": True,  # a bool is not a nonce
        },
    )
    types, attrs = compute_index_rows("chain-a", 1, [e])
    assert types == [("htlc.locked", 1, 0, e.leaf())]
    assert {(a, v) for _, a, v, _, _ in attrs} == {
        ("lock_id", "f" * 64),
        ("hashlock", "e" * 64),  # a swap's claim is found by it on either chain
        ("sender", "c" * 40),
    }


def test_type_patterns_last_match_decides() -> None:
    assert not is_type_indexed(DEFAULT_TYPES, "bank.transfer")
    assert is_type_indexed(DEFAULT_TYPES, "bridge.locked")
    assert is_type_indexed(("bridge.*",), "bridge.minted")
    assert not is_type_indexed(("bridge.*",), "htlc.locked")
    assert not is_type_indexed(("*", "!bridge.*"), "bridge.locked")
    assert is_type_indexed(("!bank.*", "bank.transfer"), "bank.transfer")
    with pytest.raises(ValueError, match="module"):
        EventIndex(("bank",))
    with pytest.raises(ValueError, match="patterns"):
        EventIndex(())


# --- a node's store -------------------------------------------------------------------


def open_node(path: Path, d: DevnetChain, index: EventIndex | None) -> Node:
    store = SQLiteBlockStore(path, indexer=index)
    return Node.open(d.genesis, base_modules, d.validator_keys, store, block_interval=3600)


def pay(node: Node, d: DevnetChain, frm: str, to: str, n: int) -> None:
    """``n`` bank transfers from ``frm`` to ``to``, committed in one block."""
    key = d.accounts[frm]
    for _ in range(n):
        nonce = node.mempool.next_nonce(key.address)
        args = {"to": d.accounts[to].address, "denom": d.denom, "amount": 1}
        node.mempool.add(Tx.create(key, d.chain_id, nonce, "bank", "transfer", args))
    node.produce_block()


def count(store: SQLiteBlockStore) -> tuple[int, int]:
    db = store.reader
    return (
        db.execute("SELECT COUNT(*) FROM event_types").fetchone()[0],
        db.execute("SELECT COUNT(*) FROM event_attrs").fetchone()[0],
    )


def search(node: Node, q: EventQuery) -> list[tuple[int, int]]:
    store = node.store
    assert isinstance(store, SQLiteBlockStore)
    assert isinstance(store.indexer, EventIndex)
    return [(e.height, e.index) for e in store.indexer.search(store.reader, q)]


@pytest.fixture
def devnet() -> DevnetChain:
    return build_devnet(["chain-a"])[0]


async def test_search_pages_newest_first_by_attribute(tmp_path: Path, devnet: DevnetChain) -> None:
    node = open_node(tmp_path / "a.sqlite3", devnet, EventIndex(ALL))
    bob = devnet.accounts["bob"].address
    pay(node, devnet, "alice", "bob", 3)  # height 1: events 0..2
    pay(node, devnet, "carol", "dave", 2)  # height 2: not bob's
    pay(node, devnet, "alice", "bob", 2)  # height 3: events 0..1
    types = ("bank.transfer",)
    everything = search(node, EventQuery(types, ("to", bob), limit=MAX_LIMIT))
    assert everything == [(3, 1), (3, 0), (1, 2), (1, 1), (1, 0)]
    first = search(node, EventQuery(types, ("to", bob), limit=2))
    assert first == everything[:2]
    # the cursor of the last result: the next page starts strictly before it
    cursor = parse_cursor(f"{first[-1][0]}.{first[-1][1]}")
    second = search(node, EventQuery(types, ("to", bob), limit=2, before=cursor))
    assert second == everything[2:4]
    assert search(node, EventQuery(types, ("to", bob), before=(3, 0))) == everything[2:]
    assert search(node, EventQuery(types, ("to", bob), before=(1, 0))) == []
    assert search(node, EventQuery(types, limit=1)) == [(3, 1)]  # by type alone
    assert search(node, EventQuery(types, ("from", "0" * 40))) == []
    await node.stop()


async def test_the_index_is_written_in_the_blocks_transaction(
    tmp_path: Path, devnet: DevnetChain, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure between the block's rows and the index's (a crash there) leaves
    neither: the block is not stored, and the index holds nothing of it."""
    path = tmp_path / "a.sqlite3"
    node = open_node(path, devnet, EventIndex(ALL))
    pay(node, devnet, "alice", "bob", 2)
    store = node.store
    assert isinstance(store, SQLiteBlockStore)
    before = (store.latest_height(), count(store))

    def crash(db: sqlite3.Connection, block: Any) -> None:
        db.execute("INSERT INTO event_types VALUES ('bank.transfer', 99, 0, x'00')")
        raise KeyboardInterrupt  # as abrupt as it gets inside the transaction

    monkeypatch.setattr(store.indexer, "index_block", crash)
    with pytest.raises(KeyboardInterrupt):
        pay(node, devnet, "alice", "bob", 1)
    assert (store.latest_height(), count(store)) == before
    store.close()


async def test_an_index_switched_on_later_catches_up_and_changed_types_rebuild(
    tmp_path: Path, devnet: DevnetChain
) -> None:
    path = tmp_path / "a.sqlite3"
    node = open_node(path, devnet, None)
    pay(node, devnet, "alice", "bob", 2)
    pay(node, devnet, "alice", "bob", 1)
    await node.stop()
    bob = devnet.accounts["bob"].address
    q = EventQuery(("bank.transfer",), ("to", bob))

    node = open_node(path, devnet, EventIndex(ALL))  # catches up over blocks 1..2
    assert search(node, q) == [(2, 0), (1, 1), (1, 0)]
    pay(node, devnet, "alice", "bob", 1)
    assert search(node, q)[0] == (3, 0)
    await node.stop()

    node = open_node(path, devnet, EventIndex(DEFAULT_TYPES))  # other types: rebuilt
    store = node.store
    assert isinstance(store, SQLiteBlockStore)
    assert count(store) == (0, 0)  # bank transfers are not indexed by default
    with pytest.raises(TypeNotIndexed):
        search(node, q)
    await node.stop()


async def test_an_index_written_before_the_hashlock_rows_is_rebuilt(
    tmp_path: Path, devnet: DevnetChain
) -> None:
    path = tmp_path / "a.sqlite3"
    node = open_node(path, devnet, EventIndex(ALL))
    pay(node, devnet, "alice", "bob", 2)
    await node.stop()
    # as an index of the rows before ROWS_VERSION 2 left it: a tip under the bare types,
    # and no row of an attribute indexed since
    db = sqlite3.connect(path)
    db.execute("UPDATE event_index_tip SET types = '*'")
    db.execute("DELETE FROM event_attrs")
    db.commit()
    db.close()
    node = open_node(path, devnet, EventIndex(ALL))  # rebuilt from the blocks
    bob = devnet.accounts["bob"].address
    assert search(node, EventQuery(("bank.transfer",), ("to", bob))) == [(1, 1), (1, 0)]
    await node.stop()


async def test_a_rewind_takes_the_index_with_it(tmp_path: Path, devnet: DevnetChain) -> None:
    path = tmp_path / "a.sqlite3"
    node = open_node(path, devnet, EventIndex(ALL))
    store = node.store
    assert isinstance(store, SQLiteBlockStore)
    store.undo_depth = 4  # as a PoW/PoS chain keeps
    pay(node, devnet, "alice", "bob", 1)
    pay(node, devnet, "alice", "bob", 1)
    store.rewind(1)
    q = EventQuery(("bank.transfer",), ("from", devnet.accounts["alice"].address))
    assert search(node, q) == [(1, 0)]
    assert store.indexer is not None
    tip = store.indexer.indexed_tip(store.reader)
    block = store.get_block(1)
    assert block is not None
    assert tip == (1, block.header.hash)
    await node.stop()


async def test_a_rewind_while_the_index_was_off_rebuilds_it(
    tmp_path: Path, devnet: DevnetChain
) -> None:
    """The index's tip names a block the store no longer has: it starts over."""
    path = tmp_path / "a.sqlite3"
    node = open_node(path, devnet, EventIndex(ALL))
    node.store.undo_depth = 4  # type: ignore[attr-defined]  # as a PoW/PoS chain keeps
    pay(node, devnet, "alice", "bob", 1)
    pay(node, devnet, "alice", "bob", 1)
    await node.stop()
    off = SQLiteBlockStore(path)
    off.rewind(1)
    off.close()
    node = open_node(path, devnet, EventIndex(ALL))
    q = EventQuery(("bank.transfer",), ("from", devnet.accounts["alice"].address))
    assert search(node, q) == [(1, 0)]
    await node.stop()


@pytest.mark.parametrize(
    ("query", "field"),
    [
        (EventQuery(()), "type"),
        (EventQuery(tuple(f"bank.t{i}" for i in range(9))), "type"),
        (EventQuery(("Bank.transfer",)), "type"),
        (EventQuery(("bank.transfer", "bank.transfer")), "type"),
        (EventQuery(("bank.transfer",), ("amount", "5")), "attr"),
        (EventQuery(("bank.transfer",), ("to", "")), "attr"),
        (EventQuery(("bank.transfer",), ("to", "x\n")), "attr"),
        (EventQuery(("bank.transfer",), limit=0), "limit"),
        (EventQuery(("bank.transfer",), limit=MAX_LIMIT + 1), "limit"),
        (EventQuery(("bank.transfer",), before=(-1, 0)), "before"),
    ],
)
def test_hostile_queries_are_refused(tmp_path: Path, query: EventQuery, field: str) -> None:
    store = SQLiteBlockStore(tmp_path / "a.sqlite3", indexer=EventIndex(ALL))
    assert store.indexer is not None
    with pytest.raises(BadEventQuery) as e:
        store.indexer.search(store.reader, query)  # type: ignore[attr-defined]
    assert e.value.field == field
    assert "\n" not in str(e.value)
    store.close()


def test_every_search_is_a_range_of_the_primary_key(tmp_path: Path) -> None:
    """Bounded work: each query the index runs seeks its primary key and reads at most
    ``limit`` rows in key order; none scans a table or sorts."""
    store = SQLiteBlockStore(tmp_path / "a.sqlite3", indexer=EventIndex(ALL))
    queries: list[str] = []
    store.reader.set_trace_callback(queries.append)
    assert store.indexer is not None
    q = EventQuery(("bank.transfer", "bridge.locked"), ("to", "a" * 40))
    store.indexer.search(store.reader, q)  # type: ignore[attr-defined]
    store.indexer.search(store.reader, EventQuery(("bank.transfer",)))  # type: ignore[attr-defined]
    store.reader.set_trace_callback(None)
    assert queries
    for sql in queries:
        plan = " ".join(
            str(r[3]) for r in store.reader.execute("EXPLAIN QUERY PLAN " + sql).fetchall()
        )
        assert "USING PRIMARY KEY" in plan
        assert "SCAN" not in plan
        assert "TEMP" not in plan
        assert "LIMIT" in sql
    store.close()


# --- GET /events ----------------------------------------------------------------------


@pytest.fixture
async def served(tmp_path: Path, devnet: DevnetChain) -> AsyncIterator[tuple[Node, str]]:
    node = open_node(tmp_path / "a.sqlite3", devnet, EventIndex(ALL))
    async with node, RpcServer(node, port=0) as server:
        yield node, server.url


async def get(url: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return r.status, orjson.loads(await r.read())


async def test_get_events_answers_pages_with_the_committed_events(
    served: tuple[Node, str], devnet: DevnetChain
) -> None:
    node, url = served
    pay(node, devnet, "alice", "bob", 3)
    bob = devnet.accounts["bob"].address
    status, body = await get(f"{url}/events?type=bank.transfer&attr=to:{bob}&limit=2")
    assert status == 200, body
    assert [(e["height"], e["index"]) for e in body["events"]] == [(1, 2), (1, 1)]
    block = node.get_block(1)
    assert block is not None
    assert [Event.from_json(e["event"]) for e in body["events"]] == list(block.events[2:0:-1])
    assert body["next"] == "1.1"
    status, body = await get(f"{url}/events?type=bank.transfer&attr=to:{bob}&before=1.1")
    assert [(e["height"], e["index"]) for e in body["events"]] == [(1, 0)]
    assert body["next"] is None


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("", "bad_request"),  # type is required
        ("type=bank.transfer&type=bank.transfer", "bad_request"),
        ("type=bank.transfer&bogus=1", "bad_request"),
        ("type=" + ",".join(f"bank.t{i}" for i in range(9)), "bad_request"),
        ("type=bank.transfer&attr=to", "bad_request"),
        ("type=bank.transfer&attr=amount:5", "bad_request"),
        ("type=bank.transfer&limit=0", "bad_request"),
        ("type=bank.transfer&limit=101", "bad_request"),
        ("type=bank.transfer&limit=-1", "bad_request"),
        ("type=bank.transfer&limit=99999999999999999999999", "bad_request"),
        ("type=bank.transfer&before=abc", "bad_request"),
        ("type=bank.transfer&before=1.2.3", "bad_request"),
        ("type=bank.transfer&attr=to:" + "a" * 300, "bad_request"),
        ("type=" + "x" * 2000, "bad_request"),
    ],
)
async def test_get_events_refuses_hostile_queries_in_one_line(
    served: tuple[Node, str], devnet: DevnetChain, query: str, code: str
) -> None:
    node, url = served
    pay(node, devnet, "alice", "bob", 1)
    before = (node.height, node.chain.state.root(), count(node.store))  # type: ignore[arg-type]
    status, body = await get(f"{url}/events?{query}")
    assert status == 400, body
    assert body["error"]["code"] == code
    assert "\n" not in body["error"]["message"]
    assert (node.height, node.chain.state.root(), count(node.store)) == before  # type: ignore[arg-type]


async def test_get_events_without_an_index_or_for_a_type_left_out(
    tmp_path: Path, devnet: DevnetChain
) -> None:
    for index, want in [(None, (404, "index_disabled")), (EventIndex(), (400, "not_indexed"))]:
        node = open_node(tmp_path / f"{want[1]}.sqlite3", devnet, index)
        async with node, RpcServer(node, port=0) as server:
            status, body = await get(f"{server.url}/events?type=bank.transfer")
        assert (status, body["error"]["code"]) == want
        assert "\n" not in body["error"]["message"]
