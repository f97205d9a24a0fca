"""From net positions to the transfers that settle them (pure).

Net payers (negative positions) pay net receivers (positive ones). The plan pairs the
largest remaining payer with the largest remaining receiver and moves the smaller of the
two amounts, so each transfer settles at least one party completely: at most ``n − 1``
transfers, and their sum is the net volume (half the sum of the absolute positions), the
least any plan can move. Ties break by party index, so every bank computes the same plan
from the same positions.

:func:`route_settlement` turns each transfer into one leg on the chains, for an asset
whose home is one chain and whose wrapped twin (``{home}/{denom}``, from the lock-mint
bridge) circulates on others: a bank transfer when payer and payee hold it on one chain,
a bridge ``lock`` (home → other: minted to the payee) or ``burn`` (other → home:
released to the payee) when they do not.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bridge.transfer import compute_wrapped_denom
from netting.errors import BadObligations

__all__ = [
    "Leg",
    "LegKind",
    "Transfer",
    "compute_call",
    "plan_settlement",
    "route_settlement",
]


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


class LegKind(StrEnum):
    TRANSFER = "transfer"
    """``bank.transfer`` on the chain both hold the asset on."""
    LOCK = "lock"
    """``bridge.lock`` on the asset's home chain; minted to the payee on ``to_chain``."""
    BURN = "burn"
    """``bridge.burn`` of the wrapped asset; released to the payee on the home chain."""


@dataclass(frozen=True, slots=True)
class Leg:
    """One transaction that carries one transfer of the plan."""

    kind: LegKind
    chain: str
    """The chain the payer sends the transaction to."""
    to_chain: str
    """The chain the payee is paid on (``chain`` for a bank transfer)."""
    transfer: Transfer


def route_settlement(
    plan: Sequence[Transfer], homes: Sequence[str], asset_chain: str
) -> tuple[Leg, ...]:
    """One leg per transfer; ``homes[i]`` is the chain bank ``i`` holds the asset on."""
    legs = []
    for t in plan:
        if not (0 <= t.payer < len(homes) and 0 <= t.payee < len(homes)):
            raise BadObligations(f"transfer names a bank outside 0..{len(homes) - 1}")
        src, dst = homes[t.payer], homes[t.payee]
        if src == dst:
            legs.append(Leg(LegKind.TRANSFER, src, dst, t))
        elif src == asset_chain:
            legs.append(Leg(LegKind.LOCK, src, dst, t))
        elif dst == asset_chain:
            legs.append(Leg(LegKind.BURN, src, dst, t))
        else:  # wrapped on both sides: the bridge would wrap it twice, never unwrap it
            raise BadObligations(f"no route from {src} to {dst} that avoids {asset_chain}")
    return tuple(legs)


def compute_call(
    leg: Leg, payee: str, asset_chain: str, denom: str
) -> tuple[str, str, dict[str, Any]]:
    """The (module, method, args) of the transaction the payer signs for ``leg``, paying
    the address ``payee``; the asset is ``denom`` at home on ``asset_chain``."""
    t = leg.transfer
    local = denom if leg.chain == asset_chain else compute_wrapped_denom(asset_chain, denom)
    if leg.kind is LegKind.TRANSFER:
        return "bank", "transfer", {"to": payee, "denom": local, "amount": t.amount}
    if leg.kind is LegKind.LOCK:
        args = {"denom": denom, "amount": t.amount, "dest_chain": leg.to_chain}
        return "bridge", "lock", {**args, "recipient": payee}
    return "bridge", "burn", {"denom": local, "amount": t.amount, "recipient": payee}
