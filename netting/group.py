"""The group netting's Pedersen commitments live in: :mod:`zk.group` (libsodium's
edwards25519 prime-order subgroup, through PyNaCl), with netting's own errors.

Every scalar and point operation is :mod:`zk.group`'s; this module only keeps netting's
names, its second generator and its error type. ``G`` is the standard base point
(``zk.group.B``). ``H`` is netting's own, hashed to the curve from a netting label (so
netting's commitments are not interchangeable with the ``zk`` proofs', whose ``H``
differs): nobody knows ``log_G H``, so a commitment ``a·G + b·H`` binds to ``a``.

Untrusted bytes that are not a usable group element or scalar raise
:class:`netting.errors.BadPoint`, the error the netting protocol counts and refuses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from nacl import bindings as sodium

from netting.errors import BadPoint
from zk import group as zk
from zk.errors import MalformedEncoding
from zk.group import IDENTITY, POINT_SIZE, SCALAR_SIZE, L, is_valid_point, random_scalar
from zk.group import encode_scalar as scalar_bytes

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


def from_scalar_bytes(raw: bytes) -> int:
    """A canonical scalar (``< L``) from 32 little-endian bytes; untrusted input."""
    try:
        return zk.decode_scalar(raw)
    except MalformedEncoding as exc:
        raise BadPoint(exc.reason) from None


def mul(point: bytes, k: int) -> bytes:
    """``k · point``; raises :class:`BadPoint` if ``point`` is not in the prime-order group."""
    try:
        return zk.mul(point, k)
    except MalformedEncoding:
        raise BadPoint("scalar multiplication refused the point") from None


def add(p: bytes, q: bytes) -> bytes:
    """``p + q``; raises :class:`BadPoint` for bytes that are not a curve point."""
    try:
        return zk.add(p, q)
    except MalformedEncoding:
        raise BadPoint("point addition refused an operand") from None


def sum_points(points: Sequence[bytes]) -> bytes:
    acc = IDENTITY
    for p in points:
        acc = add(acc, p)
    return acc


def commit(a: int, b: int) -> bytes:
    """The Pedersen commitment ``a·G + b·H``."""
    return add(mul(G, a), mul(H, b))


G = zk.B
"""The standard edwards25519 base point."""
H = bytes(
    sodium.crypto_core_ed25519_from_uniform(
        hashlib.sha256(b"interlock/v1/netting/pedersen-h\x00").digest()
    )
)
"""The second generator, hashed to the curve: its logarithm to ``G`` is unknown."""
