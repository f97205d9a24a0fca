"""A Schnorr non-interactive proof of knowledge of a secret key, as RFC 8235 §3.3 defines it.

Group: the order-``L`` subgroup of edwards25519 with generator ``G = B`` (see
:mod:`zk.group`; the RFC's section 4 allows any prime-order elliptic-curve group).
Public key ``A = a·G``. The prover picks ``v``, sends ``V = v·G`` and ``r = v - a·c mod L``;
the verifier checks that ``A`` and ``V`` are valid, non-identity group elements (the RFC's
"A is a valid point and A×[h] is not the point at infinity": our decoder already refuses
every point outside the prime-order group) and that ``V = r·G + c·A``.

The challenge, byte by byte, so an independent implementation of the RFC can verify::

    c = int_le(SHA-512( len(G) ‖ G ‖ len(V) ‖ V ‖ len(A) ‖ A
                       ‖ len(UserID) ‖ UserID ‖ len(OtherInfo) ‖ OtherInfo )) mod L

with each ``len`` a 4-byte big-endian byte count (the RFC recommends a 4-byte length
before each item), ``G``, ``V``, ``A`` as 32-byte compressed edwards25519 points, the
digest read little endian (as Ed25519 reads its hashes). ``UserID`` is the caller's
identifier for the prover (an address); ``OtherInfo`` is the 64-byte challenge of the
surrounding transcript under the label ``schnorr/other-info``, taken after the transcript
absorbed ``A`` and ``UserID``: it binds the proof to its context (chain, transaction,
attestation), so it cannot be replayed under another. After the proof the transcript
absorbs ``V`` and ``r``.

Byte format (64 bytes): ``V`` (32, a non-identity point) ‖ ``r`` (32, a scalar < L).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

from zk.errors import InvalidWitness, MalformedEncoding, ProofRejected
from zk.group import (
    POINT_SIZE,
    B,
    L,
    add,
    decode_point,
    decode_scalar,
    encode_scalar,
    mul,
    mul_base,
    random_scalar,
)
from zk.transcript import Transcript

__all__ = [
    "SCHNORR_PROOF_SIZE",
    "SchnorrProof",
    "compute_schnorr_challenge",
    "prove_knowledge",
    "verify_knowledge",
]

SCHNORR_PROOF_SIZE = 64


@dataclass(frozen=True, slots=True)
class SchnorrProof:
    """A proof that its maker knows ``a`` with ``A = a·B``."""

    commitment: bytes
    """``V = v·B``, the prover's commitment."""
    response: int
    """``r = v - a·c mod L``."""

    def to_bytes(self) -> bytes:
        return self.commitment + encode_scalar(self.response)

    @classmethod
    def from_bytes(cls, raw: bytes) -> SchnorrProof:
        if len(raw) != SCHNORR_PROOF_SIZE:
            raise MalformedEncoding(
                "schnorr proof", f"{SCHNORR_PROOF_SIZE} bytes expected, got {len(raw)}"
            )
        return cls(
            decode_point(raw[:POINT_SIZE], "schnorr proof V"),
            decode_scalar(raw[POINT_SIZE:], "schnorr proof r"),
        )


def _item(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


def compute_schnorr_challenge(v: bytes, a: bytes, user_id: bytes, other_info: bytes) -> int:
    """RFC 8235's ``c = H(G ‖ V ‖ A ‖ UserID ‖ OtherInfo)``, encoded as the docstring says."""
    digest = hashlib.sha512(
        _item(B) + _item(v) + _item(a) + _item(user_id) + _item(other_info)
    ).digest()
    return int.from_bytes(digest, "little") % L


def _other_info(transcript: Transcript, public: bytes, user_id: bytes) -> bytes:
    transcript.append_message(b"schnorr/A", public)
    transcript.append_message(b"schnorr/user-id", user_id)
    return transcript.challenge_bytes(b"schnorr/other-info")


def prove_knowledge(
    transcript: Transcript,
    secret: int,
    user_id: bytes,
    *,
    rng: Callable[[], int] = random_scalar,
) -> SchnorrProof:
    """Prove knowledge of ``secret`` for the public key ``secret·B``."""
    if not 0 < secret < L:
        raise InvalidWitness("schnorr", "the secret key must be in [1, L)")
    public = mul_base(secret)
    other_info = _other_info(transcript, public, user_id)
    v = rng() % L
    commitment = mul_base(v)
    c = compute_schnorr_challenge(commitment, public, user_id, other_info)
    proof = SchnorrProof(commitment, (v - secret * c) % L)
    transcript.append_point(b"schnorr/V", proof.commitment)
    transcript.append_scalar(b"schnorr/r", proof.response)
    return proof


def verify_knowledge(transcript: Transcript, public: bytes, user_id: bytes, proof: bytes) -> None:
    """Raise unless ``proof`` shows knowledge of the secret key of ``public``."""
    a = decode_point(public, "schnorr public key A")
    parsed = SchnorrProof.from_bytes(proof)
    other_info = _other_info(transcript, a, user_id)
    c = compute_schnorr_challenge(parsed.commitment, a, user_id, other_info)
    if add(mul_base(parsed.response), mul(a, c)) != parsed.commitment:
        raise ProofRejected("schnorr", "V != r·G + c·A")
    transcript.append_point(b"schnorr/V", parsed.commitment)
    transcript.append_scalar(b"schnorr/r", parsed.response)
