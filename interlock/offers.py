"""Swap offers over the bus: two parties who do not trust each other agree on HTLC swap
terms. Pure: every function takes the time (Unix ms) and chain heights as arguments.

Three signed messages, each one JSON object (the format is in README.md, "Swap offers"):

1. **offer** (the maker, who will be the swap's *initiator*): give ``amount denom`` on
   chain A from the maker's address there, take ``amount denom`` on chain B to the
   maker's address there, until ``expires``; a random ``nonce`` makes two offers of the
   same terms different. Signed by the maker's key, whose address must be the giving
   address (an offer in someone else's name cannot be signed). Its **offer id** is
   ``SHA-256`` of the signed bytes, so the id names every term.
2. **accept** (the taker, the *participant*): names the offer id, the taker's address on
   A (paid by the maker's lock) and on B (the taker's key: it locks there), and an
   expiry of its own (how long the taker waits for an answer). Its **accept id** is
   ``SHA-256`` of its signed bytes.
3. **answer** (the maker): names the offer id and the accept id, the hashlock (the maker
   keeps the secret) and the two timelocks planned by :func:`htlc.swap.plan_swap` from
   both chains' heights and the :class:`~htlc.swap.Safety` rules.

From the three, both sides compute the same :class:`~htlc.swap.SwapTerms`
(:func:`compute_terms`) and run their swap drivers. Each signature is over
``sign_bytes("swap-offer" | "swap-accept" | "swap-answer", message without its
signature)``: no signature is valid for another message kind, a transaction or a vote.

Refusals (every parse/validate raises an :class:`~interlock.errors.OfferError` and changes
nothing), cheapest first: size (before parsing), JSON shape, field formats, expiry, the
binding to the offer/acceptance it names, and the ed25519 signature last. Replays are the
:class:`OfferBook`'s job: a second acceptance of one offer is refused, and an answer can
only match the one acceptance it names (an acceptance carries a fresh nonce).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import orjson

from chains.crypto import PrivateKey, address, verify
from chains.encoding import MAX_INT, sign_bytes
from htlc.errors import InsufficientTime, InvalidTerms
from htlc.swap import Safety, SwapTerms, plan_swap
from htlc.types import LockTerms
from interlock.errors import (
    ExpiredMessage,
    ForgedMessage,
    MalformedMessage,
    OfferMismatch,
    OfferTaken,
    OversizedMessage,
    UnsafeAnswer,
)

__all__ = [
    "ACCEPTS_TOPIC",
    "ANSWERS_TOPIC",
    "MAX_LIFETIME_MS",
    "MAX_MESSAGE_BYTES",
    "OFFERS_FILTER",
    "OFFERS_TOPIC",
    "Acceptance",
    "Answer",
    "Leg",
    "Offer",
    "OfferBook",
    "compute_terms",
    "encode",
    "make_acceptance",
    "make_answer",
    "make_offer",
    "parse_acceptance",
    "parse_answer",
    "parse_offer",
    "validate_answer_terms",
]

OFFERS_TOPIC = "interlock/v1/swaps/offers/{offer_id}"
"""Retained: the open offer (an empty retained payload withdraws it)."""
OFFERS_FILTER = "interlock/v1/swaps/offers/+"
ACCEPTS_TOPIC = "interlock/v1/swaps/accepts/{offer_id}"
"""Not retained: acceptances of one offer, read by its maker."""
ANSWERS_TOPIC = "interlock/v1/swaps/answers/{offer_id}"
"""Retained: the maker's answer (a taker that reconnects still finds it)."""

MAX_MESSAGE_BYTES = 2048
"""A real message is under 700 bytes; anything larger is refused before parsing."""
MAX_LIFETIME_MS = 7 * 86_400_000
"""An offer or acceptance may not claim to stay valid longer than this."""
MAX_CLOCK_SKEW_MS = 60_000

_CHAIN_ID = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_DENOM = re.compile(r"[A-Za-z][A-Za-z0-9/:._-]{1,127}")
_ADDRESS = re.compile(r"[0-9a-f]{40}")
_HEX = re.compile(r"[0-9a-f]*")

