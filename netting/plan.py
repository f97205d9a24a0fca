"""From net positions to the transfers that settle them (pure).

Net payers (negative positions) pay net receivers (positive ones). The plan pairs the
largest remaining payer with the largest remaining receiver and moves the smaller of the
two amounts, so each transfer settles at least one party completely: at most ``n − 1``
transfers, and their sum is the net volume (half the sum of the absolute positions), the
least any plan can move. Ties break by party index, so every bank computes the same plan
from the same positions.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from netting.errors import BadObligations

__all__ = ["Transfer", "plan_settlement"]


@dataclass(frozen=True, slots=True)
class Transfer:
    """One payment of the settlement."""

    payer: int
    """Index of the paying party (a net payer)."""
    payee: int
    """Index of the receiving party (a net receiver)."""
    amount: int
    """Positive, in the unit of the positions."""


def plan_settlement(positions: Sequence[int]) -> tuple[Transfer, ...]:
    """The transfers that bring every position to zero; positions must sum to zero."""
    if any(type(p) is not int for p in positions):
        raise BadObligations("positions are integers")
    if sum(positions) != 0:
        raise BadObligations("net positions must sum to zero")
    owe = {i: -p for i, p in enumerate(positions) if p < 0}
    due = {i: p for i, p in enumerate(positions) if p > 0}
    out = []
    while owe:
        payer = min(owe, key=lambda i: (-owe[i], i))
        payee = min(due, key=lambda i: (-due[i], i))
        amount = min(owe[payer], due[payee])
        out.append(Transfer(payer, payee, amount))
        for side, who in ((owe, payer), (due, payee)):
            side[who] -= amount
            if side[who] == 0:
                del side[who]
    return tuple(out)
