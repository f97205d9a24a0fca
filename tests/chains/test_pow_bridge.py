"""A lock on a proof-of-work chain minted on a BFT chain and back, with proofs.

The BFT chain holds a PoW client of the PoW chain (``chains.powclient``), fed by the
relayer's planner (``chains.powplan``); the PoW chain holds a BFT client of the BFT
chain. The mint is refused while the lock's block is not final, and happens once it is
``finality_depth`` deep; the burn back is released on the PoW chain."""

from __future__ import annotations

import pytest

from bridge.localnet import LocalNet
from chains.errors import InvalidPlan
from chains.pow import devnet_pow_params
from chains.powplan import plan_pow_headers
from chains.types import Header
from tests.chains.bridged import B, balance, bridged_net, client_view, update_client

W = "chain-w"
PARAMS = devnet_pow_params(finality_depth=3)


def pow_net() -> LocalNet:
    """B's client of W: a PoW client from W's first block."""

    def create(net: LocalNet, checkpoint: Header) -> dict[str, object]:
        return {"params": PARAMS.to_json(), "checkpoint": checkpoint.to_json(), "anchor_time": 0}

    return bridged_net(W, PARAMS, "create_pow_client", create)


def test_a_lock_on_a_pow_chain_is_minted_on_a_bft_chain_once_final_and_back() -> None:
    net = pow_net()
    usd, wrapped = net[W].spec.denom, f"{W}/{net[W].spec.denom}"
    alice_before = balance(net, W, "alice", usd)
    lock = {
        "denom": usd,
        "amount": 100,
        "dest_chain": B,
        "recipient": net.key(B, "bob").address,
    }
    r = net.call(W, "alice", "bridge", "lock", lock)
    assert r.ok, r.error
    lock_height = net[W].chain.height

    # the client follows the lock's block, but it is not final: nothing to relay yet,
    # and a mint forced through anyway is refused
    update_client(net, W, PARAMS)
    assert client_view(net, W)["best_height"] == lock_height
    assert net.pending(W, B) == []
    forced = net.deliver(B, net.pending(W, B, proven_only=False))
    assert [x.code for x in forced] == ["NotFinal"]
    assert balance(net, B, "bob", wrapped) == 0

    # finality_depth blocks on top: final, proven, minted
    net.advance(W, PARAMS.finality_depth)
    update_client(net, W, PARAMS)
    assert client_view(net, W)["final_height"] == lock_height
    receipts = net.deliver(B, net.pending(W, B))
    assert [x.ok for x in receipts] == [True]
    assert balance(net, B, "bob", wrapped) == 100
    assert net.pending(W, B) == []

    # and back: burn on the BFT chain, released on the PoW chain through its BFT client
    burn = {"denom": wrapped, "amount": 40, "recipient": net.key(W, "carol").address}
    r = net.call(B, "bob", "bridge", "burn", burn)
    assert r.ok, r.error
    assert all(x.ok for x in net.relay(B, W))
    assert balance(net, B, "bob", wrapped) == 60
    assert balance(net, W, "carol", usd) == balance(net, W, "dave", usd) + 40
    assert balance(net, W, "alice", usd) == alice_before - 100


def test_the_planner_submits_from_the_fork_point_in_runs() -> None:
    net = pow_net()
    net.advance(W, 7)
    update_client(net, W, PARAMS)
    assert client_view(net, W)["best_height"] == net[W].chain.height
    source = {h: b.header for h, b in net[W].blocks.items()}
    hashes = {h: hd.hash for h, hd in source.items()}
    runs = plan_pow_headers(8, 5, hashes, source, 8)
    assert runs == []
    runs = plan_pow_headers(
        3, 1, {1: source[1].hash, 2: source[2].hash, 3: source[3].hash}, source, 8, 2
    )
    assert [[h.height for h in run] for run in runs] == [[4, 5], [6, 7], [8]]
    other: dict[int, bytes] = {h: bytes(32) for h in range(5, 9)}
    with pytest.raises(InvalidPlan):  # no agreement at or above the final height
        plan_pow_headers(8, 5, other, source, 8)
    with pytest.raises(InvalidPlan):  # a needed source header is missing
        plan_pow_headers(3, 1, {1: source[1].hash}, {1: source[1], 2: source[2]}, 8)
    fork: dict[int, Header] = dict(source)
    assert plan_pow_headers(8, 5, {**hashes, 8: bytes(32)}, fork, 8) == [[source[8]]]
