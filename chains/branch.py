"""The engine seam for a node's reorganisations: how an engine judges a peer's branch.

A node that takes blocks from peers (``Node.submit_block``) asks its engine's
:class:`BranchRule` (``Engine.branch_rule()``; BFT has none: a committed block is final)
three things, and dispatches on nothing else:

* ``validate_alone(header)``: what a header must pass by itself, before its parents are
  looked up (PoW: its work; PoS: the seal is its proposer's signature);
* ``validate_branch(view, fork, headers, now)``: the headers above ``fork``, in height
  order, against the chain's block at ``fork`` and each other, by the engine's rules
  (PoS: eligibility by the stake table the chain's state records for that height);
* ``is_better_branch(theirs, ours)``: the fork choice between two branches above one fork
  point (PoW: more work; PoS: longer, then fewer slots, then the lower tip hash).

The chain is read through a :class:`ChainView` (the node's store), so the rules stay pure:
no clock, no I/O of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from chains.types import Header, ValidatorSet

__all__ = ["BranchRule", "ChainView"]


class ChainView(Protocol):
    """What a branch rule may read of the chain it judges a branch against."""

    @property
    def genesis_time(self) -> int:
        """The genesis time, Unix ms (the time of "block 0")."""

    @property
    def height(self) -> int:
        """The chain's tip height."""

    def get_header(self, height: int) -> Header | None:
        """The chain's header at ``height`` (1 to the tip), or None."""

    def get_table(self, height: int) -> ValidatorSet | None:
        """The validator (stake) table the chain's state records for the block at
        ``height`` (1 to the tip + 1: the table the next block is judged by), or None."""


class BranchRule(Protocol):
    """An engine's rules for a peer's branch, as a node applies them."""

    def validate_alone(self, header: Header) -> None:
        """Checks the header can pass by itself (cheap); raises, changes nothing."""

    def validate_branch(
        self, view: ChainView, fork: int, headers: Sequence[Header], now: int
    ) -> None:
        """Checks ``headers`` (heights ``fork + 1`` on, linked) by the engine's rules
        after the chain's block at ``fork``; raises, changes nothing."""

    def is_better_branch(self, theirs: Sequence[Header], ours: Sequence[Header]) -> bool:
        """The fork choice between two branches above one fork point (headers in height
        order, each valid): True when ``theirs`` replaces ``ours``."""
