"""Shared helpers: a deterministic prover randomness for the test vectors, and tampering."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator

from zk.group import L

# p + 1 as a y coordinate: the identity's non-canonical twin
NON_CANONICAL = bytes([0xEE]) + b"\xff" * 30 + b"\x7f"
# y = p - 1, x = 0: the point of order 2
ORDER_TWO = bytes([0xEC]) + b"\xff" * 30 + b"\x7f"
# y = 2: no x makes it a curve point
OFF_CURVE = b"\x02" + bytes(31)


def det_rng(seed: bytes) -> Callable[[], int]:
    """Scalars from SHA-512 of a seed and a counter: a prover whose proofs are vectors."""
    counter = iter(range(1 << 30))

    def rng() -> int:
        return (
            int.from_bytes(
                hashlib.sha512(seed + next(counter).to_bytes(4, "big")).digest(), "little"
            )
            % L
        )

    return rng


def flips(raw: bytes, offsets: list[int]) -> Iterator[tuple[int, bytes]]:
    """``raw`` with one bit flipped at each offset (low bit: stays a canonical scalar)."""
    for off in offsets:
        out = bytearray(raw)
        out[off] ^= 0x01
        yield off, bytes(out)


def non_canonical_scalar(raw: bytes) -> bytes:
    """The same scalar plus L, when that still fits in 32 bytes (it does below 2^256 - L)."""
    k = int.from_bytes(raw, "little") + L
    return k.to_bytes(32, "little")
