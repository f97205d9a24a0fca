"""The settlement plan: few transfers that zero every net position."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from netting.errors import BadObligations
from netting.plan import Leg, LegKind, Transfer, plan_settlement, route_settlement
from netting.protocol import compute_plain_netting


@given(st.lists(st.lists(st.integers(0, 10**6), min_size=6, max_size=6), min_size=6, max_size=6))
def test_plan_zeroes_every_position_with_at_most_n_minus_1_transfers(
    rows: list[list[int]],
) -> None:
    book = [[0 if i == k else v for k, v in enumerate(r)] for i, r in enumerate(rows)]
    positions = compute_plain_netting(book)
    plan = plan_settlement(positions)
    left = list(positions)
    for tr in plan:
        assert tr.amount > 0
        assert positions[tr.payer] < 0 < positions[tr.payee]
        left[tr.payer] += tr.amount
        left[tr.payee] -= tr.amount
    assert left == [0] * len(positions)
    assert len(plan) <= max(0, len(positions) - 1)
    assert sum(t.amount for t in plan) == sum(p for p in positions if p > 0)


def test_plan_is_deterministic_and_settles_a_simple_chain() -> None:
    assert plan_settlement([-5, 2, 3]) == (Transfer(0, 2, 3), Transfer(0, 1, 2))
    assert plan_settlement([0, 0, 0]) == ()
    positions = compute_plain_netting([[0, 4, 0], [0, 0, 4], [4, 0, 0]])
    assert plan_settlement(positions) == ()  # a cycle nets to nothing
    rng = random.Random(3)
    p = [rng.randint(-100, 100) for _ in range(9)]
    p.append(-sum(p))
    assert plan_settlement(p) == plan_settlement(list(p))


@pytest.mark.parametrize("bad", [[1, 2], [1, -1.0], [1, True, -2]])
def test_plan_refuses_unbalanced_or_non_integer_positions(bad: list[int]) -> None:
    with pytest.raises(BadObligations):
        plan_settlement(bad)


def test_route_picks_transfer_lock_or_burn_by_where_each_bank_holds_the_asset() -> None:
    plan = (Transfer(0, 1, 5), Transfer(0, 2, 3), Transfer(2, 1, 1), Transfer(2, 3, 2))
    homes = ["chain-a", "chain-a", "chain-b", "chain-b"]
    assert route_settlement(plan, homes, "chain-a") == (
        Leg(LegKind.TRANSFER, "chain-a", "chain-a", plan[0]),
        Leg(LegKind.LOCK, "chain-a", "chain-b", plan[1]),
        Leg(LegKind.BURN, "chain-b", "chain-a", plan[2]),
        Leg(LegKind.TRANSFER, "chain-b", "chain-b", plan[3]),
    )
    with pytest.raises(BadObligations):
        route_settlement((Transfer(0, 1, 1),), ["chain-b", "chain-c"], "chain-a")
    with pytest.raises(BadObligations):
        route_settlement((Transfer(0, 4, 1),), homes, "chain-a")
