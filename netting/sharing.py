"""Verifiable threshold sharing of integer vectors: Shamir over ``Z_L`` with Pedersen
commitments (pure; no I/O, randomness from ``os.urandom`` via :mod:`netting.group`).

A netting round adds up one vector per party. Each party ``i`` (0-based) turns its
obligations ``o_i[k]`` (what ``i`` owes ``k``) into a *contribution*

    v_i[k] = o_i[k]  for k ≠ i,   v_i[i] = −Σ_k o_i[k],   v_i[n] = Σ_k o_i[k] (its gross)

so ``Σ_i v_i[k]`` is party ``k``'s net position (received − paid; the first ``n``
coordinates sum to zero) and ``Σ_i v_i[n]`` is the book's gross volume.

**Packing.** Several small integers ride in one field element: each coordinate, offset
by ``OFFSET`` to make it non-negative, gets a ``SLOT_BITS`` slot, ``SLOTS`` slots per
scalar. With obligations below ``2^40`` and at most ``MAX_PARTIES`` dealers a slot never
overflows into the next when the contributions are added, so the sum of packings is the
packing of the sum. This cuts the commitments, and the curve operations that check them,
by ``SLOTS``.

**Sharing.** For each packed scalar a dealer draws a random polynomial ``a(x)`` of degree
``t`` with ``a(0)`` the secret, and a random blinding polynomial ``b(x)``; it publishes
the commitments ``C_d = a_d·G + b_d·H`` and gives party ``x`` (1-based) the pair
``(a(x), b(x))``. Anyone can check a pair against the commitments:
``a(x)·G + b(x)·H = Σ_d x^d·C_d``. Any ``t+1`` pairs determine ``a(0)``; ``t`` or fewer
reveal nothing about it (the commitments are perfectly hiding).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from netting import group
from netting.errors import BadObligations, BadPoint, RoundFailed

__all__ = [
    "MAX_AMOUNT",
    "MAX_PARTIES",
    "OFFSET",
    "SLOTS",
    "SLOT_BITS",
    "Dealing",
    "PackedShare",
    "compute_aggregate",
    "compute_contribution",
    "compute_share",
    "deal",
    "eval_commitments",
    "is_valid_share",
    "pack_values",
    "packed_size",
    "reconstruct",
    "unpack_values",
]

MAX_PARTIES = 64
MAX_AMOUNT = 2**40 - 1
"""Largest single obligation (in the smallest unit of the settlement asset)."""
OFFSET = 2**46
"""Added to every coordinate: ``|v| <= (MAX_PARTIES - 1) · MAX_AMOUNT < 2^46``."""
SLOT_BITS = 56
"""``MAX_PARTIES`` sums of values below ``2^47`` stay below ``2^53 < 2^56``."""
SLOTS = 4
"""Slots per scalar: ``4 · 56 = 224`` bits, well below ``L ≈ 2^252``."""

_SLOT_MASK = (1 << SLOT_BITS) - 1

PackedShare = tuple[tuple[int, int], ...]
"""One party's share of a dealing: ``(a_c(x), b_c(x))`` for each packed scalar ``c``."""


def compute_contribution(obligations: Sequence[int], me: int) -> tuple[int, ...]:
    """Party ``me``'s contribution (see the module docstring) from its row of obligations.

    ``obligations[k]`` is what ``me`` owes party ``k``; ``obligations[me]`` must be 0.
    """
    n = len(obligations)
    if not 2 <= n <= MAX_PARTIES:
        raise BadObligations(f"{n} parties; a round has 2..{MAX_PARTIES}")
    if not 0 <= me < n:
        raise BadObligations(f"party index {me} outside 0..{n - 1}")
    for k, amount in enumerate(obligations):
        if type(amount) is not int or not 0 <= amount <= MAX_AMOUNT:
            raise BadObligations(f"obligation to party {k} must be an integer in 0..{MAX_AMOUNT}")
    if obligations[me] != 0:
        raise BadObligations("a party owes itself nothing")
    gross = sum(obligations)
    v = list(obligations)
    v[me] = -gross
    return (*v, gross)


