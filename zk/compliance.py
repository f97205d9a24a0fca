"""Compliance rules as pure checks: KYC attestations, AML limits, sanctions, travel rule.

The policy core that the ``compliance`` chain module (:mod:`zk.registry`) stores and the
bridge runs on every transfer: on the source before it locks, on the destination before
it mints or releases. Plain values in, a :class:`ComplianceRefused` naming the rule out.

* **KYC attestation**: a KYC provider (an ed25519 key registered by governance) signs
  ``(address, jurisdiction, level, expiry, data_hash)``; no personal data, only its hash.
  The holder proves control of the address with an RFC 8235 Schnorr proof of knowledge of
  the address key's secret scalar (an ed25519 public key is a point of the same group),
  made under a transcript that absorbs the attestation, so it proves nothing for another.
* **Policy** per path and jurisdiction: a minimum KYC level, a limit per account over a
  sliding window (the sum of the account's amounts in ``(now - window, now]``, not fixed
  buckets), and a travel-rule threshold from which a transfer must carry the hash of its
  originator/beneficiary data (the data itself sealed to the destination's compliance key,
  :func:`seal_travel_rule`). The sanctions deny list is the chain's, not a path's.

Every refusal is a :class:`ComplianceRefused` whose ``rule`` is one of :data:`RULES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import CryptoError
from nacl.public import PrivateKey as BoxPrivateKey
from nacl.public import PublicKey as BoxPublicKey
from nacl.public import SealedBox

from chains.crypto import address as address_of
from chains.crypto import verify as ed25519_verify
from chains.errors import InvalidArgument
from chains.module import MAX_AMOUNT, is_address
from zk.errors import MalformedEncoding, ZkError
from zk.group import L
from zk.schnorr import prove_knowledge, verify_knowledge
from zk.transcript import Transcript

__all__ = [
    "RULES",
    "ComplianceRefused",
    "KycAttestation",
    "Policy",
    "attestation_transcript",
    "compute_window_use",
    "open_travel_rule",
    "prove_holder",
    "seal_travel_rule",
    "validate_attestation",
    "validate_provider",
    "validate_sanctions",
    "validate_transfer",
]

RULES = (
    "sanctions",
    "kyc.level",
    "kyc.expired",
    "kyc.provider",
    "kyc.signature",
    "kyc.address",
    "aml.limit",
    "travel_rule",
)
"""Every rule a refusal can name: a closed vocabulary (the relayer's metrics label)."""
MAX_WINDOW_ENTRIES = 1024
"""Most transfers one account may make on one path and denom within a policy's window:
bounds the record the chain keeps per account."""


class ComplianceRefused(ZkError):
    """A transfer or attestation breaks a compliance rule; ``rule`` names it."""

    def __init__(self, rule: str, detail: str) -> None:
        self.rule, self.detail = rule, detail
        super().__init__(f"compliance rule {rule} refused: {detail}")


def _is_int(v: object, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_jurisdiction(v: object) -> bool:
    return isinstance(v, str) and len(v) == 2 and v.isascii() and v.isupper() and v.isalpha()


@dataclass(frozen=True, slots=True)
class KycAttestation:
    """A provider's statement about an address; no personal data, only its hash."""

    address: str
    """The attested account."""
    jurisdiction: str
    """ISO 3166 alpha-2, e.g. ``US``."""
    level: int
    """The KYC level the provider checked, 1 and up (policies require a minimum)."""
    expiry_ms: int
    """Unix milliseconds from which the attestation no longer counts."""
    data_hash: bytes
    """SHA-256 of the personal data the provider holds."""
    provider: bytes
    """The provider's ed25519 public key."""
    signature: bytes
    """The provider's signature over :meth:`signed_bytes`."""

    def signed_bytes(self) -> bytes:
        return (
            b"interlock/v1/kyc\x00"
            + hashlib.sha256(
                f"{self.address}|{self.jurisdiction}|{self.level}|{self.expiry_ms}|".encode()
                + self.data_hash
            ).digest()
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "jurisdiction": self.jurisdiction,
            "level": self.level,
            "expiry_ms": self.expiry_ms,
            "data_hash": self.data_hash.hex(),
            "provider": self.provider.hex(),
            "signature": self.signature.hex(),
        }

    @classmethod
    def from_json(cls, d: object) -> KycAttestation:
        """Parse untrusted JSON; :class:`~chains.errors.InvalidArgument` names the field."""
        if not isinstance(d, Mapping) or set(d) != set(_ATTESTATION_FIELDS):
            raise InvalidArgument("attestation", f"expected the keys {list(_ATTESTATION_FIELDS)}")
        if not is_address(d["address"]):
            raise InvalidArgument("attestation.address", "expected an address")
        if not _is_jurisdiction(d["jurisdiction"]):
            raise InvalidArgument("attestation.jurisdiction", "expected ISO 3166 alpha-2, e.g. US")
        if not _is_int(d["level"], 1, 255):
            raise InvalidArgument("attestation.level", "expected an integer in [1, 255]")
        if not _is_int(d["expiry_ms"], 0, MAX_AMOUNT):
            raise InvalidArgument("attestation.expiry_ms", "expected Unix milliseconds")
        raw = {}
        for name, size in (("data_hash", 32), ("provider", 32), ("signature", 64)):
            v = d[name]
            if not isinstance(v, str) or len(v) != 2 * size or v != v.lower():
                raise InvalidArgument(f"attestation.{name}", f"expected {size} bytes of hex")
            try:
                raw[name] = bytes.fromhex(v)
            except ValueError:
                raise InvalidArgument(f"attestation.{name}", "not hex") from None
        return cls(
            d["address"],
            d["jurisdiction"],
            d["level"],
            d["expiry_ms"],
            raw["data_hash"],
            raw["provider"],
            raw["signature"],
        )


_ATTESTATION_FIELDS = (
    "address",
    "jurisdiction",
    "level",
    "expiry_ms",
    "data_hash",
    "provider",
    "signature",
)


def attestation_transcript(att: KycAttestation) -> Transcript:
    t = Transcript(b"kyc/holder")
    t.append_message(b"attestation", att.signed_bytes())
    t.append_message(b"signature", att.signature)
    return t


def prove_holder(att: KycAttestation, ed25519_seed: bytes) -> bytes:
    """The holder's proof for ``att``: knowledge of its address key's secret scalar (the
    clamped first half of SHA-512 of the ed25519 seed, as RFC 8032 derives it)."""
    h = bytearray(hashlib.sha512(ed25519_seed).digest()[:32])
    h[0] &= 248
    h[31] &= 127
    h[31] |= 64
    secret = int.from_bytes(h, "little") % L
    proof = prove_knowledge(attestation_transcript(att), secret, att.address.encode())
    return proof.to_bytes()


def validate_provider(att: KycAttestation, providers: Container[bytes], now_ms: int) -> None:
    """Raise unless ``att`` is signed by a registered provider and not expired: what must
    hold for the attestation to count, at every transfer (a provider may be revoked)."""
    if att.provider not in providers:
        raise ComplianceRefused("kyc.provider", "the provider is not registered")
    if not ed25519_verify(att.provider, att.signed_bytes(), att.signature):
        raise ComplianceRefused("kyc.signature", "the provider's signature does not verify")
    if now_ms >= att.expiry_ms:
        raise ComplianceRefused("kyc.expired", f"expired at {att.expiry_ms}, now {now_ms}")


def validate_attestation(
    att: KycAttestation,
    holder_public_key: bytes,
    holder_proof: bytes,
    providers: Container[bytes],
    now_ms: int,
) -> None:
    """Raise unless ``att`` is a live attestation from a registered provider about the
    address of ``holder_public_key``, and the holder proved it holds that key."""
    validate_provider(att, providers, now_ms)
    if address_of(holder_public_key) != att.address:
        raise ComplianceRefused("kyc.address", "the attestation is bound to another address")
    verify_knowledge(
        attestation_transcript(att), holder_public_key, att.address.encode(), holder_proof
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """One path's rules for one jurisdiction."""

    min_kyc_level: int
    """The level the local party's live attestation must have (0: none needed)."""
    limit: int
    """Most an account may move on the path, per denom, within ``window_ms``."""
    window_ms: int
    """Length of the sliding window, milliseconds of block time."""
    travel_rule_threshold: int
    """Transfers of at least this amount must carry travel-rule data."""

    def to_json(self) -> dict[str, Any]:
        return {
            "min_kyc_level": self.min_kyc_level,
            "limit": self.limit,
            "window_ms": self.window_ms,
            "travel_rule_threshold": self.travel_rule_threshold,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Policy:
        """Parse untrusted arguments; :class:`~chains.errors.InvalidArgument` names the field."""
        bounds = {
            "min_kyc_level": (0, 255),
            "limit": (1, MAX_AMOUNT),
            "window_ms": (1, 10 * 366 * 86_400_000),
            "travel_rule_threshold": (1, MAX_AMOUNT),
        }
        for name, (lo, hi) in bounds.items():
            if not _is_int(d.get(name), lo, hi):
                raise InvalidArgument(name, f"expected an integer in [{lo}, {hi}]")
        return cls(d["min_kyc_level"], d["limit"], d["window_ms"], d["travel_rule_threshold"])


def validate_sanctions(denied: Container[str], parties: Mapping[str, str]) -> None:
    """Raise if a party (``{"sender": addr, "recipient": addr}``) is on the deny list."""
    for who, addr in parties.items():
        if addr in denied:
            raise ComplianceRefused("sanctions", f"the {who} {addr} is on the deny list")


def compute_window_use(history: Iterable[tuple[int, int]], window_ms: int, now_ms: int) -> int:
    """What ``history`` (``(time_ms, amount)`` pairs) moved in ``(now - window, now]``."""
    since = now_ms - window_ms
    return sum(a for t, a in history if since < t <= now_ms)


def validate_transfer(
    policy: Policy,
    who: str,
    level: int,
    amount: int,
    history: Iterable[tuple[int, int]],
    travel_rule_hash: bytes | None,
    now_ms: int,
) -> None:
    """Raise unless a transfer of ``amount`` passes ``policy`` for the local party ``who``
    (the sender on the source, the recipient on the destination), whose live attestation
    has ``level`` (0: none) and who moved ``history`` on this path and denom before."""
    if level < policy.min_kyc_level:
        raise ComplianceRefused(
            "kyc.level", f"the {who} needs KYC level {policy.min_kyc_level}, has {level}"
        )
    entries = list(history)
    used = compute_window_use(entries, policy.window_ms, now_ms)
    if used + amount > policy.limit:
        raise ComplianceRefused(
            "aml.limit",
            f"the {who} moved {used}; {used} + {amount} exceeds {policy.limit} "
            f"per {policy.window_ms} ms",
        )
    if len(entries) >= MAX_WINDOW_ENTRIES:
        raise ComplianceRefused(
            "aml.limit", f"the {who} made {len(entries)} transfers in the window already"
        )
    if amount >= policy.travel_rule_threshold and (
        travel_rule_hash is None or len(travel_rule_hash) != 32
    ):
        raise ComplianceRefused(
            "travel_rule",
            f"{amount} is at least {policy.travel_rule_threshold}: travel-rule data required",
        )


# --- travel-rule data: sealed to the destination's compliance key ----------------------


def seal_travel_rule(data: bytes, compliance_key: bytes) -> bytes:
    """Originator and beneficiary information encrypted to ``compliance_key`` (an X25519
    public key, libsodium's sealed box): only the holder of its secret reads it. The
    packet carries ``sha256`` of the result."""
    try:
        return bytes(SealedBox(BoxPublicKey(compliance_key)).encrypt(data))
    except (CryptoError, ValueError, TypeError) as exc:
        raise MalformedEncoding("compliance key", str(exc)) from None


def open_travel_rule(sealed: bytes, compliance_secret: bytes) -> bytes:
    """The compliance officer's side of :func:`seal_travel_rule`."""
    try:
        return bytes(SealedBox(BoxPrivateKey(compliance_secret)).decrypt(sealed))
    except (CryptoError, ValueError, TypeError) as exc:
        raise MalformedEncoding("travel-rule data", str(exc)) from None
