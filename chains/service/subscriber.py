"""A verifying subscriber: one chain's committed blocks from the bus, trusted on proof only.

The bus may drop, duplicate, reorder and forge. For each height, in order and exactly
once, the subscriber yields a :class:`VerifiedBlock` whose header

* links to the last verified one (``prev_hash``, height + 1, later time),
* is signed by more than 2/3 of the voting power of a validator set whose hash is the
  ``next_validators_hash`` of the last verified header (so validator-set changes are
  followed, never taken from the bus on faith),

and whose events each prove against the header's ``event_root`` (RFC 6962, tree size
``event_count``). A height missing from the bus — a lost header, lost events, or a tail
nobody published — is fetched through a :class:`~chains.handle.ChainHandle` and put
through the same checks. A payload that fails any check is counted in
``stats.rejected`` by error class and changes nothing.

Trust starts from a :class:`TrustedState`: the genesis (``TrustedState.from_genesis``),
one configured by the operator, or — when none is given — the chain's own header at the
height of the first header seen, read through the handle (the RPC is the chain; the bus
is anyone).

The checks are plain functions (``validate_*``, ``apply_header``) over plain data; the
class around them only does I/O and bookkeeping.

Resource bounds (anyone may publish on the bus, so every cost a message can cause is
bounded before it is paid):

* cheap checks first: each message is parsed once (C speed) and its topic, chain,
  height and counts are checked (:func:`~chains.service.wire.open_envelope`) before the
  full shape check, which costs ~20 us an event; duplicates, heights already yielded and
  events claiming another block or more events than their block has never reach it;
* events ahead of their header are held only near the head, raw, at most
  :data:`EARLY_MESSAGES` messages and :data:`EARLY_BYTES` bytes in all, and decoded
  only once their header verifies (a forged early message costs its bytes, nothing more);
* parts of a block too big for one message are held, unchecked, until all are in, at
  most :data:`PARTS_BYTES` and :data:`PARTS_EVENTS` in all and never two covering the
  same event; past that, or
  when a part overlaps another, it is checked by its own audit paths at once;
* work that cannot be verified yet (a header ahead of the verified head, or before any
  trust: a signature check of up to 256 validators and a call to the chain handle) is
  rate-limited by :class:`TokenBucket`: each such header that made no progress spends a
  token (``unverified_per_s``, burst ``unverified_burst``); without tokens it is counted
  in ``stats.deferred`` and dropped, and the idle fill catches up with the chain anyway.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Protocol, Self

from chains.chain import Genesis
from chains.consensus import verify_commit
from chains.engine import ChainConsensus
from chains.errors import ConsensusError, HeaderRejected, InvalidConsensusParams
from chains.handle import ChainHandle
from chains.merkle import root_and_proofs, verify_inclusion
from chains.pos import (
    PosParams,
    PosTip,
    validate_pos_header,
    validate_seal,
)
from chains.pow import (
    PowParams,
    TipInfo,
    compute_next_anchor,
    get_anchor_height,
    is_work_valid,
    target_bytes,
    target_int,
    validate_pow_header,
)
from chains.service.bus import Bus, BusMessage, BusSubscription
from chains.service.wire import (
    BadEventProof,
    ChainReorg,
    ChainStatus,
    Envelope,
    RawEvent,
    SignedHeader,
    UntrustedHeader,
    WireError,
    WrongChain,
    chain_filter,
    decode_envelope,
    decode_raw_event,
    events_topic,
    open_envelope,
    open_events,
)
from chains.tasks import stop_within
from chains.types import Block, Commit, Event, EventProof, Header, ValidatorSet

__all__ = [
    "BftRule",
    "ChainSubscriber",
    "FollowRule",
    "PosRule",
    "PowRule",
    "SubscriberStats",
    "TokenBucket",
    "TrustedState",
    "VerifiedBlock",
    "apply_header",
    "get_follow_rule",
    "prove_block_events",
    "subscriber_at",
    "trust_at",
    "trusted_state_from_handle",
    "validate_block_events",
    "validate_event",
    "validate_next_header",
    "validate_self_signed",
]

log = logging.getLogger("interlock.subscriber")

FILL_WINDOW = 16
"""Blocks a fill from the chain handle requests at once."""
EARLY_HEIGHTS = 8
"""Events are held ahead of their header only this close to the verified head."""
EARLY_MESSAGES = 64
"""At most this many events messages are held ahead of their headers."""
EARLY_BYTES = 8 * 1024 * 1024
"""At most this many payload bytes are held ahead of their headers, in all (held raw:
a decoded 4 MiB message of tiny events would take ~280 MiB)."""
PARTS_BYTES = 8 * 1024 * 1024
"""At most this many payload bytes of events, in all, are held as parts of verified
blocks until the blocks' other parts are in (then one tree checks them all). Past it,
or past :data:`PARTS_EVENTS`, a part is checked at once by the audit paths it carries:
nothing is dropped, it only costs more. Held parts of a block never overlap, so what is
held for a block is also at most its own ``event_count``."""
PARTS_EVENTS = 8192
"""At most this many events are held as parts, in all. Held opened (an event's leaf,
type and parsed entry: ~6.7 KB for a bridge packet of ~1 KB on the wire, ~4.7 KB for a
forged empty one), so this bounds their memory at ~55 MiB, whatever the bytes."""


# --- pure core ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustedState:
    """What the subscriber believes about a chain: its last verified header."""

    chain_id: str
    """The chain."""
    height: int
    """Height of the last verified header (0: the genesis)."""
    header_hash: bytes
    """Its hash (the genesis hash at 0): the next header's ``prev_hash``."""
    time: int
    """Its time, Unix ms: the next header's time must be later."""
    next_validators_hash: bytes
    """Hash of the set that must sign the next header."""
    target: bytes = b""
    """Proof of work: the header's target (empty for BFT)."""
    anchor_time: int = 0
    """Proof of work: the header's retarget anchor time (``chains.pow``)."""

    @classmethod
    def from_genesis(cls, genesis: Genesis) -> TrustedState:
        engine = genesis.consensus
        target = b""
        if isinstance(engine, PowParams):
            target = target_bytes(engine.initial_target)
        return cls(
            genesis.chain_id,
            0,
            genesis.hash,
            genesis.time,
            genesis.validators.hash,
            target,
            genesis.time,
        )

    @classmethod
    def after(cls, header: Header, anchor_time: int = 0) -> TrustedState:
        return cls(
            header.chain_id,
            header.height,
            header.hash,
            header.time,
            header.next_validators_hash,
            header.target,
            anchor_time,
        )

    @property
    def tip(self) -> TipInfo:
        """What the proof-of-work rules need of this header as a parent."""
        return TipInfo(self.height, self.time, target_int(self.target), self.anchor_time)


