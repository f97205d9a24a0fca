"""Transactions: signatures, chain binding, nonces, failure receipts, the bank, and
conservation of supply."""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.bank import get_balance, get_supply
from chains.chain import Chain
from chains.crypto import PrivateKey
from chains.encoding import sign_bytes
from chains.errors import (
    BadNonce,
    EncodingError,
    InterlockError,
    InvalidArgument,
    InvalidSignature,
    WrongChain,
)
from chains.module import BlockInfo, TxContext
from chains.state import State
from chains.types import Event, Tx, vote_sign_bytes
from tests.chains.helpers import Driver, devnet, transfer


@pytest.fixture
def a() -> Driver:
    return Driver(devnet("chain-a", "chain-b")[0])


@pytest.fixture
def b() -> Driver:
    return Driver(devnet("chain-a", "chain-b")[1])


def _bal(d: Driver, name: str) -> int:
    return get_balance(d.chain.state, d.key(name).address, d.dc.denom)


def _pay(d: Driver, frm: str, to: str, amount: int, nonce: int | None = None) -> Tx:
    n = d.nonce(frm) if nonce is None else nonce
    return transfer(d.key(frm), d.chain_id, n, d.key(to).address, amount, d.dc.denom)


# --- signatures -----------------------------------------------------------------------


def test_good_transfer_commits(a: Driver) -> None:
    before = _bal(a, "alice"), _bal(a, "bob")
    res = a.produce([_pay(a, "alice", "bob", 5)])
    (r,) = res.block.receipts
    assert r.ok
    assert r.code == "ok"
    assert (_bal(a, "alice"), _bal(a, "bob")) == (before[0] - 5, before[1] + 5)
    assert a.nonce("alice") == 1
    assert [e.type for e in r.events] == ["bank.transfer"]


def test_forged_signature_is_refused(a: Driver) -> None:
    tx = _pay(a, "alice", "bob", 5)
    sig = bytearray(tx.signature)
    sig[0] ^= 1
    forged = dataclasses.replace(tx, signature=bytes(sig))
    with pytest.raises(InvalidSignature):
        a.chain.check_tx(forged)
    root = a.chain.state.root()
    res = a.produce([forged])
    assert res.block.txs == ()
    assert isinstance(res.dropped[0][1], InvalidSignature)
    assert a.chain.state.root() == root
    assert a.nonce("alice") == 0


def test_signature_from_another_key_is_refused(a: Driver) -> None:
    tx = _pay(a, "alice", "bob", 5)
    mallory = PrivateKey.derive("mallory")
    stolen = dataclasses.replace(tx, signature=mallory.sign(tx.sign_bytes()))
    with pytest.raises(InvalidSignature):
        a.chain.check_tx(stolen)
    # the same transaction claimed by bob's key (bob's signature on alice's funds)
    as_bob = dataclasses.replace(tx, signature=a.key("bob").sign(tx.sign_bytes()))
    with pytest.raises(InvalidSignature):
        a.chain.check_tx(as_bob)


def test_changing_any_signed_field_breaks_the_signature(a: Driver) -> None:
    tx = _pay(a, "alice", "bob", 5)
    for change in (
        {"args": {**tx.args, "amount": 6}},
        {"args": {**tx.args, "to": a.key("carol").address}},
        {"method": "transfer2"},
        {"module": "bank2"},
        {"sender": a.key("bob").public_key},
    ):
        with pytest.raises(InvalidSignature):
            a.chain.check_tx(dataclasses.replace(tx, **change))


def test_cross_chain_replay_is_refused(a: Driver, b: Driver) -> None:
    tx_for_a = _pay(a, "alice", "bob", 5)
    # as is: the chain id does not match
    with pytest.raises(WrongChain):
        b.chain.check_tx(tx_for_a)
    res = b.produce([tx_for_a])
    assert res.block.txs == ()
    assert isinstance(res.dropped[0][1], WrongChain)
    # relabelled for chain-b: the signature covers the chain id
    relabelled = dataclasses.replace(tx_for_a, chain_id=b.chain_id)
    with pytest.raises(InvalidSignature):
        b.chain.check_tx(relabelled)
    assert b.nonce("alice") == 0


def test_a_vote_signature_never_verifies_as_a_transaction(a: Driver) -> None:
    """Domain separation: the same key signing the same bytes for another purpose."""
    tx = _pay(a, "alice", "bob", 5)
    key = a.key("alice")
    as_vote = dataclasses.replace(tx, signature=key.sign(sign_bytes("vote", tx.body())))
    with pytest.raises(InvalidSignature):
        a.chain.check_tx(as_vote)
    # and a real vote signature by that key is not a transaction signature either
    vote = key.sign(vote_sign_bytes(a.chain_id, 1, bytes(32)))
    with pytest.raises(InvalidSignature):
        a.chain.check_tx(dataclasses.replace(tx, signature=vote))
    # the undomained body is refused too
    raw = dataclasses.replace(tx, signature=key.sign(sign_bytes("tx", tx.body())[16:]))
    with pytest.raises(InvalidSignature):
        a.chain.check_tx(raw)


