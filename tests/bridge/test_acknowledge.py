"""Sent records are acknowledged (IBC's model): the destination's delivery, proven back to
the source, prunes the source's record, as a refund does; a source keeps what is in flight,
not its history, and nothing pruned can be refunded, resent or acknowledged again."""

from __future__ import annotations

from typing import Any

from bridge.errors import AlreadyProcessed, ForeignEvent, PacketMismatch, UnknownTransfer
from bridge.localnet import LocalNet
from bridge.module import escrow_address
from bridge.relay import Packet, select_packets
from chains.bank import get_balance, get_supply
from tests.bridge.conftest import A, B, addr, make_net, refused, rogue_modules


def _sent_keys(net: LocalNet, chain: str) -> list[str]:
    return [k for k, _ in net[chain].chain.state.items("bridge/sent/")]


def _lock(net: LocalNet, amount: int, **kw: Any) -> int:
    args = {"denom": "usd", "amount": amount, "dest_chain": B, "recipient": addr(net, B, "bob")}
    r = net.call(A, "alice", "bridge", "lock", {**args, **kw})
    assert r.ok, r.error
    return int(r.events[-1].attributes["nonce"])


def _selected(net: LocalNet, src: str, dst: str) -> list[Packet]:
    side = net[src]
    return [
        p for h in range(1, side.chain.height + 1) for p in select_packets(side.blocks[h], src, dst)
    ]


def _conserved(net: LocalNet) -> None:
    escrow = get_balance(net[A].chain.state, escrow_address(B), "usd")
    assert escrow == get_supply(net[B].chain.state, "chain-a/usd")  # nothing in flight


def test_delivered_transfers_leave_no_sent_record_behind(net: LocalNet) -> None:
    for amount in range(1, 21):
        _lock(net, amount)
    assert len(_sent_keys(net, A)) == 20
    net.relay(A, B)  # minted on B
    assert len(_sent_keys(net, A)) == 20  # not yet known to A
    receipts = net.relay(B, A)  # B's minted events, proven back to A
    assert [e.type for r in receipts for e in r.events] == ["bridge.acknowledged"] * 20
    assert _sent_keys(net, A) == []
    _conserved(net)
    # and back: the burns are released on A, acknowledged to B
    burn = {"denom": "chain-a/usd", "amount": 30, "recipient": addr(net, A, "carol")}
    assert net.call(B, "bob", "bridge", "burn", burn).ok
    assert len(_sent_keys(net, B)) == 1
    net.relay(B, A)
    net.relay(A, B)
    assert _sent_keys(net, B) == []
    _conserved(net)
    assert net.pending(A, B) == []
    assert net.pending(B, A) == []
    # the destination still refuses a second delivery of each nonce (its record stays)
    assert net[B].chain.query("bridge", "received", {"remote_chain": A, "nonce": 7}) == (
        "delivered"
    )


def test_a_refund_prunes_the_record_and_nothing_settled_comes_back(net: LocalNet) -> None:
    nonce = _lock(net, 70, timeout_height=net.client_height(B, A) + 2)
    net.advance(B, 4)
    net.relay(A, B)  # expires on B
    (refund,) = net.relay(B, A)
    assert refund.events[0].type == "bridge.refunded"
    assert _sent_keys(net, A) == []
    assert net[A].chain.query("bridge", "sent", {"remote_chain": B, "nonce": nonce}) is None
    # the same expiry proven again: refused (settled), not "never sent"
    (bundle,) = [p for p in _selected(net, B, A) if p.action == "refund"]
    err = refused(
        net,
        A,
        "relayer",
        "bridge",
        "refund",
        {"bundles": [bundle.proof.to_json()]},
        AlreadyProcessed,
    )
    assert err.status == "settled"
    refused(
        net, A, "gov", "bridge", "resend", {"remote_chain": B, "nonce": nonce}, AlreadyProcessed
    )
    refused(
        net, A, "gov", "bridge", "resend", {"remote_chain": B, "nonce": nonce + 1}, UnknownTransfer
    )


def test_an_acknowledgement_is_checked_like_a_delivery(net: LocalNet) -> None:
    nonce = _lock(net, 9)
    net.relay(A, B)
    net.update_client(B, A)
    (ack,) = _selected(net, B, A)
    assert (ack.action, ack.nonce) == ("acknowledge", nonce)
    assert net.call(A, "relayer", "bridge", "acknowledge", {"bundles": [ack.proof.to_json()]}).ok
    # replayed: refused, nothing changes
    refused(
        net,
        A,
        "relayer",
        "bridge",
        "acknowledge",
        {"bundles": [ack.proof.to_json()]},
        AlreadyProcessed,
    )
    # a locked event is no acknowledgement
    _lock(net, 3)
    (locked,) = select_packets(net[A].blocks[net[A].chain.height], A, B)
    net.update_client(A, B)
    refused(
        net,
        B,
        "relayer",
        "bridge",
        "acknowledge",
        {"bundles": [locked.proof.to_json()]},
        ForeignEvent,
    )


def test_an_acknowledgement_that_does_not_match_the_record_keeps_it() -> None:
    """A faulty destination's proven ``minted`` for our nonce with another amount does not
    prune the record: governance may still need it (``resend``)."""
    net = make_net(modules_by_chain={B: rogue_modules})
    nonce = _lock(net, 50)
    net.relay(A, B)
    bob = addr(net, B, "bob")
    attrs = {"src_chain": A, "nonce": nonce, "recipient": bob, "denom": "chain-a/usd", "amount": 5}
    r = net.call(B, "bob", "bridge", "emit_raw", {"name": "minted", "attributes": attrs})
    assert r.ok, r.error
    net.update_client(B, A)
    (forged,) = select_packets(net[B].blocks[r.height], B, A)
    refused(
        net,
        A,
        "relayer",
        "bridge",
        "acknowledge",
        {"bundles": [forged.proof.to_json()]},
        PacketMismatch,
    )
    assert len(_sent_keys(net, A)) == 1