def validate_self_signed(sh: SignedHeader) -> None:
    """The carried set hashes to ``validators_hash`` and >2/3 of it signed the header.

    Says nothing about whether that set is the chain's: only :func:`validate_next_header`
    does. Used to refuse garbage before spending an RPC call on it.
    """
    h = sh.header
    if sh.validators.hash != h.validators_hash:
        raise UntrustedHeader(h.chain_id, h.height, "validator set does not match its hash")
    try:
        verify_commit(h, sh.commit, sh.validators)
    except ConsensusError as exc:
        raise UntrustedHeader(h.chain_id, h.height, str(exc)) from None


def _validate_link(trusted: TrustedState, h: Header) -> None:
    if h.chain_id != trusted.chain_id:
        raise WrongChain(trusted.chain_id, h.chain_id)
    if h.height != trusted.height + 1:
        raise UntrustedHeader(h.chain_id, h.height, f"expected height {trusted.height + 1}")
    if h.prev_hash != trusted.header_hash:
        raise UntrustedHeader(h.chain_id, h.height, "prev_hash does not link to trusted header")
    if h.time <= trusted.time:
        raise UntrustedHeader(h.chain_id, h.height, "time does not increase")


def validate_next_header(trusted: TrustedState, sh: SignedHeader) -> None:
    """Check that ``sh`` is the chain's header right after ``trusted``; changes nothing."""
    h = sh.header
    _validate_link(trusted, h)
    if h.validators_hash != trusted.next_validators_hash:
        raise UntrustedHeader(h.chain_id, h.height, "signed by another validator set")
    validate_self_signed(sh)


def apply_header(trusted: TrustedState, sh: SignedHeader) -> TrustedState:
    """The state after accepting ``sh`` (validate first); checks nothing."""
    return TrustedState.after(sh.header)


# --- engines ------------------------------------------------------------------------
# What differs between engines for a follower of the chain: how a header is checked
# alone (before spending I/O on it) and after its parent, what is trusted after it, and
# how many blocks must be on top before it is yielded. One rule object per engine.


class FollowRule(Protocol):
    """An engine's header rules, as the verifying subscriber applies them."""

    @property
    def final_depth(self) -> int:
        """Blocks on top of a block before it is yielded (0: at once)."""

    def validate_alone(self, sh: SignedHeader) -> None:
        """Checks the header can pass by itself (cheap; before any I/O)."""

    def validate_next(self, trusted: TrustedState, sh: SignedHeader, now_ms: int) -> None:
        """Checks ``sh`` is the chain's header right after ``trusted``; changes nothing."""

    def apply(self, trusted: TrustedState, sh: SignedHeader) -> TrustedState:
        """The trusted state after ``sh``; checks nothing."""

    def anchor_height(self, height: int) -> int | None:
        """Another height whose header trusting ``height`` needs (None: none)."""

    def trust(self, header: Header, anchor: Header | None) -> TrustedState:
        """Trust ``header`` (read from the chain) given the header ``anchor_height``
        names (None for the genesis)."""

    def trust_genesis(self, first: Header) -> TrustedState:
        """Trust before height 1, from the chain's own header 1 (its ``prev_hash`` is
        the genesis hash)."""

    def is_better_branch(self, theirs: Sequence[Header], ours: Sequence[Header]) -> bool:
        """The engine's fork choice between two branches above one fork point (headers
        in height order, each verified): True when ``theirs`` replaces ``ours``."""


@dataclass(frozen=True, slots=True)
class BftRule:
    """BFT proof of authority: >2/3 of the announced set signs; final when committed."""

    final_depth: int = 0

    def validate_alone(self, sh: SignedHeader) -> None:
        validate_self_signed(sh)

    def validate_next(self, trusted: TrustedState, sh: SignedHeader, now_ms: int) -> None:
        validate_next_header(trusted, sh)

    def apply(self, trusted: TrustedState, sh: SignedHeader) -> TrustedState:
        return apply_header(trusted, sh)

    def anchor_height(self, height: int) -> int | None:
        return None

    def trust(self, header: Header, anchor: Header | None) -> TrustedState:
        return TrustedState.after(header)

    def trust_genesis(self, first: Header) -> TrustedState:
        # header 1 is signed by the genesis set; any time before it links
        return TrustedState(
            first.chain_id, 0, first.prev_hash, first.time - 1, first.validators_hash
        )

    def is_better_branch(self, theirs: Sequence[Header], ours: Sequence[Header]) -> bool:
        return False  # a committed block is final: no branch replaces it


@dataclass(frozen=True, slots=True)
class PowRule:
    """Proof of work: the seal meets the target the retarget rule gives, the time is in
    its window; a block is yielded once ``finality_depth`` blocks are on top of it."""

    params: PowParams
    """The chain's engine."""
    genesis_time: int
    """Its genesis time (the first window's anchor)."""

    @property
    def final_depth(self) -> int:
        return self.params.finality_depth

    def validate_alone(self, sh: SignedHeader) -> None:
        h = sh.header
        if not h.target or target_int(h.target) > self.params.max_target:
            raise UntrustedHeader(h.chain_id, h.height, "target missing or above max_target")
        if not is_work_valid(h):
            raise UntrustedHeader(h.chain_id, h.height, "proof-of-work hash not below target")

    def validate_next(self, trusted: TrustedState, sh: SignedHeader, now_ms: int) -> None:
        h = sh.header
        _validate_link(trusted, h)
        try:
            validate_pow_header(self.params, trusted.tip, h, now_ms)
        except (ConsensusError, HeaderRejected) as exc:
            raise UntrustedHeader(h.chain_id, h.height, str(exc)) from None

    def apply(self, trusted: TrustedState, sh: SignedHeader) -> TrustedState:
        return TrustedState.after(sh.header, compute_next_anchor(self.params, trusted.tip))

    def anchor_height(self, height: int) -> int | None:
        return get_anchor_height(self.params, height)

    def trust(self, header: Header, anchor: Header | None) -> TrustedState:
        return TrustedState.after(header, self.genesis_time if anchor is None else anchor.time)

    def trust_genesis(self, first: Header) -> TrustedState:
        # the first window's retarget counts from the genesis time
        t, target = self.genesis_time, target_bytes(self.params.initial_target)
        return TrustedState(first.chain_id, 0, first.prev_hash, t, first.validators_hash, target, t)

    def is_better_branch(self, theirs: Sequence[Header], ours: Sequence[Header]) -> bool:
        return self.params.branch_rule().is_better_branch(theirs, ours)