_OFFER_KEYS = frozenset({"v", "kind", "maker", "give", "take", "expires", "nonce", "signature"})
_LEG_KEYS = frozenset({"chain_id", "denom", "amount", "address"})
_ACCEPT_KEYS = frozenset(
    {"v", "kind", "offer_id", "taker", "address_a", "address_b", "expires", "nonce", "signature"}
)
_ANSWER_KEYS = frozenset(
    {"v", "kind", "offer_id", "accept_id", "hashlock", "timelock_a", "timelock_b", "signature"}
)
DOMAINS = {"offer": "swap-offer", "accept": "swap-accept", "answer": "swap-answer"}


# --- values ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Leg:
    """One side of an offer: what moves on one chain, and the maker's address there."""

    chain_id: str
    """The chain."""
    denom: str
    """The asset."""
    amount: int
    """How much (whole base units, > 0)."""
    address: str
    """The maker's address on this chain (sender on the give leg, receiver on take)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "chain_id": self.chain_id,
            "denom": self.denom,
            "amount": self.amount,
            "address": self.address,
        }


@dataclass(frozen=True, slots=True)
class Offer:
    """A maker's signed offer."""

    maker: bytes
    """The maker's ed25519 public key (its address is ``give.address``)."""
    give: Leg
    """What the maker locks (chain A of the swap)."""
    take: Leg
    """What the maker wants (chain B of the swap)."""
    expires_ms: int
    """Unix ms after which the offer is void."""
    nonce: bytes
    """16 random bytes."""
    signature: bytes
    """Maker's signature over :meth:`signed_bytes`."""
    offer_id: bytes = field(default=b"", init=False, compare=False)
    """``SHA-256(signed bytes)`` (derived)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "offer_id", hashlib.sha256(self.signed_bytes()).digest())

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "offer",
            "maker": self.maker.hex(),
            "give": self.give.to_json(),
            "take": self.take.to_json(),
            "expires": self.expires_ms,
            "nonce": self.nonce.hex(),
        }

    def signed_bytes(self) -> bytes:
        return sign_bytes(DOMAINS["offer"], self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature.hex()}


@dataclass(frozen=True, slots=True)
class Acceptance:
    """A taker's signed acceptance of one offer."""

    offer_id: bytes
    """The offer accepted (binds every term)."""
    taker: bytes
    """The taker's ed25519 public key (its address is ``address_b``)."""
    address_a: str
    """The taker's address on chain A: paid by the maker's lock."""
    address_b: str
    """The taker's address on chain B: it locks there."""
    expires_ms: int
    """Unix ms after which the taker no longer waits for an answer."""
    nonce: bytes
    """16 random bytes: an answer to an earlier acceptance never matches this one."""
    signature: bytes
    """Taker's signature over :meth:`signed_bytes`."""
    accept_id: bytes = field(default=b"", init=False, compare=False)
    """``SHA-256(signed bytes)`` (derived)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "accept_id", hashlib.sha256(self.signed_bytes()).digest())

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "accept",
            "offer_id": self.offer_id.hex(),
            "taker": self.taker.hex(),
            "address_a": self.address_a,
            "address_b": self.address_b,
            "expires": self.expires_ms,
            "nonce": self.nonce.hex(),
        }

    def signed_bytes(self) -> bytes:
        return sign_bytes(DOMAINS["accept"], self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature.hex()}


@dataclass(frozen=True, slots=True)
class Answer:
    """The maker's signed answer: the hashlock and the planned timelocks."""

    offer_id: bytes
    """The offer."""
    accept_id: bytes
    """The one acceptance answered."""
    hashlock: bytes
    """``SHA-256(secret)``; the maker keeps the secret."""
    timelock_a: int
    """Expiry height of the maker's lock on chain A."""
    timelock_b: int
    """Expiry height of the taker's lock on chain B."""
    signature: bytes
    """Maker's signature over :meth:`signed_bytes`."""

    def body(self) -> dict[str, Any]:
        return {
            "v": 1,
            "kind": "answer",
            "offer_id": self.offer_id.hex(),
            "accept_id": self.accept_id.hex(),
            "hashlock": self.hashlock.hex(),
            "timelock_a": self.timelock_a,
            "timelock_b": self.timelock_b,
        }

    def signed_bytes(self) -> bytes:
        return sign_bytes(DOMAINS["answer"], self.body())

    def to_json(self) -> dict[str, Any]:
        return {**self.body(), "signature": self.signature.hex()}


