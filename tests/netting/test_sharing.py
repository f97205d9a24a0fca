"""Pedersen-verified Shamir sharing and packing: the arithmetic the protocol stands on."""

from __future__ import annotations

import random

import pytest

from netting import group
from netting.errors import BadObligations, BadPoint, RoundFailed
from netting.sharing import (
    MAX_AMOUNT,
    compute_aggregate,
    compute_contribution,
    compute_share,
    deal,
    is_valid_share,
    pack_values,
    reconstruct,
    unpack_values,
)

OFF_CURVE = b"\x02" + bytes(31)  # y = 2 is no point of edwards25519


def test_pack_sum_is_packing_of_sum() -> None:
    rng = random.Random(1)
    n = 9
    rows = [[0 if k == i else rng.randint(0, MAX_AMOUNT) for k in range(n)] for i in range(n)]
    contribs = [compute_contribution(r, i) for i, r in enumerate(rows)]
    packed = [pack_values(v) for v in contribs]
    summed = tuple(sum(p[c] for p in packed) for c in range(len(packed[0])))
    out = unpack_values(summed, n + 1, n)
    assert out == tuple(sum(v[k] for v in contribs) for k in range(n + 1))
    assert sum(out[:n]) == 0
    assert out[n] == sum(map(sum, rows))


@pytest.mark.parametrize(
    ("row", "me"),
    [
        ([0, -1, 2], 0),
        ([0, MAX_AMOUNT + 1, 2], 0),
        ([1, 1, 2], 0),
        ([0, 1.5, 2], 0),
        ([0, True, 2], 0),
        ([0, 1, 2], 3),
        ([0], 0),
    ],
)
def test_contribution_refuses_bad_rows(row: list[int], me: int) -> None:
    with pytest.raises(BadObligations):
        compute_contribution(row, me)


def test_unpack_refuses_overflow() -> None:
    with pytest.raises(RoundFailed):
        unpack_values((1 << 230,), 3, 3)


def test_shares_verify_and_reconstruct_from_any_t_plus_1() -> None:
    t, n = 2, 5
    secrets = pack_values([5, -7, 11, 0, 3])
    dl = deal(secrets, t)
    shares = {x: compute_share(dl, x) for x in range(1, n + 1)}
    for x, sh in shares.items():
        assert is_valid_share(dl.commitments, x, sh)
    for xs in ([1, 2, 3], [2, 4, 5], [1, 3, 5]):
        got = reconstruct({x: shares[x] for x in xs})
        assert tuple(s for s, _ in got) == secrets
        for c, (s, r) in enumerate(got):
            assert group.commit(s, r) == dl.commitments[c][0]


def test_tampered_share_or_commitment_fails() -> None:
    dl = deal((42, 43), 1)
    sh = compute_share(dl, 3)
    bad = ((sh[0][0] + 1, sh[0][1]), sh[1])
    assert not is_valid_share(dl.commitments, 3, bad)
    assert not is_valid_share(dl.commitments, 2, sh)  # someone else's share
    assert not is_valid_share(dl.commitments, 3, sh[:1])
    garbage = ((OFF_CURVE, dl.commitments[0][1]), dl.commitments[1])
    assert not is_valid_share(garbage, 3, sh)


def test_aggregate_commits_to_the_sum() -> None:
    dls = [deal((i, 2 * i), 2) for i in range(1, 4)]
    agg = compute_aggregate([d.commitments for d in dls])
    summed = tuple(
        (sum(compute_share(d, 4)[c][0] for d in dls), sum(compute_share(d, 4)[c][1] for d in dls))
        for c in range(2)
    )
    assert is_valid_share(agg, 4, summed)
    with pytest.raises(BadPoint):
        compute_aggregate([((OFF_CURVE,),), ((group.G,),)])


def test_group_refuses_small_order_point() -> None:
    small = bytes(32)  # y = 0: a point of order 4
    assert not group.is_valid_point(small)
    with pytest.raises(BadPoint):
        group.mul(small, 5)
    assert group.is_valid_point(group.H)
    assert group.mul(group.G, 0) == group.IDENTITY
    assert group.add(group.mul(group.G, 3), group.mul(group.G, group.L - 3)) == group.IDENTITY
