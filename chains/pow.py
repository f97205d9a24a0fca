"""Proof of work: the seal rule, the retarget rule, cumulative work and the miner.

The rule (the source document's formula, exactly as implemented)::

    pow_hash(header) = SHA-256( nonce ‖ prev_hash ‖ data )
    valid           ⇔ int_be(pow_hash(header)) < int_be(header.target)

* ``nonce``: the header's ``nonce`` as 8 bytes, unsigned big-endian (0 ≤ nonce < 2**63);
* ``prev_hash``: the 32 raw bytes of the header's ``prev_hash``;
* ``data``: the header without its seal, ``canonical(header.to_json() minus "nonce")``
  (sorted-key JSON, see ``chains.encoding``; it contains ``target`` as 64 lowercase hex
  digits and ``prev_hash`` again, in hex);
* ``int_be``: a 32-byte string read as an unsigned big-endian integer.

A PoW header's id (what the next header names as ``prev_hash``) is still ``Header.hash``,
the SHA-256 of the whole canonical header, nonce included.

Retarget (bounded): heights are grouped in windows of ``retarget_window`` blocks. Block
1 and every block of the first window use ``initial_target``. The first block of every
later window, height ``kW + 1``, uses::

    span     = time(kW) - time((k-1)W)                 (time(0) = the genesis time)
    span'    = clamp(span, expected / max_adjust, expected · max_adjust)
    target   = min(max_target, max(1, target(kW) · span' // expected))
    expected = retarget_window · block_interval_ms

and every other block uses its parent's target. So the target changes at most by a
factor ``max_adjust`` per window, and never above ``max_target``. ``anchor_time`` (the
time of block ``kW`` for a block of window ``k``) is what a header carries forward so
that a light client can apply the rule from any checkpoint.

Work and fork choice: a header's work is ``2**256 // (target + 1)`` (the expected number
of hashes to meet the target); a branch's work is the sum over its headers. The branch
with the most cumulative work is the best; a tie keeps the branch seen first. A block is
final when it is ``finality_depth`` blocks below the best tip.

Pure functions: no clock, no I/O. Time and height are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from hashlib import sha256
from typing import Any, ClassVar

from chains.branch import ChainView
from chains.encoding import JSONValue, canonical
from chains.errors import (
    InsufficientWork,
    InvalidBlock,
    InvalidConsensusParams,
    InvalidSeal,
    StoreError,
    TimeOutOfWindow,
    WrongTarget,
)
from chains.types import Header

__all__ = [
    "MAX_NONCE",
    "PowBranchRule",
    "PowParams",
    "TipInfo",
    "compute_next_anchor",
    "compute_next_target",
    "compute_retarget",
    "devnet_pow_params",
    "get_anchor_height",
    "get_pow_and_header_hash",
    "get_pow_data",
    "get_pow_hash",
    "get_work",
    "is_better_branch",
    "is_work_valid",
    "mine",
    "target_bytes",
    "target_int",
    "validate_pow_header",
]

MAX_NONCE = 2**63 - 1
MAX_TARGET = 2**256 - 1


def target_int(target: bytes) -> int:
    """A 32-byte big-endian target as an integer."""
    return int.from_bytes(target, "big")


def target_bytes(target: int) -> bytes:
    """An integer target as 32 big-endian bytes (what a header carries)."""
    return target.to_bytes(32, "big")


def _parse_target(value: object, what: str) -> int:
    if not isinstance(value, str) or len(value) != 64:
        raise InvalidConsensusParams(f"{what}: expected 64 hex digits")
    try:
        t = int(value, 16)
    except ValueError:
        raise InvalidConsensusParams(f"{what}: expected 64 hex digits") from None
    if t <= 0:
        raise InvalidConsensusParams(f"{what}: must be positive")
    return t


def _parse_int(d: Mapping[str, Any], key: str, lo: int, hi: int) -> int:
    v = d.get(key)
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise InvalidConsensusParams(f"{key}: expected an integer in [{lo}, {hi}]")
    return v


@dataclass(frozen=True, slots=True)
class PowParams:
    """A proof-of-work chain's engine parameters (part of its genesis)."""

    name: ClassVar[str] = "pow"
    """The engine's name (``chains.engine``)."""
    initial_target: int
    """Target of the first window's blocks."""
    max_target: int
    """The easiest target the retarget rule may reach (>= ``initial_target``)."""
    block_interval_ms: int
    """The block interval the retarget rule aims at."""
    retarget_window: int
    """Blocks per retarget window."""
    max_adjust: int
    """Largest factor by which one retarget may raise or lower the target."""
    finality_depth: int
    """A block is final once this many blocks are built on it (its height <= tip - depth)."""
    max_future_ms: int
    """How far past ``now`` a header's time may be (a light client's clock window)."""

    def __post_init__(self) -> None:
        if not 0 < self.initial_target <= self.max_target <= MAX_TARGET:
            raise InvalidConsensusParams("need 0 < initial_target <= max_target < 2**256")
        checks = (
            (self.block_interval_ms, "block_interval_ms", 1, 86_400_000),
            (self.retarget_window, "retarget_window", 1, 100_000),
            (self.max_adjust, "max_adjust", 1, 16),
            (self.finality_depth, "finality_depth", 1, 10_000),
            (self.max_future_ms, "max_future_ms", 0, 86_400_000),
        )
        for v, name, lo, hi in checks:
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise InvalidConsensusParams(f"{name}: expected an integer in [{lo}, {hi}]")

    def branch_rule(self) -> PowBranchRule:
        """How a node judges a peer's branch (``chains.branch``)."""
        return PowBranchRule(self)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "engine": "pow",
            "initial_target": target_bytes(self.initial_target).hex(),
            "max_target": target_bytes(self.max_target).hex(),
            "block_interval_ms": self.block_interval_ms,
            "retarget_window": self.retarget_window,
            "max_adjust": self.max_adjust,
            "finality_depth": self.finality_depth,
            "max_future_ms": self.max_future_ms,
        }

    @classmethod
    def from_json(cls, d: object) -> PowParams:
        """Parse untrusted parameters; raises :class:`InvalidConsensusParams`."""
        if not isinstance(d, Mapping):
            raise InvalidConsensusParams("expected an object")
        keys = {
            "engine",
            "initial_target",
            "max_target",
            "block_interval_ms",
            "retarget_window",
            "max_adjust",
            "finality_depth",
            "max_future_ms",
        }
        if set(d) != keys or d.get("engine") != "pow":
            raise InvalidConsensusParams(f"expected exactly the keys {sorted(keys)}, engine pow")
        return cls(
            initial_target=_parse_target(d["initial_target"], "initial_target"),
            max_target=_parse_target(d["max_target"], "max_target"),
            block_interval_ms=_parse_int(d, "block_interval_ms", 1, 86_400_000),
            retarget_window=_parse_int(d, "retarget_window", 1, 100_000),
            max_adjust=_parse_int(d, "max_adjust", 1, 16),
            finality_depth=_parse_int(d, "finality_depth", 1, 10_000),
            max_future_ms=_parse_int(d, "max_future_ms", 0, 86_400_000),
        )


