"""The swap offer protocol, pure: the happy path and every refusal."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import orjson
import pytest

from chains.crypto import PrivateKey
from htlc.swap import ChainParams, Safety, SafetyPolicy
from interlock.errors import (
    ExpiredMessage,
    ForgedMessage,
    MalformedMessage,
    OfferError,
    OfferMismatch,
    OfferTaken,
    OversizedMessage,
    UnsafeAnswer,
)
from interlock.offers import (
    MAX_MESSAGE_BYTES,
    Leg,
    Offer,
    OfferBook,
    compute_terms,
    encode,
    make_acceptance,
    make_answer,
    make_offer,
    parse_acceptance,
    parse_answer,
    parse_offer,
    validate_answer_terms,
)

MAKER, TAKER, STRANGER = (PrivateKey.derive("offers-test", n) for n in ("maker", "taker", "x"))
NOW = 1_700_000_000_000
SAFETY = Safety(
    ChainParams("chain-a", block_interval_ms=200),
    ChainParams("chain-b", block_interval_ms=200),
    SafetyPolicy(reaction_ms=2_000, min_delta_ms=5_000),
)
HASHLOCK = hashlib.sha256(b"s" * 32).digest()


def offer(**kw: Any) -> Offer:
    give = Leg("chain-a", "usd", 100, MAKER.address)
    take = Leg("chain-b", "eur", 92, MAKER.address)
    return make_offer(kw.pop("key", MAKER), kw.pop("give", give), kw.pop("take", take),
                      expires_ms=kw.pop("expires_ms", NOW + 600_000))  # fmt: skip


def tamper(payload: bytes, **changes: Any) -> bytes:
    obj = json.loads(payload)
    for k, v in changes.items():
        if v is None:
            del obj[k]
        else:
            obj[k] = v
    return orjson.dumps(obj)


def accepted() -> tuple[Offer, Any]:
    o = offer()
    return o, make_acceptance(TAKER, o, address_a=TAKER.address, expires_ms=NOW + 60_000)


# --- the happy path ---------------------------------------------------------------------


def test_offer_accept_answer_give_both_sides_the_same_terms() -> None:
    o = offer()
    got = parse_offer(encode(o), now_ms=NOW, offer_id=o.offer_id.hex())
    assert got == o
    assert got.offer_id == o.offer_id
    acc = make_acceptance(TAKER, got, address_a=TAKER.address, expires_ms=NOW + 60_000)
    acc2 = parse_acceptance(encode(acc), o, now_ms=NOW)
    assert acc2 == acc
    ans, maker_terms = make_answer(
        MAKER, o, acc2, hashlock=HASHLOCK, safety=SAFETY, height_a=10, height_b=20
    )
    ans2 = parse_answer(encode(ans), got, acc)
    taker_terms = compute_terms(got, acc, ans2)
    assert taker_terms == maker_terms
    assert taker_terms.a.sender == MAKER.address
    assert taker_terms.a.receiver == TAKER.address
    assert taker_terms.b.sender == TAKER.address
    assert taker_terms.b.receiver == MAKER.address
    assert (taker_terms.a.amount, taker_terms.b.denom) == (100, "eur")
    validate_answer_terms(taker_terms, SAFETY, height_a=10, height_b=20, max_lock_ms=3_600_000)


def test_offer_id_names_every_term() -> None:
    a, b = offer(), offer()
    assert a.offer_id != b.offer_id  # fresh nonces
    assert len(encode(a)) < MAX_MESSAGE_BYTES // 2


# --- offers refused ---------------------------------------------------------------------


def test_forged_offer_refused() -> None:
    o = offer()
    payload = encode(o)
    give = {**o.give.to_json(), "amount": 1}
    with pytest.raises(ForgedMessage):
        parse_offer(tamper(payload, give=give), now_ms=NOW)
    with pytest.raises(ForgedMessage):
        parse_offer(tamper(payload, signature="00" * 64), now_ms=NOW)


def test_offer_in_someone_elses_name_refused() -> None:
    # a stranger signs an offer whose giving address is the maker's
    o = offer()
    obj = json.loads(encode(o))
    obj["maker"] = STRANGER.public_key.hex()
    with pytest.raises(MalformedMessage, match="signing key"):
        parse_offer(orjson.dumps(obj), now_ms=NOW)
    with pytest.raises(MalformedMessage, match="signing key"):
        offer(key=STRANGER)


def test_expired_offer_refused() -> None:
    o = offer(expires_ms=NOW + 1)
    parse_offer(encode(o), now_ms=NOW)
    with pytest.raises(ExpiredMessage):
        parse_offer(encode(o), now_ms=NOW + 1)
    with pytest.raises(MalformedMessage, match="days out"):
        parse_offer(encode(offer(expires_ms=NOW + 8 * 86_400_000)), now_ms=NOW)


def test_oversized_refused_before_parsing() -> None:
    with pytest.raises(OversizedMessage):
        parse_offer(b"{" * (MAX_MESSAGE_BYTES + 1), now_ms=NOW)


def test_offer_under_another_id_refused() -> None:
    a, b = offer(), offer()
    with pytest.raises(OfferMismatch):
        parse_offer(encode(a), now_ms=NOW, offer_id=b.offer_id.hex())


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[1]",
        b"null",
        b'{"v":1}',
        b'"\xff\xfe"',
    ],
)
def test_garbage_refused(payload: bytes) -> None:
    with pytest.raises(MalformedMessage):
        parse_offer(payload, now_ms=NOW)


@pytest.mark.parametrize(
    "changes",
    [
        {"v": 2},
        {"v": 1.0},
        {"v": True},
        {"v": "1"},
        {"kind": "accept"},
        {"extra": 1},
        {"nonce": None},
        {"maker": "AB" * 32},
        {"maker": "ab" * 31},
        {"nonce": "zz" * 16},
        {"expires": -1},
        {"expires": 2**63},
        {"expires": "soon"},
        {"give": "100usd@chain-a"},
        {"give": {"chain_id": "chain-a", "denom": "usd", "amount": 100}},
        {"take": {"chain_id": "chain-a", "denom": "eur", "amount": 92, "address": "a" * 40}},
        {"take": {"chain_id": "chain b", "denom": "eur", "amount": 92, "address": "a" * 40}},
        {"take": {"chain_id": "chain-b", "denom": "e\u00fc", "amount": 92, "address": "a" * 40}},
        {"take": {"chain_id": "chain-b", "denom": "eur", "amount": 0, "address": "a" * 40}},
        {"take": {"chain_id": "chain-b", "denom": "eur", "amount": True, "address": "a" * 40}},
        {"take": {"chain_id": "chain-b", "denom": "eur", "amount": 9, "address": "A" * 40}},
    ],
)
def test_malformed_offer_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(MalformedMessage):
        parse_offer(tamper(encode(offer()), **changes), now_ms=NOW)


def test_bad_terms_cannot_be_signed() -> None:
    with pytest.raises(MalformedMessage):
        offer(take=Leg("chain-a", "eur", 92, MAKER.address))
    with pytest.raises(MalformedMessage):
        offer(take=Leg("chain-b", "eur", 0, MAKER.address))


# --- acceptances refused ------------------------------------------------------------------


def test_forged_acceptance_refused() -> None:
    o, acc = accepted()
    with pytest.raises(ForgedMessage):
        parse_acceptance(tamper(encode(acc), address_a=STRANGER.address), o, now_ms=NOW)


def test_acceptance_of_another_offer_refused() -> None:
    _o, acc = accepted()
    with pytest.raises(OfferMismatch):
        parse_acceptance(encode(acc), offer(), now_ms=NOW)


def test_acceptance_expired_or_of_an_expired_offer_refused() -> None:
    o, acc = accepted()
    with pytest.raises(ExpiredMessage, match="accept"):
        parse_acceptance(encode(acc), o, now_ms=NOW + 60_000)
    short = offer(expires_ms=NOW + 10)
    acc = make_acceptance(TAKER, short, address_a=TAKER.address, expires_ms=NOW + 60_000)
    with pytest.raises(ExpiredMessage, match="offer"):
        parse_acceptance(encode(acc), short, now_ms=NOW + 10)


def test_acceptance_locking_from_another_key_refused() -> None:
    o, acc = accepted()
    with pytest.raises(MalformedMessage, match="address_b"):
        parse_acceptance(tamper(encode(acc), address_b=STRANGER.address), o, now_ms=NOW)


@pytest.mark.parametrize(
    "changes", [{"kind": "offer"}, {"address_a": "xyz"}, {"taker": None}, {"expires": 1.5}]
)
def test_malformed_acceptance_refused(changes: dict[str, Any]) -> None:
    o, acc = accepted()
    with pytest.raises(MalformedMessage):
        parse_acceptance(tamper(encode(acc), **changes), o, now_ms=NOW)


def test_replayed_acceptance_refused_by_the_book() -> None:
    o, acc = accepted()
    book = OfferBook()
    book.record(parse_acceptance(encode(acc), o, now_ms=NOW))
    with pytest.raises(OfferTaken):
        book.record(parse_acceptance(encode(acc), o, now_ms=NOW))
    other = make_acceptance(STRANGER, o, address_a=STRANGER.address, expires_ms=NOW + 1000)
    with pytest.raises(OfferTaken):
        book.validate_fresh(other)
    assert book.taken == {o.offer_id: acc.accept_id}


# --- answers refused ----------------------------------------------------------------------


def _answer() -> tuple[Offer, Any, Any]:
    o, acc = accepted()
    ans, _ = make_answer(MAKER, o, acc, hashlock=HASHLOCK, safety=SAFETY, height_a=1, height_b=1)
    return o, acc, ans


def test_forged_answer_refused() -> None:
    o, acc, ans = _answer()
    with pytest.raises(ForgedMessage):
        parse_answer(tamper(encode(ans), timelock_b=ans.timelock_b + 1000), o, acc)
    # a valid answer signed by anyone but the maker
    fake, _ = make_answer(STRANGER, o, acc, hashlock=HASHLOCK, safety=SAFETY, height_a=1,
                          height_b=1)  # fmt: skip
    with pytest.raises(ForgedMessage):
        parse_answer(encode(fake), o, acc)


def test_replayed_answer_to_an_earlier_acceptance_refused() -> None:
    o, acc, ans = _answer()
    again = make_acceptance(TAKER, o, address_a=TAKER.address, expires_ms=NOW + 60_000)
    with pytest.raises(OfferMismatch, match="another acceptance"):
        parse_answer(encode(ans), o, again)
    with pytest.raises(OfferMismatch, match="another offer"):
        parse_answer(encode(ans), offer(), acc)


@pytest.mark.parametrize(
    "changes", [{"hashlock": "00"}, {"timelock_a": 0}, {"kind": "offer"}, {"x": None}]
)
def test_malformed_answer_refused(changes: dict[str, Any]) -> None:
    o, acc, ans = _answer()
    changes = {k: v for k, v in changes.items() if k != "x"} or {"extra": 1}
    with pytest.raises(MalformedMessage):
        parse_answer(tamper(encode(ans), **changes), o, acc)


def test_unsafe_answer_refused_by_the_taker() -> None:
    o, acc, ans = _answer()
    terms = compute_terms(o, acc, ans)
    validate_answer_terms(terms, SAFETY, height_a=1, height_b=1, max_lock_ms=3_600_000)
    # later: the maker's timelock on A no longer leaves Δ over ours on B
    with pytest.raises(UnsafeAnswer):
        validate_answer_terms(
            terms, SAFETY, height_a=terms.a.timelock - 5, height_b=1, max_lock_ms=3_600_000
        )
    # our funds held longer than we allow
    with pytest.raises(UnsafeAnswer, match="held"):
        validate_answer_terms(terms, SAFETY, height_a=1, height_b=1, max_lock_ms=1_000)


def test_every_refusal_is_one_line() -> None:
    o = offer()
    for bad in (b"x" * 5000, b"nope", tamper(encode(o), signature="00" * 64)):
        with pytest.raises(OfferError) as info:
            parse_offer(bad, now_ms=NOW)
        assert "\n" not in str(info.value)
        assert len(str(info.value)) < 200


# --- the commands refuse hostile input in one line, before touching bus or chains ----------

DEAD = "http://127.0.0.1:9"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["offer", "--give", "100usd", "--take", "92eur@chain-b", "--key", "devnet:a"],
         "bad leg"),
        (["offer", "--give", "1.5usd@chain-a", "--take", "92eur@chain-b", "--key", "devnet:a"],
         "whole units"),
        (["offer", "--give", "1usd@chain-a", "--take", "2eur@chain-a", "--key", "devnet:a"],
         "different chains"),
        (["offer", "--give", "1usd@chain-a", "--take", "2eur@chain-b", "--key", "devnet:a"],
         "no bus"),
        (["offer", "--give", "1usd@chain-a", "--take", "2eur@chain-b", "--key", "devnet:a",
          "--bus-url", "memory://"], "reaches no one"),
        (["offer", "--give", "1usd@chain-a", "--take", "2eur@chain-b", "--key", "devnet:a",
          "--expires", "forever", "--bus-url", "mqtt://127.0.0.1:9"], "bad duration"),
        (["accept", "xyz", "--key", "devnet:b", "--bus-url", "mqtt://127.0.0.1:9"],
         "bad offer id"),
        (["status", "ab" * 4], "not found"),
        (["offers", "--bus-url", "ftp://x"], "bad bus URL"),
    ],
)  # fmt: skip
def test_commands_refuse_hostile_input_in_one_line(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Any,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    from interlock.cli import main

    monkeypatch.setenv("INTERLOCK_HOME", str(tmp_path))
    monkeypatch.delenv("INTERLOCK_BUS_URL", raising=False)
    monkeypatch.delenv("INTERLOCK_RPC", raising=False)
    code = main(["swap", *argv])
    out, err = capsys.readouterr()
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1, err
    assert message in err
    assert not (tmp_path / "swaps").exists()  # nothing recorded


def test_the_makers_terms_leave_its_driver_the_default_margins_blocks_later() -> None:
    """The maker plans with MAKER_POLICY at the heights of its answer, and its driver
    locks a few blocks later judged by the engine's default policy (as the taker's is).
    Judged by MAKER_POLICY itself the plan is its bare minimum, too late a block on: the
    maker's driver once aborted its own swap so ("606 blocks left, needs at least 607")."""
    from htlc.errors import InsufficientTime
    from interlock.offer_steps import MAKER_POLICY

    params = (ChainParams("chain-a", 200), ChainParams("chain-b", 200))
    planned = Safety(*params, MAKER_POLICY)
    o, acc = accepted()
    _, terms = make_answer(
        MAKER, o, acc, hashlock=HASHLOCK, safety=planned, height_a=1_000, height_b=500
    )
    later = 10_000 // 200  # 10 s of blocks between the answer and the maker's lock
    Safety(*params, SafetyPolicy()).validate_terms(terms, 1_000 + later, 500 + later)
    with pytest.raises(InsufficientTime):
        planned.validate_terms(terms, 1_001, 501)
