"""Proof of stake: eligibility, the seal, the stake table, the fork choice and the proposer.

The rule (the source document's formula, exactly as implemented)::

    pos_hash(header) = SHA-256( validator ‖ prev_hash ‖ data )
    eligible        ⇔ int_be(pos_hash(header)) < target · stake(validator)

* ``validator``: the 32 raw bytes of the header's ``proposer`` (an ed25519 public key);
* ``prev_hash``: the 32 raw bytes of the header's ``prev_hash``;
* ``data``: the header without its seal, ``canonical(header.to_json() minus "seal")``
  (sorted-key JSON, see ``chains.encoding``; it contains ``slot``, ``proposer`` and
  ``prev_hash`` again, in hex);
* ``int_be``: a 32-byte string read as an unsigned big-endian integer;
* ``target``: the chain's ``PosParams.target`` (a constant per unit of stake);
* ``stake(validator)``: the validator's power in the stake table the header names as
  ``validators_hash`` (0 if absent: never eligible).

The seal: the eligible proposer signs ``sign_bytes("pos_seal", pos_hash.hex())`` (the
``chains.encoding`` domain format) with its ed25519 key; the signature is the header's
``seal`` (64 bytes, hex). A PoS header's id, what the next header names as
``prev_hash``, is ``Header.hash``: the SHA-256 of the whole canonical header, seal
included.

Slots and ties: ``slot`` (an integer in ``[0, MAX_SLOT]``) is part of ``data``, so every
slot gives every validator a fresh hash. A proposer takes the lowest slot at which one of
its keys is eligible, and among its eligible keys the lowest ``pos_hash``; a slot with no
eligible proposer is skipped (retried with the next slot number). Between competing
headers the fork choice below decides.

Stake table: a header's ``validators_hash`` is the hash of the stake table
(``ValidatorSet``, power = bonded stake) it is judged by, and must equal its parent's
``next_validators_hash``. The staking module (``chains.staking``) writes a new table only
at the end of an epoch's last block (heights ``k · epoch_length``), so
``next_validators_hash != validators_hash`` is allowed only at those heights: a stake
change executed in block ``h`` takes effect at height ``ceil(h / epoch_length) ·
epoch_length + 1``.

Time: ``parent.time + min_block_ms <= time <= now + max_future_ms`` (``now`` is the
verifier's clock: the host block's time for a light client), so a branch cannot grow
faster than one block per ``min_block_ms`` of real time.

Fork choice: the best branch is the greatest by ``(height, -slots, -pos_hash of the tip)``
compared in that order: the longest branch; between equally long ones, the one that
skipped fewer slots since they forked (more stake behind it, on average); then the tip
with the lowest ``pos_hash``. As one integer (what the light client stores)::

    score = height · 2^320 + (2^64 - 1 - slots) · 2^256 + (2^256 - 1 - int_be(pos_hash))

with ``slots`` the sum of the slots of the branch's headers since the client's
checkpoint. A block is final once ``finality_depth`` blocks are on top of it.

Known limit (the formula as given): ``data`` includes the block's contents and time, so a
proposer may retry eligibility by changing them (grinding); the rule bounds a
validator's chance per attempt by its stake, not its number of attempts. ``min_block_ms``
and the depth rule bound what a grinding minority can do to a light client in real time.

Pure functions: no clock, no I/O. Time and height are arguments.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from hashlib import sha256
from typing import Any, ClassVar

from chains.branch import ChainView
from chains.crypto import PrivateKey, verify
from chains.encoding import JSONValue, canonical, sign_bytes
from chains.errors import (
    IneligibleProposer,
    InvalidBlock,
    InvalidConsensusParams,
    InvalidProposerSignature,
    InvalidSeal,
    NoEligibleProposer,
    StoreError,
    TimeOutOfWindow,
    ValidatorSetMismatch,
)
from chains.types import Header, ValidatorSet

__all__ = [
    "MAX_SLOT",
    "PosBranchRule",
    "PosParams",
    "PosTip",
    "compute_score",
    "devnet_pos_params",
    "get_pos_and_header_hash",
    "get_pos_data",
    "get_pos_hash",
    "get_seal_bytes",
    "is_eligible",
    "propose",
    "validate_pos_header",
    "validate_seal",
]

MAX_SLOT = 2**20
MAX_TARGET = 2**256 - 1
_U64 = 2**64 - 1


def _check_int(v: object, name: str, lo: int, hi: int) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InvalidConsensusParams(f"{name}: expected an integer in [{lo}, {hi}]")
    return v


_INT_BOUNDS = {
    "block_interval_ms": (1, 86_400_000),
    "epoch_length": (1, 1_000_000),
    "unbonding_blocks": (1, 10_000_000),
    "finality_depth": (1, 10_000),
    "min_block_ms": (1, 86_400_000),
    "max_future_ms": (0, 86_400_000),
}


@dataclass(frozen=True, slots=True)
class PosParams:
    """A proof-of-stake chain's engine parameters (part of its genesis)."""

    name: ClassVar[str] = "pos"
    """The engine's name (``chains.engine``)."""
    target: int
    """Eligibility threshold per unit of stake (``pos_hash < target · stake``)."""
    block_interval_ms: int
    """The block interval the node aims at (>= ``min_block_ms``)."""
    epoch_length: int
    """Blocks per epoch: the stake table changes only after an epoch's last block."""
    unbonding_blocks: int
    """Blocks from an ``unbond`` until its funds return (>= ``epoch_length``)."""
    finality_depth: int
    """A block is final once this many blocks are built on it (its height <= tip - depth)."""
    min_block_ms: int
    """Least time between a block and its parent."""
    max_future_ms: int
    """How far past ``now`` a header's time may be (a light client's clock window)."""

    def __post_init__(self) -> None:
        _check_int(self.target, "target", 1, MAX_TARGET)
        for name, (lo, hi) in _INT_BOUNDS.items():
            _check_int(getattr(self, name), name, lo, hi)
        if self.unbonding_blocks < self.epoch_length:
            raise InvalidConsensusParams("unbonding_blocks must be at least epoch_length")
        if self.min_block_ms > self.block_interval_ms:
            raise InvalidConsensusParams("min_block_ms must be at most block_interval_ms")

    def branch_rule(self) -> PosBranchRule:
        """How a node judges a peer's branch (``chains.branch``)."""
        return PosBranchRule(self)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "engine": "pos",
            "target": self.target.to_bytes(32, "big").hex(),
            **{name: getattr(self, name) for name in _INT_BOUNDS},
        }

    @classmethod
    def from_json(cls, d: object) -> PosParams:
        """Parse untrusted parameters; raises :class:`InvalidConsensusParams`."""
        if not isinstance(d, Mapping):
            raise InvalidConsensusParams("expected an object")
        keys = {"engine", "target", *_INT_BOUNDS}
        if set(d) != keys or d.get("engine") != "pos":
            raise InvalidConsensusParams(f"expected exactly the keys {sorted(keys)}, engine pos")
        raw = d["target"]
        if not isinstance(raw, str) or len(raw) != 64 or raw != raw.lower():
            raise InvalidConsensusParams("target: expected 64 lowercase hex digits")
        try:
            target = int(raw, 16)
        except ValueError:
            raise InvalidConsensusParams("target: expected 64 lowercase hex digits") from None
        ints: dict[str, Any] = {
            n: _check_int(d[n], n, lo, hi) for n, (lo, hi) in _INT_BOUNDS.items()
        }
        return cls(target=target, **ints)