def encode(message: Offer | Acceptance | Answer) -> bytes:
    """The payload to publish: canonical JSON of the message with its signature."""
    return orjson.dumps(message.to_json(), option=orjson.OPT_SORT_KEYS)


# --- making ------------------------------------------------------------------------------


def _validate_leg(leg: Leg, what: str) -> None:
    if not _CHAIN_ID.fullmatch(leg.chain_id):
        raise MalformedMessage(what, f"bad chain id {leg.chain_id[:70]!r}")
    if not _DENOM.fullmatch(leg.denom):
        raise MalformedMessage(what, f"bad denom {leg.denom[:70]!r}")
    if not 0 < leg.amount <= MAX_INT:
        raise MalformedMessage(what, f"amount must be 1..{MAX_INT}")
    if not _ADDRESS.fullmatch(leg.address):
        raise MalformedMessage(what, "address must be 40 lowercase hex digits")


def _validate_offer_terms(offer: Offer) -> None:
    if offer.give.chain_id == offer.take.chain_id:
        raise MalformedMessage("offer", "give and take must be on different chains")
    if address(offer.maker) != offer.give.address:
        raise MalformedMessage("offer", "the giving address is not the signing key's")


def make_offer(
    key: PrivateKey, give: Leg, take: Leg, *, expires_ms: int, nonce: bytes | None = None
) -> Offer:
    """Sign an offer (raises MalformedMessage for terms no one would accept)."""
    _validate_leg(give, "give")  # before anything is encoded
    _validate_leg(take, "take")
    offer = Offer(key.public_key, give, take, expires_ms, nonce or os.urandom(16), b"")
    _validate_offer_terms(offer)
    return _sign(offer, key)


def make_acceptance(
    key: PrivateKey, offer: Offer, *, address_a: str, expires_ms: int, nonce: bytes | None = None
) -> Acceptance:
    """Sign an acceptance of ``offer``: the taker locks on B with ``key`` and is paid on A
    at ``address_a``."""
    if not _ADDRESS.fullmatch(address_a):
        raise MalformedMessage("address_a", "expected 40 lowercase hex digits")
    acc = Acceptance(
        offer.offer_id, key.public_key, address_a, key.address, expires_ms,
        nonce or os.urandom(16), b"",
    )  # fmt: skip
    return _sign(acc, key)


def make_answer(
    key: PrivateKey,
    offer: Offer,
    acceptance: Acceptance,
    *,
    hashlock: bytes,
    safety: Safety,
    height_a: int,
    height_b: int,
    window_ms: int = 0,
) -> tuple[Answer, SwapTerms]:
    """The maker's answer, with timelocks from :func:`plan_swap` at the given heights."""
    if (safety.a.chain_id, safety.b.chain_id) != (offer.give.chain_id, offer.take.chain_id):
        raise OfferMismatch("safety rules", "they are for other chains than the offer's")
    if acceptance.offer_id != offer.offer_id:
        raise OfferMismatch("acceptance", "it names another offer")
    terms = plan_swap(
        safety,
        initiator_a=offer.give.address,
        participant_a=acceptance.address_a,
        participant_b=acceptance.address_b,
        initiator_b=offer.take.address,
        give=(offer.give.denom, offer.give.amount),
        take=(offer.take.denom, offer.take.amount),
        hashlock=hashlock,
        height_a=height_a,
        height_b=height_b,
        window_ms=window_ms,
    )
    ans = Answer(
        offer.offer_id, acceptance.accept_id, hashlock, terms.a.timelock, terms.b.timelock, b""
    )
    return _sign(ans, key), terms


_M = TypeVar("_M", Offer, Acceptance, Answer)


def _sign(message: _M, key: PrivateKey) -> _M:
    # replace() re-runs __post_init__, which derives the id from the signed bytes
    return replace(message, signature=key.sign(message.signed_bytes()))


