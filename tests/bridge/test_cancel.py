"""Funds that could be stranded, and the ways out.

A queued transfer that can no longer execute (governance lowered the destination's cap
below it, or the path's light client froze) is ended by governance's ``cancel_queued``:
it becomes a provable expiry and the source refunds it. A refund larger than a cap that
governance lowered after the lock passes alone in an otherwise empty window.
"""

from __future__ import annotations

import pytest

from bridge.errors import AlreadyProcessed, BridgePaused, NotQueued, RateLimited, UnknownPath
from bridge.localnet import LocalNet
from bridge.module import escrow_address
from bridge.transfer import FLOW_BUCKETS
from chains.bank import get_balance, get_supply
from chains.devnet import DEFAULT_BALANCE
from chains.errors import InvalidArgument, Unauthorized
from tests.bridge.conftest import A, B, addr, events_of, make_net, refused

QUEUE = {"delay_threshold": 500, "delay": 3}


def bal(net: LocalNet, chain: str, who: str, denom: str) -> int:
    address = who if len(who) == 40 else addr(net, chain, who)
    return get_balance(net[chain].chain.state, address, denom)


def lock(net: LocalNet, amount: int, **kw: object) -> None:
    args = {"denom": "usd", "amount": amount, "dest_chain": B, "recipient": addr(net, B, "bob")}
    r = net.call(A, "alice", "bridge", "lock", {**args, **kw})
    assert r.ok, r.error


def received(net: LocalNet, chain: str, remote: str, nonce: int) -> object:
    return net[chain].chain.query("bridge", "received", {"remote_chain": remote, "nonce": nonce})


def assert_conserved(net: LocalNet) -> None:
    """I1 for usd locked on A towards B: escrow = wrapped supply on B + in flight."""
    in_flight = 0
    for _, sent in net[A].chain.state.items(f"bridge/sent/{B}/"):
        nonce = sent["packet"]["nonce"]
        if sent["status"] == "sent" and received(net, B, A, nonce) != "delivered":
            in_flight += sent["packet"]["amount"]
    escrow = bal(net, A, escrow_address(B), "usd")
    assert escrow == get_supply(net[B].chain.state, "chain-a/usd") + in_flight


def queued(net: LocalNet, amount: int = 600) -> None:
    """alice locks ``amount`` on A for bob on B; B queues it (nonce 1)."""
    lock(net, amount)
    assert [e.type for r in net.relay(A, B) for e in r.events] == ["bridge.queued"]
    assert received(net, B, A, 1) == "queued"


def cancel(net: LocalNet, nonce: int = 1) -> None:
    r = net.call(B, "gov", "bridge", "cancel_queued", {"remote_chain": A, "nonce": nonce})
    assert r.ok, r.error
    (ev,) = r.events
    assert ev.type == "bridge.expired"
    sent = net[A].chain.query("bridge", "sent", {"remote_chain": B, "nonce": nonce})
    assert isinstance(sent, dict)
    assert ev.attributes == sent["packet"]  # exactly what a timeout would emit


def refund_and_check(net: LocalNet) -> None:
    (r,) = net.relay(B, A)
    assert r.ok, r.error
    assert [e.type for e in r.events] == ["bridge.refunded"]
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE
    assert bal(net, A, escrow_address(B), "usd") == 0
    assert get_supply(net[B].chain.state, "chain-a/usd") == 0
    assert_conserved(net)


def test_a_queued_transfer_above_a_lowered_cap_is_cancelled_and_refunded() -> None:
    net = make_net(limits=QUEUE)
    queued(net)
    mint = net.pending(A, B, include_done=True)[0]
    # governance lowers B's cap below the queued amount: it can never execute
    assert net.call(B, "gov", "bridge", "set_limits", {"remote_chain": A, "cap": 550}).ok
    net.advance(B, 10)
    assert received(net, B, A, 1) == "queued"
    assert_conserved(net)
    cancel(net)
    assert received(net, B, A, 1) == "expired"
    assert net[B].chain.query("bridge", "queue", {}) == []
    assert f"bridge/delayed/{A}/1" not in net[B].chain.state
    net.advance(B, 10)  # end_block does not deliver it afterwards
    assert events_of(net, B, "bridge.minted") == []
    assert_conserved(net)
    refund_and_check(net)
    # delivered XOR refunded: the mint, a second cancel and a second refund are refused
    err = refused(
        net, B, "relayer", "bridge", "mint", {"bundles": [mint.proof.to_json()]}, AlreadyProcessed
    )
    assert err.status == "expired"
    args = {"remote_chain": A, "nonce": 1}
    nq = refused(net, B, "gov", "bridge", "cancel_queued", args, NotQueued)
    assert (nq.remote_chain, nq.nonce, nq.status) == (A, 1, "expired")
    (expiry,) = net.pending(B, A, include_done=True)
    refused(
        net,
        A,
        "relayer",
        "bridge",
        "refund",
        {"bundles": [expiry.proof.to_json()]},
        AlreadyProcessed,
    )


def test_a_transfer_queued_under_a_frozen_client_is_cancelled_and_refunded() -> None:
    net = make_net(limits=QUEUE)
    queued(net)
    # B's client of A is frozen (A equivocated): the queue holds the transfer for good
    key = f"lightclient/client/{net[B].clients[A]}"
    state = net[B].chain.state
    state.set(key, {**state.get(key), "frozen_height": net.client_height(A, B)})
    net.advance(B, 10)
    assert received(net, B, A, 1) == "queued"
    cancel(net)
    net.advance(B, 5)
    assert events_of(net, B, "bridge.minted") == []
    refund_and_check(net)  # the expiry travels B → A through A's (unfrozen) client of B


