"""Client-side verified reads: one chain's headers checked from a trust anchor, and its
events proven against them, so that a party reading a chain through an endpoint it does
not control believes only what the chain's validators (or its work, or its stake)
signed.

A :class:`VerifiedReader` wraps an endpoint (``HttpChain``, or anything with its read
methods: :class:`VerifiableChain`) and a :class:`TrustAnchor`:

* **the genesis** (from the chain's own file: the validator set that signs block 1 and
  the engine's parameters), the strongest anchor: every engine is verified from it;
* **a trusted header** ``height`` + ``hash`` (Tendermint's ``--trusted-height`` /
  ``--trusted-hash``), with the engine's parameters given by the caller (recorded when
  it was first trusted; a BFT chain needs none).

It verifies a header with the kernel's and the subscriber's own rules for the anchor's
engine, never the endpoint's word:

* **BFT**: block 1 sequentially from the genesis set (``validate_next_header``), then
  skipping verification from the nearest trusted block below with bisection
  (:class:`chains.lcplan.UpdatePlanner`, the on-chain light client's rule: >1/3 of the
  trusted next set and >2/3 of the new set sign, within the trusting period);
* **PoW / PoS**: every header from the nearest trusted one, linked and checked by work
  or stake (the subscriber's :class:`~chains.service.subscriber.PowRule` /
  ``PosRule``), and ``finality_depth`` verified headers on top of the one asked for;
* **below a trusted header** (an event older than the trusted state, or a trusting
  period run out): the hash chain down from it (``prev_hash`` links).

What it verified is kept in memory; the highest verified final header becomes the new
:class:`Checkpoint` (``on_checkpoint``: the caller persists it, so the next run starts
there). An event (height, index) is proven with its RFC 6962 audit path against the
verified header's ``event_root`` (the subscriber's :func:`validate_event`).

Work per call is bounded: at most ``max_headers`` headers fetched for one target
(sequential and backward steps) and ``max_steps`` bisection steps; beyond that the call
refuses (:class:`VerifyBudgetExceeded`): pin a newer anchor.

No clock of its own: ``clock`` (seconds) is passed in, for the trusting period.

Errors (one line each, naming the chain and what failed; nothing cached from a failed
call)::

    InterlockError
    └── Unverified               an answer that could not be verified
        ├── UnverifiedHeader     a header that does not verify from the anchor
        │   └── HeaderNotFinal   not final yet by the anchor's engine: ask again later
        ├── UnverifiedEvent      an event whose proof does not lead to a verified header
        ├── AnchorMismatch       the endpoint's chain does not lead to the anchor
        ├── TrustExpired         the trusted state is past its trusting period
        └── VerifyBudgetExceeded more headers or steps than one call may take
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from chains.chain import Genesis
from chains.encoding import JSONValue
from chains.engine import ChainConsensus, get_finality_depth
from chains.errors import InterlockError, TrustingPeriodExpired
from chains.lcplan import LightBlock, UpdatePlanner
from chains.service.rpc_client import RpcError, RpcUnavailable
from chains.service.subscriber import (
    BftRule,
    FollowRule,
    TrustedState,
    get_follow_rule,
    validate_event,
)
from chains.service.wire import SignedHeader
from chains.types import Commit, Event, EventProof, Header, ValidatorSet

__all__ = [
    "DEFAULT_MAX_CLOCK_DRIFT_MS",
    "DEFAULT_TRUSTING_PERIOD_MS",
    "AnchorMismatch",
    "Checkpoint",
    "HeaderNotFinal",
    "ProvenEvent",
    "TrustAnchor",
    "TrustExpired",
    "Unverified",
    "UnverifiedEvent",
    "UnverifiedHeader",
    "VerifiableChain",
    "VerifiedReader",
    "VerifyBudgetExceeded",
]

DEFAULT_TRUSTING_PERIOD_MS = 14 * 24 * 3600 * 1000
"""As the relayer's on-chain clients (``relayer.connect``): two weeks."""
DEFAULT_MAX_CLOCK_DRIFT_MS = 10_000
DEFAULT_MAX_HEADERS = 512
DEFAULT_MAX_STEPS = 32


