"""Errors of the netting package.

Every error keeps the offending values as attributes and renders as one line.

    InterlockError
    └── NettingError                 a netting round cannot do what was asked
        ├── BadRoundSpec             a round's parameters are unusable (parties, t, deadlines)
        ├── BadObligations           a party's input is malformed or out of range
        ├── BadPoint                 bytes that are not a usable group element
        ├── MessageRefused           a bus message was refused (nothing changed)
        │                            ``reason`` says why: malformed, forged, replay, late, ...
        ├── RoundFailed              the round ended without a result; ``excluded`` and
        │                            ``cheaters`` name the parties to rerun without
        └── SettlementFailed         a settlement leg was refused on its chain
"""

from __future__ import annotations

from chains.errors import InterlockError

__all__ = [
    "BadObligations",
    "BadPoint",
    "BadRoundSpec",
    "MessageRefused",
    "NettingError",
    "RoundFailed",
    "SettlementFailed",
]


class NettingError(InterlockError):
    """A netting round cannot do what was asked."""


class BadRoundSpec(NettingError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"bad netting round: {reason}")


class BadObligations(NettingError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"bad obligations: {reason}")


class BadPoint(NettingError):
    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(f"not a usable group element: {what}")


class MessageRefused(NettingError):
    """A bus message was refused; the round's state did not change."""

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason, self.detail = reason, detail
        super().__init__(f"netting message refused ({reason}){': ' if detail else ''}{detail:.120}")


class RoundFailed(NettingError):
    """The round ended without a result.

    ``excluded`` are parties that missed the share deadline, ``cheaters`` parties proven
    to have sent inconsistent shares; a new round without both may succeed.
    """

    def __init__(
        self, reason: str, *, excluded: tuple[int, ...] = (), cheaters: tuple[int, ...] = ()
    ) -> None:
        self.reason, self.excluded, self.cheaters = reason, excluded, cheaters
        names = ""
        if excluded:
            names += f"; excluded {list(excluded)}"
        if cheaters:
            names += f"; cheaters {list(cheaters)}"
        super().__init__(f"netting round failed: {reason}{names}")


class SettlementFailed(NettingError):
    def __init__(self, leg: str, reason: str) -> None:
        self.leg, self.reason = leg, reason
        super().__init__(f"settlement leg {leg} failed: {reason}")
