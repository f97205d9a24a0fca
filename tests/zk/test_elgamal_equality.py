from __future__ import annotations

import hashlib

import pytest

from tests.zk.conftest import NON_CANONICAL, det_rng, flips, non_canonical_scalar
from zk.elgamal import (
    ZERO,
    Ciphertext,
    ElGamalKeypair,
    commit,
    decrypt,
    encrypt,
    encrypt_public,
)
from zk.equality import (
    prove_ciphertext_commitment_equality,
    prove_ciphertext_equality,
    verify_ciphertext_commitment_equality,
    verify_ciphertext_equality,
)
from zk.errors import InvalidWitness, MalformedEncoding, ProofRejected, ZkError
from zk.group import IDENTITY
from zk.transcript import Transcript

ALICE = ElGamalKeypair.from_secret(11111111111111111)
BOB = ElGamalKeypair.from_secret(22222222222222222)
AUDITOR = ElGamalKeypair.from_secret(33333333333333333)


def ctx() -> Transcript:
    return Transcript(b"test/equality")


def test_encrypt_decrypt_and_homomorphism() -> None:
    a = encrypt(ALICE.public, 700, 5)
    b = encrypt(ALICE.public, 300, 9)
    assert decrypt(ALICE.secret, a, bound=2**12) == 700
    assert decrypt(ALICE.secret, a + b, bound=2**12) == 1000
    assert decrypt(ALICE.secret, a - b, bound=2**12) == 400
    assert decrypt(ALICE.secret, encrypt_public(42), bound=2**12) == 42
    assert decrypt(ALICE.secret, ZERO, bound=16) == 0
    # another key reads noise, not the value; values beyond the bound are not found
    assert decrypt(BOB.secret, a, bound=2**12) is None
    assert decrypt(ALICE.secret, encrypt(ALICE.public, 5000, 3), bound=4096) is None


def test_ciphertext_bytes() -> None:
    ct = encrypt(ALICE.public, 7, 3)
    assert Ciphertext.from_bytes(ct.to_bytes()) == ct
    assert Ciphertext.from_bytes(ZERO.to_bytes()) == ZERO
    for bad in (ct.to_bytes()[:-1], NON_CANONICAL + IDENTITY, IDENTITY + NON_CANONICAL):
        with pytest.raises(MalformedEncoding):
            Ciphertext.from_bytes(bad)
    with pytest.raises(InvalidWitness):
        encrypt(ALICE.public, 2**64, 1)
    with pytest.raises(InvalidWitness):
        encrypt(ALICE.public, -1, 1)


# --- ciphertext–commitment equality -------------------------------------------------

BALANCE = encrypt(ALICE.public, 1000, 77) - encrypt(ALICE.public, 250, 5)  # holds 750
FRESH = commit(750, 4242)


def ct_commit_proof() -> bytes:
    return prove_ciphertext_commitment_equality(
        ctx(), ALICE, BALANCE, 750, FRESH, 4242, rng=det_rng(b"cce")
    ).to_bytes()


def test_ct_commit_vector_and_round_trip() -> None:
    proof = ct_commit_proof()
    verify_ciphertext_commitment_equality(ctx(), ALICE.public, BALANCE, FRESH, proof)
    assert (
        hashlib.sha256(proof).hexdigest()
        == "e8ab208228b881c2185526251c7973fcccfc769299609cf053f53047319f738e"
    )


def test_ct_commit_every_field_tampered() -> None:
    proof = ct_commit_proof()
    for _off, bad in flips(proof, [0, 31, 32, 63, 64, 95, 96, 127, 128, 159, 160, 191]):
        with pytest.raises(ZkError):
            verify_ciphertext_commitment_equality(ctx(), ALICE.public, BALANCE, FRESH, bad)
    for start in (96, 128, 160):
        bad = proof[:start] + non_canonical_scalar(proof[start : start + 32]) + proof[start + 32 :]
        with pytest.raises(MalformedEncoding, match="reduced"):
            verify_ciphertext_commitment_equality(ctx(), ALICE.public, BALANCE, FRESH, bad)
    for start in (0, 32, 64):
        bad = proof[:start] + IDENTITY + proof[start + 32 :]
        with pytest.raises(MalformedEncoding, match="identity"):
            verify_ciphertext_commitment_equality(ctx(), ALICE.public, BALANCE, FRESH, bad)