@dataclass(frozen=True, slots=True)
class TipInfo:
    """What the retarget rule needs of a parent header (genesis: height 0)."""

    height: int
    """The parent's height (0 for genesis)."""
    time: int
    """The parent's time (the genesis time for genesis)."""
    target: int
    """The parent's target (``initial_target`` for genesis: unused)."""
    anchor_time: int
    """Time of the last window boundary at or below the parent (see module docstring)."""


def devnet_pow_params(block_interval_ms: int = 1_000, finality_depth: int = 6) -> PowParams:
    """A devnet's PoW: about 4,096 hashes a block (a few ms of this machine's miner, see
    the README), the target never easier than that, retarget every 16 blocks by at most
    4x, final 6 blocks deep, headers up to 15 s ahead of a client's clock."""
    easy = 2**256 // 4_096
    return PowParams(easy, easy, block_interval_ms, 16, 4, finality_depth, 15_000)


# --- the seal -------------------------------------------------------------------------


def get_pow_data(header: Header) -> bytes:
    """``data``: the canonical header without its seal (the ``nonce`` key)."""
    d = header.to_json()
    d.pop("nonce", None)
    return canonical(d)


def get_pow_hash(header: Header) -> bytes:
    """``SHA-256(nonce ‖ prev_hash ‖ data)`` (see the module docstring for the bytes)."""
    if header.nonce is None:
        raise InvalidSeal(header.height, "no nonce")
    return sha256(
        header.nonce.to_bytes(8, "big") + header.prev_hash + get_pow_data(header)
    ).digest()


def get_pow_and_header_hash(header: Header) -> tuple[bytes, bytes, dict[str, JSONValue]]:
    """``get_pow_hash(header)``, ``header.hash`` and the header's JSON without its nonce,
    from one ``to_json`` (a light client needs all three for every header)."""
    if header.nonce is None:
        raise InvalidSeal(header.height, "no nonce")
    d = header.to_json()
    full = canonical(d)
    del d["nonce"]
    tail = header.prev_hash + canonical(d)
    return sha256(header.nonce.to_bytes(8, "big") + tail).digest(), sha256(full).digest(), d


def is_work_valid(header: Header) -> bool:
    """True iff the header's proof-of-work hash is below its own target."""
    if header.nonce is None or len(header.target) != 32:
        return False
    return target_int(get_pow_hash(header)) < target_int(header.target)


def get_work(target: int) -> int:
    """Expected hashes to meet ``target``: ``2**256 // (target + 1)``."""
    return (1 << 256) // (target + 1)


