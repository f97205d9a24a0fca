"""Where a transfer worker without a cursor starts (``relayer.start``): the pure rule, and
the rule read from real bridge state.

The chains here are :class:`bridge.localnet.LocalNet`'s, read through an in-memory twin
of an RPC handle (queries on the chain itself, an event index built from its blocks with
the event index's own rows). The ground truth is ``LocalNet.pending``: every packet a
worker scanning from genesis would still carry. A fresh start is sound when each of them
lies above its cursor.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

import pytest

from bridge.localnet import LocalNet
from chains.encoding import JSONValue
from chains.engine import ChainConsensus
from chains.errors import InterlockError
from chains.handle import InProcessChain
from chains.service.eventindex import compute_index_rows
from chains.types import Event
from relayer.start import FreshStart, compute_start, find_transfer_start, from_genesis
from tests.bridge.conftest import A, B, addr, make_net

# --- the rule (pure) ---------------------------------------------------------------------


def test_nothing_in_flight_starts_above_the_final_height_read_first() -> None:
    start = compute_start(50, [], 0)
    assert (start.cursor, start.height) == (50, 51)
    assert (
        start.describe()
        == "no cursor; starting at height 51 (no transfers in flight at final height 50)"
    )


def test_the_oldest_event_in_flight_is_the_first_height_followed() -> None:
    start = compute_start(900, [(830, "minted"), (812, "locked"), (899, "expired")], 3)
    assert (start.cursor, start.height, start.oldest) == (811, 812, (812, "locked"))
    assert start.describe() == (
        "no cursor; starting at height 812 (3 transfers in flight, the oldest locked at 812)"
    )
    assert start.to_json() == {
        "height": 812,
        "in_flight": 3,
        "oldest_height": 812,
        "reason": "3 transfers in flight, the oldest locked at 812",
    }


def test_never_above_the_final_height() -> None:
    # an event above the final height read first (sent meanwhile, or not final yet)
    assert compute_start(40, [(45, "locked")], 1).cursor == 40
    assert compute_start(40, [], 2).cursor == 40  # in flight, none delivered here yet


def test_an_event_at_height_1_is_genesis() -> None:
    start = compute_start(40, [(1, "locked")], 1)
    assert start.cursor == 0
    assert start.describe().startswith("no cursor; scanning from genesis")


def test_genesis_says_why() -> None:
    start = from_genesis("chain-a keeps no event index")
    assert (start.cursor, start.height) == (0, 1)
    assert start.describe() == "no cursor; scanning from genesis (chain-a keeps no event index)"


@pytest.mark.parametrize("bad", [(-1, []), (5, [(0, "locked")])])
def test_heights_start_at_1(bad: tuple[int, list[tuple[int, str]]]) -> None:
    with pytest.raises(ValueError, match="heights start at 1"):
        compute_start(bad[0], bad[1], 1)


# --- the rule over real bridge state ----------------------------------------------------


class IndexedSide:
    """An RPC handle's twin over one LocalNet chain: its queries, its height, and an event
    index of its blocks (``compute_index_rows``, newest first, paged like ``GET /events``)."""

    def __init__(self, net: LocalNet, chain_id: str, *, lie: bool = False) -> None:
        self.side = net[chain_id]
        self.lie = lie

    @property
    def chain_id(self) -> str:
        return self.side.chain_id

    async def get_consensus(self) -> ChainConsensus:
        return ChainConsensus(None, 0)

    async def latest_height(self) -> int:
        return self.side.chain.height

    async def query(self, module: str, path: str, args: Mapping[str, Any]) -> JSONValue:
        return self.side.chain.query(module, path, args)

    async def search_events(
        self,
        types: Sequence[str],
        attr: tuple[str, str] | None = None,
        *,
        limit: int = 20,
        before: str | None = None,
    ) -> tuple[list[tuple[int, int, Event]], str | None]:
        hits: list[tuple[int, int, Event]] = []
        for h, block in self.side.blocks.items():
            rows, attrs = compute_index_rows(self.chain_id, h, block.events)
            for t, _, i, _ in rows:
                if t in types and (attr is None or (t, *attr, h, i) in attrs):
                    hits.append((h, i, block.events[i]))
        if self.lie:
            return [], None  # an index that holds nothing
        hits.sort(key=lambda x: (-x[0], -x[1]))
        if before is not None:
            bh, _, bi = before.partition(".")
            hits = [x for x in hits if (x[0], x[1]) < (int(bh), int(bi or 0))]
        page = hits[:limit]
        return page, (f"{page[-1][0]}.{page[-1][1]}" if len(page) == limit else None)


async def _start(net: LocalNet, src: str, dst: str, **kw: Any) -> FreshStart:
    return await find_transfer_start(IndexedSide(net, src, **kw), IndexedSide(net, dst))  # type: ignore[arg-type]


def _sound(net: LocalNet, src: str, dst: str, start: FreshStart) -> list[int]:
    """The heights of every packet still to carry; each must be above the cursor."""
    heights = [p.proof.height for p in net.pending(src, dst, proven_only=False)]
    assert all(h > start.cursor for h in heights), (start, heights)
    return heights


def _lock(net: LocalNet, src: str, dst: str, amount: int, **kw: Any) -> int:
    denom = "usd" if src == A else "eur"
    args = {"denom": denom, "amount": amount, "dest_chain": dst, "recipient": addr(net, dst, "bob")}
    r = net.call(src, "alice", "bridge", "lock", {**args, **kw})
    assert r.ok, r.error
    return int(r.events[-1].attributes["nonce"])


@pytest.fixture
def both_ways() -> LocalNet:
    return make_net()


async def test_settled_history_is_skipped(both_ways: LocalNet) -> None:
    net = both_ways
    for amount in range(1, 6):
        _lock(net, A, B, amount)
        _lock(net, B, A, amount)
        net.advance(A, 3)
    net.settle(A, B)
    start = await _start(net, A, B)
    assert start.cursor == net[A].chain.height > 10  # nothing left: from the present
    assert start.in_flight == 0
    assert _sound(net, A, B, start) == []


async def test_a_lock_in_flight_is_where_it_starts(both_ways: LocalNet) -> None:
    net = both_ways
    _lock(net, A, B, 1)
    net.settle(A, B)
    net.advance(A, 5)
    _lock(net, A, B, 2)
    height = net[A].chain.height
    _lock(net, A, B, 3)
    net.advance(A, 5)
    start = await _start(net, A, B)
    assert start.height == height
    assert start.oldest == (height, "locked")
    assert _sound(net, A, B, start) == [height, height + 1]


async def test_a_delivery_not_yet_acknowledged_is_where_it_starts(both_ways: LocalNet) -> None:
    net = both_ways
    net.advance(A, 4)
    _lock(net, B, A, 7)
    net.relay(B, A)  # minted on A, not proven back to B: B keeps its record
    minted = net[A].chain.height
    net.advance(A, 6)
    start = await _start(net, A, B)  # A -> B carries the acknowledgement
    assert start.oldest == (minted, "minted")
    assert _sound(net, A, B, start) == [minted]


async def test_an_expiry_to_refund_is_where_it_starts(both_ways: LocalNet) -> None:
    net = both_ways
    net.advance(A, 3)
    _lock(net, B, A, 7, timeout_height=net.client_height(A, B) + 2)
    net.advance(A, 4)
    net.relay(B, A)  # past its timeout on A: recorded expired there
    expired = net[A].chain.height
    net.advance(A, 3)
    start = await _start(net, A, B)
    assert start.oldest == (expired, "expired")
    assert _sound(net, A, B, start) == [expired]


async def test_random_histories_never_start_past_a_packet_to_carry(both_ways: LocalNet) -> None:
    net = both_ways
    rng = random.Random(7)
    for round_ in range(60):
        move = rng.random()
        src, dst = (A, B) if rng.random() < 0.5 else (B, A)
        if move < 0.4:
            timeout = (
                {"timeout_height": net.client_height(dst, src) + 2} if rng.random() < 0.2 else {}
            )
            _lock(net, src, dst, rng.randint(1, 50), **timeout)
        elif move < 0.7:
            net.relay(src, dst)
        else:
            net.advance(src, rng.randint(1, 3))
        if round_ % 5 == 4:
            for s, d in ((A, B), (B, A)):
                start = await _start(net, s, d)
                assert start.cursor > 0 or not net[s].chain.height
                _sound(net, s, d, start)


async def test_an_index_that_holds_nothing_it_should_means_genesis(both_ways: LocalNet) -> None:
    net = both_ways
    net.advance(A, 3)
    _lock(net, A, B, 5)
    start = await _start(net, A, B, lie=True)
    assert start.cursor == 0
    assert "index has no lock of transfer chain-a:chain-b:1" in start.reason


async def test_a_handle_without_an_index_means_genesis(both_ways: LocalNet) -> None:
    class NoIndex(InProcessChain):
        def __init__(self, side: IndexedSide) -> None:
            self.twin = side

        @property
        def chain_id(self) -> str:
            return self.twin.chain_id

    start = await find_transfer_start(NoIndex(IndexedSide(both_ways, A)), IndexedSide(both_ways, B))  # type: ignore[arg-type]
    assert start == from_genesis("chain-a is reached without an event index")


async def test_a_chain_without_the_in_flight_query_means_genesis(both_ways: LocalNet) -> None:
    class Older(IndexedSide):
        async def query(self, module: str, path: str, args: Mapping[str, Any]) -> JSONValue:
            if path == "in_flight":
                raise InterlockError("bridge has no query 'in_flight'")
            return await super().query(module, path, args)

    start = await find_transfer_start(Older(both_ways, A), IndexedSide(both_ways, B))  # type: ignore[arg-type]
    assert start.cursor == 0
    assert "in_flight" in start.reason