def compute_terms(offer: Offer, acceptance: Acceptance, answer: Answer) -> SwapTerms:
    """The swap both sides run: the maker initiates on A, the taker participates on B."""
    try:
        return SwapTerms(
            LockTerms(
                offer.give.chain_id, offer.give.address, acceptance.address_a,
                offer.give.denom, offer.give.amount, answer.hashlock, answer.timelock_a,
            ),
            LockTerms(
                offer.take.chain_id, acceptance.address_b, offer.take.address,
                offer.take.denom, offer.take.amount, answer.hashlock, answer.timelock_b,
            ),
        )  # fmt: skip
    except InvalidTerms as exc:
        raise MalformedMessage("answer", str(exc)) from None


# --- parsing untrusted payloads -------------------------------------------------------------


def _load(payload: bytes, kind: str, keys: frozenset[str]) -> dict[str, Any]:
    if len(payload) > MAX_MESSAGE_BYTES:
        raise OversizedMessage(len(payload), MAX_MESSAGE_BYTES)
    try:
        obj = orjson.loads(payload)
    except orjson.JSONDecodeError:
        raise MalformedMessage(kind, "not JSON") from None
    if not isinstance(obj, dict):
        raise MalformedMessage(kind, "expected a JSON object")
    v = obj.get("v")
    if type(v) is not int or v != 1:
        raise MalformedMessage(kind, f"unsupported version {str(v)[:20]!r}")
    if obj.get("kind") != kind:
        raise MalformedMessage(kind, f"kind is {str(obj.get('kind'))[:20]!r}, not {kind!r}")
    if set(obj) != keys:
        extra, missing = sorted(set(obj) - keys), sorted(keys - set(obj))
        raise MalformedMessage(kind, f"unknown keys {extra[:3]}" if extra else f"missing {missing}")
    return obj


def _hex(obj: Mapping[str, Any], name: str, size: int, kind: str) -> bytes:
    v = obj.get(name)
    if not isinstance(v, str) or len(v) != 2 * size or not _HEX.fullmatch(v):
        raise MalformedMessage(kind, f"{name} must be {2 * size} lowercase hex digits")
    return bytes.fromhex(v)


def _int(obj: Mapping[str, Any], name: str, kind: str, lo: int = 0) -> int:
    v = obj.get(name)
    if type(v) is not int or not lo <= v <= MAX_INT:
        raise MalformedMessage(kind, f"{name} must be an integer in {lo}..2^63-1")
    return v


def _str(obj: Mapping[str, Any], name: str, kind: str) -> str:
    v = obj.get(name)
    if not isinstance(v, str):
        raise MalformedMessage(kind, f"{name} must be a string")
    return v


def _leg(obj: Mapping[str, Any], name: str) -> Leg:
    d = obj.get(name)
    if not isinstance(d, dict) or set(d) != _LEG_KEYS:
        raise MalformedMessage("offer", f"{name} must be an object of {sorted(_LEG_KEYS)}")
    leg = Leg(_str(d, "chain_id", name), _str(d, "denom", name), _int(d, "amount", name, 1),
              _str(d, "address", name))  # fmt: skip
    _validate_leg(leg, name)
    return leg


def _check_expiry(kind: str, expires_ms: int, now_ms: int) -> None:
    if expires_ms <= now_ms:
        raise ExpiredMessage(kind, expires_ms, now_ms)
    if expires_ms - now_ms > MAX_LIFETIME_MS:
        raise MalformedMessage(kind, f"expires more than {MAX_LIFETIME_MS // 86_400_000} days out")


def _check_signature(kind: str, public_key: bytes, message: bytes, signature: bytes) -> None:
    if not verify(public_key, message, signature):
        raise ForgedMessage(kind)


def parse_offer(payload: bytes, *, now_ms: int, offer_id: str | None = None) -> Offer:
    """An untrusted offer payload, checked; ``offer_id`` (hex, from the topic) must be
    its id. Raises an OfferError, cheap checks first, the signature last."""
    obj = _load(payload, "offer", _OFFER_KEYS)
    maker = _hex(obj, "maker", 32, "offer")
    nonce = _hex(obj, "nonce", 16, "offer")
    signature = _hex(obj, "signature", 64, "offer")
    expires = _int(obj, "expires", "offer")
    offer = Offer(maker, _leg(obj, "give"), _leg(obj, "take"), expires, nonce, signature)
    _check_expiry("offer", expires, now_ms)
    _validate_offer_terms(offer)
    if offer_id is not None and offer_id != offer.offer_id.hex():
        raise OfferMismatch("offer", "published under another offer id")
    _check_signature("offer", maker, offer.signed_bytes(), signature)
    return offer