def is_better_branch(work: int, best_work: int) -> bool:
    """The fork choice: strictly more cumulative work wins; a tie keeps the incumbent."""
    return work > best_work


# --- retarget -------------------------------------------------------------------------


def compute_retarget(params: PowParams, parent_target: int, span: int) -> int:
    """The bounded retarget of ``parent_target`` after a window that took ``span`` ms."""
    expected = params.retarget_window * params.block_interval_ms
    lo, hi = expected // params.max_adjust, expected * params.max_adjust
    span = min(max(span, lo), hi)
    return min(params.max_target, max(1, parent_target * span // expected))


def compute_next_target(params: PowParams, parent: TipInfo) -> int:
    """The target the block after ``parent`` must carry."""
    if parent.height == 0:
        return params.initial_target
    if parent.height % params.retarget_window != 0:
        return parent.target
    return compute_retarget(params, parent.target, parent.time - parent.anchor_time)


def compute_next_anchor(params: PowParams, parent: TipInfo) -> int:
    """The ``anchor_time`` of the block after ``parent``: the parent's time when the
    block opens a window, else the parent's anchor."""
    if parent.height % params.retarget_window == 0:
        return parent.time
    return parent.anchor_time


def get_anchor_height(params: PowParams, height: int) -> int:
    """The height whose time is the ``anchor_time`` of the block at ``height`` (>= 1):
    the last window boundary below it (0: the genesis)."""
    return (height - 1) // params.retarget_window * params.retarget_window


def validate_pow_header(
    params: PowParams, parent: TipInfo, header: Header, now: int, pow_hash: bytes | None = None
) -> None:
    """Check ``header`` against its parent: height, target by the retarget rule, time
    window ``(parent.time, now + max_future_ms]`` and the seal (``pow_hash``: the
    header's, if the caller computed it). Changes nothing."""
    if header.height != parent.height + 1:
        raise InvalidSeal(header.height, f"height does not follow parent {parent.height}")
    want = compute_next_target(params, parent)
    if header.target != target_bytes(want):
        raise WrongTarget(header.height, target_bytes(want).hex(), header.target.hex())
    high = now + params.max_future_ms
    if not parent.time < header.time <= high:
        raise TimeOutOfWindow(header.height, header.time, parent.time, high)
    if header.nonce is None:
        raise InvalidSeal(header.height, "no nonce")
    if pow_hash is None:
        pow_hash = get_pow_hash(header)
    if target_int(pow_hash) >= want:
        raise InsufficientWork(header.height, pow_hash.hex())


# --- a peer's branch (chains.branch) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class PowBranchRule:
    """Proof of work's rules for a peer's branch: each header meets the target the
    retarget rule gives after its parent and its time window; the most work wins."""

    params: PowParams

    def validate_alone(self, header: Header) -> None:
        if not is_work_valid(header) or target_int(header.target) > self.params.max_target:
            raise InvalidBlock(header.height, "its seal does not meet its target")

    def validate_branch(
        self, view: ChainView, fork: int, headers: Sequence[Header], now: int
    ) -> None:
        params, tip = self.params, self._tip_at(view, fork)
        for h in headers:
            validate_pow_header(params, tip, h, now)
            anchor = compute_next_anchor(params, tip)
            tip = TipInfo(h.height, h.time, target_int(h.target), anchor)

    def is_better_branch(self, theirs: Sequence[Header], ours: Sequence[Header]) -> bool:
        work = [sum(get_work(target_int(h.target)) for h in b) for b in (theirs, ours)]
        return is_better_branch(work[0], work[1])

    def _tip_at(self, view: ChainView, height: int) -> TipInfo:
        """What the retarget rule needs of the chain's block at ``height``."""
        t0 = view.genesis_time
        if height == 0:
            return TipInfo(0, t0, self.params.initial_target, t0)
        at = get_anchor_height(self.params, height)
        header, anchor = view.get_header(height), None if at == 0 else view.get_header(at)
        if header is None or (at and anchor is None):
            raise StoreError(f"block {height} or {at} is missing from the store")
        anchor_time = t0 if anchor is None else anchor.time
        return TipInfo(height, header.time, target_int(header.target), anchor_time)


# --- the miner ------------------------------------------------------------------------


def mine(header: Header, start: int = 0, tries: int | None = None) -> Header | None:
    """Search nonces ``start, start+1, ...`` (at most ``tries`` of them) for one that
    meets ``header.target``; the sealed header, or None if none was found.

    ``data`` does not contain the nonce, so it is encoded once and only the 8 nonce
    bytes change per try."""
    target = target_int(header.target)
    tail = header.prev_hash + get_pow_data(header)
    end = MAX_NONCE + 1 if tries is None else min(MAX_NONCE + 1, start + tries)
    from_bytes = int.from_bytes
    for nonce in range(start, end):
        if from_bytes(sha256(nonce.to_bytes(8, "big") + tail).digest(), "big") < target:
            return replace(header, nonce=nonce)
    return None
