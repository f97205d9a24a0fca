"""The prime-order group for Pedersen commitments: libsodium's edwards25519, through PyNaCl.

Why this group: PyNaCl 1.6 (the newest release) does not bind libsodium's ristretto255
functions, but it does bind ``crypto_core_ed25519_*`` and
``crypto_scalarmult_ed25519_*_noclamp``, which work in the prime-order subgroup of
edwards25519 (order ``L = 2^252 + 27742317777372353535851937790883648493``) and refuse
points outside it. No curve arithmetic is written here: every point operation is one
libsodium call. Scalars are integers mod ``L``; Python does the scalar arithmetic.

The two generators: ``G`` is the standard base point; ``H`` is hashed to the curve
(``crypto_core_ed25519_from_uniform`` of a fixed label, cofactor cleared by libsodium),
so nobody knows ``log_G H`` and a Pedersen commitment ``a·G + b·H`` binds to ``a``
(hiding is perfect: for uniform ``b`` it is a uniform point whatever ``a`` is).

The identity has no place in libsodium's scalar multiplication (it refuses small-order
inputs and results), so :func:`mul` handles a zero scalar and the identity itself.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence

from nacl import bindings as sodium
from nacl.exceptions import CryptoError
from nacl.exceptions import RuntimeError as SodiumRuntimeError

from netting.errors import BadPoint

__all__ = [
    "IDENTITY",
    "POINT_SIZE",
    "SCALAR_SIZE",
    "G",
    "H",
    "L",
    "add",
    "commit",
    "from_scalar_bytes",
    "is_valid_point",
    "mul",
    "random_scalar",
    "scalar_bytes",
    "sum_points",
]

L = 2**252 + 27742317777372353535851937790883648493
"""Order of the prime-order subgroup (the scalar field)."""
POINT_SIZE = 32
SCALAR_SIZE = 32
IDENTITY = b"\x01" + bytes(31)
"""The neutral element's encoding (y = 1)."""

_ERRORS = (CryptoError, SodiumRuntimeError, ValueError, TypeError)


def scalar_bytes(k: int) -> bytes:
    return (k % L).to_bytes(SCALAR_SIZE, "little")


def from_scalar_bytes(raw: bytes) -> int:
    """A canonical scalar (``< L``) from 32 little-endian bytes; untrusted input."""
    if len(raw) != SCALAR_SIZE:
        raise BadPoint(f"a scalar is {SCALAR_SIZE} bytes, got {len(raw)}")
    k = int.from_bytes(raw, "little")
    if k >= L:
        raise BadPoint("scalar not reduced mod L")
    return k


def random_scalar() -> int:
    # 512 uniform bits reduced mod L: bias below 2^-250
    return int.from_bytes(os.urandom(64), "little") % L


def mul(point: bytes, k: int) -> bytes:
    """``k · point``; raises :class:`BadPoint` if ``point`` is not in the prime-order group."""
    k %= L
    if k == 0 or point == IDENTITY:
        return IDENTITY
    try:
        if point == G:
            return bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(scalar_bytes(k)))
        return bytes(sodium.crypto_scalarmult_ed25519_noclamp(scalar_bytes(k), point))
    except _ERRORS:
        raise BadPoint("scalar multiplication refused the point") from None


def add(p: bytes, q: bytes) -> bytes:
    """``p + q``; raises :class:`BadPoint` for bytes that are not a curve point."""
    if p == IDENTITY:
        return q
    if q == IDENTITY:
        return p
    try:
        return bytes(sodium.crypto_core_ed25519_add(p, q))
    except _ERRORS:
        raise BadPoint("point addition refused an operand") from None


def sum_points(points: Sequence[bytes]) -> bytes:
    acc = IDENTITY
    for p in points:
        acc = add(acc, p)
    return acc


def is_valid_point(p: bytes) -> bool:
    """On the curve, canonical, in the prime-order subgroup, not the identity."""
    try:
        return len(p) == POINT_SIZE and bool(sodium.crypto_core_ed25519_is_valid_point(p))
    except _ERRORS:
        return False


def commit(a: int, b: int) -> bytes:
    """The Pedersen commitment ``a·G + b·H``."""
    return add(mul(G, a), mul(H, b))


G = bytes(sodium.crypto_scalarmult_ed25519_base_noclamp(scalar_bytes(1)))
"""The standard edwards25519 base point."""
H = bytes(
    sodium.crypto_core_ed25519_from_uniform(
        hashlib.sha256(b"interlock/v1/netting/pedersen-h\x00").digest()
    )
)
"""The second generator, hashed to the curve: its logarithm to ``G`` is unknown."""