def packed_size(n_values: int) -> int:
    return -(-n_values // SLOTS)


def pack_values(values: Sequence[int]) -> tuple[int, ...]:
    """Pack small signed integers (``|v| < OFFSET``) into scalars, ``SLOTS`` per scalar."""
    out = []
    for c in range(packed_size(len(values))):
        acc = 0
        for s, v in enumerate(values[c * SLOTS : (c + 1) * SLOTS]):
            if not -OFFSET < v < OFFSET:
                raise BadObligations(f"value {v} outside the packable range")
            acc |= (v + OFFSET) << (s * SLOT_BITS)
        out.append(acc)
    return tuple(out)


def unpack_values(scalars: Sequence[int], n_values: int, n_dealers: int) -> tuple[int, ...]:
    """The sum of ``n_dealers`` packings, unpacked; raises :class:`RoundFailed` if a
    dealer shared something that is not a packing (a slot overflowed)."""
    if len(scalars) != packed_size(n_values):
        raise RoundFailed(f"expected {packed_size(n_values)} packed scalars, got {len(scalars)}")
    out: list[int] = []
    for c, acc in enumerate(scalars):
        if acc >> (SLOTS * SLOT_BITS):
            raise RoundFailed("the summed packing overflows: a party shared out-of-range values")
        for s in range(min(SLOTS, n_values - c * SLOTS)):
            out.append(((acc >> (s * SLOT_BITS)) & _SLOT_MASK) - n_dealers * OFFSET)
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Dealing:
    """One dealer's polynomials and their public commitments."""

    coeffs: tuple[tuple[int, ...], ...]
    """``coeffs[c][d]``: coefficient ``d`` of the secret polynomial of packed scalar ``c``."""
    blinds: tuple[tuple[int, ...], ...]
    """``blinds[c][d]``: the blinding polynomial's coefficients."""
    commitments: tuple[tuple[bytes, ...], ...]
    """``commitments[c][d] = coeffs[c][d]·G + blinds[c][d]·H`` (public)."""


def deal(secrets: Sequence[int], t: int) -> Dealing:
    """Share each secret scalar with a fresh random degree-``t`` polynomial."""
    coeffs, blinds, commitments = [], [], []
    for secret in secrets:
        a = (secret % group.L, *(group.random_scalar() for _ in range(t)))
        b = tuple(group.random_scalar() for _ in range(t + 1))
        coeffs.append(a)
        blinds.append(b)
        commitments.append(tuple(group.commit(ad, bd) for ad, bd in zip(a, b, strict=True)))
    return Dealing(tuple(coeffs), tuple(blinds), tuple(commitments))


def _eval(coeffs: Sequence[int], x: int) -> int:
    acc = 0
    for a in reversed(coeffs):  # Horner
        acc = (acc * x + a) % group.L
    return acc


def compute_share(dealing: Dealing, x: int) -> PackedShare:
    """Party ``x``'s (1-based) share of every packed scalar."""
    return tuple(
        (_eval(a, x), _eval(b, x)) for a, b in zip(dealing.coeffs, dealing.blinds, strict=True)
    )


def eval_commitments(commitments: Sequence[bytes], x: int) -> bytes:
    """``Σ_d x^d · C_d``: the commitment to the share of party ``x``."""
    acc = group.IDENTITY
    power = 1
    for c in commitments:
        acc = group.add(acc, group.mul(c, power))
        power = power * x % group.L
    return acc


def is_valid_share(commitments: Sequence[Sequence[bytes]], x: int, share: PackedShare) -> bool:
    """Does ``share`` (party ``x``'s) open the commitments? Never raises: malformed
    commitments (not points of the group) make every share invalid."""
    if len(share) != len(commitments):
        return False
    try:
        for (s, r), cs in zip(share, commitments, strict=True):
            if group.commit(s, r) != eval_commitments(cs, x):
                return False
    except BadPoint:
        return False
    return True


def compute_aggregate(
    dealings: Sequence[Sequence[Sequence[bytes]]],
) -> tuple[tuple[bytes, ...], ...]:
    """The commitments to the sum of several dealings (Pedersen is additive).

    Raises :class:`BadPoint` if some commitment is not a curve point.
    """
    first = dealings[0]
    return tuple(
        tuple(group.sum_points([dl[c][d] for dl in dealings]) for d in range(len(first[c])))
        for c in range(len(first))
    )


def _lagrange_at_zero(xs: Sequence[int]) -> list[int]:
    out = []
    for i, xi in enumerate(xs):
        num, den = 1, 1
        for j, xj in enumerate(xs):
            if i != j:
                num = num * xj % group.L
                den = den * (xj - xi) % group.L
        out.append(num * pow(den, -1, group.L) % group.L)
    return out


def reconstruct(shares: Mapping[int, PackedShare]) -> PackedShare:
    """The pairs ``(a(0), b(0))`` interpolated from shares keyed by party ``x``.

    The caller passes exactly ``t + 1`` shares (more are fine if all are consistent).
    """
    xs = sorted(shares)
    lam = _lagrange_at_zero(xs)
    width = len(shares[xs[0]])
    out = []
    for c in range(width):
        s = sum(lam[i] * shares[x][c][0] for i, x in enumerate(xs)) % group.L
        r = sum(lam[i] * shares[x][c][1] for i, x in enumerate(xs)) % group.L
        out.append((s, r))
    return tuple(out)
