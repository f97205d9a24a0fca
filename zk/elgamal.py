"""Twisted ElGamal on the order-``L`` group, as in PGC and Solana's confidential transfers.

A key pair is ``s`` and ``P = s·B``. A value ``v`` encrypted to ``P`` with randomness
``r`` is a Pedersen commitment and a decryption handle::

    C = v·H + r·B        D = r·P

The commitment does not depend on the key, so one value can be encrypted to several keys
(sender, receiver, auditor) and the proofs speak about ``C`` directly; ciphertexts add and
subtract component-wise, which is how a chain updates encrypted balances without learning
them. The key holder recovers ``v·H = C - s⁻¹·D`` and then ``v`` by a bounded discrete-log
search (baby-step giant-step), so decryption is practical only for values below a bound
the caller chooses.

Byte formats: a public key is 32 bytes, a non-identity point. A ciphertext is 64 bytes,
``C ‖ D``; either half may be the identity (the ciphertext of zero with ``r = 0``, or a
difference of equal ciphertexts), so it is decoded with ``allow_identity``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from zk.errors import InvalidWitness, MalformedEncoding
from zk.group import (
    IDENTITY,
    POINT_SIZE,
    H,
    L,
    add,
    decode_point,
    mul,
    mul_base,
    random_scalar,
    sub,
)

__all__ = [
    "CIPHERTEXT_SIZE",
    "MAX_VALUE",
    "Ciphertext",
    "ElGamalKeypair",
    "commit",
    "decode_public_key",
    "decrypt",
    "decrypt_point",
    "encrypt",
    "encrypt_public",
]

CIPHERTEXT_SIZE = 2 * POINT_SIZE
MAX_VALUE = 2**64 - 1
"""The largest value a prover may encrypt or commit to (the range proofs' bound)."""


def decode_public_key(raw: bytes) -> bytes:
    return decode_point(raw, "public key")


def commit(value: int, opening: int) -> bytes:
    """The Pedersen commitment ``value·H + opening·B`` (``value`` taken mod ``L``)."""
    return add(mul(H, value), mul_base(opening))


@dataclass(frozen=True, slots=True)
class ElGamalKeypair:
    """A twisted-ElGamal key pair."""

    secret: int
    """``s``, in ``[1, L)``."""
    public: bytes
    """``P = s·B``."""

    @classmethod
    def from_secret(cls, secret: int) -> ElGamalKeypair:
        if not 0 < secret < L:
            raise InvalidWitness("elgamal key", "the secret must be in [1, L)")
        return cls(secret, mul_base(secret))

    @classmethod
    def generate(cls) -> ElGamalKeypair:
        return cls.from_secret(random_scalar())


@dataclass(frozen=True, slots=True)
class Ciphertext:
    """A twisted-ElGamal ciphertext."""

    commitment: bytes
    """``C = v·H + r·B``."""
    handle: bytes
    """``D = r·P``."""

    def to_bytes(self) -> bytes:
        return self.commitment + self.handle

    @classmethod
    def from_bytes(cls, raw: bytes) -> Ciphertext:
        if len(raw) != CIPHERTEXT_SIZE:
            raise MalformedEncoding(
                "ciphertext", f"{CIPHERTEXT_SIZE} bytes expected, got {len(raw)}"
            )
        return cls(
            decode_point(raw[:POINT_SIZE], "ciphertext C", allow_identity=True),
            decode_point(raw[POINT_SIZE:], "ciphertext D", allow_identity=True),
        )

    def __add__(self, other: Ciphertext) -> Ciphertext:
        return Ciphertext(add(self.commitment, other.commitment), add(self.handle, other.handle))

    def __sub__(self, other: Ciphertext) -> Ciphertext:
        return Ciphertext(sub(self.commitment, other.commitment), sub(self.handle, other.handle))


ZERO = Ciphertext(IDENTITY, IDENTITY)
"""The ciphertext of 0 with randomness 0, under every key: a new account's balance."""


def encrypt(public: bytes, value: int, opening: int) -> Ciphertext:
    """Encrypt ``value`` (in ``[0, 2^64)``) to ``public`` with randomness ``opening``."""
    if not 0 <= value <= MAX_VALUE:
        raise InvalidWitness("encryption", f"value {value} outside [0, 2^64)")
    return Ciphertext(commit(value, opening), mul(public, opening))


def encrypt_public(value: int) -> Ciphertext:
    """A value everyone knows as a ciphertext under any key (randomness 0): a deposit."""
    if not 0 <= value <= MAX_VALUE:
        raise InvalidWitness("encryption", f"value {value} outside [0, 2^64)")
    return Ciphertext(mul(H, value), IDENTITY)


def decrypt_point(secret: int, ct: Ciphertext) -> bytes:
    """``v·H`` for the value ``v`` that ``ct`` holds under the key ``secret``."""
    return sub(ct.commitment, mul(ct.handle, pow(secret, -1, L)))


@functools.lru_cache(maxsize=4)
def _baby_steps(m: int) -> dict[bytes, int]:
    table: dict[bytes, int] = {}
    point = IDENTITY
    for j in range(m):
        table[point] = j
        point = add(point, H)
    return table


def decrypt(secret: int, ct: Ciphertext, bound: int = 2**32) -> int | None:
    """The value in ``[0, bound)`` that ``ct`` holds, or ``None`` if it holds none there.

    Baby-step giant-step: about ``2·sqrt(bound)`` point additions, the table cached.
    """
    target = decrypt_point(secret, ct)
    m = max(1, math.isqrt(max(bound - 1, 0)) + 1)
    table = _baby_steps(m)
    giant = mul(H, m)
    for i in range(m + 1):
        j = table.get(target)
        if j is not None and i * m + j < bound:
            return i * m + j
        target = sub(target, giant)
    return None
