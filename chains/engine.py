"""The engine seam: what the rest of the code may ask of a chain's consensus engine.

A chain's genesis names its engine (``Genesis.consensus``): ``None`` is BFT
proof-of-authority (final at once, the default), anything else is an :class:`Engine`,
the engine's parameters, tagged by ``name`` and parsed from the genesis by the registry
:data:`ENGINES` (``{"engine": "<name>", ...}``). Each engine module owns its rules
(``chains.pow`` for proof of work, ``chains.pos`` for proof of stake); the layers above
ask only this:

* ``name``: the engine's tag (config files, the genesis, ``/status``);
* ``finality_depth``: a block is final once this many blocks are built on it (the
  subscriber yields, the relayer proves and the HTLC rules wait by it);
* ``block_interval_ms``: the interval the engine aims at;
* ``branch_rule()``: how a node judges a peer's branch and chooses between branches
  (``chains.branch``; BFT has none: a committed block is final, no peer's block is taken);
* ``to_json``: the parameters as the genesis holds them.

A new engine adds its parameter class to :data:`ENGINES`; nothing else dispatches on a
name. Pure: no clock, no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from chains.branch import BranchRule
from chains.encoding import JSONValue
from chains.errors import InvalidConsensusParams
from chains.pos import PosParams
from chains.pow import PowParams

__all__ = [
    "BFT",
    "ENGINES",
    "BranchRule",
    "ChainConsensus",
    "Engine",
    "get_branch_rule",
    "get_engine_name",
    "get_finality_depth",
    "parse_engine",
]

BFT = "bft"
"""The default engine's name (no parameters: ``Genesis.consensus`` is None)."""


class Engine(Protocol):
    """A consensus engine's parameters (frozen; part of the genesis)."""

    @property
    def name(self) -> str: ...

    @property
    def finality_depth(self) -> int: ...

    @property
    def block_interval_ms(self) -> int: ...

    def branch_rule(self) -> BranchRule: ...

    def to_json(self) -> dict[str, JSONValue]: ...


ENGINES: dict[str, Callable[[object], Engine]] = {
    "pow": PowParams.from_json,
    "pos": PosParams.from_json,
}
"""Parsers of each non-BFT engine's parameters, by name."""


def parse_engine(d: object) -> Engine | None:
    """The engine named by a genesis' ``consensus`` object (None: BFT). Raises
    :class:`~chains.errors.InvalidConsensusParams` for an unknown name or bad values."""
    if d is None:
        return None
    name = d.get("engine") if isinstance(d, Mapping) else None
    parse = ENGINES.get(name) if isinstance(name, str) else None
    if parse is None:
        raise InvalidConsensusParams(f"engine: expected one of {sorted(ENGINES)}, got {name!r}")
    return parse(d)


def get_engine_name(engine: Engine | None) -> str:
    return BFT if engine is None else engine.name


def get_branch_rule(engine: Engine | None) -> BranchRule | None:
    """The engine's rules for a peer's branch (None for BFT: final when committed)."""
    return None if engine is None else engine.branch_rule()


def get_finality_depth(engine: Engine | None) -> int:
    """Blocks on top before a block is final: 0 for BFT (final when committed)."""
    return 0 if engine is None else engine.finality_depth


@dataclass(frozen=True, slots=True)
class ChainConsensus:
    """What a follower of a chain needs of its genesis to check its headers."""

    engine: Engine | None
    """The chain's engine (None: BFT)."""
    genesis_time: int
    """The genesis time, Unix ms (the first retarget window of a PoW chain starts there)."""

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "consensus": None if self.engine is None else self.engine.to_json(),
            "genesis_time": self.genesis_time,
        }

    @classmethod
    def from_json(cls, d: object) -> ChainConsensus:
        """Parse an untrusted answer (``/status``); raises ``InvalidConsensusParams``."""
        if not isinstance(d, Mapping):
            raise InvalidConsensusParams("expected an object")
        t = d.get("genesis_time")
        if not isinstance(t, int) or isinstance(t, bool) or t < 0:
            raise InvalidConsensusParams("genesis_time: expected a non-negative integer")
        return cls(parse_engine(d.get("consensus")), t)