# --- errors -----------------------------------------------------------------------------


class Unverified(InterlockError):
    """An endpoint's answer about ``chain_id`` that could not be verified."""

    def __init__(self, chain_id: str, what: str, reason: str) -> None:
        self.chain_id, self.what, self.reason = chain_id, what, reason
        super().__init__(f"{chain_id}: cannot verify {what}: {reason[:300]}")


class UnverifiedHeader(Unverified):
    """A header that does not verify from the anchor (forged, wrong set, wrong link)."""


class HeaderNotFinal(UnverifiedHeader):
    """A header the endpoint's tip does not yet bury ``depth`` deep (PoW, PoS)."""

    def __init__(self, chain_id: str, height: int, tip: int, depth: int) -> None:
        self.height, self.tip, self.depth = height, tip, depth
        super().__init__(
            chain_id,
            f"header {height}",
            f"not final: the endpoint's tip is {tip}, the engine's depth {depth}",
        )


class UnverifiedEvent(Unverified):
    """An event whose audit path does not lead to the verified header's ``event_root``."""


class AnchorMismatch(Unverified):
    """The endpoint's chain does not lead to the anchor (another genesis, another
    header at the trusted height, another chain id)."""


class TrustExpired(Unverified):
    """The trusted state is older than the trusting period and nothing newer is
    trusted: skipping verification from it is no longer safe."""


class VerifyBudgetExceeded(Unverified):
    """Verifying the target would take more fetches or steps than one call may."""


