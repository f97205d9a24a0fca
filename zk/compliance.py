"""Compliance rules as pure checks: KYC attestations, AML limits, sanctions, travel rule.

This is the policy core only (issue 11, slice 3, first part): the check a chain runs on a
transfer before it locks (source) or mints (destination). Wiring it into the bridge's
lock and mint, with a provable rejection refunded at the source, is not built yet.

* **KYC attestation**: a KYC provider (an ed25519 key registered by governance) signs
  ``(address, jurisdiction, level, expiry, data_hash)``; no personal data, only its hash.
  The holder proves control of the address with an RFC 8235 Schnorr proof of knowledge of
  the address key's secret scalar (an ed25519 public key is a point of the same group),
  made under a transcript that absorbs the attestation, so it proves nothing for another.
* **Policy** per path and jurisdiction: a minimum KYC level, a limit per account over a
  sliding window (the sum of the account's amounts in ``(now - window, now]``, not fixed
  buckets), a deny list, and a travel-rule threshold above which a transfer must carry the
  hash of its originator/beneficiary data.

Every refusal is a :class:`ComplianceRefused` whose ``rule`` names the rule broken.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from chains.crypto import address as address_of
from chains.crypto import verify as ed25519_verify
from zk.errors import ZkError
from zk.group import L
from zk.schnorr import prove_knowledge, verify_knowledge
from zk.transcript import Transcript

__all__ = [
    "ComplianceRefused",
    "KycAttestation",
    "Policy",
    "attestation_transcript",
    "prove_holder",
    "validate_attestation",
    "validate_transfer",
]


class ComplianceRefused(ZkError):
    """A transfer or attestation breaks a compliance rule; ``rule`` names it."""

    def __init__(self, rule: str, detail: str) -> None:
        self.rule, self.detail = rule, detail
        super().__init__(f"compliance rule {rule} refused: {detail}")


@dataclass(frozen=True, slots=True)
class KycAttestation:
    """A provider's statement about an address; no personal data, only its hash."""

    address: str
    jurisdiction: str
    """ISO 3166 alpha-2, e.g. ``US``."""
    level: int
    expiry_ms: int
    """Unix milliseconds after which the attestation no longer counts."""
    data_hash: bytes
    """SHA-256 of the personal data the provider holds."""
    provider: bytes
    """The provider's ed25519 public key."""
    signature: bytes

    def signed_bytes(self) -> bytes:
        return (
            b"interlock/v1/kyc\x00"
            + hashlib.sha256(
                f"{self.address}|{self.jurisdiction}|{self.level}|{self.expiry_ms}|".encode()
                + self.data_hash
            ).digest()
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


def validate_attestation(
    att: KycAttestation,
    holder_public_key: bytes,
    holder_proof: bytes,
    providers: Iterable[bytes],
    now_ms: int,
) -> None:
    """Raise unless ``att`` is a live attestation from a registered provider about the
    address of ``holder_public_key``, and the holder proved it holds that key."""
    if att.provider not in set(providers):
        raise ComplianceRefused("kyc.provider", "the provider is not registered")
    if not ed25519_verify(att.provider, att.signed_bytes(), att.signature):
        raise ComplianceRefused("kyc.signature", "the provider's signature does not verify")
    if now_ms >= att.expiry_ms:
        raise ComplianceRefused("kyc.expired", f"expired at {att.expiry_ms}, now {now_ms}")
    if address_of(holder_public_key) != att.address:
        raise ComplianceRefused("kyc.address", "the attestation is bound to another address")
    verify_knowledge(
        attestation_transcript(att), holder_public_key, att.address.encode(), holder_proof
    )


@dataclass(frozen=True, slots=True)
class Policy:
    """One path's rules for one jurisdiction."""

    min_kyc_level: int
    limit: int
    """Most an account may send within ``window_ms``."""
    window_ms: int
    sanctioned: frozenset[str]
    """Addresses that may neither send nor receive."""
    travel_rule_threshold: int
    """Transfers of at least this amount must carry travel-rule data."""


def validate_transfer(
    policy: Policy,
    sender: str,
    recipient: str,
    amount: int,
    kyc_level: Mapping[str, int],
    history: Iterable[tuple[int, int]],
    travel_rule_hash: bytes | None,
    now_ms: int,
) -> None:
    """Raise unless the transfer passes ``policy``. ``kyc_level`` maps addresses to the
    level of their live attestation; ``history`` is the sender's ``(time_ms, amount)``."""
    for who, addr in (("sender", sender), ("recipient", recipient)):
        if addr in policy.sanctioned:
            raise ComplianceRefused("sanctions", f"the {who} {addr} is on the deny list")
        level = kyc_level.get(addr)
        if level is None or level < policy.min_kyc_level:
            raise ComplianceRefused(
                "kyc.level", f"the {who} needs level {policy.min_kyc_level}, has {level}"
            )
    since = now_ms - policy.window_ms
    used = sum(a for t, a in history if since < t <= now_ms)
    if used + amount > policy.limit:
        raise ComplianceRefused(
            "aml.limit", f"{used} + {amount} exceeds {policy.limit} per {policy.window_ms} ms"
        )
    if amount >= policy.travel_rule_threshold and (
        travel_rule_hash is None or len(travel_rule_hash) != 32
    ):
        raise ComplianceRefused("travel_rule", f"{amount} needs a 32-byte travel-rule hash")
