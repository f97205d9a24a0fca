"""RFC 6962 Merkle trees: the published Certificate Transparency vectors, then every leaf
of every small tree proving and every mutation of a proof failing (never raising)."""

from __future__ import annotations

from hashlib import sha256

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chains.merkle import (
    EMPTY_ROOT,
    hash_leaf,
    inclusion_proof,
    merkle_root,
    merkle_root_of_hashes,
    verify_inclusion,
)

# transparency-dev/merkle testonly/constants.go (the CT reference tree of 8 leaves)
CT_LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
CT_ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]
# transparency-dev/merkle proof/verify_test.go: (0-based index, tree size, audit path)
CT_PATHS = [
    (
        0,
        8,
        [
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
    ),
    (
        5,
        8,
        [
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
    ),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (
        1,
        5,
        [
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
    ),
]
# the leaf-level node hashes of the reference tree
CT_LEAF_HASHES = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
    "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
    "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
    "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
    "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
    "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
]


# --- reference vectors ----------------------------------------------------------------


@pytest.mark.parametrize("size", range(9))
def test_root_matches_ct_reference(size: int) -> None:
    assert merkle_root(CT_LEAVES[:size]).hex() == CT_ROOTS[size]


def test_empty_root_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT == sha256(b"").digest() == merkle_root([])


def test_leaf_hashes_match_ct_reference() -> None:
    assert [hash_leaf(leaf).hex() for leaf in CT_LEAVES] == CT_LEAF_HASHES


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_audit_path_matches_ct_reference(index: int, size: int, path: list[str]) -> None:
    proof = inclusion_proof(CT_LEAVES[:size], index)
    assert [p.hex() for p in proof] == path
    root = bytes.fromhex(CT_ROOTS[size])
    assert verify_inclusion(CT_LEAVES[index], index, size, proof, root)


@pytest.mark.parametrize(("index", "size", "path"), CT_PATHS)
def test_ct_reference_corruptions_fail(index: int, size: int, path: list[str]) -> None:
    proof = [bytes.fromhex(p) for p in path]
    root = bytes.fromhex(CT_ROOTS[size])
    leaf = CT_LEAVES[index]
    some = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")
    probes = [
        (leaf, index - 1, size, proof, root),
        (leaf, index + 1, size, proof, root),
        (leaf, index ^ 2, size, proof, root),
        (leaf, index, size * 2, proof, root),
        (leaf, index, size // 2, proof, root),
        (b"WrongLeaf", index, size, proof, root),
        (leaf, index, size, proof, EMPTY_ROOT),
        (leaf, index, size, proof, some),
        (leaf, index, size, [*proof, b""], root),
        (leaf, index, size, [*proof, root], root),
        (leaf, index, size, [b"", *proof], root),
        (leaf, index, size, [root, *proof], root),
        (leaf, index, size, proof[:-1], root),
        (leaf, index, size, [proof[0], some, *proof[1:]], root),
    ]
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes.append((leaf, index, size, flipped, root))
    for probe in probes:
        assert verify_inclusion(*probe) is False, probe


def test_single_leaf_tree_has_empty_proof() -> None:
    root = merkle_root([b"data"])
    assert root == hash_leaf(b"data")
    assert inclusion_proof([b"data"], 0) == []
    assert verify_inclusion(b"data", 0, 1, [], root)
    assert not verify_inclusion(b"data", 0, 1, [], b"")
    assert not verify_inclusion(b"data", 0, 0, [], root)
    assert not verify_inclusion(b"data", 1, 1, [], root)


def test_inclusion_proof_refuses_out_of_range_index() -> None:
    with pytest.raises(IndexError):
        inclusion_proof([b"a", b"b"], 2)
    with pytest.raises(IndexError):
        inclusion_proof([b"a", b"b"], -1)
    with pytest.raises(IndexError):
        inclusion_proof([], 0)


def test_root_of_hashes_agrees_with_recursive_definition() -> None:
    def mth(leaves: list[bytes]) -> bytes:
        if not leaves:
            return sha256(b"").digest()
        if len(leaves) == 1:
            return sha256(b"\x00" + leaves[0]).digest()
        k = 1
        while k * 2 < len(leaves):
            k *= 2
        return sha256(b"\x01" + mth(leaves[:k]) + mth(leaves[k:])).digest()

    for n in range(70):
        leaves = [bytes([i % 256]) * (i % 5) for i in range(n)]
        assert merkle_root(leaves) == mth(leaves)
        assert merkle_root_of_hashes([hash_leaf(x) for x in leaves]) == mth(leaves)


def test_leaf_cannot_pose_as_inner_node() -> None:
    """A second preimage: the concatenation of two leaf hashes is not a leaf."""
    a, b = hash_leaf(b"a"), hash_leaf(b"b")
    root = merkle_root([b"a", b"b"])
    assert merkle_root([a + b]) != root
    assert not verify_inclusion(a + b, 0, 1, [], root)


# --- every leaf of every size proves ----------------------------------------------------


def _leaves(n: int) -> list[bytes]:
    return [b"leaf-%d" % i for i in range(n)]


def test_every_leaf_of_every_size_up_to_64_proves() -> None:
    for size in range(1, 65):
        leaves = _leaves(size)
        root = merkle_root(leaves)
        for i in range(size):
            assert verify_inclusion(leaves[i], i, size, inclusion_proof(leaves, i), root)


def test_size_zero_proves_nothing() -> None:
    assert not verify_inclusion(b"", 0, 0, [], EMPTY_ROOT)


# --- every mutation fails, and never raises -------------------------------------------


def _directions(index: int, size: int, path_len: int) -> list[bool] | None:
    """Which side each sibling is hashed on when checking a path of ``path_len`` for
    (index, size) per RFC 9162 §2.1.3.2, or None if no such path can verify."""
    if not 0 <= index < size:
        return None
    fn, sn, out = index, size - 1, []
    for _ in range(path_len):
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            out.append(True)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            out.append(False)
        fn >>= 1
        sn >>= 1
    return out if sn == 0 else None


def _shape_changes(index: int, size: int, other: int, path_len: int) -> bool:
    """Whether a path for (index, size) is hashed differently when checked for ``other``.

    RFC 6962 roots do not commit to the tree size: for some (index, size) the same path
    verifies for a neighbouring size (leaf 0 of 3 leaves is hashed exactly like leaf 0 of
    4). That is why headers carry ``event_count`` and ``lightclient.verify_event`` uses the
    stored count, never the prover's (tested there).
    """
    return _directions(index, other, path_len) != _directions(index, size, path_len)


def test_a_path_can_verify_for_a_neighbouring_size() -> None:
    """The reason a tree size must come from the signed header, not from the prover."""
    leaves = _leaves(3)
    proof = inclusion_proof(leaves, 0)
    assert verify_inclusion(leaves[0], 0, 4, proof, merkle_root(leaves))


@settings(max_examples=150, deadline=None)
@given(
    size=st.integers(1, 64),
    data=st.data(),
)
def test_every_mutation_of_a_proof_fails(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size)
    index = data.draw(st.integers(0, size - 1))
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, index)
    leaf = leaves[index]
    assert verify_inclusion(leaf, index, size, proof, root)

    # each byte of each sibling
    for i, sib in enumerate(proof):
        for j in range(len(sib)):
            bad = list(proof)
            bad[i] = sib[:j] + bytes([sib[j] ^ 0x01]) + sib[j + 1 :]
            assert not verify_inclusion(leaf, index, size, bad, root)
    # the index
    for other in range(-1, size + 1):
        if other != index:
            assert not verify_inclusion(leaf, other, size, proof, root)
    # the size, wherever the shape of the path changes
    for other in (0, size - 1, size + 1, size * 2, size // 2, 2**64):
        if other != size and _shape_changes(index, size, other, len(proof)):
            assert not verify_inclusion(leaf, index, other, proof, root)
    # extra or missing siblings
    assert not verify_inclusion(leaf, index, size, [*proof, bytes(32)], root)
    assert not verify_inclusion(leaf, index, size, [*proof, root], root)
    assert not verify_inclusion(leaf, index, size, [bytes(32), *proof], root)
    if proof:
        assert not verify_inclusion(leaf, index, size, proof[:-1], root)
        assert not verify_inclusion(leaf, index, size, proof[1:], root)
        assert not verify_inclusion(leaf, index, size, list(reversed(proof)), root) or (
            len(proof) == 1 or proof == list(reversed(proof))
        )
    # wrong leaf, wrong root
    assert not verify_inclusion(leaf + b"x", index, size, proof, root)
    assert not verify_inclusion(leaf, index, size, proof, bytes(32))
    assert not verify_inclusion(leaf, index, size, proof, root[:-1])
    assert not verify_inclusion(leaf, index, size, proof, root + b"\x00")


JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.binary(max_size=40),
    st.lists(st.binary(max_size=40), max_size=5),
    st.lists(st.text(max_size=5), max_size=5),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
)


@settings(max_examples=300, deadline=None)
@given(leaf=JUNK, index=JUNK, size=JUNK, proof=JUNK, root=JUNK)
def test_garbage_of_any_type_is_false_never_an_exception(
    leaf: object, index: object, size: object, proof: object, root: object
) -> None:
    assert verify_inclusion(leaf, index, size, proof, root) is False  # type: ignore[arg-type]


@settings(max_examples=100, deadline=None)
@given(size=st.integers(1, 64), data=st.data())
def test_wrongly_typed_parts_of_a_good_proof_are_false(size: int, data: st.DataObject) -> None:
    leaves = _leaves(size)
    index = data.draw(st.integers(0, size - 1))
    root = merkle_root(leaves)
    proof = inclusion_proof(leaves, index)
    args = [leaves[index], index, size, proof, root]
    replacements = {
        0: [leaves[index].decode(), bytearray(leaves[index]), None],
        1: [True if index == 1 else False if index == 0 else None, float(index), str(index)],
        2: [float(size), str(size), True if size == 1 else None],
        3: [[p.hex() for p in proof] or [""], b"".join(proof) or None, 7],
        4: [root.hex(), bytearray(root), None],
    }
    for pos, values in replacements.items():
        for v in values:
            bad = list(args)
            bad[pos] = v
            assert verify_inclusion(*bad) is False, (pos, v)  # type: ignore[arg-type]


def test_all_at_once_paths_verify_against_the_root() -> None:
    from chains.merkle import inclusion_proofs

    for size in range(1, 65):
        leaves = _leaves(size)
        root = merkle_root(leaves)
        paths = inclusion_proofs(leaves, range(size))
        assert len(paths) == size
        for i, path in enumerate(paths):
            assert verify_inclusion(leaves[i], i, size, path, root), (size, i)
    assert inclusion_proofs(CT_LEAVES, [5])[0] == [bytes.fromhex(h) for h in CT_PATHS[1][2]]
    with pytest.raises(IndexError):
        inclusion_proofs(_leaves(3), [3])
    with pytest.raises(IndexError):
        inclusion_proofs([], [0])