# --- values -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TrustAnchor:
    """Where trust in one chain starts."""

    chain_id: str
    """The chain."""
    source: str
    """Where the anchor came from, for messages (``genesis of FILE``, ``--trust``...)."""
    genesis: Genesis | None = None
    """The chain's whole genesis (trust from height 0; engine included)."""
    height: int = 0
    """Without a genesis: the trusted header's height (>= 1)."""
    header_hash: bytes = b""
    """Without a genesis: its hash."""
    consensus: ChainConsensus | None = None
    """Without a genesis: the engine (None: BFT). With one: taken from the genesis."""

    def __post_init__(self) -> None:
        if self.genesis is None and (self.height < 1 or len(self.header_hash) != 32):
            raise ValueError("a trust anchor is a genesis or a header height and hash")
        if self.genesis is not None and self.genesis.chain_id != self.chain_id:
            raise ValueError("the genesis is of another chain")

    @classmethod
    def of_genesis(cls, genesis: Genesis, source: str) -> TrustAnchor:
        return cls(genesis.chain_id, source, genesis)

    @property
    def engine(self) -> ChainConsensus:
        """The engine the anchor names (the genesis's, else the given one, else BFT)."""
        if self.genesis is not None:
            return ChainConsensus(self.genesis.consensus, self.genesis.time)
        return self.consensus or ChainConsensus(None, 0)

    @property
    def key(self) -> str:
        """Identifies the anchor: a cached checkpoint is used only under the same one."""
        if self.genesis is not None:
            return f"genesis:{self.genesis.hash.hex()}"
        return f"header:{self.height}:{self.header_hash.hex()}"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A verified header to verify from: the subscriber's trusted state after it and,
    on a BFT chain, the light block a skip starts from."""

    state: TrustedState
    """The state after the header (height 0: the genesis)."""
    light: LightBlock | None = None
    """BFT: the header with its commit, its set and its next set."""

    @property
    def height(self) -> int:
        return self.state.height

    def to_json(self) -> dict[str, JSONValue]:
        s = self.state
        light: JSONValue = None
        if self.light is not None:
            lb = self.light
            light = {
                "header": lb.header.to_json(),
                "commit": lb.commit.to_json(),
                "validators": lb.validators.to_json(),
                "next_validators": lb.next_validators.to_json(),
            }
        return {
            "chain_id": s.chain_id,
            "height": s.height,
            "header_hash": s.header_hash.hex(),
            "time": s.time,
            "next_validators_hash": s.next_validators_hash.hex(),
            "target": s.target.hex(),
            "anchor_time": s.anchor_time,
            "light": light,
        }

    @classmethod
    def from_json(cls, d: Any) -> Checkpoint:
        """Parse a stored checkpoint (raises ``ValueError``/``KeyError``/``TypeError``
        or the types' ``EncodingError`` on a damaged one)."""
        state = TrustedState(
            str(d["chain_id"]),
            int(d["height"]),
            bytes.fromhex(d["header_hash"]),
            int(d["time"]),
            bytes.fromhex(d["next_validators_hash"]),
            bytes.fromhex(d["target"]),
            int(d["anchor_time"]),
        )
        raw = d["light"]
        light = None
        if raw is not None:
            light = LightBlock(
                Header.from_json(raw["header"]),
                Commit.from_json(raw["commit"]),
                ValidatorSet.from_json(raw["validators"]),
                ValidatorSet.from_json(raw["next_validators"]),
            )
            if light.header.hash != state.header_hash:
                raise ValueError("the light block is not the checkpoint's header")
        return cls(state, light)


@dataclass(frozen=True, slots=True)
class ProvenEvent:
    """An event proven to be leaf ``index`` of a verified header's ``event_root``."""

    chain_id: str
    """The chain."""
    height: int
    """Its block."""
    index: int
    """Its position among the block's events."""
    event: Event
    """The event."""
    header: Header
    """The verified header it was proven against."""


class EventSearch(Protocol):
    """A handle with an event index (``HttpChain.search_events``)."""

    async def search_events(
        self,
        types: Sequence[str],
        attr: tuple[str, str] | None = None,
        *,
        limit: int = 20,
        before: str | None = None,
    ) -> tuple[list[tuple[int, int, Event]], str | None]: ...


class VerifiableChain(EventSearch, Protocol):
    """What the reader asks of an endpoint (``HttpChain`` has all of it)."""

    @property
    def chain_id(self) -> str: ...

    async def latest_height(self) -> int: ...

    async def get_header(self, height: int) -> Header | None: ...

    async def get_commit(self, height: int) -> Commit | None: ...

    async def get_validators(self, height: int) -> ValidatorSet | None: ...

    async def get_event_proof(self, height: int, index: int) -> EventProof | None: ...


# --- the reader -----------------------------------------------------------------------


class VerifiedReader:
    """``await reader.verified_header(h)``, ``await reader.prove_event(h, i)``,
    ``await reader.find_proven(types, attr)``: one chain read through an untrusted
    endpoint, believed only as far as it verifies from ``anchor``.

    ``checkpoint``: a header verified before under this very anchor (persisted by the
    caller from ``on_checkpoint``), to start from instead of the anchor."""

    def __init__(
        self,
        chain: VerifiableChain,
        anchor: TrustAnchor,
        *,
        checkpoint: Checkpoint | None = None,
        on_checkpoint: Callable[[Checkpoint], None] | None = None,
        trusting_period_ms: int = DEFAULT_TRUSTING_PERIOD_MS,
        max_clock_drift_ms: int = DEFAULT_MAX_CLOCK_DRIFT_MS,
        max_headers: int = DEFAULT_MAX_HEADERS,
        max_steps: int = DEFAULT_MAX_STEPS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if chain.chain_id != anchor.chain_id:
            raise AnchorMismatch(anchor.chain_id, "the endpoint", f"it is {chain.chain_id!r}")
        self.chain = chain
        self.chain_id = anchor.chain_id
        self.anchor = anchor
        self.consensus = anchor.engine
        self.rule: FollowRule = get_follow_rule(self.consensus)
        self.depth = get_finality_depth(self.consensus.engine)
        self.trusting_period_ms = trusting_period_ms
        self.max_clock_drift_ms = max_clock_drift_ms
        self.max_headers = max_headers
        self.max_steps = max_steps
        self.on_checkpoint = on_checkpoint
        self._clock = clock
        self._checkpoints: dict[int, Checkpoint] = {}
        self._verified: dict[int, Header] = {}
        """Headers verified (final), by height: answered again without a fetch."""
        self.fetches = 0
        """Endpoint reads made for verification (headers, commits, sets, proofs)."""
        if checkpoint is not None:
            if checkpoint.state.chain_id != self.chain_id:
                raise AnchorMismatch(self.chain_id, "the cached checkpoint", "another chain")
            self._add(checkpoint, save=False)

    # --- public -----------------------------------------------------------------------
    def known_hash(self, height: int) -> bytes | None:
        """The hash of the header at ``height`` if this reader verified it."""
        header = self._verified.get(height)
        return None if header is None else header.hash

    @property
    def latest_checkpoint(self) -> Checkpoint | None:
        return self._checkpoints[max(self._checkpoints)] if self._checkpoints else None

    async def verified_header(self, height: int) -> Header:
        """The chain's header at ``height``, verified from the anchor and final by the
        anchor's engine; raises an :class:`Unverified` subclass (or ``RpcUnavailable``
        when no endpoint answers at all)."""
        if not isinstance(height, int) or isinstance(height, bool) or height < 1:
            raise UnverifiedHeader(self.chain_id, f"header {height!r}", "not a height")
        got = self._verified.get(height)
        if got is not None:
            return got
        try:
            await self._ensure_start()
            header = await self._verify(height)
        except (Unverified, RpcUnavailable):
            raise
        except RpcError as exc:  # the endpoint refused or answered garbage
            raise UnverifiedHeader(self.chain_id, f"header {height}", exc.message) from None
        except InterlockError as exc:  # a kernel rule refused it
            raise UnverifiedHeader(self.chain_id, f"header {height}", str(exc)) from None
        self._verified[height] = header
        return header

    async def prove_event(self, height: int, index: int, expected: Event | None = None) -> Event:
        """Event ``index`` of the block at ``height``, proven against the verified
        header (and, given ``expected``, equal to it: an index answer is checked to be
        the very event the block holds)."""
        header = await self.verified_header(height)
        what = f"event {index} at height {height}"
        try:
            proof = await self.chain.get_event_proof(height, index)
        except RpcError as exc:
            if isinstance(exc, RpcUnavailable):
                raise
            raise UnverifiedEvent(self.chain_id, what, exc.message) from None
        self.fetches += 1
        if proof is None:
            raise UnverifiedEvent(self.chain_id, what, "the endpoint serves no proof for it")
        try:
            validate_event(header, proof)
        except InterlockError as exc:
            raise UnverifiedEvent(self.chain_id, what, str(exc)) from None
        if proof.index != index:
            raise UnverifiedEvent(self.chain_id, what, f"the proof is for index {proof.index}")
        if expected is not None and proof.event.leaf() != expected.leaf():
            raise UnverifiedEvent(self.chain_id, what, "the block holds another event")
        return proof.event

    async def find_proven(
        self, types: Sequence[str], attr: tuple[str, str] | None, *, limit: int = 5
    ) -> list[ProvenEvent]:
        """The newest ``limit`` events the chain's index answers, each proven (the index
        is the endpoint's word: every event it names is checked, one that fails raises;
        an event it leaves out is not found: absence is not proven)."""
        try:
            found, _ = await self.chain.search_events(types, attr, limit=limit)
        except RpcError as exc:
            if isinstance(exc, RpcUnavailable):
                raise
            raise UnverifiedEvent(self.chain_id, "an index search", exc.message) from None
        out = []
        for h, i, event in found[:limit]:
            proven = await self.prove_event(h, i, expected=event)
            out.append(ProvenEvent(self.chain_id, h, i, proven, self._verified[h]))
        return out

    # --- starting -----------------------------------------------------------------------
    def _add(self, cp: Checkpoint, *, save: bool) -> None:
        self._checkpoints[cp.height] = cp
        if save and self.on_checkpoint is not None and cp.height == max(self._checkpoints):
            self.on_checkpoint(cp)

    async def _ensure_start(self) -> None:
        """The anchor as a checkpoint, once: the genesis state, or the trusted header
        read from the endpoint and checked to be the one pinned."""
        if self._checkpoints:
            return
        a = self.anchor
        if a.genesis is not None:
            self._add(Checkpoint(TrustedState.from_genesis(a.genesis)), save=False)
            return
        header = await self._header(a.height)
        if header.hash != a.header_hash:
            raise AnchorMismatch(
                self.chain_id,
                f"the trusted header {a.height}",
                f"the endpoint's is {header.hash.hex()[:16]}..., {a.source} says "
                f"{a.header_hash.hex()[:16]}...",
            )
        sh = await self._signed(header)
        self.rule.validate_alone(sh)
        light = await self._light(sh) if isinstance(self.rule, BftRule) else None
        state = await self._trust_state(header)
        self._add(Checkpoint(state, light), save=True)
        self._verified[header.height] = header

    async def _trust_state(self, header: Header) -> TrustedState:
        """The follower's state after a pinned header (a PoW chain also needs its
        retarget window's first header: reached by the hash chain down from it)."""
        at = self.rule.anchor_height(header.height)
        anchor = None
        if at:
            anchor = await self._walk_down(header, at)
        return self.rule.trust(header, anchor)

    # --- verifying --------------------------------------------------------------------
    async def _verify(self, height: int) -> Header:
        heights = sorted(self._checkpoints)
        i = bisect.bisect_right(heights, height)
        below = self._checkpoints[heights[i - 1]] if i else None
        above = self._checkpoints[heights[i]] if i < len(heights) else None
        if below is not None and below.height == height:  # verified before
            return below.light.header if below.light is not None else await self._top(below)
        latest = await self.chain.latest_height()  # untrusted: only bounds what to ask
        if height > latest - self.depth:
            raise HeaderNotFinal(self.chain_id, height, latest, self.depth)
        if below is not None:
            try:
                return await self._verify_forward(below, height)
            except TrustExpired:
                if above is None:
                    raise
        assert above is not None  # the anchor is a checkpoint at or below any height >= 1
        top = above.light.header if above.light is not None else await self._top(above)
        return await self._walk_down(top, height)

    async def _top(self, cp: Checkpoint) -> Header:
        header = await self._header(cp.height)
        if header.hash != cp.state.header_hash:
            raise AnchorMismatch(
                self.chain_id,
                f"header {cp.height}",
                f"differs from the one verified before from {self.anchor.source} "
                "(a chain started over?)",
            )
        return header

    async def _walk_down(self, top: Header, height: int) -> Header:
        """The header at ``height`` below the verified ``top``, by the hash chain."""
        if top.height - height > self.max_headers:
            raise VerifyBudgetExceeded(
                self.chain_id,
                f"header {height}",
                f"{top.height - height} headers below the trusted {top.height} "
                f"(at most {self.max_headers}); pin a header nearer to it",
            )
        cur = top
        while cur.height > height:
            nxt = await self._header(cur.height - 1)
            if nxt.hash != cur.prev_hash:
                raise AnchorMismatch(
                    self.chain_id,
                    f"header {nxt.height}",
                    f"not the parent of the verified header {cur.height}: another history "
                    f"than the one trusted from {self.anchor.source} (a chain started over?)",
                )
            cur = nxt
            if cur.height > 0:
                self._verified.setdefault(cur.height, cur)
        return cur

    async def _verify_forward(self, below: Checkpoint, height: int) -> Header:
        if isinstance(self.rule, BftRule):
            return await self._verify_bft(below, height)
        return await self._verify_chain(below, height)

    async def _verify_bft(self, below: Checkpoint, height: int) -> Header:
        trusted = below.light
        if trusted is None:  # the genesis: block 1 is signed by the genesis set
            sh = await self._signed(await self._header(below.height + 1))
            self._check_genesis_link(below.state, sh.header)
            self.rule.validate_next(below.state, sh, self._now_ms())
            cp = Checkpoint(self.rule.apply(below.state, sh), await self._light(sh))
            self._add(cp, save=True)
            self._verified[sh.height] = sh.header
            if sh.height == height:
                return sh.header
            trusted = cp.light
            assert trusted is not None
        try:
            planner = UpdatePlanner(
                trusted,
                height,
                now=self._now_ms(),
                trusting_period=self.trusting_period_ms,
                max_clock_drift=self.max_clock_drift_ms,
            )
        except TrustingPeriodExpired as exc:
            raise TrustExpired(self.chain_id, f"header {height}", str(exc)) from None
        steps = 0
        target: LightBlock | None = None
        while (h := planner.next_height()) is not None:
            steps += 1
            if steps > self.max_steps:
                raise VerifyBudgetExceeded(
                    self.chain_id,
                    f"header {height}",
                    f"more than {self.max_steps} bisection steps from {trusted.height}",
                )
            block = await self._light(await self._signed(await self._header(h)))
            planner.provide(block)  # raises the light client's typed error
            if h == height:
                target = block
        planner.updates()  # raises unless the plan reached the target
        assert target is not None
        self._add(Checkpoint(TrustedState.after(target.header), target), save=True)
        return target.header

    def _check_genesis_link(self, genesis: TrustedState, first: Header) -> None:
        if first.prev_hash != genesis.header_hash:
            raise AnchorMismatch(
                self.chain_id,
                "block 1",
                f"it does not follow the genesis of {self.anchor.source} (another genesis, "
                "or a chain started with other options)",
            )

    async def _verify_chain(self, below: Checkpoint, height: int) -> Header:
        """PoW / PoS: every header from ``below`` to ``height + depth``, each checked
        after its parent by work or stake; ``height`` is then final."""
        top = height + self.depth
        need = top - below.height
        if need > self.max_headers:
            raise VerifyBudgetExceeded(
                self.chain_id,
                f"header {height}",
                f"{need} headers from the trusted {below.height} (at most "
                f"{self.max_headers}); pin a newer header",
            )
        state = below.state
        states: dict[int, TrustedState] = {}
        headers: dict[int, Header] = {}
        vals: ValidatorSet | None = None
        for h in range(below.height + 1, top + 1):
            header = await self._header(h)
            if vals is None or vals.hash != header.validators_hash:
                vals = await self._validators(h)
            sh = SignedHeader(header, Commit(h, header.hash, ()), vals)
            if h == 1:
                self._check_genesis_link(state, header)
            self.rule.validate_next(state, sh, self._now_ms())
            state = self.rule.apply(state, sh)
            states[h], headers[h] = state, header
        for h in range(below.height + 1, height + 1):
            self._verified[h] = headers[h]  # final: depth verified headers on top
        self._add(Checkpoint(states[height]), save=True)
        return headers[height]

    # --- fetching (untrusted) -----------------------------------------------------------
    def _now_ms(self) -> int:
        return int(self._clock() * 1000)

    async def _header(self, height: int) -> Header:
        self.fetches += 1
        header = await self.chain.get_header(height)
        if header is None:
            raise UnverifiedHeader(self.chain_id, f"header {height}", "the endpoint has none")
        if header.chain_id != self.chain_id or header.height != height:
            raise AnchorMismatch(
                self.chain_id,
                f"header {height}",
                f"the endpoint answered {header.chain_id}@{header.height}",
            )
        return header

    async def _validators(self, height: int) -> ValidatorSet:
        self.fetches += 1
        vals = await self.chain.get_validators(height)
        if vals is None:
            raise UnverifiedHeader(
                self.chain_id, f"header {height}", "the endpoint has no validator set for it"
            )
        return vals

    async def _signed(self, header: Header) -> SignedHeader:
        self.fetches += 1
        commit = await self.chain.get_commit(header.height)
        if commit is None:
            raise UnverifiedHeader(
                self.chain_id, f"header {header.height}", "the endpoint has no commit for it"
            )
        return SignedHeader(header, commit, await self._validators(header.height))

    async def _light(self, sh: SignedHeader) -> LightBlock:
        """A light block (the next set: the same one, the usual case, or read)."""
        header, vals = sh.header, sh.validators
        nxt = vals if vals.hash == header.next_validators_hash else None
        if nxt is None:
            nxt = await self._validators(header.height + 1)
        return LightBlock(header, sh.commit, vals, nxt)
