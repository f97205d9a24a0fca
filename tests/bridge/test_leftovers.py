"""Leftovers of the first wave: one path's queue cannot starve another's, a remote module
name cannot contain a dot, and every status write goes through the transition table."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

import bridge.module
from bridge.errors import NotQueued, UnknownTransfer
from bridge.localnet import LocalNet
from bridge.module import BridgeModule
from bridge.relay import select_packets
from bridge.transfer import Status
from chains.bank import get_balance
from chains.devnet import base_modules
from chains.errors import InvalidArgument, Unauthorized
from chains.module import Module
from tests.bridge.conftest import A, B, C, addr, make_net, refused, rogue_modules

QUEUE = {"delay_threshold": 500, "delay": 3}


def lock(net: LocalNet, src: str, dst: str, denom: str, amount: int) -> None:
    args = {"denom": denom, "amount": amount, "dest_chain": dst, "recipient": addr(net, dst, "bob")}
    r = net.call(src, "alice", "bridge", "lock", args)
    assert r.ok, r.error


def test_one_path_filling_its_queue_does_not_starve_another_path() -> None:
    def small_queue() -> Sequence[Module]:
        return [*base_modules(), BridgeModule(queue_capacity=1)]

    net = LocalNet((A, B, C), modules_by_chain={B: small_queue})
    slow = {**QUEUE, "delay": 1_000}  # nothing leaves the queue during the test
    net.connect(A, B, **slow)
    net.connect(C, B, **slow)
    lock(net, A, B, "usd", 600)
    assert [e.type for r in net.relay(A, B) for e in r.events] == ["bridge.queued"]
    lock(net, A, B, "usd", 600)
    (r,) = net.relay(A, B)[-1:]
    assert r.code == "QueueFull"  # A's share of B's queue is full...
    lock(net, C, B, "gbp", 600)
    (r,) = net.relay(C, B)[-1:]
    assert r.ok, r.error  # ...and C's large transfer still waits in line
    assert [e.type for e in r.events] == ["bridge.queued"]


@pytest.mark.parametrize("name", ["bridge.x", "bank.transfer", "Bridge", "", "a/b"])
def test_a_remote_module_name_is_a_module_name(name: str) -> None:
    """Event types are ``<module>.<name>``: with a dotted remote module ``x.y`` the bridge
    would accept module ``x``'s event ``y.locked`` as a transfer."""
    net = make_net()
    args = {"remote_chain": A, "remote_module": name}
    refused(net, B, "gov", "bridge", "update_path", args, InvalidArgument)


