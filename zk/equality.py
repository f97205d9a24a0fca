"""Sigma proofs that encrypted values are equal, made non-interactive over a transcript.

Two statements, each proven by a three-move sigma protocol whose challenge ``c`` is the
transcript's scalar after it absorbed the statement and the prover's commitments:

**Ciphertext–commitment equality** (the key holder's proof: "my balance ciphertext holds
the value this fresh commitment holds", used before a range proof on that commitment).
Statement: a public key ``P``, a ciphertext ``(C, D)`` under it, a commitment ``C'``.
Witness: the secret key ``s`` (as ``t = s⁻¹``), the value ``v``, the opening ``r'``. The
relations, linear in the witness, are::

    B = t·P        C = v·H + t·D        C' = v·H + r'·B

(the second holds for any ciphertext under ``P``, its randomness unknown to the prover:
``t·D = r·B``). Prover: ``Y0 = k_t·P``, ``Y1 = k_v·H + k_t·D``, ``Y2 = k_v·H + k_r·B``;
responses ``z_x = k_x + c·x``. Verifier: ``z_t·P = Y0 + c·B``, ``z_v·H + z_t·D = Y1 + c·C``,
``z_v·H + z_r·B = Y2 + c·C'``. Bytes (192): ``Y0 ‖ Y1 ‖ Y2 ‖ z_t ‖ z_v ‖ z_r``.

**Ciphertext equality** (the encryptor's proof: "these n ciphertexts under n keys hold one
value"; a transfer's sender, receiver and auditor ciphertexts, n = 3; two ciphertexts,
n = 2). Witness: ``v`` and each ciphertext's randomness ``r_i``. Relations::

    C_i = v·H + r_i·B        D_i = r_i·P_i        for every i

Prover: ``YC_i = k_v·H + k_i·B``, ``YD_i = k_i·P_i``; responses ``z_v``, ``z_i``. Verifier:
``z_v·H + z_i·B = YC_i + c·C_i`` and ``z_i·P_i = YD_i + c·D_i``. One ``z_v`` for all ``i`` is
what makes the values equal. Bytes (96·n + 32): ``YC_1 ‖ YD_1 ‖ … ‖ YC_n ‖ YD_n ‖ z_v ‖
z_1 ‖ … ‖ z_n``.

Every commitment ``Y`` must be a non-identity point (an honest prover's is, but for
probability 2⁻²⁵²); every ``z`` a canonical scalar. The statement's points are decoded
by the caller's types (public keys non-identity; ciphertexts and commitments may hold the
identity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from zk.elgamal import Ciphertext, ElGamalKeypair, commit, decode_public_key
from zk.errors import InvalidWitness, MalformedEncoding, ProofRejected
from zk.group import (
    POINT_SIZE,
    SCALAR_SIZE,
    B,
    H,
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
    "CT_COMMIT_EQUALITY_SIZE",
    "CiphertextCommitmentEqualityProof",
    "CiphertextEqualityProof",
    "ciphertext_equality_size",
    "prove_ciphertext_commitment_equality",
    "prove_ciphertext_equality",
    "verify_ciphertext_commitment_equality",
    "verify_ciphertext_equality",
]

CT_COMMIT_EQUALITY_SIZE = 3 * POINT_SIZE + 3 * SCALAR_SIZE


def _points(raw: bytes, n: int, what: str) -> list[bytes]:
    return [
        decode_point(raw[i * POINT_SIZE : (i + 1) * POINT_SIZE], f"{what} {i}") for i in range(n)
    ]


def _scalars(raw: bytes, n: int, what: str) -> list[int]:
    return [
        decode_scalar(raw[i * SCALAR_SIZE : (i + 1) * SCALAR_SIZE], f"{what} {i}") for i in range(n)
    ]


@dataclass(frozen=True, slots=True)
class CiphertextCommitmentEqualityProof:
    """A proof that a ciphertext under ``P`` and a commitment hold the same value."""

    y0: bytes
    """``k_t·P``."""
    y1: bytes
    """``k_v·H + k_t·D``."""
    y2: bytes
    """``k_v·H + k_r·B``."""
    z_t: int
    z_v: int
    z_r: int

    def to_bytes(self) -> bytes:
        return (
            self.y0
            + self.y1
            + self.y2
            + b"".join(encode_scalar(z) for z in (self.z_t, self.z_v, self.z_r))
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> CiphertextCommitmentEqualityProof:
        if len(raw) != CT_COMMIT_EQUALITY_SIZE:
            raise MalformedEncoding(
                "ciphertext-commitment equality proof",
                f"{CT_COMMIT_EQUALITY_SIZE} bytes expected, got {len(raw)}",
            )
        y0, y1, y2 = _points(raw, 3, "equality proof Y")
        z_t, z_v, z_r = _scalars(raw[3 * POINT_SIZE :], 3, "equality proof z")
        return cls(y0, y1, y2, z_t, z_v, z_r)


def _absorb_ct_commit(
    transcript: Transcript, public: bytes, ct: Ciphertext, commitment: bytes
) -> None:
    transcript.append_message(b"dom-sep", b"ciphertext-commitment-equality")
    transcript.append_point(b"P", public)
    transcript.append_message(b"ciphertext", ct.to_bytes())
    transcript.append_point(b"commitment", commitment)


def prove_ciphertext_commitment_equality(
    transcript: Transcript,
    keypair: ElGamalKeypair,
    ct: Ciphertext,
    value: int,
    commitment: bytes,
    opening: int,
    *,
    rng: Callable[[], int] = random_scalar,
) -> CiphertextCommitmentEqualityProof:
    """Prove ``ct`` (under ``keypair``) and ``commitment = value·H + opening·B`` agree."""
    t = pow(keypair.secret, -1, L)
    # refuse a false statement here: a proof of it would fail to verify anyway
    if add(mul(H, value), mul(ct.handle, t)) != ct.commitment:
        raise InvalidWitness("ciphertext-commitment equality", "the ciphertext holds another value")
    if commit(value, opening) != commitment:
        raise InvalidWitness("ciphertext-commitment equality", "the commitment does not open")
    _absorb_ct_commit(transcript, keypair.public, ct, commitment)
    k_t, k_v, k_r = rng() % L, rng() % L, rng() % L
    vh = mul(H, k_v)
    y0 = mul(keypair.public, k_t)
    y1 = add(vh, mul(ct.handle, k_t))
    y2 = add(vh, mul_base(k_r))
    for label, y in ((b"Y0", y0), (b"Y1", y1), (b"Y2", y2)):
        transcript.append_point(label, y)
    c = transcript.challenge_scalar(b"c")
    return CiphertextCommitmentEqualityProof(
        y0, y1, y2, (k_t + c * t) % L, (k_v + c * value) % L, (k_r + c * opening) % L
    )


def verify_ciphertext_commitment_equality(
    transcript: Transcript, public: bytes, ct: Ciphertext, commitment: bytes, proof: bytes
) -> None:
    """Raise unless ``proof`` shows ``ct`` under ``public`` and ``commitment`` agree."""
    public = decode_public_key(public)
    commitment = decode_point(commitment, "commitment", allow_identity=True)
    p = CiphertextCommitmentEqualityProof.from_bytes(proof)
    _absorb_ct_commit(transcript, public, ct, commitment)
    for label, y in ((b"Y0", p.y0), (b"Y1", p.y1), (b"Y2", p.y2)):
        transcript.append_point(label, y)
    c = transcript.challenge_scalar(b"c")
    zvh = mul(H, p.z_v)
    if mul(public, p.z_t) != add(p.y0, mul(B, c)):
        raise ProofRejected("ciphertext-commitment equality", "key relation fails")
    if add(zvh, mul(ct.handle, p.z_t)) != add(p.y1, mul(ct.commitment, c)):
        raise ProofRejected("ciphertext-commitment equality", "ciphertext relation fails")
    if add(zvh, mul_base(p.z_r)) != add(p.y2, mul(commitment, c)):
        raise ProofRejected("ciphertext-commitment equality", "commitment relation fails")


def ciphertext_equality_size(n: int) -> int:
    return n * 2 * POINT_SIZE + (n + 1) * SCALAR_SIZE


@dataclass(frozen=True, slots=True)
class CiphertextEqualityProof:
    """A proof that n ciphertexts under n keys hold one value."""

    y_commitments: tuple[bytes, ...]
    """``YC_i = k_v·H + k_i·B``."""
    y_handles: tuple[bytes, ...]
    """``YD_i = k_i·P_i``."""
    z_v: int
    z: tuple[int, ...]
    """``z_i = k_i + c·r_i``."""

    def to_bytes(self) -> bytes:
        pairs = b"".join(yc + yd for yc, yd in zip(self.y_commitments, self.y_handles, strict=True))
        return pairs + encode_scalar(self.z_v) + b"".join(encode_scalar(z) for z in self.z)

    @classmethod
    def from_bytes(cls, raw: bytes, n: int) -> CiphertextEqualityProof:
        if len(raw) != ciphertext_equality_size(n):
            raise MalformedEncoding(
                "ciphertext equality proof",
                f"{ciphertext_equality_size(n)} bytes expected for {n} ciphertexts, got {len(raw)}",
            )
        ys = _points(raw, 2 * n, "equality proof Y")
        zs = _scalars(raw[2 * n * POINT_SIZE :], n + 1, "equality proof z")
        return cls(tuple(ys[0::2]), tuple(ys[1::2]), zs[0], tuple(zs[1:]))


def _absorb_ct_equality(
    transcript: Transcript, publics: Sequence[bytes], cts: Sequence[Ciphertext]
) -> None:
    transcript.append_message(b"dom-sep", b"ciphertext-equality")
    transcript.append_u64(b"n", len(cts))
    for public, ct in zip(publics, cts, strict=True):
        transcript.append_point(b"P", public)
        transcript.append_message(b"ciphertext", ct.to_bytes())


def _check_arity(publics: Sequence[bytes], cts: Sequence[Ciphertext]) -> None:
    if len(publics) != len(cts) or len(cts) < 2:
        raise InvalidWitness("ciphertext equality", "needs n >= 2 keys and as many ciphertexts")


def prove_ciphertext_equality(
    transcript: Transcript,
    publics: Sequence[bytes],
    cts: Sequence[Ciphertext],
    value: int,
    openings: Sequence[int],
    *,
    rng: Callable[[], int] = random_scalar,
) -> CiphertextEqualityProof:
    """Prove every ``cts[i] = encrypt(publics[i], value, openings[i])``."""
    _check_arity(publics, cts)
    if len(openings) != len(cts):
        raise InvalidWitness("ciphertext equality", "one opening per ciphertext")
    for public, ct, r in zip(publics, cts, openings, strict=True):
        if ct != Ciphertext(commit(value, r), mul(public, r)):
            raise InvalidWitness("ciphertext equality", "a ciphertext does not open to the value")
    _absorb_ct_equality(transcript, publics, cts)
    k_v = rng() % L
    ks = [rng() % L for _ in cts]
    vh = mul(H, k_v)
    ycs = tuple(add(vh, mul_base(k)) for k in ks)
    yds = tuple(mul(public, k) for public, k in zip(publics, ks, strict=True))
    for yc, yd in zip(ycs, yds, strict=True):
        transcript.append_point(b"YC", yc)
        transcript.append_point(b"YD", yd)
    c = transcript.challenge_scalar(b"c")
    return CiphertextEqualityProof(
        ycs,
        yds,
        (k_v + c * value) % L,
        tuple((k + c * r) % L for k, r in zip(ks, openings, strict=True)),
    )


def verify_ciphertext_equality(
    transcript: Transcript, publics: Sequence[bytes], cts: Sequence[Ciphertext], proof: bytes
) -> None:
    """Raise unless ``proof`` shows all ``cts`` (under ``publics``) hold one value."""
    if len(publics) != len(cts) or len(cts) < 2:
        raise MalformedEncoding(
            "ciphertext equality statement", "needs n >= 2 keys and ciphertexts"
        )
    publics = [decode_public_key(p) for p in publics]
    p = CiphertextEqualityProof.from_bytes(proof, len(cts))
    _absorb_ct_equality(transcript, publics, cts)
    for yc, yd in zip(p.y_commitments, p.y_handles, strict=True):
        transcript.append_point(b"YC", yc)
        transcript.append_point(b"YD", yd)
    c = transcript.challenge_scalar(b"c")
    zvh = mul(H, p.z_v)
    for i, (public, ct) in enumerate(zip(publics, cts, strict=True)):
        if add(zvh, mul_base(p.z[i])) != add(p.y_commitments[i], mul(ct.commitment, c)):
            raise ProofRejected("ciphertext equality", f"commitment relation {i} fails")
        if mul(public, p.z[i]) != add(p.y_handles[i], mul(ct.handle, c)):
            raise ProofRejected("ciphertext equality", f"handle relation {i} fails")