def parse_acceptance(payload: bytes, offer: Offer, *, now_ms: int) -> Acceptance:
    """An untrusted acceptance of ``offer`` (an open offer: checked here too)."""
    obj = _load(payload, "accept", _ACCEPT_KEYS)
    acc = Acceptance(
        _hex(obj, "offer_id", 32, "accept"),
        _hex(obj, "taker", 32, "accept"),
        _str(obj, "address_a", "accept"),
        _str(obj, "address_b", "accept"),
        _int(obj, "expires", "accept"),
        _hex(obj, "nonce", 16, "accept"),
        _hex(obj, "signature", 64, "accept"),
    )
    for name in ("address_a", "address_b"):
        if not _ADDRESS.fullmatch(getattr(acc, name)):
            raise MalformedMessage("accept", f"{name} must be 40 lowercase hex digits")
    _check_expiry("accept", acc.expires_ms, now_ms)
    _check_expiry("offer", offer.expires_ms, now_ms)
    if acc.offer_id != offer.offer_id:
        raise OfferMismatch("accept", "it names another offer")
    if address(acc.taker) != acc.address_b:
        raise MalformedMessage("accept", "address_b is not the signing key's")
    _check_signature("accept", acc.taker, acc.signed_bytes(), acc.signature)
    return acc


def parse_answer(payload: bytes, offer: Offer, acceptance: Acceptance) -> Answer:
    """An untrusted answer to our ``acceptance`` of ``offer``, signed by the maker."""
    obj = _load(payload, "answer", _ANSWER_KEYS)
    ans = Answer(
        _hex(obj, "offer_id", 32, "answer"),
        _hex(obj, "accept_id", 32, "answer"),
        _hex(obj, "hashlock", 32, "answer"),
        _int(obj, "timelock_a", "answer", 1),
        _int(obj, "timelock_b", "answer", 1),
        _hex(obj, "signature", 64, "answer"),
    )
    if ans.offer_id != offer.offer_id:
        raise OfferMismatch("answer", "it names another offer")
    if ans.accept_id != acceptance.accept_id:
        raise OfferMismatch("answer", "it answers another acceptance")
    _check_signature("answer", offer.maker, ans.signed_bytes(), ans.signature)
    return ans


def validate_answer_terms(
    terms: SwapTerms,
    safety: Safety,
    *,
    height_a: int,
    height_b: int,
    max_lock_ms: int,
) -> None:
    """The taker's check before it commits: the maker's timelocks leave the taker the
    engine's safety margins now, and its own lock on B is not tied up longer than
    ``max_lock_ms``. Raises :class:`UnsafeAnswer`; changes nothing."""
    try:
        safety.validate_delta(terms, height_a, height_b)
        safety.validate_b_left(terms, height_b, safety.participant_lock_margin)
    except InsufficientTime as exc:
        raise UnsafeAnswer(str(exc)) from None
    held_ms = safety.b_time_left_ms(terms.b.timelock, height_b)
    if held_ms > max_lock_ms:
        raise UnsafeAnswer(
            f"our lock on {terms.b.chain_id} would be held ~{held_ms // 1000} s, "
            f"more than the {max_lock_ms // 1000} s allowed"
        )


# --- replay protection ---------------------------------------------------------------------


@dataclass(slots=True)
class OfferBook:
    """The maker's one mutable store: which offers were taken, by which acceptance."""

    taken: dict[bytes, bytes] = field(default_factory=dict)
    """offer id -> the accept id answered."""

    def validate_fresh(self, acceptance: Acceptance) -> None:
        """Raise :class:`OfferTaken` if the offer already has an answered acceptance
        (a replay of it included); changes nothing."""
        if acceptance.offer_id in self.taken:
            raise OfferTaken(acceptance.offer_id.hex(), acceptance.accept_id.hex())

    def record(self, acceptance: Acceptance) -> None:
        self.validate_fresh(acceptance)
        self.taken[acceptance.offer_id] = acceptance.accept_id
