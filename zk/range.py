"""A range proof: a commitment ``C = v·H + r·B`` holds some ``v`` in ``[0, 2^64)``.

Bit decomposition with OR-proofs (Cramer–Damgård–Schoenmakers), chosen over Bulletproofs
because libsodium offers no multi-scalar multiplication through PyNaCl: a Bulletproof's
verifier is one ~140-term multi-exponentiation, which done term by term costs about as
many variable-base multiplications as this proof (2 per bit) and is far more code.
bench/zk.py prints the measured rates.

The prover writes ``v = Σ b_i·2^i`` and commits to each bit, ``C_i = b_i·H + r_i·B``, with
``r_1 … r_63`` random and ``r_0 = r - Σ_{i≥1} 2^i·r_i``, so that ``Σ 2^i·C_i = C``: the
proof carries ``C_1 … C_63`` and the verifier derives ``C_0 = C - Σ_{i≥1} 2^i·C_i``
(by doubling, 126 point additions, no multiplication). For each bit it proves, as an OR
of two Schnorr proofs on the base ``B``, that ``C_i = r_i·B`` (bit 0) or
``C_i - H = r_i·B`` (bit 1), without saying which. All 64 OR-proofs share one challenge
``c``; each splits it as ``e_{i,0} + e_{i,1} = c``, the prover simulating the false branch.

Verifier: for every bit, ``A_{i,0} = z_{i,0}·B - e_{i,0}·C_i`` and
``A_{i,1} = z_{i,1}·B - (c - e_{i,0})·(C_i - H)``; then ``c`` must equal the transcript's
challenge after it absorbed ``C``, every ``C_i`` and every ``A_{i,0}, A_{i,1}``. Its cost
(bench/zk.py, profiled): the two variable-base multiplications per bit are two thirds of
it; each bit commitment is checked by the first of them (``mul_untrusted``: libsodium
tests canonical encoding and subgroup membership before it multiplies), not by a
separate decode, which would pay the subgroup test (a multiplication's price) again.

Bytes (8,192): ``C_1 ‖ … ‖ C_63`` (63 points; the identity is allowed, as a bit
commitment may be) ‖ ``c`` ‖ 64 × (``e_{i,0} ‖ z_{i,0} ‖ z_{i,1}``) (scalars < L).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from zk.elgamal import MAX_VALUE, commit
from zk.errors import InvalidWitness, MalformedEncoding, ProofRejected
from zk.group import (
    POINT_SIZE,
    SCALAR_SIZE,
    H,
    L,
    add,
    decode_point,
    decode_scalar,
    encode_scalar,
    mul,
    mul_base,
    mul_untrusted,
    random_scalar,
    sub,
)
from zk.transcript import Transcript

__all__ = ["BITS", "RANGE_PROOF_SIZE", "RangeProof", "prove_range", "verify_range"]

BITS = 64
RANGE_PROOF_SIZE = (BITS - 1) * POINT_SIZE + SCALAR_SIZE + BITS * 3 * SCALAR_SIZE


@dataclass(frozen=True, slots=True)
class RangeProof:
    """A proof that a commitment holds a value in ``[0, 2^64)``."""

    bit_commitments: tuple[bytes, ...]
    """``C_1 … C_63`` (``C_0`` is derived)."""
    challenge: int
    """``c``, the shared challenge."""
    e0: tuple[int, ...]
    """Per bit, the bit-0 branch's share of ``c``."""
    z0: tuple[int, ...]
    z1: tuple[int, ...]

    def to_bytes(self) -> bytes:
        out = bytearray(b"".join(self.bit_commitments))
        out += encode_scalar(self.challenge)
        for e, a, b in zip(self.e0, self.z0, self.z1, strict=True):
            out += encode_scalar(e) + encode_scalar(a) + encode_scalar(b)
        return bytes(out)

    @classmethod
    def from_bytes(cls, raw: bytes) -> RangeProof:
        """Parse and check every field (each bit commitment decoded as a group element)."""
        proof = cls.parse(raw)
        for i, ci in enumerate(proof.bit_commitments):
            decode_point(ci, f"range C_{i + 1}", allow_identity=True)
        return proof

    @classmethod
    def parse(cls, raw: bytes) -> RangeProof:
        """Split and check the scalars; the bit commitments are left to the caller to
        check (:func:`verify_range` does, as it multiplies them)."""
        if len(raw) != RANGE_PROOF_SIZE:
            raise MalformedEncoding(
                "range proof", f"{RANGE_PROOF_SIZE} bytes expected, got {len(raw)}"
            )
        cs = tuple(raw[i * POINT_SIZE : (i + 1) * POINT_SIZE] for i in range(BITS - 1))
        off = (BITS - 1) * POINT_SIZE
        scalars = [
            decode_scalar(
                raw[off + j * SCALAR_SIZE : off + (j + 1) * SCALAR_SIZE], f"range scalar {j}"
            )
            for j in range(1 + 3 * BITS)
        ]
        rest = scalars[1:]
        return cls(cs, scalars[0], tuple(rest[0::3]), tuple(rest[1::3]), tuple(rest[2::3]))