# --- nonces ---------------------------------------------------------------------------


def test_replayed_nonce_is_refused(a: Driver) -> None:
    tx = _pay(a, "alice", "bob", 5)
    a.produce([tx])
    with pytest.raises(BadNonce) as exc:
        a.chain.check_tx(tx)
    assert (exc.value.expected, exc.value.got) == (1, 0)
    before = _bal(a, "bob")
    res = a.produce([tx])
    assert res.block.txs == ()
    assert isinstance(res.dropped[0][1], BadNonce)
    assert _bal(a, "bob") == before


def test_replay_within_one_block_is_refused(a: Driver) -> None:
    tx = _pay(a, "alice", "bob", 5)
    res = a.produce([tx, tx])
    assert len(res.block.txs) == 1
    assert isinstance(res.dropped[0][1], BadNonce)


def test_nonce_gap_is_refused(a: Driver) -> None:
    with pytest.raises(BadNonce):
        a.chain.check_tx(_pay(a, "alice", "bob", 5, nonce=1))
    res = a.produce([_pay(a, "alice", "bob", 5, nonce=1)])
    assert res.block.txs == ()
    assert isinstance(res.dropped[0][1], BadNonce)
    assert a.nonce("alice") == 0


def test_nonces_in_order_within_one_block(a: Driver) -> None:
    txs = [_pay(a, "alice", "bob", 1, nonce=n) for n in range(5)]
    res = a.produce(txs)
    assert [r.ok for r in res.block.receipts] == [True] * 5
    assert a.nonce("alice") == 5


# --- failures -------------------------------------------------------------------------


def test_overdraft_fails_changes_nothing_but_the_nonce(a: Driver) -> None:
    alice, bob = _bal(a, "alice"), _bal(a, "bob")
    supply = get_supply(a.chain.state, a.dc.denom)
    res = a.produce([_pay(a, "alice", "bob", alice + 1)])
    (r,) = res.block.receipts
    assert not r.ok
    assert r.code == "InsufficientFunds"
    assert r.events == ()
    assert "has" in r.error
    assert (_bal(a, "alice"), _bal(a, "bob")) == (alice, bob)
    assert get_supply(a.chain.state, a.dc.denom) == supply
    assert a.nonce("alice") == 1
    assert res.block.header.event_count == 0


def test_transfer_of_a_denom_never_held_fails(a: Driver) -> None:
    tx = transfer(a.key("alice"), a.chain_id, 0, a.key("bob").address, 1, "zzz")
    (r,) = a.produce([tx]).block.receipts
    assert r.code == "InsufficientFunds"


@pytest.mark.parametrize(
    ("module", "method", "args", "code"),
    [
        ("nope", "transfer", {}, "UnknownModule"),
        ("bank", "steal", {}, "UnknownMethod"),
        ("bank", "transfer", {"denom": "usd", "amount": 1}, "InvalidArgument"),
        ("bank", "transfer", {"to": "ab" * 20, "denom": "usd", "amount": 0}, "InvalidArgument"),
        ("bank", "transfer", {"to": "ab" * 20, "denom": "usd", "amount": -5}, "InvalidArgument"),
        ("bank", "transfer", {"to": "ab" * 20, "denom": "usd", "amount": True}, "InvalidArgument"),
        ("bank", "transfer", {"to": "ab" * 20, "denom": "usd", "amount": "5"}, "InvalidArgument"),
        ("bank", "transfer", {"to": "AB" * 20, "denom": "usd", "amount": 5}, "InvalidArgument"),
        ("bank", "transfer", {"to": "ab" * 19, "denom": "usd", "amount": 5}, "InvalidArgument"),
        ("bank", "transfer", {"to": "ab" * 20, "denom": "1usd", "amount": 5}, "InvalidArgument"),
        ("bank", "transfer", {"to": "ab" * 20, "denom": "u", "amount": 5}, "InvalidArgument"),
        ("validators", "set_power", {"public_key": "00" * 32, "power": 5}, "Unauthorized"),
        ("lightclient", "update_client", {"client_id": "lc-0"}, "InvalidArgument"),
        ("lightclient", "create_client", {}, "InvalidArgument"),
        ("lightclient", "nope", {}, "UnknownMethod"),
    ],
)
def test_failing_calls_leave_typed_receipts(
    a: Driver, module: str, method: str, args: dict[str, Any], code: str
) -> None:
    root_items = dict(a.chain.state.items("bank/"))
    (r,) = a.run("alice", module, method, args).block.receipts
    assert (r.ok, r.code) == (False, code), r.error
    assert dict(a.chain.state.items("bank/")) == root_items
    assert a.nonce("alice") == 1