@dataclass(frozen=True, slots=True)
class PosRule:
    """Proof of stake, as the PoS light client judges it (``chains.pos``): the header's
    stake table (the message's ``validators``) is the one its trusted parent announced as
    ``next_validators_hash``, so stake is learnt only through verified headers, epoch by
    epoch; the proposer is eligible by its stake there and sealed the header; the time is
    in its window. A block is yielded once ``finality_depth`` blocks are on top of it, and
    between branches the longest wins, then fewer slots, then the lower tip hash."""

    params: PosParams
    """The chain's engine."""
    genesis_time: int
    """Its genesis time (block 1 is at least ``min_block_ms`` after it)."""

    @property
    def final_depth(self) -> int:
        return self.params.finality_depth

    def validate_alone(self, sh: SignedHeader) -> None:
        # eligible in the table it carries: only worth an RPC call if at least that
        h = sh.header
        if sh.validators.hash != h.validators_hash:
            raise UntrustedHeader(h.chain_id, h.height, "stake table does not match its hash")
        try:
            validate_seal(self.params, h, sh.validators)
        except (ConsensusError, HeaderRejected) as exc:
            raise UntrustedHeader(h.chain_id, h.height, str(exc)) from None

    def validate_next(self, trusted: TrustedState, sh: SignedHeader, now_ms: int) -> None:
        h = sh.header
        _validate_link(trusted, h)
        parent = PosTip(trusted.height, trusted.time, trusted.next_validators_hash)
        try:
            validate_pos_header(self.params, parent, h, sh.validators, now_ms)
        except (ConsensusError, HeaderRejected) as exc:
            raise UntrustedHeader(h.chain_id, h.height, str(exc)) from None

    def apply(self, trusted: TrustedState, sh: SignedHeader) -> TrustedState:
        return TrustedState.after(sh.header)

    def anchor_height(self, height: int) -> int | None:
        return None

    def trust(self, header: Header, anchor: Header | None) -> TrustedState:
        return TrustedState.after(header)

    def trust_genesis(self, first: Header) -> TrustedState:
        # header 1 is judged by the genesis stake table, after the genesis time
        return TrustedState(
            first.chain_id, 0, first.prev_hash, self.genesis_time, first.validators_hash
        )

    def is_better_branch(self, theirs: Sequence[Header], ours: Sequence[Header]) -> bool:
        return self.params.branch_rule().is_better_branch(theirs, ours)


def get_follow_rule(consensus: ChainConsensus | None) -> FollowRule:
    """The rule for a chain's engine (None or no engine: BFT)."""
    engine = None if consensus is None else consensus.engine
    if engine is None:
        return BftRule()
    if isinstance(engine, PowParams):
        assert consensus is not None
        return PowRule(engine, consensus.genesis_time)
    if isinstance(engine, PosParams):
        assert consensus is not None
        return PosRule(engine, consensus.genesis_time)
    raise InvalidConsensusParams(f"no follow rule for engine {engine.name!r}")


def validate_event(header: Header, proof: EventProof) -> None:
    """Check that ``proof.event`` is event ``proof.index`` of the block of ``header``."""
    cid, height, i = header.chain_id, header.height, proof.index
    if proof.chain_id != cid:
        raise WrongChain(cid, proof.chain_id)
    if proof.height != height:
        raise BadEventProof(cid, height, i, f"proof is for height {proof.height}")
    if proof.tree_size != header.event_count:
        raise BadEventProof(cid, height, i, f"tree size is not event_count {header.event_count}")
    if not verify_inclusion(proof.event.leaf(), i, proof.tree_size, proof.proof, header.event_root):
        raise BadEventProof(cid, height, i, "audit path does not lead to event_root")


def validate_block_events(header: Header, events: Sequence[Event]) -> None:
    """Check a block's complete event list against its header (root and count)."""
    prove_block_events(header, events, _NONE)


def _none(event_type: str) -> bool:
    return False


_NONE = _none


def prove_block_events(
    header: Header, events: Sequence[Event], want: Callable[[str], bool] | None = None
) -> dict[int, EventProof | None]:
    """Check a block's complete event list against its header (root and count), and give
    each event's audit path, by index, for the types ``want`` accepts (all when None;
    the others map to None: checked, not followed). One tree for the whole block."""
    if len(events) != header.event_count:
        raise BadEventProof(header.chain_id, header.height, -1, "events do not match event_root")
    wanted = [i for i, e in enumerate(events) if want is None or want(e.type)]
    root, paths = root_and_proofs([e.leaf() for e in events], wanted)
    if root != header.event_root:
        raise BadEventProof(header.chain_id, header.height, -1, "events do not match event_root")
    got: dict[int, EventProof | None] = dict.fromkeys(range(len(events)))
    cid, h, n = header.chain_id, header.height, len(events)
    for i, path in zip(wanted, paths, strict=True):
        got[i] = EventProof(cid, h, i, n, events[i], tuple(path))
    return got


@dataclass(slots=True)
class TokenBucket:
    """``rate`` tokens a second up to ``burst``; time is passed in (no clock here)."""

    rate: float
    """Tokens added per second."""
    burst: float
    """Most tokens held (and the number at the start)."""
    tokens: float = -1.0
    """Tokens now (-1: full, set on first use)."""
    at: float | None = None
    """When ``tokens`` was last brought up to date."""

    def take(self, now: float) -> bool:
        """Spend one token if there is one; False (and nothing spent) otherwise."""
        if self.tokens < 0:
            self.tokens = self.burst
        elif self.at is not None:
            self.tokens = min(self.burst, self.tokens + max(0.0, now - self.at) * self.rate)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    def give_back(self) -> None:
        """Return a token spent on work that turned out useful."""
        self.tokens = min(self.burst, self.tokens + 1)


@dataclass(frozen=True, slots=True)
class VerifiedBlock:
    """A header that verified and the events followed in its block, each proven."""

    header: Header
    """The verified header."""
    commit: Commit
    """Its commit."""
    validators: ValidatorSet
    """The validator set that signed it."""
    proofs: tuple[EventProof, ...]
    """The block's events of the types followed (all of them unless the subscriber was
    given a filter), in ``event_root`` order, each with its index and audit path against
    the header's ``event_root``. Every event of the block was checked, followed or not."""
    filled: bool
    """True when (part of) the block came from the chain handle instead of the bus."""

    @property
    def height(self) -> int:
        return self.header.height

    @property
    def events(self) -> tuple[Event, ...]:
        """The events followed, without their proofs."""
        return tuple(p.event for p in self.proofs)

    @classmethod
    def of(cls, block: Block, validators: ValidatorSet, *, filled: bool = False) -> VerifiedBlock:
        """A block (checked by the caller, e.g. the chain's own) with all of its events."""
        proofs = block.prove_events(range(len(block.events)))
        return cls(block.header, block.commit, validators, tuple(proofs), filled)


