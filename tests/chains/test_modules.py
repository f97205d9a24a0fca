"""Bank, validators and light-client modules at their edges: genesis, queries, supply
changes, and the chain's composition rules."""

from __future__ import annotations

from typing import Any

import pytest

from chains.bank import BankModule, apply_burn, apply_mint, get_balance, get_supply
from chains.chain import Chain, Genesis
from chains.devnet import base_modules
from chains.errors import (
    ConfigError,
    InsufficientFunds,
    InvalidArgument,
    UnknownModule,
)
from chains.lightclient import decode_proof
from chains.module import BlockInfo
from chains.state import State
from chains.types import Event, Tx
from tests.chains.helpers import Driver, devnet

A, B = "aa" * 20, "bb" * 20


def test_mint_and_burn_move_supply_with_the_balance() -> None:
    s = State()
    apply_mint(s, A, "usd", 100)
    apply_mint(s, B, "usd", 50)
    assert get_supply(s, "usd") == 150
    apply_burn(s, A, "usd", 100)
    assert (get_balance(s, A, "usd"), get_supply(s, "usd")) == (0, 50)
    assert "bank/bal/" + A + "/usd" not in s
    apply_burn(s, B, "usd", 50)
    assert "bank/supply/usd" not in s


@pytest.mark.parametrize("amount", [0, -1])
def test_supply_changes_refuse_non_positive_amounts(amount: int) -> None:
    s = State()
    for op in (
        lambda: apply_mint(s, A, "usd", amount),
        lambda: apply_burn(s, A, "usd", amount),
    ):
        with pytest.raises(InvalidArgument):
            op()
    assert len(s) == 0


def test_burn_needs_the_balance_and_mint_caps_the_supply() -> None:
    s = State()
    apply_mint(s, A, "usd", 10)
    with pytest.raises(InsufficientFunds):
        apply_burn(s, A, "usd", 11)
    with pytest.raises(InvalidArgument):
        apply_mint(s, B, "usd", 2**63 - 10)
    assert (get_balance(s, A, "usd"), get_supply(s, "usd"), get_balance(s, B, "usd")) == (
        10,
        10,
        0,
    )


@pytest.mark.parametrize(
    "genesis",
    [
        {"balances": []},
        {"balances": {A: []}},
        {"balances": {"not-an-address": {"usd": 1}}},
        {"balances": {A: {"1bad": 1}}},
        {"balances": {A: {"usd": 0}}},
        {"balances": {A: {"usd": "1"}}},
    ],
)
def test_bank_genesis_refuses_malformed_balances(genesis: dict[str, Any]) -> None:
    with pytest.raises(InvalidArgument):
        BankModule().init_genesis(State(), genesis)


def test_queries() -> None:
    d = Driver(devnet("chain-a")[0])
    alice = d.key("alice").address
    c = d.chain
    assert c.query("bank", "balance", {"address": alice, "denom": "usd"}) == 10**12
    assert c.query("bank", "balances", {"address": alice}) == {"usd": 10**12}
    assert c.query("bank", "supply", {"denom": "usd"}) == len(d.dc.accounts) * 10**12  # with gov
    assert c.query("auth", "nonce", {"address": alice}) == 0
    assert c.query("validators", "next", {}) == d.dc.genesis.validators.to_json()
    for module, path, args in [
        ("bank", "nope", {}),
        ("bank", "supply", {"denom": 5}),
        ("bank", "balance", {"address": "x", "denom": "usd"}),
        ("auth", "nonce", {"address": 5}),
        ("validators", "nope", {}),
        ("lightclient", "nope", {"client_id": "lc-0"}),
        ("lightclient", "client", {}),
    ]:
        with pytest.raises(InvalidArgument):
            c.query(module, path, args)
    with pytest.raises(UnknownModule):
        c.query("nope", "x", {})


def test_light_client_queries(b_with_client: tuple[Driver, str]) -> None:
    a, cid = b_with_client
    client = a.chain.query("lightclient", "client", {"client_id": cid})
    assert client["latest_height"] == 1
    assert client["frozen_height"] == 0
    cons = a.chain.query("lightclient", "consensus_state", {"client_id": cid, "height": 1})
    assert set(cons) >= {"time", "event_root", "event_count", "next_validators_hash"}


