"""Where a party keeps its swaps: the ``SwapStore`` protocol and its in-memory twin.

The SQLite implementation lives in ``interlock/swap_store.py`` (``htlc`` does no I/O). The
contract both keep:

* ``create`` refuses a swap id that exists and a hashlock any stored swap already uses, so
  one secret never backs two swaps (a revealed secret would open both).
* ``update`` writes a swap whose ``version`` is exactly one more than the stored one, so
  a transition is written once, in order, and two drivers on one store cannot both act on
  the same state (the loser gets :class:`~htlc.errors.StaleSwap`).
* ``create_many`` / ``update_many`` do the same for several swaps, all or nothing.
* Cursors remember, per chain, the last height whose events were fed to the engine.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from htlc.errors import HashlockInUse, StaleSwap, SwapExists, SwapNotFound
from htlc.swap import Swap

__all__ = ["MemorySwapStore", "SwapStore", "check_next_version"]


class SwapStore(Protocol):
    def create(self, swap: Swap) -> None:
        """Store a new swap (raises SwapExists / HashlockInUse)."""

    def create_many(self, swaps: Sequence[Swap]) -> None:
        """``create`` for several swaps atomically."""

    def update(self, swap: Swap) -> None:
        """Store the next version of a swap (raises SwapNotFound / StaleSwap)."""

    def update_many(self, swaps: Sequence[Swap]) -> None:
        """``update`` for several swaps atomically."""

    def get(self, swap_id: str) -> Swap | None: ...

    def active(self) -> list[Swap]:
        """Swaps not in a terminal state."""

    def all(self) -> list[Swap]: ...

    def get_cursor(self, chain_id: str) -> int | None: ...

    def set_cursor(self, chain_id: str, height: int) -> None: ...

    def close(self) -> None: ...


def check_next_version(stored: Swap | None, swap: Swap) -> None:
    """Raise unless ``swap`` is the version right after ``stored`` (changes nothing)."""
    if stored is None:
        raise SwapNotFound(swap.swap_id)
    if swap.version != stored.version + 1:
        raise StaleSwap(swap.swap_id, stored.version, swap.version)


class MemorySwapStore:
    """Dicts; for tests and throwaway runs."""

    def __init__(self) -> None:
        self._swaps: dict[str, Swap] = {}
        self._hashlocks: dict[bytes, str] = {}
        self._cursors: dict[str, int] = {}

    def create(self, swap: Swap) -> None:
        self.create_many([swap])

    def create_many(self, swaps: Sequence[Swap]) -> None:
        staged: dict[bytes, str] = {}
        ids: set[str] = set()
        for swap in swaps:  # check all first: all or nothing
            if swap.swap_id in self._swaps or swap.swap_id in ids:
                raise SwapExists(swap.swap_id)
            other = self._hashlocks.get(swap.terms.hashlock) or staged.get(swap.terms.hashlock)
            if other is not None:
                raise HashlockInUse(swap.terms.hashlock.hex(), other)
            staged[swap.terms.hashlock] = swap.swap_id
            ids.add(swap.swap_id)
        for swap in swaps:
            self._swaps[swap.swap_id] = swap
            self._hashlocks[swap.terms.hashlock] = swap.swap_id

    def update(self, swap: Swap) -> None:
        check_next_version(self._swaps.get(swap.swap_id), swap)
        self._swaps[swap.swap_id] = swap

    def update_many(self, swaps: Sequence[Swap]) -> None:
        staged: dict[str, Swap] = {}
        for s in swaps:  # check all first: all or nothing
            check_next_version(staged.get(s.swap_id) or self._swaps.get(s.swap_id), s)
            staged[s.swap_id] = s
        for s in staged.values():
            self._swaps[s.swap_id] = s

    def get(self, swap_id: str) -> Swap | None:
        return self._swaps.get(swap_id)

    def active(self) -> list[Swap]:
        return [s for s in self._swaps.values() if not s.is_terminal]

    def all(self) -> list[Swap]:
        return list(self._swaps.values())

    def get_cursor(self, chain_id: str) -> int | None:
        return self._cursors.get(chain_id)

    def set_cursor(self, chain_id: str, height: int) -> None:
        self._cursors[chain_id] = height

    def close(self) -> None:
        return None
