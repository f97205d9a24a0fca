"""A transfer's life: lock → header → proof → mint → burn → release; timeout → refund;
limits, the delay queue, pause, and governance."""

from __future__ import annotations

import copy

import orjson
import pytest

from bridge.errors import (
    AlreadyProcessed,
    BridgePaused,
    ClientChainMismatch,
    DenomTooLong,
    MalformedBundle,
    NotWrapped,
    PathExists,
    RateLimited,
    TimeoutInPast,
    UnknownPath,
)
from bridge.localnet import LocalNet
from bridge.module import escrow_address
from bridge.transfer import FLOW_BUCKETS
from chains.bank import get_balance, get_supply
from chains.chain import Chain
from chains.devnet import DEFAULT_BALANCE
from chains.errors import ClientExpired, InsufficientFunds, InvalidArgument, Unauthorized
from chains.merkle import verify_inclusion
from tests.bridge.conftest import A, B, C, addr, events_of, make_net, refused


def lock(net: LocalNet, src: str, user: str, dst: str, to: str, amount: int, **kw: object):
    args = {"denom": kw.pop("denom", net[src].spec.denom), "amount": amount}
    args |= {"dest_chain": dst, "recipient": addr(net, dst, to), **kw}
    return net.call(src, user, "bridge", "lock", args)


def bal(net: LocalNet, chain: str, who: str, denom: str) -> int:
    address = who if len(who) == 40 else addr(net, chain, who)
    return get_balance(net[chain].chain.state, address, denom)


def test_lock_mint_burn_release(net: LocalNet) -> None:
    # lock: alice's usd moves into the escrow of the path to B, with nonce 1
    r = lock(net, A, "alice", B, "bob", 100)
    assert r.ok, r.error
    (ev,) = r.events
    assert ev.type == "bridge.locked"
    assert ev.attributes["nonce"] == 1
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE - 100
    assert bal(net, A, escrow_address(B), "usd") == 100
    # the proof alone is not enough: B's client must first hold A's header
    assert net.pending(A, B) == []
    net.update_client(A, B)
    (item,) = net.pending(A, B)
    (receipt,) = net.deliver(B, [item])
    assert receipt.ok, receipt.error
    assert bal(net, B, "bob", "chain-a/usd") == 100
    assert net[B].chain.query("bridge", "wrapped", {"denom": "chain-a/usd"}) == {
        "path": A,
        "base": "usd",
    }
    # burn → release: the original comes back out of escrow, nothing is wrapped twice
    r = net.call(
        B,
        "bob",
        "bridge",
        "burn",
        {"denom": "chain-a/usd", "amount": 40, "recipient": addr(net, A, "carol")},
    )
    assert r.ok, r.error
    assert r.events[0].type == "bridge.burned"
    assert get_supply(net[B].chain.state, "chain-a/usd") == 60
    receipt, ack = net.relay(B, A)  # and B's mint, acknowledged to A
    assert receipt.ok, receipt.error
    assert receipt.events[0].type == "bridge.released"
    assert [e.type for e in ack.events] == ["bridge.acknowledged"]
    assert net[A].chain.query("bridge", "sent", {"remote_chain": B, "nonce": 1}) is None
    assert bal(net, A, "carol", "usd") == DEFAULT_BALANCE + 40
    assert bal(net, A, escrow_address(B), "usd") == 60
    assert net.pending(A, B) == []
    assert net.pending(B, A) == []


