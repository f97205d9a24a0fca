"""RFC 6962 (Certificate Transparency) Merkle trees.

A block's ``event_root`` and ``tx_root`` are Merkle Tree Hashes (RFC 6962 §2.1) over the
canonical bytes of its events and transactions, so a light client holding only the header
can check that one event happened with an audit path of ``ceil(log2 n)`` hashes.

    leaf hash  = SHA-256(0x00 ‖ data)
    node hash  = SHA-256(0x01 ‖ left ‖ right)
    empty tree = SHA-256("")

The tree over ``n`` leaves splits at ``k``, the largest power of two smaller than ``n``.
The 0x00/0x01 prefixes keep a leaf from ever being read as an inner node (the
second-preimage attack on naive Merkle trees).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from hashlib import sha256

__all__ = [
    "EMPTY_ROOT",
    "hash_leaf",
    "hash_node",
    "inclusion_proof",
    "inclusion_proofs",
    "merkle_root",
    "merkle_root_of_hashes",
    "root_and_proofs",
    "verify_inclusion",
]

EMPTY_ROOT = sha256(b"").digest()
HASH_SIZE = 32


def hash_leaf(data: bytes) -> bytes:
    return sha256(b"\x00" + data).digest()


def hash_node(left: bytes, right: bytes) -> bytes:
    return sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (n >= 2)."""
    return 1 << ((n - 1).bit_length() - 1)


def merkle_root_of_hashes(hashes: Sequence[bytes]) -> bytes:
    """Root over already-hashed leaves, computed level by level.

    Pairing left to right and carrying an odd last node up unchanged yields exactly the
    RFC 6962 split tree, without recursion.
    """
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    while len(level) > 1:
        nxt = [
            sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def merkle_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle Tree Hash of raw leaf data."""
    return merkle_root_of_hashes([sha256(b"\x00" + leaf).digest() for leaf in leaves])


def inclusion_proof(leaves: Sequence[bytes], index: int) -> list[bytes]:
    """RFC 6962 §2.1.1 audit path for ``leaves[index]``, deepest sibling first."""
    if not 0 <= index < len(leaves):
        raise IndexError(f"leaf index {index} out of range for tree of size {len(leaves)}")
    return inclusion_proofs(leaves, [index])[0]


def inclusion_proofs(leaves: Sequence[bytes], indices: Iterable[int]) -> list[list[bytes]]:
    """Audit paths for many leaves from one tree: O(n + k log n) instead of O(k n).

    Equal to ``[inclusion_proof(leaves, i) for i in indices]``.
    """
    return root_and_proofs(leaves, indices)[1]


def root_and_proofs(
    leaves: Sequence[bytes], indices: Iterable[int]
) -> tuple[bytes, list[list[bytes]]]:
    """The Merkle Tree Hash of ``leaves`` and the audit paths of ``indices``, from one tree.

    Built level by level with an odd last node carried up unchanged (exactly the RFC 6962
    tree, see :func:`merkle_root_of_hashes`); a carried node has no sibling at its level.
    A reader holding every leaf of a block checks them all against its root with this
    (two hashes a leaf) instead of one audit path each (``log2 n`` hashes a leaf).
    """
    size = len(leaves)
    levels = [[sha256(b"\x00" + leaf).digest() for leaf in leaves]]
    while len(levels[-1]) > 1:
        lv = levels[-1]
        nxt = [sha256(b"\x01" + lv[i] + lv[i + 1]).digest() for i in range(0, len(lv) - 1, 2)]
        if len(lv) % 2:
            nxt.append(lv[-1])
        levels.append(nxt)
    out = []
    for index in indices:
        if not 0 <= index < size:
            raise IndexError(f"leaf index {index} out of range for tree of size {size}")
        path, m = [], index
        for lv in levels[:-1]:
            if m ^ 1 < len(lv):
                path.append(lv[m ^ 1])
            m >>= 1
        out.append(path)
    return (levels[-1][0] if size else EMPTY_ROOT), out


def verify_inclusion(
    leaf: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Check an audit path (RFC 9162 §2.1.3.2). Never raises: any malformed input is False.

    Untrusted input: every argument may come straight off the bus.
    """
    try:
        if not (
            isinstance(leaf, bytes)
            and isinstance(root, bytes)
            and isinstance(index, int)
            and isinstance(tree_size, int)
            and not isinstance(index, bool)
            and not isinstance(tree_size, bool)
        ):
            return False
        if len(root) != HASH_SIZE or not 0 <= index < tree_size:
            return False
        fn, sn = index, tree_size - 1
        r = sha256(b"\x00" + leaf).digest()  # hash_leaf / hash_node inlined: hot path
        for p in proof:
            if not isinstance(p, bytes) or len(p) != HASH_SIZE or sn == 0:
                return False
            if fn & 1 or fn == sn:
                r = sha256(b"\x01" + p + r).digest()
                if not fn & 1:
                    while fn and not fn & 1:
                        fn >>= 1
                        sn >>= 1
            else:
                r = sha256(b"\x01" + r + p).digest()
            fn >>= 1
            sn >>= 1
        return sn == 0 and r == root
    except Exception:
        return False