class _Writer:
    """A module that writes, emits, then fails: every write must roll back."""

    name = "writer"

    def init_genesis(self, state: State, genesis: Any) -> None:
        return None

    def deliver(self, ctx: TxContext, method: str, args: Any) -> None:
        from chains.bank import apply_transfer

        ctx.state.set("writer/x", 1)
        apply_transfer(ctx.state, ctx.sender, "ab" * 20, "usd", 7)
        ctx.emit("wrote", {"x": 1})
        if method == "fail":
            raise InvalidArgument("x", "fails after writing")
        if method == "crash":
            raise ZeroDivisionError
        if method == "bad_event":
            ctx.emit("bad", {"b": b"bytes are not canonical JSON"})
        if method == "bad_value":
            ctx.state.set("writer/bad", {"b": b"bytes are not canonical JSON"})

    def end_block(self, block: BlockInfo, state: State) -> list[Event]:
        return []

    def query(self, state: State, path: str, args: Any) -> Any:
        return None


def _writer_chain() -> Driver:
    from chains.devnet import base_modules

    d = Driver(devnet("chain-a")[0])
    d.chain = Chain(d.dc.genesis, [*base_modules(), _Writer()])
    return d


@pytest.mark.parametrize(
    ("method", "code"), [("fail", "InvalidArgument"), ("crash", "InternalError")]
)
def test_failed_tx_rolls_back_every_write(method: str, code: str) -> None:
    d = _writer_chain()
    d.produce()
    state_before = dict(d.chain.state.items())
    root_before = d.chain.state.root()
    res = d.run("alice", "writer", method, {})
    (r,) = res.block.receipts
    assert (r.ok, r.code, r.events) == (False, code, ())
    after = dict(d.chain.state.items())
    assert after.pop(f"auth/nonce/{d.key('alice').address}") == 1
    assert after == state_before
    assert res.block.header.event_count == 0
    assert root_before != d.chain.state.root()  # the nonce moved, nothing else
    res2 = d.run("alice", "writer", "ok", {})
    assert res2.block.receipts[0].ok
    assert d.chain.state.get("writer/x") == 1


@pytest.mark.parametrize("method", ["bad_event", "bad_value"])
def test_unencodable_output_fails_the_tx_not_the_chain(method: str) -> None:
    """A module bug emitting a non-JSON attribute or writing a non-JSON value must fail
    its own transaction, not halt block production (the state root could not be built)."""
    d = _writer_chain()
    res = d.run("alice", "writer", method, {})
    (r,) = res.block.receipts
    assert not r.ok
    assert d.chain.state.get("writer/x") is None
    assert d.chain.height == 1
    assert d.produce([_pay(d, "alice", "bob", 1)]).block.receipts[0].ok


# --- malformed wire transactions ------------------------------------------------------


def _wire(a: Driver) -> dict[str, Any]:
    return _pay(a, "alice", "bob", 5).to_json()


def test_wire_round_trip(a: Driver) -> None:
    tx = _pay(a, "alice", "bob", 5)
    back = Tx.from_json(tx.to_json())
    assert back == tx
    assert back.hash == tx.hash
    assert back.wire == tx.wire
    a.chain.check_tx(back)


@pytest.mark.parametrize(
    "key", ["chain_id", "sender", "nonce", "module", "method", "args", "signature"]
)
@pytest.mark.parametrize(
    "value", [None, True, 1.5, -1, 2**64, "", "x" * 5000, [], {}, "caf\u00e9", "AB" * 32]
)
def test_every_field_of_the_wrong_type_is_malformed(a: Driver, key: str, value: Any) -> None:
    d = _wire(a)
    if d[key] == value:
        return
    d[key] = value
    try:
        tx = Tx.from_json(d)
    except EncodingError:
        return
    # what still decodes must be refused when checked (a different signed body)
    with pytest.raises(InterlockError):
        a.chain.check_tx(tx)


@pytest.mark.parametrize(
    "key", ["chain_id", "sender", "nonce", "module", "method", "args", "signature"]
)
def test_a_missing_field_is_malformed(a: Driver, key: str) -> None:
    d = _wire(a)
    del d[key]
    with pytest.raises(EncodingError):
        Tx.from_json(d)


def test_an_extra_key_is_malformed(a: Driver) -> None:
    d = _wire(a)
    d["fee"] = 0
    with pytest.raises(EncodingError):
        Tx.from_json(d)