@pytest.fixture
def b_with_client() -> tuple[Driver, str]:
    a, b = (Driver(dc) for dc in devnet("chain-a", "chain-b"))
    b.produce()
    args = {"update": b.update(1, 1).to_json(), "trusting_period": 10**6, "max_clock_drift": 10**4}
    (r,) = a.run("alice", "lightclient", "create_client", args).block.receipts
    assert r.ok, r.error
    return a, str(r.events[0].attributes["client_id"])


@pytest.mark.parametrize("tl", [[1], [1, 2, 3], ["1", "3"], [True, 3], "1/3", [1, 4], [0, 0]])
def test_create_client_refuses_a_malformed_trust_level(tl: object) -> None:
    a, b = (Driver(dc) for dc in devnet("chain-a", "chain-b"))
    b.produce()
    args = {
        "update": b.update(1, 1).to_json(),
        "trusting_period": 10**6,
        "max_clock_drift": 10**4,
        "trust_level": tl,
    }
    (r,) = a.run("alice", "lightclient", "create_client", args).block.receipts
    assert (r.ok, r.code) == (False, "InvalidArgument"), r.error


def test_decode_proof() -> None:
    from chains.errors import EncodingError

    assert decode_proof(["ab" * 32]) == [bytes.fromhex("ab" * 32)]
    for bad in (None, "ab" * 32, ["ab" * 31], ["AB" * 32], ["ab" * 32] * 65):
        with pytest.raises(EncodingError):
            decode_proof(bad)


# --- composition ---------------------------------------------------------------------


def test_module_names_are_unique_and_auth_is_reserved() -> None:
    g = devnet("chain-a")[0].genesis
    with pytest.raises(ConfigError):
        Chain(g, [*base_modules(), BankModule()])

    class Auth(BankModule):
        name = "auth"

    with pytest.raises(ConfigError):
        Chain(g, [*base_modules(), Auth()])


def test_genesis_for_an_unknown_module_is_refused() -> None:
    (dc,) = devnet("chain-a", extra_app_state={"nope": {"x": 1}})
    with pytest.raises(ConfigError):
        dc.build()


def test_genesis_round_trip_and_malformed() -> None:
    g = devnet("chain-a")[0].genesis
    assert Genesis.from_json(g.to_json()).hash == g.hash
    with pytest.raises(ConfigError):
        Genesis.from_json({"chain_id": "x"})


def test_a_module_cannot_emit_another_modules_events_at_end_block() -> None:
    class Forger(BankModule):
        name = "forger"

        def end_block(self, block: BlockInfo, state: State) -> list[Event]:
            return [Event("bank.transfer", {"amount": 10**9})]

    g = devnet("chain-a")[0].genesis
    chain = Chain(g, [*base_modules(), Forger()])
    with pytest.raises(RuntimeError, match="foreign event"):
        chain.produce_block([], 1_000, devnet("chain-a")[0].validator_keys)


def test_validators_module_limits() -> None:
    from chains.crypto import PrivateKey
    from chains.validators import MAX_VALIDATORS

    d = Driver(devnet("chain-a")[0])
    (r,) = d.run("gov", "validators", "nope", {}).block.receipts
    assert r.code == "UnknownMethod"
    txs = []
    nonce = d.nonce("gov")
    for i in range(MAX_VALIDATORS - 4 + 1):
        k = PrivateKey.derive("many", str(i))
        args = {"public_key": k.public_key.hex(), "power": 1}
        txs.append(Tx.create(d.key("gov"), d.chain_id, nonce + i, "validators", "set_power", args))
    res = d.produce(txs)
    codes = [r.code for r in res.block.receipts]
    assert codes[:-1] == ["ok"] * (MAX_VALIDATORS - 4)
    assert codes[-1] == "InvalidArgument"
    assert len(d.chain.validators.validators) == MAX_VALIDATORS