@dataclass(slots=True)
class _HeldParts:
    """The parts of one verified block's events held until the rest is in. Unverified:
    runs of consecutive indices, by first index, disjoint from each other and from the
    events taken for the height."""

    runs: dict[int, list[RawEvent]] = field(default_factory=dict)
    """Each part's events, by its first index."""
    sizes: dict[int, int] = field(default_factory=dict)
    """Each part's payload bytes, by its first index (counted in ``PARTS_BYTES``)."""
    events: int = 0
    """Events held, in all."""

    def pop(self, start: int) -> list[RawEvent] | None:
        run = self.runs.pop(start, None)
        if run is not None:
            self.events -= len(run)
            self.sizes.pop(start, None)
        return run


@dataclass(slots=True)
class SubscriberStats:
    """Counters (mutable: the subscriber's one store of bookkeeping)."""

    received: int = 0
    """Bus messages read."""
    verified: int = 0
    """Blocks yielded."""
    duplicates: int = 0
    """Messages for heights already verified (QoS 1 is at least once)."""
    filled: int = 0
    """Heights (headers or events) fetched through the chain handle."""
    dropped_early: int = 0
    """Events messages dropped because their header was not verified and the buffer full."""
    deferred: int = 0
    """Headers that could not be verified yet, dropped unchecked: the budget for such
    work (``unverified_per_s``) was spent on ones that led nowhere."""
    fill_errors: int = 0
    """Failed attempts to reach the chain handle."""
    joined: int = 0
    """Blocks whose events came in several messages, checked with one tree once all
    parts were in."""
    reorgs: int = 0
    """Times the chain's branch above the last yielded block was replaced by one the
    engine's fork choice prefers (checked through the handle; what was held there had
    not been yielded)."""
    reorg_notices: int = 0
    """``reorgs`` messages read from the bus: unverified claims, each of which only
    makes the subscriber check the chain's branch through the handle."""
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    """Rejected payloads by error class name."""
    last_error: str = ""
    """The last rejection, one line."""


# --- the I/O shell --------------------------------------------------------------------


def _signed(env: Envelope) -> SignedHeader:
    sh = decode_envelope(env)
    assert isinstance(sh, SignedHeader)  # the topic's kind decides the model
    return sh


async def trust_header(handle: ChainHandle, rule: FollowRule, header: Header) -> TrustedState:
    """Trust ``header`` (the chain's own, checked by the caller), reading what the
    engine's rule needs besides (a PoW chain: its retarget window's first header)."""
    at = rule.anchor_height(header.height)
    anchor = None
    if at:
        anchor = await handle.get_header(at)
        if anchor is None or anchor.chain_id != handle.chain_id:
            raise UntrustedHeader(handle.chain_id, at, "the chain has no header at this height")
    return rule.trust(header, anchor)


async def trusted_state_from_handle(
    handle: ChainHandle, height: int, rule: FollowRule | None = None
) -> TrustedState:
    """Trust the chain's own header at ``height``, after checking that it passes alone
    (BFT: self-signed; PoW: its work)."""
    rule = rule or BftRule()
    block, vals = await handle.get_block(height), await handle.get_validators(height)
    if block is None or vals is None:
        raise UntrustedHeader(handle.chain_id, height, "the chain has no block at this height")
    sh = SignedHeader(block.header, block.commit, vals)
    if block.header.chain_id != handle.chain_id:
        raise WrongChain(handle.chain_id, block.header.chain_id)
    rule.validate_alone(sh)
    return await trust_header(handle, rule, block.header)


async def trust_at(handle: ChainHandle, height: int, rule: FollowRule) -> TrustedState:
    """Trust the chain at ``height`` (0: its genesis), read through the handle (the RPC
    is the chain; the bus is anyone)."""
    if height > 0:
        return await trusted_state_from_handle(handle, height, rule)
    header = await handle.get_header(1)
    if header is None or header.chain_id != handle.chain_id:
        raise UntrustedHeader(handle.chain_id, 1, "the chain has no block 1 yet")
    return rule.trust_genesis(header)


async def subscriber_at(
    bus: Bus, handle: ChainHandle, height: int, **options: Any
) -> ChainSubscriber:
    """A subscriber that yields the chain's blocks after ``height`` (a cursor; 0: from
    the genesis), with the chain's engine read through the handle."""
    consensus = await handle.get_consensus()
    trusted = await trust_at(handle, height, get_follow_rule(consensus))
    return ChainSubscriber(bus, handle, trusted=trusted, consensus=consensus, **options)


