from __future__ import annotations

import hashlib

import pytest
from nacl import bindings as sodium

from tests.zk.conftest import det_rng, flips, non_canonical_scalar
from zk.elgamal import commit
from zk.errors import InvalidWitness, MalformedEncoding, ProofRejected, ZkError
from zk.group import IDENTITY, B, H, L, encode_scalar, mul, sub
from zk.range import RANGE_PROOF_SIZE, RangeProof, prove_range, verify_range
from zk.transcript import Transcript

VALUE, OPENING = 0xDEAD_BEEF_1234, 987654321
C = commit(VALUE, OPENING)
SCALARS = 63 * 32  # offset of c


def ctx() -> Transcript:
    return Transcript(b"test/range")


@pytest.fixture(scope="module")
def proof() -> bytes:
    return prove_range(ctx(), C, VALUE, OPENING, rng=det_rng(b"range")).to_bytes()


def test_vector_and_round_trip(proof: bytes) -> None:
    assert len(proof) == RANGE_PROOF_SIZE == 8192
    verify_range(ctx(), C, proof)
    assert RangeProof.from_bytes(proof).to_bytes() == proof
    assert (
        hashlib.sha256(proof).hexdigest()
        == "9c6673a7ce631dc3f9cb60cf923ed5a8259730fa23921137dca76b1d96b94fdc"
    )


@pytest.mark.parametrize("value", [0, 1, 2**63, 2**64 - 1])
def test_edges_of_the_range(value: int) -> None:
    c = commit(value, 5)
    verify_range(ctx(), c, prove_range(ctx(), c, value, 5).to_bytes())


@pytest.mark.parametrize("value", [-1, 2**64, 2**64 + 5])
def test_prover_refuses_values_outside(value: int) -> None:
    with pytest.raises(InvalidWitness):
        prove_range(ctx(), commit(value % L, 5), value, 5)


def test_a_value_outside_the_range_cannot_borrow_a_proof(proof: bytes) -> None:
    # C - 2^64·H holds VALUE - 2^64, i.e. L - (2^64 - VALUE): far outside [0, 2^64)
    shifted = sub(C, mul(H, 2**64))
    assert shifted == commit(VALUE - 2**64, OPENING)
    with pytest.raises(ProofRejected):
        verify_range(ctx(), shifted, proof)
    with pytest.raises(ProofRejected):
        verify_range(ctx(), commit(VALUE, OPENING + 1), proof)


def test_replay_under_another_transcript(proof: bytes) -> None:
    with pytest.raises(ProofRejected):
        verify_range(Transcript(b"elsewhere"), C, proof)


# one offset in each kind of field: first/last bit commitment, c, and e0/z0/z1 of the
# first and last bit
FIELDS = [
    0,
    31,
    62 * 32,
    SCALARS,
    SCALARS + 32,
    SCALARS + 64,
    SCALARS + 96,
    RANGE_PROOF_SIZE - 96,
    RANGE_PROOF_SIZE - 64,
    RANGE_PROOF_SIZE - 32,
]


def test_every_kind_of_field_tampered(proof: bytes) -> None:
    for _off, bad in flips(proof, FIELDS):
        with pytest.raises(ZkError):
            verify_range(ctx(), C, bad)


def test_malformed_fields(proof: bytes) -> None:
    for start in (SCALARS, SCALARS + 32, RANGE_PROOF_SIZE - 32):
        bad = proof[:start] + non_canonical_scalar(proof[start : start + 32]) + proof[start + 32 :]
        with pytest.raises(MalformedEncoding, match="reduced"):
            verify_range(ctx(), C, bad)
    with pytest.raises(MalformedEncoding, match="bytes"):
        verify_range(ctx(), C, proof[:-1])
    with pytest.raises(MalformedEncoding):
        verify_range(ctx(), C, b"\x02" + proof[1:])  # C_1 off the curve
    # the identity is a legal bit commitment, so it parses, and then fails the proof
    with pytest.raises(ProofRejected):
        verify_range(ctx(), C, IDENTITY + proof[32:])


MIXED = bytes(sodium.crypto_core_ed25519_add(B, bytes(32)))  # B + a point of order 4
"""On the curve, canonical, but outside the prime-order subgroup."""


def test_a_bit_commitment_outside_the_subgroup_is_refused_by_name(proof: bytes) -> None:
    bad = proof[:32] + MIXED + proof[64:]  # C_2
    with pytest.raises(MalformedEncoding, match="range C_2"):
        verify_range(ctx(), C, bad)
    with pytest.raises(MalformedEncoding, match="range C_2"):
        RangeProof.from_bytes(bad)


def test_a_bit_commitment_is_checked_even_where_its_multiplication_is_skipped(
    proof: bytes,
) -> None:
    # e0 = 0 for bit 2: the verifier multiplies C_2 by nothing, so it must decode it
    e0_2 = SCALARS + 32 + 2 * 96
    bad = proof[:32] + MIXED + proof[64:e0_2] + encode_scalar(0) + proof[e0_2 + 32 :]
    with pytest.raises(MalformedEncoding, match="range C_2"):
        verify_range(ctx(), C, bad)
    non_canonical = (2**255 - 19 + 1).to_bytes(32, "little")  # y = p + 1, i.e. y = 1
    with pytest.raises(MalformedEncoding):
        verify_range(ctx(), C, proof[:32] + non_canonical + proof[64:])