def test_ct_commit_wrong_statement_and_replay() -> None:
    proof = ct_commit_proof()
    with pytest.raises(ProofRejected):
        verify_ciphertext_commitment_equality(
            ctx(), ALICE.public, BALANCE, commit(751, 4242), proof
        )
    with pytest.raises(ProofRejected):
        verify_ciphertext_commitment_equality(
            ctx(), ALICE.public, BALANCE + encrypt_public(1), FRESH, proof
        )
    with pytest.raises(ProofRejected):
        verify_ciphertext_commitment_equality(ctx(), BOB.public, BALANCE, FRESH, proof)
    with pytest.raises(ProofRejected):
        verify_ciphertext_commitment_equality(
            Transcript(b"elsewhere"), ALICE.public, BALANCE, FRESH, proof
        )


def test_ct_commit_prover_refuses_a_false_statement() -> None:
    with pytest.raises(InvalidWitness):
        prove_ciphertext_commitment_equality(ctx(), ALICE, BALANCE, 751, commit(751, 1), 1)
    with pytest.raises(InvalidWitness):
        prove_ciphertext_commitment_equality(ctx(), BOB, BALANCE, 750, FRESH, 4242)
    with pytest.raises(InvalidWitness):
        prove_ciphertext_commitment_equality(ctx(), ALICE, BALANCE, 750, FRESH, 4243)


# --- n-ciphertext equality ------------------------------------------------------------

KEYS = [ALICE.public, BOB.public, AUDITOR.public]
OPENINGS = [101, 202, 303]
CTS = [encrypt(p, 250, r) for p, r in zip(KEYS, OPENINGS, strict=True)]


def ct_eq_proof() -> bytes:
    return prove_ciphertext_equality(ctx(), KEYS, CTS, 250, OPENINGS, rng=det_rng(b"ce")).to_bytes()


def test_ct_equality_vector_and_round_trip() -> None:
    proof = ct_eq_proof()
    assert len(proof) == 3 * 64 + 4 * 32
    verify_ciphertext_equality(ctx(), KEYS, CTS, proof)
    assert (
        hashlib.sha256(proof).hexdigest()
        == "10b973de91dc58204dd4c5d8fa51bfecdf82a77f80064d6f21e71c67e5612271"
    )
    two = prove_ciphertext_equality(ctx(), KEYS[:2], CTS[:2], 250, OPENINGS[:2]).to_bytes()
    verify_ciphertext_equality(ctx(), KEYS[:2], CTS[:2], two)


def test_ct_equality_every_field_tampered() -> None:
    proof = ct_eq_proof()
    for _off, bad in flips(proof, [*range(0, len(proof), 32), len(proof) - 1]):
        with pytest.raises(ZkError):
            verify_ciphertext_equality(ctx(), KEYS, CTS, bad)
    bad = proof[:-32] + non_canonical_scalar(proof[-32:])
    with pytest.raises(MalformedEncoding, match="reduced"):
        verify_ciphertext_equality(ctx(), KEYS, CTS, bad)
    with pytest.raises(MalformedEncoding, match="identity"):
        verify_ciphertext_equality(ctx(), KEYS, CTS, IDENTITY + proof[32:])


def test_ct_equality_refuses_unequal_values_and_replays() -> None:
    proof = ct_eq_proof()
    other = [CTS[0], CTS[1], encrypt(AUDITOR.public, 251, 303)]
    with pytest.raises(ProofRejected):
        verify_ciphertext_equality(ctx(), KEYS, other, proof)
    with pytest.raises(ProofRejected):  # receiver and auditor swapped
        verify_ciphertext_equality(ctx(), [KEYS[0], KEYS[2], KEYS[1]], CTS, proof)
    with pytest.raises(ProofRejected):
        verify_ciphertext_equality(Transcript(b"elsewhere"), KEYS, CTS, proof)
    with pytest.raises(MalformedEncoding):
        verify_ciphertext_equality(ctx(), KEYS[:2], CTS[:2], proof)
    with pytest.raises(MalformedEncoding):
        verify_ciphertext_equality(ctx(), KEYS, CTS[:2], proof)
    with pytest.raises(InvalidWitness):
        prove_ciphertext_equality(ctx(), KEYS, other, 250, OPENINGS)
