"""Checking many audit paths against one root, sharing the work (pure).

A mint transaction carries dozens of events of the same source block, and their audit
paths share most of their upper nodes. :class:`RootVerifier` accepts exactly the proofs
that ``chains.merkle.verify_inclusion`` accepts (a property test checks that, mutation
by mutation), but remembers every node it has authenticated, so a later path stops
hashing at the first node already known and only *compares* its remaining siblings with
the known ones.

Why that is sound: the RFC 6962 tree over ``n`` leaves is the level-by-level tree in
which an odd last node is carried up unchanged, so the ancestor of leaf ``i`` at level
``l`` is node ``(l, i >> l)`` and it has a sibling exactly when ``(i >> l) ^ 1`` is below
that level's width. A node is remembered only after a path through it reached the root
(or a node that had), together with the siblings on that path; so every remembered node
comes with its whole authenticated path to the root, and matching one, at the same
position, is as good as recomputing the rest. Positions, the sibling count and every
sibling are still checked, so a wrong index, size or extra node is refused as before.
"""

from __future__ import annotations

from collections.abc import Sequence

from chains.merkle import hash_leaf, hash_node

__all__ = ["RootVerifier"]

_HASH = 32


class RootVerifier:
    """Verifies inclusion proofs against one ``(root, tree_size)``; remembers what it
    authenticated. Mutable, short-lived: one per root per call."""

    __slots__ = ("_known", "_widths", "root", "tree_size")

    def __init__(self, root: bytes, tree_size: int) -> None:
        self.root = root
        self.tree_size = tree_size
        widths = [tree_size]
        while widths[-1] > 1:
            widths.append((widths[-1] + 1) // 2)
        self._widths = widths[:-1]  # levels that have a parent
        self._known: dict[tuple[int, int], bytes] = {}

    def verify(self, leaf: bytes, index: int, proof: Sequence[bytes]) -> bool:
        """True iff ``proof`` proves ``leaf`` is leaf ``index``. Never raises."""
        if (
            not isinstance(index, int)
            or isinstance(index, bool)
            or not 0 <= index < self.tree_size
            or len(self.root) != _HASH
        ):
            return False
        known = self._known
        learned: list[tuple[tuple[int, int], bytes]] = []
        r = hash_leaf(leaf)
        matched = False
        m = index
        k = 0
        n_proof = len(proof)
        for level, width in enumerate(self._widths):
            if not matched:
                have = known.get((level, m))
                if have is not None:
                    if have != r:
                        return False
                    matched = True
                else:
                    learned.append(((level, m), r))
            sib = m ^ 1
            if sib < width:
                if k >= n_proof:
                    return False
                p = proof[k]
                k += 1
                if not isinstance(p, bytes) or len(p) != _HASH:
                    return False
                if matched:
                    if known.get((level, sib)) != p:
                        return False
                else:
                    learned.append(((level, sib), p))
                    r = hash_node(p, r) if m & 1 else hash_node(r, p)
            m >>= 1
        if k != n_proof:
            return False
        if not matched and r != self.root:
            return False
        known.update(learned)
        return True
