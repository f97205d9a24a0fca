"""A lock on a proof-of-stake chain minted on a BFT chain and back, with proofs.

The BFT chain holds a PoS client of the PoS chain (``chains.posclient``), fed as a relayer
would: the planner's runs of headers from the fork point (``chains.powplan``, the same for
work and stake) and the stake tables they name (``plan_stake_tables``). The PoS chain
holds a BFT client of the BFT chain. The mint is refused while the lock's block is not
final, and happens once it is ``finality_depth`` deep; a stake change on the way reaches
the client through the epoch's last header; the burn back is released on the PoS chain."""

from __future__ import annotations

from bridge.localnet import LocalNet
from chains.crypto import PrivateKey
from chains.pos import devnet_pos_params
from chains.powplan import plan_stake_tables
from chains.types import Header
from tests.chains.bridged import B, balance, bridged_net, client_view, update_client

S = "chain-s"
PARAMS = devnet_pos_params(finality_depth=3)


def pos_net() -> LocalNet:
    """B's client of S: a PoS client from S's first block and the stake table after it."""

    def create(net: LocalNet, checkpoint: Header) -> dict[str, object]:
        return {
            "params": PARAMS.to_json(),
            "checkpoint": checkpoint.to_json(),
            "table": net[S].next_sets[1].to_json(),
        }

    return bridged_net(S, PARAMS, "create_pos_client", create)


def test_a_lock_on_a_pos_chain_is_minted_on_a_bft_chain_once_final_and_back() -> None:
    net = pos_net()
    usd, wrapped = net[S].spec.denom, f"{S}/{net[S].spec.denom}"
    alice_before = balance(net, S, "alice", usd)
    # dave bonds stake on the way: the client must learn the next epoch's table
    dave = net.key(S, "dave")
    bond = {"public_key": dave.public_key.hex(), "amount": 30}
    assert net.call(S, dave, "staking", "bond", bond).ok
    lock = {"denom": usd, "amount": 100, "dest_chain": B, "recipient": net.key(B, "bob").address}
    r = net.call(S, "alice", "bridge", "lock", lock)
    assert r.ok, r.error
    lock_height = net[S].chain.height

    # the client follows the lock's block, but it is not final: nothing to relay yet,
    # and a mint forced through anyway is refused
    update_client(net, S, PARAMS)
    assert client_view(net, S)["best_height"] == lock_height
    assert net.pending(S, B) == []
    forced = net.deliver(B, net.pending(S, B, proven_only=False))
    assert [x.code for x in forced] == ["NotFinal"]
    assert balance(net, B, "bob", wrapped) == 0

    # past the epoch boundary (8) and finality_depth blocks on top: final, proven, minted
    net.advance(S, max(PARAMS.finality_depth, PARAMS.epoch_length + 2 - lock_height))
    update_client(net, S, PARAMS)
    assert net[S].signed_by[net[S].chain.height].by_key.get(dave.public_key) == 30
    assert int(str(client_view(net, S)["final_height"])) >= lock_height
    receipts = net.deliver(B, net.pending(S, B))
    assert [x.ok for x in receipts] == [True]
    assert balance(net, B, "bob", wrapped) == 100
    assert net.pending(S, B) == []

    # and back: burn on the BFT chain, released on the PoS chain through its BFT client
    burn = {"denom": wrapped, "amount": 40, "recipient": net.key(S, "carol").address}
    r = net.call(B, "bob", "bridge", "burn", burn)
    assert r.ok, r.error
    assert all(x.ok for x in net.relay(B, S))
    assert balance(net, B, "bob", wrapped) == 60
    assert balance(net, S, "carol", usd) == balance(net, S, "bob", usd) + 40
    assert balance(net, S, "alice", usd) == alice_before - 100


def test_stake_tables_are_planned_once_per_distinct_table() -> None:
    net = pos_net()
    dave = net.key(S, "dave")
    assert net.call(
        S, dave, "staking", "bond", {"public_key": dave.public_key.hex(), "amount": 5}
    ).ok
    net.advance(S, 10)
    run = [net[S].blocks[h].header for h in range(2, 12)]
    tables = plan_stake_tables(run, net[S].signed_by)
    assert [t.hash for t in tables] == sorted(
        {h.validators_hash for h in run}, key=[h.validators_hash for h in run].index
    )
    assert len(tables) == 2  # the genesis table, and the one dave joined from height 9


def test_hostile_pos_client_calls_fail_and_change_nothing() -> None:
    net = pos_net()
    net.advance(S, 2)
    cid = net[B].clients[S]
    h = net[S].blocks[2].header
    table = net[S].signed_by[2]
    good_create = {"params": PARAMS.to_json(), "checkpoint": h.to_json(), "table": table.to_json()}
    cases: list[tuple[str, dict[str, object], str]] = [
        ("create_pos_client", {**good_create, "params": {"engine": "pos"}}, "InvalidArgument"),
        ("create_pos_client", {**good_create, "checkpoint": None}, "InvalidArgument"),
        ("create_pos_client", {**good_create, "table": [{"x": 1}]}, "InvalidArgument"),
        (
            "create_pos_client",
            {**good_create, "table": net[B].chain.validators.to_json()},
            "ValidatorSetMismatch",
        ),
        ("update_pos_client", {"client_id": cid, "headers": "x", "tables": []}, "InvalidArgument"),
        ("update_pos_client", {"client_id": cid, "headers": [], "tables": []}, "InvalidArgument"),
        ("update_pos_client", {"client_id": cid, "headers": [{}], "tables": []}, "InvalidArgument"),
        (
            "update_pos_client",
            {"client_id": cid, "headers": [h.to_json()], "tables": [table.to_json()] * 5},
            "InvalidArgument",
        ),
        (
            "update_pos_client",
            {"client_id": cid, "headers": [h.to_json()], "tables": [table.to_json()] * 65},
            "InvalidArgument",
        ),
        (
            "update_pos_client",
            {"client_id": "pos-99", "headers": [h.to_json()], "tables": []},
            "ClientNotFound",
        ),
    ]
    before = dict(net[B].chain.read_state().items("lightclient/"))
    for method, args, code in cases:
        r = net.call(B, "relayer", "lightclient", method, args)
        assert (r.ok, r.code) == (False, code), (method, r.error)
    # clients are rationed: an account holding nothing may not create one
    nobody = PrivateKey.derive("nobody")
    r = net.call(B, nobody, "lightclient", "create_pos_client", good_create)
    assert (r.ok, r.code) == (False, "ClientQuotaExceeded")
    assert dict(net[B].chain.read_state().items("lightclient/")) == before