def test_timeout_records_expiry_and_refunds(net: LocalNet) -> None:
    known = net.client_height(B, A)
    r = lock(net, A, "alice", B, "bob", 70, timeout_height=known + 3)
    assert r.ok, r.error
    net.advance(B, 5)  # B passes the timeout before the packet arrives
    (receipt,) = net.relay(A, B)
    assert receipt.ok
    assert [e.type for e in receipt.events] == ["bridge.expired"]
    assert get_supply(net[B].chain.state, "chain-a/usd") == 0
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE - 70
    (receipt,) = net.relay(B, A)
    assert receipt.ok
    assert receipt.events[0].type == "bridge.refunded"
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE
    assert bal(net, A, escrow_address(B), "usd") == 0
    # delivered XOR refunded: neither the refund nor the mint can happen again
    (refund,) = net.pending(B, A, include_done=True)
    refused(
        net,
        A,
        "relayer",
        "bridge",
        "refund",
        {"bundles": [refund.proof.to_json()]},
        AlreadyProcessed,
    )
    (mint,) = net.pending(A, B, include_done=True)
    err = refused(
        net, B, "relayer", "bridge", "mint", {"bundles": [mint.proof.to_json()]}, AlreadyProcessed
    )
    assert err.status == "expired"


def test_timeout_must_be_ahead_of_the_destination(net: LocalNet) -> None:
    known = net.client_height(B, A)
    args = {
        "denom": "usd",
        "amount": 5,
        "dest_chain": B,
        "recipient": addr(net, B, "bob"),
        "timeout_height": known,
    }
    err = refused(net, A, "alice", "bridge", "lock", args, TimeoutInPast)
    assert (err.timeout_height, err.known_height) == (known, known)


def test_wrapped_asset_sent_home_burns_instead_of_wrapping_twice(net: LocalNet) -> None:
    assert lock(net, A, "alice", B, "bob", 50).ok
    net.relay(A, B)
    # bob uses plain `lock` towards the origin: the bridge burns, it does not escrow
    r = lock(net, B, "bob", A, "alice", 50, denom="chain-a/usd")
    assert r.ok
    assert r.events[0].type == "bridge.burned"
    assert bal(net, B, escrow_address(A), "chain-a/usd") == 0
    net.relay(B, A)
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE
    assert get_supply(net[B].chain.state, "chain-a/usd") == 0
    assert get_supply(net[A].chain.state, "chain-b/chain-a/usd") == 0


def test_multi_hop_names_the_route_and_unwinds() -> None:
    net = make_net((A, B, C), ((A, B), (B, C)))
    assert lock(net, A, "alice", B, "bob", 30).ok
    net.relay(A, B)
    assert lock(net, B, "bob", C, "carol", 30, denom="chain-a/usd").ok
    net.relay(B, C)
    # on C the asset is named by its route, backed by B's escrow (not A's)
    assert bal(net, C, "carol", "chain-b/chain-a/usd") == 30
    assert bal(net, B, escrow_address(C), "chain-a/usd") == 30
    # and the way back unwraps hop by hop
    assert lock(net, C, "carol", B, "bob", 30, denom="chain-b/chain-a/usd").ok
    net.relay(C, B)
    assert bal(net, B, "bob", "chain-a/usd") == 30
    assert lock(net, B, "bob", A, "alice", 30, denom="chain-a/usd").ok
    net.relay(B, A)
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE
    for chain, denom in ((B, "chain-a/usd"), (C, "chain-b/chain-a/usd")):
        assert get_supply(net[chain].chain.state, denom) == 0


def test_burn_that_times_out_is_reminted_on_refund(net: LocalNet) -> None:
    assert lock(net, A, "alice", B, "bob", 20).ok
    net.relay(A, B)
    known = net.client_height(A, B)
    r = net.call(
        B,
        "bob",
        "bridge",
        "burn",
        {
            "denom": "chain-a/usd",
            "amount": 20,
            "recipient": addr(net, A, "alice"),
            "timeout_height": known + 2,
        },
    )
    assert r.ok, r.error
    net.advance(A, 4)
    expired, _ack = net.relay(B, A)  # and B's earlier mint, acknowledged to A
    assert expired.events[0].type == "bridge.expired"
    (refund,) = net.relay(A, B)
    assert refund.ok
    assert refund.events[0].type == "bridge.refunded"
    assert bal(net, B, "bob", "chain-a/usd") == 20
    assert bal(net, A, escrow_address(B), "usd") == 20