@pytest.mark.parametrize(
    "bad", [None, [], "tx", 5, {"args": {"nested": [[[[[[[[[[1]]]]]]]]]]}}, {"args": {1: 2}}]
)
def test_junk_is_malformed(a: Driver, bad: Any) -> None:
    if isinstance(bad, dict):
        d = _wire(a)
        d.update(bad)
        bad = d
    with pytest.raises(EncodingError):
        Tx.from_json(bad)


def test_oversized_tx_is_malformed(a: Driver) -> None:
    d = _wire(a)
    d["args"] = {f"k{i}": "x" * 4000 for i in range(20)}
    with pytest.raises(EncodingError):
        Tx.from_json(d)


def test_create_refuses_unencodable_args(a: Driver) -> None:
    with pytest.raises(EncodingError):
        Tx.create(a.key("alice"), a.chain_id, 0, "bank", "transfer", {"amount": 1.5})


def test_from_json_does_not_alias_its_input(a: Driver) -> None:
    d = _wire(a)
    tx = Tx.from_json(d)
    d["args"]["amount"] = 10**9
    assert tx.args["amount"] == 5


# --- conservation of supply -----------------------------------------------------------

ACCOUNTS = [f"u{i}" for i in range(8)]


@settings(max_examples=25, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(
                st.integers(0, len(ACCOUNTS) - 1),
                st.integers(0, len(ACCOUNTS) - 1),
                st.integers(1, 3_000),
                st.sampled_from(["usd", "usd", "usd", "eur"]),
                st.booleans(),
            ),
            max_size=12,
        ),
        min_size=1,
        max_size=4,
    )
)
def test_supply_is_conserved_under_random_transfers(blocks: list[list[Any]]) -> None:
    (dc,) = devnet("chain-c", accounts=ACCOUNTS, balance=2_000, denoms={"chain-c": "usd"})
    d = Driver(dc)
    addrs = [dc.accounts[n].address for n in ACCOUNTS]
    supply = get_supply(d.chain.state, "usd")
    total = sum(get_balance(d.chain.state, x, "usd") for x in addrs)
    nonces = dict.fromkeys(ACCOUNTS, 0)
    for block in blocks:
        txs = []
        for frm, to, amount, denom, good_nonce in block:
            name = ACCOUNTS[frm]
            n = nonces[name] if good_nonce else nonces[name] + 7
            txs.append(transfer(dc.accounts[name], d.chain_id, n, addrs[to], amount, denom))
            if good_nonce:
                nonces[name] += 1
        res = d.produce(txs)
        assert len(res.block.txs) + len(res.dropped) == len(txs)
        assert get_supply(d.chain.state, "usd") == supply
        assert sum(get_balance(d.chain.state, x, "usd") for x in addrs) == total
        assert all(get_balance(d.chain.state, x, "usd") >= 0 for x in addrs)
        assert get_supply(d.chain.state, "eur") == 0
        for r in res.block.receipts:
            assert r.ok or r.code == "InsufficientFunds"
    assert {n: d.chain.next_nonce(dc.accounts[n].address) for n in ACCOUNTS} == nonces


def test_self_transfer_needs_funds_and_changes_nothing(a: Driver) -> None:
    alice = _bal(a, "alice")
    (r,) = a.produce([_pay(a, "alice", "alice", alice)]).block.receipts
    assert r.ok
    assert _bal(a, "alice") == alice
    (r,) = a.produce([_pay(a, "alice", "alice", alice + 1)]).block.receipts
    assert r.code == "InsufficientFunds"


def test_a_transfer_of_everything_deletes_the_balance_key(a: Driver) -> None:
    alice = _bal(a, "alice")
    a.produce([_pay(a, "alice", "bob", alice)])
    assert f"bank/bal/{a.key('alice').address}/{a.dc.denom}" not in a.chain.state
    assert _bal(a, "alice") == 0


def test_check_tx_changes_nothing(a: Driver) -> None:
    tx = _pay(a, "alice", "bob", 5)
    before = copy.deepcopy(dict(a.chain.state.items()))
    a.chain.check_tx(tx)
    assert dict(a.chain.state.items()) == before


def test_event_wire_form_is_a_copy() -> None:
    from chains.types import Event

    event = Event("bank.transfer", {"amount": 5})
    wire = event.to_json()
    wire["attributes"]["amount"] = 6  # type: ignore[index]
    assert event.attributes["amount"] == 5


def test_receipt_from_json_refuses_unknown_and_missing_keys() -> None:
    from chains.errors import EncodingError
    from chains.types import Receipt

    good = Receipt(bytes(32), 1, 0, True, "ok", "", 0, ()).to_json()
    assert Receipt.from_json(good).height == 1
    with pytest.raises(EncodingError):
        Receipt.from_json({**good, "extra": 1})
    missing = dict(good)
    del missing["code"]
    with pytest.raises(EncodingError):
        Receipt.from_json(missing)
