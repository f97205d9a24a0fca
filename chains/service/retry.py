"""Retry policies as data: an iterator of jittered delays.

A :class:`Backoff` says how long to wait before each retry; the caller owns the loop, the
clock and what counts as failure (hermes ``worker/retry_strategy.rs``). Delays grow
exponentially from ``initial`` by ``factor`` up to ``maximum``; each is then scaled by a
random factor in ``[1 - jitter, 1]`` so that many clients that lost the same broker at
the same moment do not reconnect in lock step.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter."""

    initial: float = 0.05
    """First delay before jitter, seconds (> 0)."""
    maximum: float = 5.0
    """Cap on a delay before jitter, seconds (>= initial)."""
    factor: float = 2.0
    """Growth per attempt (>= 1)."""
    jitter: float = 0.5
    """Fraction of each delay that is random: a delay d becomes d·U(1 - jitter, 1)."""
    attempts: int | None = None
    """Number of delays to yield; ``None`` yields forever."""

    def __post_init__(self) -> None:
        if not (0 < self.initial <= self.maximum) or self.factor < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and factor >= 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("backoff jitter is a fraction in [0, 1]")
        if self.attempts is not None and self.attempts < 0:
            raise ValueError("backoff attempts must be >= 0")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """The delays, in seconds. Pass a seeded ``rng`` for reproducible tests."""
        rnd = rng or random.Random()
        base = self.initial
        n = 0
        while self.attempts is None or n < self.attempts:
            yield base * (1 - self.jitter * rnd.random())
            base = min(self.maximum, base * self.factor)
            n += 1

    def __iter__(self) -> Iterator[float]:
        return self.delays()