def _derive_c0(commitment: bytes, upper: tuple[bytes, ...]) -> bytes:
    # Horner: S = Σ_{i≥1} 2^i·C_i, by doubling; C_0 = C - S
    acc = upper[-1]
    for ci in reversed(upper[:-1]):
        acc = add(add(acc, acc), ci)
    return sub(commitment, add(acc, acc))


def _absorb(transcript: Transcript, commitment: bytes, bits: tuple[bytes, ...]) -> None:
    transcript.append_message(b"dom-sep", b"range-proof-64")
    transcript.append_point(b"C", commitment)
    for ci in bits:
        transcript.append_point(b"C_i", ci)


def prove_range(
    transcript: Transcript,
    commitment: bytes,
    value: int,
    opening: int,
    *,
    rng: Callable[[], int] = random_scalar,
) -> RangeProof:
    """Prove ``commitment = value·H + opening·B`` holds ``value`` in ``[0, 2^64)``."""
    if not 0 <= value <= MAX_VALUE:
        raise InvalidWitness("range", f"value {value} outside [0, 2^64)")
    if commit(value, opening) != commitment:
        raise InvalidWitness("range", "the commitment does not open to the value")
    bits = [(value >> i) & 1 for i in range(BITS)]
    rs = [0] + [rng() % L for _ in range(BITS - 1)]
    rs[0] = (opening - sum(r << i for i, r in enumerate(rs))) % L
    cs = [add(mul_base(r), H) if b else mul_base(r) for b, r in zip(bits, rs, strict=True)]
    _absorb(transcript, commitment, tuple(cs[1:]))
    # per bit: the real branch's nonce k, the simulated branch's (e, z)
    ks, e_sim, z_sim = [], [], []
    for b, ci in zip(bits, cs, strict=True):
        k, e, z = rng() % L, rng() % L, rng() % L
        ks.append(k)
        e_sim.append(e)
        z_sim.append(z)
        real = mul_base(k)
        # the simulated branch proves the other bit: its statement point is C_i (bit 0)
        # or C_i - H (bit 1); A = z·B - e·X makes its check pass for any e
        x_sim = sub(ci, H) if b == 0 else ci
        fake = sub(mul_base(z), mul(x_sim, e))
        a0, a1 = (real, fake) if b == 0 else (fake, real)
        transcript.append_point(b"A0", a0)
        transcript.append_point(b"A1", a1)
    c = transcript.challenge_scalar(b"c")
    e0s, z0s, z1s = [], [], []
    for b, r, k, e, z in zip(bits, rs, ks, e_sim, z_sim, strict=True):
        e_real = (c - e) % L
        z_real = (k + e_real * r) % L
        if b == 0:
            e0s.append(e_real)
            z0s.append(z_real)
            z1s.append(z)
        else:
            e0s.append(e)
            z0s.append(z)
            z1s.append(z_real)
    return RangeProof(tuple(cs[1:]), c, tuple(e0s), tuple(z0s), tuple(z1s))


def verify_range(transcript: Transcript, commitment: bytes, proof: bytes) -> None:
    """Raise unless ``proof`` shows ``commitment`` holds a value in ``[0, 2^64)``."""
    commitment = decode_point(commitment, "range commitment", allow_identity=True)
    p = RangeProof.parse(proof)
    # untrusted until multiplied below: libsodium's add/sub refuse points off the curve,
    # and a C_i outside the subgroup is refused by its multiplication before c is compared
    cs = (_derive_c0(commitment, p.bit_commitments), *p.bit_commitments)
    _absorb(transcript, commitment, cs[1:])
    # the commitments from outside first, so that a bad one is named (C_0 is derived)
    e0_cs = {
        i: mul_untrusted(cs[i], p.e0[i], f"range C_{i}", allow_identity=True)
        for i in [*range(1, BITS), 0]
    }
    for i, (ci, e0, z0, z1) in enumerate(zip(cs, p.e0, p.z0, p.z1, strict=True)):
        transcript.append_point(b"A0", sub(mul_base(z0), e0_cs[i]))
        transcript.append_point(b"A1", sub(mul_base(z1), mul(sub(ci, H), p.challenge - e0)))
    if transcript.challenge_scalar(b"c") != p.challenge:
        raise ProofRejected("range", "challenge does not match")