def test_every_status_write_goes_through_the_transition_table(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    moves: list[tuple[Status, Status]] = []
    real = bridge.module.next_status

    def recording(current: Status, target: Status) -> Status:
        moves.append((current, target))
        return real(current, target)

    monkeypatch.setattr(bridge.module, "next_status", recording)
    net = make_net(limits=QUEUE)
    lock(net, A, B, "usd", 100)  # delivered at once
    lock(net, A, B, "usd", 600)  # queued, delivered by end_block
    net.relay(A, B)
    net.advance(B, 5)
    deadline = net.client_height(B, A) + 2
    args = {"denom": "usd", "amount": 5, "dest_chain": B, "recipient": addr(net, B, "bob")}
    assert net.call(A, "alice", "bridge", "lock", {**args, "timeout_height": deadline}).ok
    net.advance(B, 3)
    net.relay(A, B)  # expired on B
    net.relay(B, A)  # refunded on A
    assert set(moves) == {
        (Status.SENT, Status.DELIVERED),
        (Status.SENT, Status.QUEUED),
        (Status.QUEUED, Status.DELIVERED),
        (Status.SENT, Status.EXPIRED),
        (Status.EXPIRED, Status.REFUNDED),
    }


def test_a_forged_packet_under_a_frozen_client_no_longer_strands_the_real_one() -> None:
    """A's validators equivocate: a forged ``bridge.locked`` for nonce 1 is proven on B and
    queued, then B's client of A freezes. Cancelling it would emit an expiry of the forged
    packet: the real nonce-1 transfer could then be neither minted (nonce used) nor
    refunded (the expiry does not match). Governance drops it instead; a replacement
    client trusts a later header, below which the real event cannot be proven, so anyone
    governance asks A to ``resend`` it, and it is minted once."""
    net = make_net(modules_by_chain={A: rogue_modules}, limits=QUEUE)
    bob = addr(net, B, "bob")
    forged = {
        "src_chain": A,
        "dst_chain": B,
        "nonce": 1,
        "sender": addr(net, A, "carol"),
        "recipient": addr(net, B, "carol"),
        "denom": "usd",
        "amount": 900,
        "timeout_height": 10_000,
    }
    r = net.call(A, "alice", "bridge", "emit_raw", {"name": "locked", "attributes": forged})
    assert r.ok, r.error
    assert [e.type for r in net.relay(A, B) for e in r.events] == ["bridge.queued"]
    lock(net, A, B, "usd", 700)  # the real transfer: nonce 1 on A's side too
    sent = net[A].chain.query("bridge", "sent", {"remote_chain": B, "nonce": 1})
    assert isinstance(sent, dict)
    assert sent["packet"]["amount"] == 700
    key = f"lightclient/client/{net[B].clients[A]}"
    state = net[B].chain.state
    state.set(key, {**state.get(key), "frozen_height": net.client_height(A, B)})

    r = net.call(B, "gov", "bridge", "drop_queued", {"remote_chain": A, "nonce": 1})
    assert r.ok, r.error
    assert [e.type for e in r.events] == ["bridge.dropped"]
    assert net[B].chain.query("bridge", "received", {"remote_chain": A, "nonce": 1}) is None
    assert net[B].chain.query("bridge", "queue", {}) == []

    # governance replaces the client, trusting A's header from now on
    net.advance(A, 1)
    h = net[A].chain.height
    create = {
        "update": net.header_update(A, h, h).to_json(),
        "trusting_period": 10**9,
        "max_clock_drift": 10**6,
    }
    r = net.call(B, "relayer", "lightclient", "create_client", create)
    assert r.ok, r.error
    new_client = str(r.events[0].attributes["client_id"])
    args = {"remote_chain": A, "client_id": new_client}
    assert net.call(B, "gov", "bridge", "update_path", args).ok
    net[B].clients[A] = new_client
    # the real lock's event is below the new client's trust height: unprovable; resend it
    r = net.call(A, "gov", "bridge", "resend", {"remote_chain": B, "nonce": 1})
    assert r.ok, r.error
    assert r.events[0].attributes == sent["packet"]
    net.update_client(A, B, r.height)
    item = select_packets(net[A].blocks[r.height], A, B)
    (got,) = net.deliver(B, item)
    assert got.ok, got.error
    assert [e.type for e in got.events] == ["bridge.queued"]  # 700 >= the threshold
    net.advance(B, 5)
    assert get_balance(net[B].chain.state, bob, "chain-a/usd") == 700
    assert get_balance(net[B].chain.state, addr(net, B, "carol"), "chain-a/usd") == 0
    # delivered once: the same resent proof again is a replay
    (again,) = net.deliver(B, item)
    assert again.code == "AlreadyProcessed"


def test_resend_refuses_what_is_not_in_flight() -> None:
    net = make_net()
    args = {"remote_chain": B, "nonce": 1}
    refused(net, A, "gov", "bridge", "resend", args, UnknownTransfer)
    lock(net, A, B, "usd", 5)
    refused(net, A, "dave", "bridge", "resend", args, Unauthorized)
    net.relay(A, B)
    # still "sent" on A (no acknowledgement): a resend is harmless, B refuses it as a replay
    r = net.call(A, "gov", "bridge", "resend", args)
    assert r.ok
    net.update_client(A, B, r.height)
    (again,) = net.deliver(B, select_packets(net[A].blocks[r.height], A, B))
    assert again.code == "AlreadyProcessed"
    assert get_balance(net[B].chain.state, addr(net, B, "bob"), "chain-a/usd") == 5


def test_only_governance_drops_and_only_what_is_queued() -> None:
    net = make_net(limits=QUEUE)
    args = {"remote_chain": A, "nonce": 1}
    refused(net, B, "gov", "bridge", "drop_queued", args, NotQueued)
    lock(net, A, B, "usd", 600)
    net.relay(A, B)
    refused(net, B, "alice", "bridge", "drop_queued", args, Unauthorized)
