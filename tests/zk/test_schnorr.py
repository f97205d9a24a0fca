from __future__ import annotations

import hashlib

import pytest
from nacl import bindings as sodium

from tests.zk.conftest import NON_CANONICAL, OFF_CURVE, det_rng, flips, non_canonical_scalar
from zk.errors import InvalidWitness, MalformedEncoding, ProofRejected, ZkError
from zk.group import IDENTITY, B, L, mul_base
from zk.schnorr import (
    SchnorrProof,
    compute_schnorr_challenge,
    prove_knowledge,
    verify_knowledge,
)
from zk.transcript import Transcript

SECRET = 0x1234_5678_9ABC_DEF0 * 7919
USER = b"alice-address"


def ctx() -> Transcript:
    t = Transcript(b"test/schnorr")
    t.append_message(b"chain", b"us-bank")
    return t


def make() -> tuple[bytes, bytes]:
    proof = prove_knowledge(ctx(), SECRET, USER, rng=det_rng(b"schnorr")).to_bytes()
    return mul_base(SECRET), proof


def test_vector_and_round_trip() -> None:
    public, proof = make()
    verify_knowledge(ctx(), public, USER, proof)
    assert (
        hashlib.sha256(proof).hexdigest()
        == "71ce86079e225beb3d63d6940ed6e48dd9926d8cd3a626d6450dd1ec9b834d59"
    )


def test_an_independent_rfc8235_verifier_accepts_it() -> None:
    """Recompute c by the docstring's byte layout with hashlib, check V = r·G + c·A in sodium."""
    public, proof = make()
    t = ctx()
    t.append_message(b"schnorr/A", public)
    t.append_message(b"schnorr/user-id", USER)
    other_info = t.challenge_bytes(b"schnorr/other-info")
    v, r = proof[:32], proof[32:]

    def item(x: bytes) -> bytes:
        return len(x).to_bytes(4, "big") + x

    digest = hashlib.sha512(item(B) + item(v) + item(public) + item(USER) + item(other_info))
    c = int.from_bytes(digest.digest(), "little") % L
    assert c == compute_schnorr_challenge(v, public, USER, other_info)
    rhs = sodium.crypto_core_ed25519_add(
        sodium.crypto_scalarmult_ed25519_base_noclamp(r),
        sodium.crypto_scalarmult_ed25519_noclamp(c.to_bytes(32, "little"), public),
    )
    assert rhs == v


def test_every_bit_of_the_proof_matters() -> None:
    public, proof = make()
    for _off, bad in flips(proof, list(range(64))):
        with pytest.raises(ZkError):
            verify_knowledge(ctx(), public, USER, bad)


@pytest.mark.parametrize("bad_v", [IDENTITY, NON_CANONICAL, OFF_CURVE])
def test_malformed_commitment(bad_v: bytes) -> None:
    public, proof = make()
    with pytest.raises(MalformedEncoding):
        verify_knowledge(ctx(), public, USER, bad_v + proof[32:])


def test_non_canonical_response_and_bad_lengths() -> None:
    public, proof = make()
    with pytest.raises(MalformedEncoding, match="reduced"):
        verify_knowledge(ctx(), public, USER, proof[:32] + non_canonical_scalar(proof[32:]))
    for bad in (proof[:-1], proof + b"\x00", b""):
        with pytest.raises(MalformedEncoding, match="bytes"):
            verify_knowledge(ctx(), public, USER, bad)


def test_wrong_statement_or_context_is_rejected() -> None:
    public, proof = make()
    with pytest.raises(ProofRejected):
        verify_knowledge(ctx(), mul_base(SECRET + 1), USER, proof)
    with pytest.raises(ProofRejected):
        verify_knowledge(ctx(), public, b"mallory-address", proof)
    with pytest.raises(ProofRejected):  # replayed under another transcript
        verify_knowledge(Transcript(b"test/schnorr"), public, USER, proof)
    with pytest.raises(MalformedEncoding, match="identity"):
        verify_knowledge(ctx(), IDENTITY, USER, proof)


def test_prover_refuses_a_zero_or_unreduced_secret() -> None:
    for secret in (0, L, -1):
        with pytest.raises(InvalidWitness):
            prove_knowledge(ctx(), secret, USER)


def test_from_bytes_round_trip() -> None:
    _public, proof = make()
    assert SchnorrProof.from_bytes(proof).to_bytes() == proof
