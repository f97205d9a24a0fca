"""RootVerifier accepts exactly what the kernel's verify_inclusion accepts, with a cold or
a warm memory of authenticated nodes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.proofs import RootVerifier
from chains.merkle import inclusion_proof, merkle_root, verify_inclusion

MUTATIONS = [
    "none",
    "flip",
    "drop_last",
    "drop_first",
    "append",
    "insert",
    "swap",
    "index+1",
    "index-1",
    "index_any",
    "leaf",
    "other_proof",
    "empty",
]


def _mutate(kind: str, leaves: list[bytes], i: int, proof: list[bytes], j: int, pos: int):
    leaf, idx, p = leaves[i], i, list(proof)
    if kind == "flip" and p:
        k = pos % len(p)
        p[k] = bytes([p[k][0] ^ 1]) + p[k][1:]
    elif kind == "drop_last" and p:
        p.pop()
    elif kind == "drop_first" and p:
        p.pop(0)
    elif kind == "append":
        p.append(p[-1] if p else bytes(32))
    elif kind == "insert":
        p.insert(pos % (len(p) + 1), bytes([pos % 256]) * 32)
    elif kind == "swap" and len(p) > 1:
        a, b = pos % len(p), (pos + 1) % len(p)
        p[a], p[b] = p[b], p[a]
    elif kind == "index+1":
        idx = i + 1
    elif kind == "index-1":
        idx = i - 1
    elif kind == "index_any":
        idx = j
    elif kind == "leaf":
        leaf = leaves[j]
    elif kind == "other_proof":
        p = inclusion_proof(leaves, j)
    elif kind == "empty":
        p = []
    return leaf, idx, p


@settings(max_examples=150, deadline=None)
@given(
    n=st.integers(1, 70),
    queries=st.lists(
        st.tuples(
            st.integers(0, 10**6),
            st.sampled_from(MUTATIONS),
            st.integers(0, 10**6),
            st.integers(0, 10**6),
        ),
        min_size=1,
        max_size=25,
    ),
)
def test_same_verdicts_as_the_kernel(n: int, queries: list[tuple[int, str, int, int]]) -> None:
    leaves = [b"event-%d" % k for k in range(n)]
    root = merkle_root(leaves)
    warm = RootVerifier(root, n)
    for qi, kind, qj, pos in queries:
        i, j = qi % n, qj % n
        leaf, idx, proof = _mutate(kind, leaves, i, inclusion_proof(leaves, i), j, pos)
        expected = verify_inclusion(leaf, idx, n, proof, root)
        assert RootVerifier(root, n).verify(leaf, idx, proof) == expected, (kind, i, idx)
        assert warm.verify(leaf, idx, proof) == expected, (kind, i, idx, "warm")


def test_every_valid_proof_of_a_tree_passes_warm_and_forgeries_fail() -> None:
    for n in (1, 2, 3, 7, 8, 9, 33):
        leaves = [b"e%d" % k for k in range(n)]
        v = RootVerifier(merkle_root(leaves), n)
        for i in range(n):
            assert v.verify(leaves[i], i, inclusion_proof(leaves, i))
        for i in range(n):
            assert not v.verify(b"forged", i, inclusion_proof(leaves, i))
            if n > 1:
                assert not v.verify(leaves[i], (i + 1) % n, inclusion_proof(leaves, i))


def test_zero_root_and_bad_inputs() -> None:
    leaves = [b"a", b"b"]
    assert not RootVerifier(bytes(32), 2).verify(b"a", 0, inclusion_proof(leaves, 0))
    v = RootVerifier(merkle_root(leaves), 2)
    assert not v.verify(b"a", True, inclusion_proof(leaves, 1))  # type: ignore[arg-type]
    assert not v.verify(b"a", -1, [])
    assert not v.verify(b"a", 0, ["00" * 32])  # type: ignore[list-item]
    assert not RootVerifier(b"short", 2).verify(b"a", 0, inclusion_proof(leaves, 0))
