"""The pure transfer relay planner (bridge.relay) and the ``bridge/pending`` query it
asks the destination: selection, the untrusted answer, heights, packing."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bridge.errors import BundleTooLarge, MalformedPendingAnswer, TooManyPackets
from bridge.localnet import LocalNet
from bridge.relay import (
    MAX_PENDING_QUERY,
    Packet,
    drop_delivered,
    heights_needed,
    pack_deliveries,
    pending_query,
    select_packets,
    select_refusals,
)
from chains.encoding import canonical
from chains.errors import InvalidArgument
from chains.types import Block, Event
from tests.bridge.conftest import A, B, C, addr, make_net, rogue_modules


def lock_tx(net: LocalNet, src: str, dst: str, amount: int, **kw: Any):
    args = {"denom": net[src].spec.denom, "amount": amount, "dest_chain": dst}
    args |= {"recipient": addr(net, dst, "bob"), **kw}
    return net.tx(src, net.key(src, "alice"), "bridge", "lock", args)


def locks(net: LocalNet, src: str, dst: str, n: int) -> Block:
    """One block of ``src`` with ``n`` locks towards ``dst`` (amounts 1..n)."""
    block = net.produce(src, [lock_tx(net, src, dst, i + 1) for i in range(n)])
    assert all(r.ok for r in block.receipts)
    return block


def ask(net: LocalNet, src: str, dst: str, packets: list[Packet]) -> list[Packet]:
    answer = net[dst].chain.query("bridge", "pending", pending_query(src, packets))
    return drop_delivered(packets, answer)


# --- select_packets -------------------------------------------------------------------


def test_selects_the_path_and_nothing_else() -> None:
    net = make_net((A, B, C), links=((A, B), (A, C)))
    transfer = {"to": addr(net, A, "bob"), "denom": "usd", "amount": 5}
    txs = [
        lock_tx(net, A, B, 10),
        net.tx(A, net.key(A, "alice"), "bank", "transfer", transfer),
        lock_tx(net, A, C, 20),
        lock_tx(net, A, B, 30),
    ]
    block = net.produce(A, txs)
    assert all(r.ok for r in block.receipts)
    to_b = select_packets(block, A, B)
    assert [(p.action, p.nonce, p.proof.event.attributes["amount"]) for p in to_b] == [
        ("mint", 1, 10),
        ("mint", 2, 30),
    ]
    (to_c,) = select_packets(block, A, C)
    assert (to_c.nonce, to_c.kind) == (1, "locked")
    # each proof verifies against the block's event root, at the block's height
    for p in to_b:
        assert p.proof.height == block.height
        assert p.proof.tree_size == len(block.events)
        assert p.proof == block.prove_event(p.proof.index)
    assert select_packets(block, A, A) == []
    assert select_packets(block, B, A) == []  # a block of another chain has none
    assert select_packets(block, A, B, module="other") == []


def test_selects_burns_and_expiries_of_the_reverse_path(net: LocalNet) -> None:
    known = net.client_height(B, A)
    early = {**_lock(net, 50), "timeout_height": known + 1}
    assert net.call(A, "alice", "bridge", "lock", early).ok
    assert net.call(A, "alice", "bridge", "lock", _lock(net, 60)).ok
    net.advance(B, 3)
    receipts = net.relay(A, B)  # the first expires on B, the second mints
    assert [e.type for r in receipts for e in r.events] == ["bridge.expired", "bridge.minted"]
    block = net[B].blocks[net[B].chain.height]
    expired, minted = select_packets(block, B, A)
    assert (expired.action, expired.kind, expired.nonce) == ("refund", "expired", 1)
    # the mint goes back too: A acknowledges it and prunes its sent record
    assert (minted.action, minted.kind, minted.nonce) == ("acknowledge", "minted", 2)
    assert select_packets(block, B, C) == []
    burn = {"denom": "chain-a/usd", "amount": 60, "recipient": addr(net, A, "alice")}
    r = net.call(B, "bob", "bridge", "burn", burn)
    assert r.ok, r.error
    (burned,) = select_packets(net[B].blocks[r.height], B, A)
    assert (burned.action, burned.nonce) == ("release", 1)


def _lock(net: LocalNet, amount: int) -> dict[str, Any]:
    return {"denom": "usd", "amount": amount, "dest_chain": B, "recipient": addr(net, B, "bob")}


def test_a_packet_without_a_valid_nonce_is_selected_with_nonce_0() -> None:
    net = make_net(modules_by_chain={A: rogue_modules})
    for bad in ("7", -1, True, None):
        attrs = {"src_chain": A, "dst_chain": B, "nonce": bad, "amount": 1}
        r = net.call(A, "alice", "bridge", "emit_raw", {"name": "locked", "attributes": attrs})
        assert r.ok, r.error
        (p,) = select_packets(net[A].blocks[r.height], A, B)
        assert p.nonce == 0


# --- pending_query / drop_delivered and the bridge/pending query ---------------------


def test_pending_drops_what_the_destination_has(net: LocalNet) -> None:
    block = locks(net, A, B, 3)
    packets = select_packets(block, A, B)
    assert pending_query(A, packets) == {
        "remote_chain": A,
        "packets": [["locked", 1], ["locked", 2], ["locked", 3]],
    }
    assert ask(net, A, B, packets) == packets
    net.update_client(A, B)
    (receipt,) = net.deliver(B, [packets[1]])
    assert receipt.ok, receipt.error
    assert ask(net, A, B, packets) == [packets[0], packets[2]]
    assert net.pending(A, B) == [packets[0], packets[2]]


def test_pending_expiries_until_refunded(net: LocalNet) -> None:
    known = net.client_height(B, A)
    early = {**_lock(net, 5), "timeout_height": known + 1}
    assert net.call(A, "alice", "bridge", "lock", early).ok
    net.advance(B, 3)
    net.relay(A, B)
    (expired,) = net.pending(B, A, proven_only=False)
    assert ask(net, B, A, [expired]) == [expired]
    forged = replace(expired, nonce=99)  # a transfer A never sent: nothing to refund
    assert ask(net, B, A, [forged]) == []
    (receipt,) = net.relay(B, A)
    assert receipt.events[0].type == "bridge.refunded"
    assert ask(net, B, A, [expired]) == []


def test_nonce_0_is_not_asked_and_always_kept(net: LocalNet) -> None:
    packets = select_packets(locks(net, A, B, 2), A, B)
    broken = replace(packets[0], nonce=0)
    assert pending_query(A, [broken, packets[1]])["packets"] == [["locked", 2]]
    assert drop_delivered([broken, packets[1]], []) == [broken]


def test_pending_query_is_bounded(net: LocalNet) -> None:
    (p,) = select_packets(locks(net, A, B, 1), A, B)
    many = [replace(p, nonce=i + 1) for i in range(MAX_PENDING_QUERY)]
    assert len(pending_query(A, many)["packets"]) == MAX_PENDING_QUERY
    assert len(net[B].chain.query("bridge", "pending", pending_query(A, many))) == len(many)
    with pytest.raises(TooManyPackets):
        pending_query(A, [*many, replace(p, nonce=MAX_PENDING_QUERY + 1)])
    # malformed packets are not asked, so they do not count
    assert (
        pending_query(A, [*many, replace(p, nonce=0)])["packets"]
        == pending_query(A, many)["packets"]
    )


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {"locked": 1},
        "locked,1",
        [["locked", 1], ["locked", 2], ["locked", 1]],  # longer than the question
        [["locked"]],
        [["locked", 1, 2]],
        [("locked", 1)],
        [["locked", True]],
        [["locked", 1.0]],
        [[1, "locked"]],
        [["burned", 1]],  # not asked: another kind
        [["locked", 3]],  # not asked: another nonce
        [["expired", 2]],
    ],
)
def test_a_malformed_answer_is_refused(net: LocalNet, answer: object) -> None:
    packets = select_packets(locks(net, A, B, 2), A, B)
    with pytest.raises(MalformedPendingAnswer):
        drop_delivered(packets, answer)


@pytest.mark.parametrize(
    "args",
    [
        {},
        {"remote_chain": A},
        {"remote_chain": A, "packets": None},
        {"remote_chain": A, "packets": {"locked": 1}},
        {"remote_chain": A, "packets": [["locked", 1]] * (MAX_PENDING_QUERY + 1)},
        {"remote_chain": A, "packets": [["locked"]]},
        {"remote_chain": A, "packets": [["locked", 1, 1]]},
        {"remote_chain": A, "packets": ["locked", 1]},
        {"remote_chain": A, "packets": [["acknowledged", 1]]},
        {"remote_chain": A, "packets": [["locked", 0]]},
        {"remote_chain": A, "packets": [["locked", -1]]},
        {"remote_chain": A, "packets": [["locked", True]]},
        {"remote_chain": A, "packets": [["locked", "1"]]},
        {"remote_chain": A, "packets": [["locked", 2**63]]},
        {"remote_chain": A, "packets": [[["locked"], 1]]},
        {"remote_chain": "", "packets": []},
        {"remote_chain": 7, "packets": []},
    ],
)
def test_the_pending_query_refuses_hostile_args(net: LocalNet, args: dict[str, Any]) -> None:
    root = net[B].chain.state.root()
    with pytest.raises(InvalidArgument):
        net[B].chain.query("bridge", "pending", args)
    assert net[B].chain.state.root() == root


def test_the_pending_query_of_an_unknown_path_is_all_to_do(net: LocalNet) -> None:
    # no path needed to answer: nothing was received from C, nothing sent to it
    got = net[B].chain.query("bridge", "pending", {"remote_chain": C, "packets": [["locked", 4]]})
    assert got == [["locked", 4]]


# --- heights and packing --------------------------------------------------------------


def test_heights_needed(net: LocalNet) -> None:
    first = select_packets(locks(net, A, B, 2), A, B)
    net.advance(A, 2)
    second = select_packets(locks(net, A, B, 1), A, B)
    packets = [*second, *first]
    assert heights_needed(packets) == [first[0].proof.height, second[0].proof.height]
    assert heights_needed([]) == []


def _size(bundles: list[Any]) -> int:
    return len(canonical(bundles))


def test_pack_groups_by_method_keeps_order_and_fits(net: LocalNet) -> None:
    mints = select_packets(locks(net, A, B, 40), A, B)
    release = replace(mints[0], action="release")
    refund = replace(mints[1], action="refund")
    budget = 5 * _size([mints[0].proof.to_json()])
    plan = pack_deliveries([refund, *mints[:20], release, *mints[20:]], budget)
    assert [m for m, _ in plan][-2:] == ["release", "refund"]
    assert {m for m, _ in plan[:-2]} == {"mint"}
    assert [b for m, bundles in plan[:-2] for b in bundles] == [p.proof.to_json() for p in mints]
    assert all(_size(bundles) <= budget for _, bundles in plan)
    assert len(plan) - 2 >= 40 // 5
    by_count = pack_deliveries(mints, max_bundles=7)
    assert [len(b) for _, b in by_count] == [7] * 5 + [5]


def test_pack_sends_a_malformed_packet_alone(net: LocalNet) -> None:
    mints = select_packets(locks(net, A, B, 4), A, B)
    broken = replace(mints[2], nonce=0)
    plan = pack_deliveries([*mints[:2], broken, mints[3]])
    assert [len(b) for _, b in plan] == [2, 1, 1]
    assert plan[1][1] == [broken.proof.to_json()]


def test_pack_refuses_a_budget_no_bundle_fits(net: LocalNet) -> None:
    mints = select_packets(locks(net, A, B, 1), A, B)
    with pytest.raises(BundleTooLarge):
        pack_deliveries(mints, 100)
    assert pack_deliveries([]) == []


def test_packed_transactions_are_accepted_at_the_size_limit(net: LocalNet) -> None:
    block = locks(net, A, B, 300)
    packets = select_packets(block, A, B)
    net.update_client(A, B)
    txs = net.delivery_txs(B, packets)
    assert len(txs) > 1  # 300 bundles do not fit one transaction
    receipts = net.produce(B, txs).receipts
    assert all(r.ok for r in receipts), [r.error for r in receipts if not r.ok]
    assert sum(len(r.events) for r in receipts) == 300
    assert ask(net, A, B, packets) == []


def test_select_refusals_reads_a_receipt_and_distrusts_its_words() -> None:
    events = [
        Event("bridge.refused", {"src_chain": "chain-a", "nonce": 3, "rule": "sanctions"}),
        Event("bridge.expired", {"src_chain": "chain-a", "nonce": 3}),
        Event("bridge.minted", {"src_chain": "chain-a", "nonce": 4}),
        # a destination inventing rule names would blow up the metrics' label set
        Event("bridge.refused", {"src_chain": "chain-a", "nonce": 5, "rule": "x" * 999}),
        Event("bridge.refused", {"nonce": True, "rule": ["kyc.level"], "detail": "d" * 999}),
        Event("other.refused", {"src_chain": "chain-a", "nonce": 6, "rule": "aml.limit"}),
    ]
    got = select_refusals(events)
    assert [(r.nonce, r.rule) for r in got] == [(3, "sanctions"), (5, "other"), (0, "other")]
    assert got[0].src_chain == "chain-a"
    assert len(got[2].detail) == 200