def test_rate_limit_caps_outflow_per_window() -> None:
    net = make_net(limits={"cap": 1000, "window": 1000})
    for _ in range(2):
        assert lock(net, A, "alice", B, "bob", 600).ok
    first, second = net.collect(A, B)
    assert net.deliver(B, [first])[0].ok
    err = refused(
        net, B, "relayer", "bridge", "mint", {"bundles": [second.proof.to_json()]}, RateLimited
    )
    assert (err.used, err.amount, err.cap) == (600, 600, 1000)
    # a window (plus one bucket of the strict count) after the first outflow there is room
    # again: a sliding window, so the start of the next fixed window is not enough
    net.advance(B, 1000 + 1000 // FLOW_BUCKETS + 1)
    assert net.deliver(B, [second])[0].ok
    assert bal(net, B, "bob", "chain-a/usd") == 1200


def test_a_lock_whose_refund_could_never_pass_the_cap_is_refused() -> None:
    """A refund is an outflow of the source, capped per window: a transfer above the
    source's cap would, on timeout, be refused a refund in every window for good."""
    net = make_net(limits={"cap": 1000, "window": 1000})
    known = net.client_height(B, A)
    args = {
        "denom": "usd",
        "amount": 1001,
        "dest_chain": B,
        "recipient": addr(net, B, "bob"),
        "timeout_height": known + 3,
    }
    err = refused(net, A, "alice", "bridge", "lock", args, RateLimited)
    assert (err.amount, err.cap) == (1001, 1000)
    assert lock(net, A, "alice", B, "bob", 1000, timeout_height=known + 3).ok
    net.advance(B, 5)
    assert [e.type for r in net.relay(A, B) for e in r.events] == ["bridge.expired"]
    assert [e.type for r in net.relay(B, A) for e in r.events] == ["bridge.refunded"]
    assert bal(net, A, "alice", "usd") == DEFAULT_BALANCE


def test_no_lock_through_an_expired_client(net: LocalNet) -> None:
    """An expired client of the destination can never prove an expiry back: a transfer
    sent through it could not be refunded (as with a frozen one)."""
    net.time += 15 * 24 * 3600 * 1000  # past the trusting period of A's client of B
    args = {"denom": "usd", "amount": 5, "dest_chain": B, "recipient": addr(net, B, "bob")}
    err = refused(net, A, "alice", "bridge", "lock", args, ClientExpired)
    assert err.client_id == net[A].clients[B]


def test_large_transfers_wait_in_the_queue_and_pause_holds_them() -> None:
    net = make_net(limits={"delay_threshold": 500, "delay": 3})
    assert lock(net, A, "alice", B, "bob", 499).ok
    assert lock(net, A, "alice", B, "bob", 500).ok
    receipts = net.relay(A, B)
    assert [e.type for r in receipts for e in r.events] == ["bridge.minted", "bridge.queued"]
    assert bal(net, B, "bob", "chain-a/usd") == 499
    assert net[B].chain.query("bridge", "received", {"remote_chain": A, "nonce": 2}) == "queued"
    assert net.call(B, "gov", "bridge", "pause", {"remote_chain": A}).ok
    net.advance(B, 5)
    assert bal(net, B, "bob", "chain-a/usd") == 499  # paused: the queue holds
    assert net.call(B, "gov", "bridge", "unpause", {"remote_chain": A}).ok
    assert bal(net, B, "bob", "chain-a/usd") == 999
    assert net[B].chain.query("bridge", "received", {"remote_chain": A, "nonce": 2}) == (
        "delivered"
    )
    assert len(events_of(net, B, "bridge.minted")) == 2


@pytest.mark.parametrize("scope", [{"remote_chain": A}, {}])
def test_pause_stops_mint_release_and_new_transfers(net: LocalNet, scope: dict) -> None:
    assert lock(net, A, "alice", B, "bob", 10).ok
    (item,) = net.collect(A, B)
    assert net.call(B, "gov", "bridge", "pause", scope).ok
    err = refused(
        net, B, "relayer", "bridge", "mint", {"bundles": [item.proof.to_json()]}, BridgePaused
    )
    assert err.remote_chain == scope.get("remote_chain", "*")
    args = {"denom": "eur", "amount": 1, "dest_chain": A, "recipient": addr(net, A, "bob")}
    refused(net, B, "bob", "bridge", "lock", args, BridgePaused)
    assert net.call(B, "gov", "bridge", "unpause", scope).ok
    assert net.deliver(B, [item])[0].ok


def test_governance_registers_and_changes_paths_and_nobody_else(net: LocalNet) -> None:
    client = net[B].clients[A]
    for method, args in [
        ("register_path", {"remote_chain": "chain-z", "client_id": client}),
        ("update_path", {"remote_chain": A, "client_id": client}),
        ("set_limits", {"remote_chain": A, "cap": 1}),
        ("pause", {}),
        ("unpause", {"remote_chain": A}),
    ]:
        for who in ("alice", "relayer"):
            refused(net, B, who, "bridge", method, args, Unauthorized)
    refused(
        net,
        B,
        "gov",
        "bridge",
        "register_path",
        {"remote_chain": A, "client_id": client},
        PathExists,
    )
    err = refused(
        net,
        B,
        "gov",
        "bridge",
        "register_path",
        {"remote_chain": "chain-z", "client_id": client},
        ClientChainMismatch,
    )
    assert (err.expected, err.got) == ("chain-z", A)
    refused(
        net,
        B,
        "gov",
        "bridge",
        "register_path",
        {"remote_chain": B, "client_id": client},
        InvalidArgument,
    )
    refused(
        net,
        B,
        "gov",
        "bridge",
        "set_limits",
        {"remote_chain": A, "cap": 10, "delay_threshold": 11},
        InvalidArgument,
    )
    r = net.call(B, "gov", "bridge", "set_limits", {"remote_chain": A, "denom": "x1", "cap": 7})
    assert r.ok, r.error
    got = net[B].chain.query("bridge", "limits", {"remote_chain": A, "denom": "x1"})
    assert got == {"cap": 7, "window": 100, "delay_threshold": 0, "delay": 0}


@pytest.mark.parametrize(
    ("args", "error"),
    [
        ({"amount": 0}, InvalidArgument),
        ({"amount": -5}, InvalidArgument),
        ({"amount": True}, InvalidArgument),
        ({"amount": 2**63}, InvalidArgument),
        ({"amount": DEFAULT_BALANCE + 1}, InsufficientFunds),
        ({"recipient": "not-an-address"}, InvalidArgument),
        ({"dest_chain": "chain-z"}, UnknownPath),
        ({"dest_chain": "bad/chain"}, InvalidArgument),
        ({"denom": "u" * 128}, DenomTooLong),
        ({"timeout_height": 0}, InvalidArgument),
    ],
)
def test_hostile_lock_arguments_change_nothing(
    net: LocalNet, args: dict, error: type[Exception]
) -> None:
    if args.get("denom"):
        # a 128-char native denom exists, but its wrapped name would not be a denom
        net[A].chain.state.set(f"bank/supply/{args['denom']}", 1)
        net[A].chain.state.set(f"bank/bal/{addr(net, A, 'alice')}/{args['denom']}", 1)
        args = {**args, "amount": 1}
    base = {"denom": "usd", "amount": 5, "dest_chain": B, "recipient": addr(net, B, "bob")}
    refused(net, A, "alice", "bridge", "lock", {**base, **args}, error)  # type: ignore[arg-type]


def test_burn_refuses_a_native_denom(net: LocalNet) -> None:
    args = {"denom": "eur", "amount": 1, "recipient": addr(net, A, "bob")}
    refused(net, B, "bob", "bridge", "burn", args, NotWrapped)


@pytest.mark.parametrize(
    ("bundles", "error"),
    [
        (None, InvalidArgument),
        ([], InvalidArgument),
        ("x", InvalidArgument),
        ([{}], MalformedBundle),
        ([[1, 2]], MalformedBundle),
        ([None] * 600, InvalidArgument),
    ],
)
def test_hostile_bundles_change_nothing(net: LocalNet, bundles: object, error: type) -> None:
    for method in ("mint", "release", "refund"):
        refused(net, B, "relayer", "bridge", method, {"bundles": bundles}, error)


def test_a_batch_is_all_or_nothing(net: LocalNet) -> None:
    for amount in (1, 2, 3):
        assert lock(net, A, "alice", B, "bob", amount).ok
    items = net.collect(A, B)
    bundles = copy.deepcopy([i.proof.to_json() for i in items])
    bundles[2]["event"]["attributes"]["amount"] = 300  # type: ignore[index]
    r = net.produce(
        B, [net.tx(B, net.key(B, "relayer"), "bridge", "mint", {"bundles": bundles})]
    ).receipts[0]
    assert not r.ok
    assert r.code == "InvalidProof"
    assert get_supply(net[B].chain.state, "chain-a/usd") == 0
    assert all(r.ok for r in net.deliver(B, items))
    assert get_supply(net[B].chain.state, "chain-a/usd") == 6


@pytest.mark.parametrize("n", [1, 2, 3, 5, 8, 13, 33])
def test_prove_events_verify_against_the_header(n: int) -> None:
    net = make_net()
    txs = [
        net.tx(
            A,
            net.key(A, "alice"),
            "bank",
            "transfer",
            {"to": addr(net, A, "bob"), "denom": "usd", "amount": 1},
        )
        for _ in range(n)
    ]
    block = net.produce(A, txs)
    assert len(block.events) == n
    proofs = block.prove_events(range(n))
    assert [p.index for p in proofs] == list(range(n))
    for p in proofs:
        assert (p.tree_size, p.event) == (n, block.events[p.index])
        assert verify_inclusion(
            p.event.leaf(), p.index, block.header.event_count, p.proof, block.header.event_root
        )


def test_queries(net: LocalNet) -> None:
    q = net[A].chain.query
    assert q("bridge", "next_nonce", {"remote_chain": B}) == 1
    assert lock(net, A, "alice", B, "bob", 3).ok
    assert q("bridge", "next_nonce", {"remote_chain": B}) == 2
    sent = q("bridge", "sent", {"remote_chain": B, "nonce": 1})
    assert sent["kind"] == "escrow"
    assert sent["status"] == "sent"
    assert q("bridge", "escrow_address", {"remote_chain": B}) == escrow_address(B)
    assert [p["remote_chain"] for p in q("bridge", "paths", {})] == [B]  # type: ignore[union-attr]
    assert q("bridge", "paused", {}) is False
    assert q("bridge", "queue", {}) == []
    with pytest.raises(InvalidArgument):
        q("bridge", "nope", {"remote_chain": B})


def test_bridge_state_survives_a_restart() -> None:
    """Every bridge state value is plain JSON: a chain restored from its stored state (as
    the node does from SQLite) has the same state root and carries on bridging."""
    net = make_net(limits={"delay_threshold": 500, "delay": 2})
    assert lock(net, A, "alice", B, "bob", 600).ok
    assert lock(net, A, "alice", B, "bob", 5, timeout_height=net.client_height(B, A) + 1).ok
    net.advance(B, 2)
    net.relay(A, B)  # one queued, one expired
    assert net.call(B, "gov", "bridge", "pause", {"remote_chain": A}).ok
    side = net[B]
    items = {k: orjson.loads(orjson.dumps(v)) for k, v in side.chain.state.items()}
    assert side.chain.last_header is not None
    side.chain = Chain.restore(
        side.spec.genesis,
        side.chain.modules.values(),  # type: ignore[arg-type]
        items,
        side.chain.last_header,
        side.chain.last_validators,
    )
    assert net.call(B, "gov", "bridge", "unpause", {"remote_chain": A}).ok
    net.advance(B, 2)
    assert bal(net, B, "bob", "chain-a/usd") == 600
    refund, *_acks = net.relay(B, A)  # and B's earlier mints, acknowledged to A
    assert refund.events[0].type == "bridge.refunded"