class ChainSubscriber:
    """``async with ChainSubscriber(bus, handle) as sub: async for block in sub: ...``.

    ``idle_timeout``: with no new header from the bus for this long, ask the handle for
    the chain's height and fill any tail (the bus may have lost the last messages, or be
    down). Other messages do not count: a stranger's chatter must not hold the fill off.
    ``max_pending``: verified heights held back waiting for events before new headers
    from the bus are ignored (and later filled from the handle); also the most blocks one
    fill from the handle makes ready before they are taken.
    ``consensus``: the chain's engine (``ChainHandle.get_consensus``; None: BFT): a PoW
    chain's headers are checked by work, a PoS chain's by stake and seal, and a block is
    yielded only once final.
    ``unverified_per_s``, ``unverified_burst``: the budget for headers that cannot be
    checked against the trusted head (ahead of it, or before any trust); one that leads
    to progress costs nothing. ``clock``: seconds, for that budget (tests pass their own).
    ``want``: the event types followed (None: all). Every event of a block is still
    checked against the header's ``event_root``, but only those followed are decoded
    and yielded: a whole block's events in one message are checked with one tree (two
    hashes an event), the others by their own audit paths.
    """

    def __init__(
        self,
        bus: Bus,
        handle: ChainHandle,
        *,
        trusted: TrustedState | None = None,
        idle_timeout: float = 2.0,
        max_pending: int = 1024,
        unverified_per_s: float = 2.0,
        unverified_burst: int = 8,
        clock: Callable[[], float] = time.monotonic,
        consensus: ChainConsensus | None = None,
        wall_clock: Callable[[], float] = time.time,
        want: Callable[[str], bool] | None = None,
    ) -> None:
        self.bus = bus
        self.want = want
        self.handle = handle
        self.chain_id = handle.chain_id
        if trusted is not None and trusted.chain_id != self.chain_id:
            raise WrongChain(self.chain_id, trusted.chain_id)
        self.trusted = trusted
        self.rule = get_follow_rule(consensus)
        """The engine's header rules (``consensus``: the chain's engine; None is BFT)."""
        self._wall_clock = wall_clock
        self.idle_timeout = idle_timeout
        self.max_pending = max_pending
        self.stats = SubscriberStats()
        self.status: ChainStatus | None = None
        """The last status message (informational: unverified)."""
        self._emitted = trusted.height if trusted is not None else 0
        # the trusted state after each held height (and the last yielded): a reorg rolls
        # back to one of them
        self._states: dict[int, TrustedState] = {} if trusted is None else {self._emitted: trusted}
        self._headers: dict[int, SignedHeader] = {}
        # per held height, its events checked so far by index: a proof, or None for one
        # checked and not followed
        self._got: dict[int, dict[int, EventProof | None]] = {}
        self._filled: set[int] = set()
        self._early: dict[int, list[BusMessage]] = {}  # raw: see EARLY_BYTES
        self._early_bytes = 0
        self._parts: dict[int, _HeldParts] = {}  # unverified: see PARTS_BYTES
        self._parts_bytes = 0
        self._parts_events = 0
        self._unverified = TokenBucket(unverified_per_s, unverified_burst)
        self._clock = clock
        self._ready: collections.deque[VerifiedBlock] = collections.deque()
        self._sub: BusSubscription | None = None
        self._ended = False
        self._fill_cut = False  # a fill stopped at max_pending: go on once they are taken
        self._fill_vals: ValidatorSet | None = None  # the set that signed the last filled block
        self._progress = 0  # headers accepted and events messages taken (verified work)
        self._idle_latest = 0  # the chain's height at the last idle check

    @property
    def height(self) -> int:
        """The last height yielded."""
        return self._emitted

    @property
    def head(self) -> int:
        """The highest header verified, yielded or held until final (a PoW or PoS chain:
        may still be replaced): the chain's tip as far as this subscriber checked it."""
        return self._emitted if self.trusted is None else max(self._emitted, self.trusted.height)

    def _now_ms(self) -> int:
        return int(self._wall_clock() * 1000)

    async def __aenter__(self) -> Self:
        self._sub = self.bus.subscribe(chain_filter(self.chain_id), qos=1)
        await self._sub.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._sub is not None:
            await stop_within(self._sub.aclose(), 5)

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> VerifiedBlock:
        if self._sub is None:
            raise RuntimeError("use `async with ChainSubscriber(...)` first")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.idle_timeout
        while not self._ready:
            if self._ended:
                raise StopAsyncIteration
            if self._fill_cut:
                self._fill_cut = False
                await self._on_idle(catching_up=True)  # a fill cut short goes on
                continue
            try:
                async with asyncio.timeout_at(deadline):
                    msg = await self._sub.__anext__()
            except TimeoutError:
                await self._on_idle()
                deadline = loop.time() + self.idle_timeout
                continue
            except StopAsyncIteration:
                self._ended = True
                continue
            before = self._progress
            await self.process(msg)
            # progress (a header or events that verified: a stranger cannot fake it)
            # pushes the idle fill back; anything else leaves the deadline
            if self._progress != before:
                deadline = loop.time() + self.idle_timeout
        return self._ready.popleft()

    async def fill_to(self, upto: int) -> list[VerifiedBlock]:
        """Verify heights after the last yielded one up to ``upto`` (and as far as
        finality needs beyond it) from the chain handle alone, without the bus; the
        blocks that became ready, at most ``max_pending`` a call (call again for more).
        Empty when the handle does not answer (logged and counted in ``fill_errors``)."""
        if self.trusted is not None and self._emitted < upto:
            await self._fill_headers(upto + self.rule.final_depth)
        return self.take_ready()

    def take_ready(self) -> list[VerifiedBlock]:
        """Blocks verified by :meth:`process` calls and not yet taken, in height order."""
        out = list(self._ready)
        self._ready.clear()
        return out

    # --- message handling -----------------------------------------------------------
    async def process(self, msg: BusMessage) -> None:
        """Handle one bus message; never raises for anything a message can contain."""
        self.stats.received += 1
        try:
            env = open_envelope(msg.topic, msg.payload)  # cheap checks before costly ones
            if env.chain_id != self.chain_id:
                raise WrongChain(self.chain_id, env.chain_id)
            if env.kind == "headers":
                await self._on_header(env)
            elif env.kind == "events":
                await self._on_events(env, msg)
            elif env.kind == "reorgs":
                notice = decode_envelope(env)
                assert isinstance(notice, ChainReorg)
                await self._on_reorg(notice)
            else:
                status = decode_envelope(env)
                assert isinstance(status, ChainStatus)
                self.status = status
        except WireError as exc:
            self._rejected(exc, msg.topic)
        await self._complete()

    def _rejected(self, exc: WireError, topic: str) -> None:
        self.stats.rejected[type(exc).__name__] += 1
        self.stats.last_error = str(exc)
        level = logging.WARNING if self.stats.rejected[type(exc).__name__] == 1 else logging.DEBUG
        log.log(level, "%s: rejected bus payload on %s: %s", self.chain_id, topic, exc)

    async def _on_header(self, env: Envelope) -> None:
        h = env.height
        assert h is not None  # open_envelope requires it of a header
        trusted = self.trusted
        if trusted is not None:
            if h <= trusted.height:
                held = self._headers.get(h)
                if held is not None and self.rule.final_depth and h > self._emitted:
                    sh = _signed(env)
                    if sh.header.hash != held.header.hash and self._unverified.take(self._clock()):
                        self.rule.validate_alone(sh)  # a competing branch? ask the chain
                        await self._follow_reorg()
                        return
                self.stats.duplicates += 1
                return
            if trusted.height - self._emitted >= self.max_pending:
                return  # held-back heights are stuck on the handle; the idle fill catches up
            if h == trusted.height + 1:
                sh = _signed(env)
                self.rule.validate_next(trusted, sh, self._now_ms())
                self._accept(sh)
                return
        # Ahead of the trusted head, or no trust yet: the header cannot be checked against
        # anything we hold, only against itself (up to 256 signatures) and the handle (I/O).
        # A stranger can replay such headers at will, so this work has a budget; it is
        # refunded when the header led to progress, as an honest one does.
        if not self._unverified.take(self._clock()):
            self.stats.deferred += 1
            return
        before = trusted.height if trusted is not None else -1
        try:
            sh = _signed(env)
            if trusted is None:
                await self._anchor(sh)
                return
            self.rule.validate_alone(sh)  # not worth an RPC call unless it is at least that
            await self._fill_headers(h - 1)
            if self.trusted is None or self.trusted.height != h - 1:
                return  # the handle is unreachable or behind; the idle fill will retry
            self.rule.validate_next(self.trusted, sh, self._now_ms())
            self._accept(sh)
        finally:
            if self.trusted is not None and self.trusted.height > before:
                self._unverified.give_back()

    async def _on_reorg(self, notice: ChainReorg) -> None:
        """A reorg message. Anyone may publish one, so it proves nothing: it only makes
        the subscriber ask the chain (:meth:`_follow_reorg`, which follows a branch only
        if the engine's fork choice prefers it), when it names a fork below the verified
        head; the reads that costs are paid from the unverified budget."""
        self.stats.reorg_notices += 1
        log.info(
            "%s: reorg notice (unverified): fork at %d, tip %d replaced by %d",
            self.chain_id,
            notice.fork_height,
            notice.old_height,
            notice.new_height,
        )
        trusted = self.trusted
        if trusted is None or notice.fork_height >= trusted.height:
            return  # nothing held above the fork: the new branch's headers come as usual
        if not self._unverified.take(self._clock()):
            self.stats.deferred += 1
            return
        before = self.stats.reorgs
        await self._follow_reorg()
        if self.stats.reorgs > before:
            self._unverified.give_back()

    async def _anchor(self, sh: SignedHeader) -> None:
        """No trust yet: take the chain's own header at this height, if the bus agrees."""
        self.rule.validate_alone(sh)
        try:
            block = await self.handle.get_block(sh.height)
            vals = await self.handle.get_validators(sh.height)
        except Exception as exc:  # the handle is I/O: any failure means "not now"
            self._fill_failed(sh.height, exc)
            return
        if block is None or vals is None:
            raise UntrustedHeader(self.chain_id, sh.height, "the chain has no such block")
        if block.header.hash != sh.header.hash:
            raise UntrustedHeader(self.chain_id, sh.height, "differs from the chain's header")
        try:
            await self._anchor_on(block, vals)
        except Exception as exc:  # the handle is I/O: any failure means "not now"
            if isinstance(exc, WireError):
                raise
            self._fill_failed(sh.height, exc)

    async def _anchor_on(self, block: Block, vals: ValidatorSet) -> None:
        """Start trusting at ``block`` (read from the handle); it is the first yielded."""
        own = SignedHeader(block.header, block.commit, vals)
        if block.header.chain_id != self.chain_id:
            raise WrongChain(self.chain_id, block.header.chain_id)
        self.rule.validate_alone(own)
        proven = prove_block_events(block.header, block.events, self.want)
        h = block.height
        self.trusted = await trust_header(self.handle, self.rule, block.header)
        self._emitted = h - 1
        self._states = {h: self.trusted}
        self._headers[h] = own
        self._got[h] = proven

    def _accept(self, sh: SignedHeader) -> None:
        assert self.trusted is not None
        self._progress += 1
        self.trusted = self.rule.apply(self.trusted, sh)
        h = sh.height
        self._states[h] = self.trusted
        self._headers[h] = sh
        self._got.setdefault(h, {})
        early = self._early.pop(h, [])
        for msg in early:
            self._early_bytes -= len(msg.payload)
            try:
                env = open_envelope(msg.topic, msg.payload)
                self._events_for(sh, env)
            except WireError as exc:
                self._rejected(exc, msg.topic)

    async def _on_events(self, env: Envelope, msg: BusMessage) -> None:
        h = env.height
        assert h is not None  # open_envelope requires it of events
        if h <= self._emitted:
            self.stats.duplicates += 1
            return
        sh = self._headers.get(h)
        if sh is None:
            self._hold_early(h, msg)
        else:
            self._events_for(sh, env)

    def _events_for(self, sh: SignedHeader, env: Envelope) -> None:
        """Events of a verified header: the claimed block and count first (cheap), then
        the full decode, whose cost the header's own ``event_count`` now bounds."""
        header = sh.header
        if env.block_hash != header.hash.hex():
            raise BadEventProof(self.chain_id, header.height, -1, "events are for another block")
        if env.event_count != header.event_count:
            raise BadEventProof(self.chain_id, header.height, -1, "event_count differs from header")
        if len(self._got[header.height]) == header.event_count:
            self.stats.duplicates += 1  # all of this height's events are in already
            return
        self._take_events(sh, open_events(env), env.size)

    def _hold_early(self, height: int, msg: BusMessage) -> None:
        """Events whose header is not verified yet: held raw and unverified, so tightly
        bounded (:data:`EARLY_HEIGHTS`, :data:`EARLY_MESSAGES`, :data:`EARLY_BYTES`).

        Only near the head (a reordered pair), and few: a stranger must not be able to
        fill memory with events for heights that may never come. Dropped ones are
        fetched through the handle once their header verifies.
        """
        if self.trusted is None:  # no head to be near yet; the anchor comes whole anyway
            self.stats.dropped_early += 1
            return
        head = self.trusted.height
        held = sum(len(v) for v in self._early.values())
        size = len(msg.payload)
        if (
            height > head + EARLY_HEIGHTS
            or held >= EARLY_MESSAGES
            or self._early_bytes + size > EARLY_BYTES
        ):
            self.stats.dropped_early += 1
            return
        self._early.setdefault(height, []).append(msg)
        self._early_bytes += size

    def _take_events(self, sh: SignedHeader, raws: Sequence[RawEvent], size: int) -> None:
        """Verify the events of one message and record them: all or nothing.

        A message with the whole block (the usual case) is checked with one tree over its
        leaves against ``event_root``. A part of a bigger block is held until the other
        parts are in, then all are checked with one tree (:meth:`_join_parts`); one that
        cannot be held (over :data:`PARTS_BYTES` or :data:`PARTS_EVENTS`, or overlapping
        another part) is checked at once by the audit paths it carries. Either way every
        leaf is proven, so the types read off the proven leaves decide which events are
        followed: only those are decoded."""
        header = sh.header
        if len(raws) == header.event_count and all(r.index == i for i, r in enumerate(raws)):
            self._take_whole(header, raws)
        elif not self._hold_part(sh, raws, size):
            self._take_by_paths(header, raws)
            self._settle_parts(sh)

    def _take_whole(self, header: Header, raws: Sequence[RawEvent]) -> None:
        """Record a block's every event, in order, after one tree over their leaves."""
        wanted = [r.index for r in raws if self._follows(r.type)]
        got_root, got_paths = root_and_proofs([r.leaf for r in raws], wanted)
        if got_root != header.event_root:
            raise BadEventProof(self.chain_id, header.height, -1, "events do not match event_root")
        paths = {i: tuple(p) for i, p in zip(wanted, got_paths, strict=True)}
        self._record(header, raws, paths)

    def _take_by_paths(self, header: Header, raws: Sequence[RawEvent]) -> None:
        """Record some of a block's events after checking each by its own audit path."""
        h, n, root = header.height, header.event_count, header.event_root
        paths: dict[int, tuple[bytes, ...]] = {}
        for r in raws:
            path = r.proof()
            if not verify_inclusion(r.leaf, r.index, n, path, root):
                raise BadEventProof(
                    self.chain_id, h, r.index, "audit path does not lead to event_root"
                )
            if self._follows(r.type):
                paths[r.index] = path
        self._record(header, raws, paths)

    def _record(
        self, header: Header, raws: Sequence[RawEvent], paths: dict[int, tuple[bytes, ...]]
    ) -> None:
        h, n = header.height, header.event_count
        taken: dict[int, EventProof | None] = dict.fromkeys(r.index for r in raws)
        for r in raws:
            if (found := paths.get(r.index)) is not None:
                event = decode_raw_event(r)
                taken[r.index] = EventProof(self.chain_id, h, r.index, n, event, found)
        self._got[h].update(taken)
        self._progress += 1

    def _hold_part(self, sh: SignedHeader, raws: Sequence[RawEvent], size: int) -> bool:
        """Hold a part of a verified block until the rest is in; True when it was held
        (or was a copy of one held or taken). Held only when it is a run of consecutive
        indices inside the block that overlaps no event held or taken for the height and
        fits :data:`PARTS_BYTES` and :data:`PARTS_EVENTS`: so what is held of a block
        never exceeds the block, and once the held and taken events number
        ``event_count`` they cover it."""
        header = sh.header
        h, n = header.height, header.event_count
        if not raws:
            return False
        start = raws[0].index
        end = start + len(raws)
        if end > n or any(r.index != start + k for k, r in enumerate(raws)):
            return False
        got = self._got[h]
        if got:
            inside = sum(1 for i in range(start, end) if i in got)
            if inside == len(raws):
                self.stats.duplicates += 1  # taken already (QoS 1 is at least once)
                return True
            if inside:
                return False
        held = self._parts.get(h)
        if held is not None:
            clash = [s for s, run in held.runs.items() if s < end and start < s + len(run)]
            if clash:
                if clash == [start] and [r.leaf for r in held.runs[start]] == [
                    r.leaf for r in raws
                ]:
                    self.stats.duplicates += 1  # the same part again
                    return True
                return False  # one of the two is forged: this one is checked by its paths
        if self._parts_bytes + size > PARTS_BYTES or self._parts_events + len(raws) > PARTS_EVENTS:
            return False
        if held is None:
            held = self._parts[h] = _HeldParts()
        held.runs[start] = list(raws)
        held.sizes[start] = size
        held.events += len(raws)
        self._parts_bytes += size
        self._parts_events += len(raws)
        self._settle_parts(sh)
        return True

    def _settle_parts(self, sh: SignedHeader) -> None:
        """After events were taken or a part held: check by their own paths the held
        parts that overlap events taken since (each pair is a forgery and the genuine
        part, or a copy), and join the parts once the block is covered."""
        h = sh.header.height
        held = self._parts.get(h)
        if held is None:
            return
        got = self._got[h]
        for start in [s for s, run in held.runs.items() if any(r.index in got for r in run)]:
            self._parts_bytes -= held.sizes.get(start, 0)
            self._parts_events -= len(held.runs[start])
            self._check_held(sh, held.pop(start))
        if not held.runs:
            del self._parts[h]
        elif held.events + len(got) == sh.header.event_count:
            self._join_parts(sh)

    def _check_held(self, sh: SignedHeader, run: list[RawEvent] | None) -> None:
        if run is None:
            return
        try:
            self._take_by_paths(sh.header, run)
        except WireError as exc:
            self._rejected(exc, events_topic(self.chain_id))

    def _join_parts(self, sh: SignedHeader) -> None:
        """All of a block's events are in (held parts, perhaps some taken): check the
        parts with one tree when they are the whole block. If the root does not match,
        one part at least is forged: each is then checked by its own audit paths, so the
        genuine parts are kept and only the forged refused."""
        header = sh.header
        h = header.height
        held = self._drop_parts(h)
        if held is None:
            return
        runs = [held.runs[s] for s in sorted(held.runs)]
        if not self._got[h]:
            try:
                self._take_whole(header, [r for run in runs for r in run])
                self.stats.joined += 1
                return
            except WireError:
                pass  # some part is forged: find which, by their paths
        for run in runs:
            self._check_held(sh, run)

    def _drop_parts(self, height: int) -> _HeldParts | None:
        held = self._parts.pop(height, None)
        if held is not None:
            self._parts_bytes -= sum(held.sizes.values())
            self._parts_events -= held.events
        return held

    def _follows(self, event_type: str) -> bool:
        return self.want is None or self.want(event_type)

    def _take_block(self, block: Block) -> None:
        """Events of a block read from the handle, checked against the verified header."""
        sh = self._headers[block.height]
        if block.header.hash != sh.header.hash:
            raise UntrustedHeader(self.chain_id, block.height, "the handle's block differs")
        self._got[block.height] = prove_block_events(sh.header, block.events, self.want)
        self._drop_parts(block.height)
        self._filled.add(block.height)

    async def _complete(self) -> None:
        """Yield every complete height in order; fetch events that the bus lost."""
        while self.trusted is not None:
            h = self._emitted + 1
            sh = self._headers.get(h)
            if sh is None or h > self.trusted.height - self.rule.final_depth:
                return  # not there yet, or not final yet
            got = self._got[h]
            if len(got) != sh.header.event_count:
                if self.trusted.height < h + 1:
                    return  # give the bus until the next header to deliver them
                if not await self._fill_events(h):
                    return
                got = self._got[h]
            proofs = tuple(p for i in range(sh.header.event_count) if (p := got[i]) is not None)
            self._ready.append(
                VerifiedBlock(sh.header, sh.commit, sh.validators, proofs, h in self._filled)
            )
            self.stats.verified += 1
            self._emitted = h
            self._states.pop(h - 1, None)
            del self._headers[h], self._got[h]
            self._drop_parts(h)
            self._filled.discard(h)
            for old in [k for k in self._early if k <= h]:
                self._early_bytes -= sum(len(m.payload) for m in self._early.pop(old))

    # --- filling gaps through the handle ----------------------------------------------
    def _fill_failed(self, height: int, exc: BaseException) -> None:
        self.stats.fill_errors += 1
        level = logging.WARNING if self.stats.fill_errors == 1 else logging.DEBUG
        log.log(level, "%s: cannot fetch height %d from the chain: %s", self.chain_id, height, exc)

    async def _fill_events(self, height: int) -> bool:
        try:
            block = await self.handle.get_block(height)
        except Exception as exc:
            self._fill_failed(height, exc)
            return False
        if block is None:
            return False
        try:
            self._take_block(block)
        except WireError as exc:
            log.error("%s: the chain handle served a bad block %d: %s", self.chain_id, height, exc)
            self.stats.fill_errors += 1
            return False
        self.stats.filled += 1
        return True

    async def _fill_headers(self, upto: int) -> None:
        """Verify heights ``trusted + 1 .. upto`` from the handle, in order, stopping once
        ``max_pending`` blocks are ready (a long history must not pile up in memory before
        the first block is taken; ``__anext__`` goes on once they are)."""
        self._fill_cut = False
        fetched: dict[int, Block] = {}
        window = 1  # widened once the chain served a block: a made-up height costs one read
        while (
            self.trusted is not None
            and self.trusted.height < upto
            and len(self._ready) < self.max_pending
        ):
            h = self.trusted.height + 1
            try:
                if h not in fetched:
                    # a catch-up reads FILL_WINDOW blocks at once: one round trip each in
                    # turn made a fresh relayer crawl through a long history
                    last = min(upto, h + window - 1)
                    got = await asyncio.gather(
                        *(self.handle.get_block(x) for x in range(h, last + 1))
                    )
                    fetched = {x: b for x, b in zip(range(h, last + 1), got, strict=True) if b}
                block = fetched.pop(h, None)
                vals = self._fill_vals
                # the set rarely changes: ask for it only when the header names another
                if block is None or vals is None or vals.hash != block.header.validators_hash:
                    vals = await self.handle.get_validators(h)
            except Exception as exc:
                self._fill_failed(h, exc)
                return
            if block is None or vals is None:
                return
            self._fill_vals = vals
            window = FILL_WINDOW
            sh = SignedHeader(block.header, block.commit, vals)
            try:
                self.rule.validate_next(self.trusted, sh, self._now_ms())
                proven = prove_block_events(block.header, block.events, self.want)
            except WireError as exc:
                log.error("%s: the chain handle served a bad block %d: %s", self.chain_id, h, exc)
                self.stats.fill_errors += 1
                return
            self._accept(sh)
            self._got[h] = proven
            self._drop_parts(h)
            self._filled.add(h)
            self.stats.filled += 1
            await self._complete()
        self._fill_cut = (
            self.trusted is not None
            and self.trusted.height < upto
            and len(self._ready) >= self.max_pending
        )

    async def _follow_reorg(self) -> None:
        """The chain may have replaced the blocks held above the last yielded one (held,
        never yielded: not final). Find where the chain's own branch (read through the
        handle) departs from what is held; if the engine's fork choice prefers it
        (``FollowRule.is_better_branch``), drop the held blocks above the fork and verify
        the chain's branch instead. A branch departing
        at or below the last yielded block is refused (nothing yielded is replaced)."""
        trusted = self.trusted
        assert trusted is not None
        try:
            latest = await self.handle.latest_height()
            fork = None
            for x in range(min(trusted.height, latest), self._emitted - 1, -1):
                hd = await self.handle.get_header(x)
                held = self._states.get(x)
                if hd is not None and held is not None and hd.hash == held.header_hash:
                    fork = x
                    break
            if fork is None:
                exc = UntrustedHeader(self.chain_id, self._emitted, "the chain departs below it")
                self._rejected(exc, "(reorg)")
                log.error(
                    "%s: refused a reorganisation below the last yielded block", self.chain_id
                )
                return
            theirs = await asyncio.gather(
                *(self.handle.get_header(x) for x in range(fork + 1, latest + 1))
            )
        except Exception as exc:  # the handle is I/O: any failure means "not now"
            self._fill_failed(self._emitted + 1, exc)
            return
        ours = [self._headers[x].header for x in range(fork + 1, trusted.height + 1)]
        if not self.rule.is_better_branch([h for h in theirs if h is not None], ours):
            return
        for x in range(fork + 1, trusted.height + 1):
            self._headers.pop(x, None)
            self._got.pop(x, None)
            self._drop_parts(x)
            self._states.pop(x, None)
            self._filled.discard(x)
        self.trusted = self._states[fork]
        self.stats.reorgs += 1
        log.warning("%s: followed a reorganisation above height %d", self.chain_id, fork)
        await self._fill_headers(latest)

    async def _on_idle(self, *, catching_up: bool = False) -> None:
        """Fill what the bus did not bring from the handle; ``catching_up``: a fill cut
        short by ``max_pending`` goes on, up to the chain's head."""
        try:
            latest = await self.handle.latest_height()
        except Exception as exc:
            self._fill_failed(self._emitted + 1, exc)
            return
        if self.trusted is None:
            at = latest - self.rule.final_depth  # a final block: it is the first yielded
            if at < 1:
                return
            try:
                block = await self.handle.get_block(at)
                vals = await self.handle.get_validators(at)
                if block is None or vals is None:
                    return
                await self._anchor_on(block, vals)
            except Exception as exc:
                self._fill_failed(latest, exc)
            await self._complete()
            return
        # Only heights the chain already had at the last idle check are overdue: a newer
        # one may still be on its way over the bus (a block interval longer than
        # idle_timeout, or a reader busy with the messages before it), and reading it
        # over RPC as well paid for the block twice (measured: most of the fills under
        # load). A tail the bus really lost is read one idle period later.
        overdue = latest if catching_up else min(latest, self._idle_latest)
        self._idle_latest = latest
        if overdue > self.trusted.height:
            await self._fill_headers(overdue)
        h = self._emitted + 1
        if h in self._headers and len(self._got[h]) != self._headers[h].header.event_count:
            await self._fill_events(h)
        await self._complete()