def devnet_pos_params(
    block_interval_ms: int = 1_000, finality_depth: int = 6, expected_stake: int = 40
) -> PosParams:
    """A devnet's PoS: ``target = 2^256 // expected_stake``, so with that much stake
    bonded about one validator is eligible per slot (devnet validators bond 10 each:
    4 validators, 40); epochs of 8 blocks, unbonding after 16, blocks at least half an
    interval apart, headers up to 15 s ahead of a client's clock."""
    return PosParams(
        target=(2**256) // expected_stake,
        block_interval_ms=block_interval_ms,
        epoch_length=8,
        unbonding_blocks=16,
        finality_depth=finality_depth,
        min_block_ms=max(1, block_interval_ms // 2),
        max_future_ms=15_000,
    )


@dataclass(frozen=True, slots=True)
class PosTip:
    """What the rules need of a parent header."""

    height: int
    """The parent's height."""
    time: int
    """The parent's time."""
    next_validators_hash: bytes
    """The stake table the child is judged by."""


# --- the formula ----------------------------------------------------------------------


def get_pos_data(header: Header) -> bytes:
    """``data``: the canonical header without its seal (the ``seal`` key)."""
    d = header.to_json()
    d.pop("seal", None)
    return canonical(d)


def get_pos_hash(header: Header) -> bytes:
    """``SHA-256(validator ‖ prev_hash ‖ data)`` (see the module docstring for the bytes)."""
    return sha256(header.proposer + header.prev_hash + get_pos_data(header)).digest()


def get_pos_and_header_hash(header: Header) -> tuple[bytes, bytes, dict[str, JSONValue]]:
    """``get_pos_hash(header)``, ``header.hash`` and the header's JSON without its seal,
    from one ``to_json`` (a light client needs all three for every header)."""
    d = header.to_json()
    header_hash = sha256(canonical(d)).digest()
    d.pop("seal", None)
    pos_hash = sha256(header.proposer + header.prev_hash + canonical(d)).digest()
    return pos_hash, header_hash, d


def get_seal_bytes(pos_hash: bytes) -> bytes:
    """What the proposer signs: ``sign_bytes("pos_seal", pos_hash.hex())``."""
    return sign_bytes("pos_seal", pos_hash.hex())


def is_eligible(pos_hash: bytes, stake: int, target: int) -> bool:
    """``int_be(pos_hash) < target · stake``."""
    return int.from_bytes(pos_hash, "big") < target * stake


def compute_score(height: int, slots: int, pos_hash: bytes) -> int:
    """The fork choice's key ``(height, -slots, -pos_hash)`` as one integer (module
    docstring): a greater score is a better branch."""
    return (
        (height << 320)
        + ((_U64 - min(slots, _U64)) << 256)
        + (MAX_TARGET - int.from_bytes(pos_hash, "big"))
    )


def validate_pos_header(
    params: PosParams,
    parent: PosTip,
    header: Header,
    table: ValidatorSet,
    now: int,
    pos_hash: bytes | None = None,
) -> bytes:
    """Check ``header`` against its parent and the stake table it names (``table``, whose
    hash the caller matched to ``header.validators_hash`` or not: checked here): height,
    stake table, epoch rule, time window, eligibility and the seal (``pos_hash``: the
    header's, if the caller computed it). Returns its ``pos_hash``. Changes nothing."""
    height = header.height
    if height != parent.height + 1:
        raise InvalidSeal(height, f"height does not follow parent {parent.height}")
    if header.validators_hash != parent.next_validators_hash:
        raise ValidatorSetMismatch("parent's next stake table")
    if table.hash != header.validators_hash:
        raise ValidatorSetMismatch("stake table")
    if header.next_validators_hash != header.validators_hash and height % params.epoch_length:
        raise ValidatorSetMismatch("stake table changed off an epoch boundary")
    low, high = parent.time + params.min_block_ms, now + params.max_future_ms
    if not low <= header.time <= high:
        raise TimeOutOfWindow(height, header.time, low - 1, high)
    return validate_seal(params, header, table, pos_hash)


def validate_seal(
    params: PosParams, header: Header, table: ValidatorSet, pos_hash: bytes | None = None
) -> bytes:
    """The proposer is eligible by its stake in ``table`` and ``seal`` is its signature;
    returns the header's ``pos_hash``. Changes nothing."""
    if header.slot is None or not 0 <= header.slot <= MAX_SLOT or len(header.seal) != 64:
        raise InvalidSeal(header.height, "not a proof-of-stake header")
    if pos_hash is None:
        pos_hash = get_pos_hash(header)
    stake = table.by_key.get(header.proposer, 0)
    if not is_eligible(pos_hash, stake, params.target):
        raise IneligibleProposer(header.height, header.proposer.hex(), stake)
    if not verify(header.proposer, get_seal_bytes(pos_hash), header.seal):
        raise InvalidProposerSignature(header.height, header.proposer.hex())
    return pos_hash


# --- a peer's branch (chains.branch) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class PosBranchRule:
    """Proof of stake's rules for a peer's branch: each header names the stake table its
    parent announced, one the chain's state records (at a height above the fork, or for
    the next block), its proposer is eligible by its stake there and sealed it, its time
    is in its window; the longest branch wins, then fewer slots, then the lower tip hash.

    A branch's block that announces a stake table the chain never recorded (the branch
    executed other bonds than the chain before an epoch's end) cannot be judged before
    it is executed, and is refused."""

    params: PosParams

    def validate_alone(self, header: Header) -> None:
        h = header
        if h.slot is None or not 0 <= h.slot <= MAX_SLOT or len(h.seal) != 64:
            raise InvalidBlock(h.height, "not a proof-of-stake header")
        if not verify(h.proposer, get_seal_bytes(get_pos_hash(h)), h.seal):
            raise InvalidProposerSignature(h.height, h.proposer.hex())

    def validate_branch(
        self, view: ChainView, fork: int, headers: Sequence[Header], now: int
    ) -> None:
        at_fork = None if fork == 0 else view.get_header(fork)
        first = view.get_table(fork + 1)
        if first is None or (fork and at_fork is None):
            raise StoreError(f"block {fork} or its next stake table is missing from the store")
        tables = {first.hash: first}
        for x in range(fork + 2, view.height + 2):
            t = view.get_table(x)
            if t is not None:
                tables[t.hash] = t
        parent_time = view.genesis_time if at_fork is None else at_fork.time
        parent = PosTip(fork, parent_time, first.hash)
        for h in headers:
            table = tables.get(h.validators_hash)
            if table is None and h.validators_hash == parent.next_validators_hash:
                raise InvalidBlock(h.height, "it names a stake table this chain never recorded")
            validate_pos_header(self.params, parent, h, table or first, now)
            parent = PosTip(h.height, h.time, h.next_validators_hash)

    def is_better_branch(self, theirs: Sequence[Header], ours: Sequence[Header]) -> bool:
        if not theirs:
            return False
        if not ours:
            return True
        score = [
            compute_score(len(b), sum(h.slot or 0 for h in b), get_pos_hash(b[-1]))
            for b in (theirs, ours)
        ]
        return score[0] > score[1]


# --- the proposer ---------------------------------------------------------------------


def propose(
    params: PosParams, header: Header, table: ValidatorSet, keys: Sequence[PrivateKey]
) -> Header:
    """Seal ``header`` (its ``proposer``, ``slot`` and ``seal`` are set here) with the
    lowest slot at which one of ``keys`` is eligible, the lowest ``pos_hash`` of that
    slot. Raises :class:`NoEligibleProposer` if no key is eligible up to ``MAX_SLOT``.

    ``data`` contains ``slot`` and ``proposer``, so each (slot, key) pair is one
    encoding and one hash."""
    staked = [(k, table.by_key[k.public_key]) for k in keys if k.public_key in table.by_key]
    if not staked:
        raise NoEligibleProposer(header.height, 0)
    target = params.target
    for slot in range(MAX_SLOT + 1):
        best: tuple[bytes, Header, PrivateKey] | None = None
        for key, stake in staked:
            candidate = replace(header, proposer=key.public_key, slot=slot, seal=b"")
            pos_hash = get_pos_hash(candidate)
            if is_eligible(pos_hash, stake, target) and (best is None or pos_hash < best[0]):
                best = (pos_hash, candidate, key)
        if best is not None:
            pos_hash, candidate, key = best
            return replace(candidate, seal=key.sign(get_seal_bytes(pos_hash)))
    raise NoEligibleProposer(header.height, len(staked))