def test_a_queued_release_is_cancelled_and_the_burn_reminted() -> None:
    """The other direction: a wrapped asset burned on B waits in A's queue to release;
    cancelled on A, the expiry goes back to B, which re-mints what was burned."""
    net = make_net(limits=QUEUE)
    lock(net, 499)
    lock(net, 300)
    net.relay(A, B)
    assert bal(net, B, "bob", "chain-a/usd") == 799
    args = {"denom": "chain-a/usd", "amount": 799, "recipient": addr(net, A, "alice")}
    assert net.call(B, "bob", "bridge", "burn", args).ok
    got = [e.type for r in net.relay(B, A) for e in r.events]
    assert got == ["bridge.queued", "bridge.acknowledged", "bridge.acknowledged"]  # the mints
    assert net.call(A, "gov", "bridge", "set_limits", {"remote_chain": B, "cap": 600}).ok
    net.advance(A, 5)
    assert bal(net, A, escrow_address(B), "usd") == 799  # not released
    r = net.call(A, "gov", "bridge", "cancel_queued", {"remote_chain": B, "nonce": 1})
    assert [e.type for e in r.events] == ["bridge.expired"]
    (refund,) = net.relay(A, B)
    assert [e.type for e in refund.events] == ["bridge.refunded"]
    assert bal(net, B, "bob", "chain-a/usd") == 799
    assert_conserved(net)


def test_cancel_works_while_paused_and_the_refund_waits_for_the_source() -> None:
    """Cancel moves no funds on the destination, so a pause does not hold it; the
    refund is an outflow of the source and obeys the source's pause."""
    net = make_net(limits=QUEUE)
    queued(net)
    assert net.call(B, "gov", "bridge", "pause", {}).ok
    cancel(net)
    assert net.call(A, "gov", "bridge", "pause", {"remote_chain": B}).ok
    (expiry,) = net.collect(B, A)
    refused(
        net, A, "relayer", "bridge", "refund", {"bundles": [expiry.proof.to_json()]}, BridgePaused
    )
    assert net.call(A, "gov", "bridge", "unpause", {"remote_chain": B}).ok
    refund_and_check(net)


def test_only_governance_cancels() -> None:
    net = make_net(limits=QUEUE)
    queued(net)
    for who in ("alice", "bob", "relayer"):
        args = {"remote_chain": A, "nonce": 1}
        refused(net, B, who, "bridge", "cancel_queued", args, Unauthorized)
    assert received(net, B, A, 1) == "queued"
    net.advance(B, 4)
    assert bal(net, B, "bob", "chain-a/usd") == 600  # still delivered in due course
    assert f"bridge/delayed/{A}/1" not in net[B].chain.state  # the kept packet is gone


@pytest.mark.parametrize(
    ("args", "error", "status"),
    [
        ({"remote_chain": A, "nonce": 1}, NotQueued, "delivered"),
        ({"remote_chain": A, "nonce": 2}, NotQueued, "expired"),
        ({"remote_chain": A, "nonce": 3}, NotQueued, None),  # never received
        ({"remote_chain": A, "nonce": 99}, NotQueued, None),  # never sent
        ({"remote_chain": "chain-z", "nonce": 1}, UnknownPath, None),
        ({"remote_chain": A, "nonce": 0}, InvalidArgument, None),
        ({"remote_chain": A, "nonce": True}, InvalidArgument, None),
        ({"remote_chain": A}, InvalidArgument, None),
        ({"nonce": 1}, InvalidArgument, None),
    ],
)
def test_cancel_refuses_what_is_not_queued(args: dict, error: type, status: str | None) -> None:
    net = make_net(limits=QUEUE)
    lock(net, 10)  # nonce 1: delivered
    lock(net, 10, timeout_height=net.client_height(B, A) + 1)  # nonce 2: expires
    net.advance(B, 2)
    net.relay(A, B)
    lock(net, 10)  # nonce 3: not relayed yet
    assert received(net, B, A, 1) == "delivered"
    assert received(net, B, A, 2) == "expired"
    err = refused(net, B, "gov", "bridge", "cancel_queued", args, error)
    if error is NotQueued:
        assert err.status == status


def test_a_refund_above_a_cap_lowered_after_the_lock_still_passes() -> None:
    """Two locks within A's cap expire; governance then lowers A's cap below each. Each
    refund passes as the only outflow of its window, never two in one window."""
    net = make_net(limits={"cap": 1000, "window": 1000})
    deadline = net.client_height(B, A) + 2
    lock(net, 800, timeout_height=deadline)
    lock(net, 900, timeout_height=deadline)
    assert net.call(A, "gov", "bridge", "set_limits", {"remote_chain": B, "cap": 100}).ok
    net.advance(B, 3)
    assert [e.type for r in net.relay(A, B) for e in r.events] == ["bridge.expired"] * 2
    first, second = net.collect(B, A)
    (r,) = net.deliver(A, [first])
    assert r.ok, r.error
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE - 900
    err = refused(
        net, A, "relayer", "bridge", "refund", {"bundles": [second.proof.to_json()]}, RateLimited
    )
    assert (err.used, err.amount, err.cap) == (800, 900, 100)
    net.advance(A, 1000 + 1000 // FLOW_BUCKETS + 1)  # a window (and a bucket) later
    (r,) = net.deliver(A, [second])
    assert r.ok, r.error
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE
    assert_conserved(net)
